//! A Pool's size and `orchctl scale`'s change to it: how a Pool is sized ([`PoolSize`]: a
//! fixed `replicas`, or `scaling` bounds), what a scale asks for ([`SizeChange`]), and the one
//! rule that applies the second to a [`PoolSpec`] — refusing a change of the wrong kind and
//! checking the result against the manifest limits (`validate::check_pool_size`).
//!
//! Pure: the API route applies a change to the Pool as the snapshot shows it, the controller
//! to the Pool in its file, and both get the same answer and the same words. It must not read
//! or write files.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::pool::{PoolSpec, ScalingSpec};
use crate::validate::{self, Problem};

/// How a Pool is sized: what `spec.replicas` or `spec.scaling` declare.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum PoolSize {
    /// `spec.replicas`: that many, always.
    Fixed {
        /// The replica count.
        replicas: u32,
    },
    /// `spec.scaling`: between these, by demand.
    ByDemand {
        /// `spec.scaling.minReplicas`.
        min_replicas: u32,
        /// `spec.scaling.maxReplicas`.
        max_replicas: u32,
    },
}

impl PoolSize {
    /// How `spec` is sized: by `scaling` when it has one, else by `replicas` (0 when a spec
    /// has neither, which validation refuses).
    pub fn of(spec: &PoolSpec) -> PoolSize {
        match &spec.scaling {
            Some(s) => PoolSize::ByDemand {
                min_replicas: s.min_replicas,
                max_replicas: s.max_replicas,
            },
            None => PoolSize::Fixed {
                replicas: spec.replicas.unwrap_or(0),
            },
        }
    }
}

impl fmt::Display for PoolSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoolSize::Fixed { replicas } => write!(f, "replicas {replicas}"),
            PoolSize::ByDemand {
                min_replicas,
                max_replicas,
            } => write!(f, "minReplicas {min_replicas}, maxReplicas {max_replicas}"),
        }
    }
}

/// What changed between two sizes, as people read it: `replicas 2 → 3`,
/// `maxReplicas 1 → 3`, `minReplicas 0 → 1, maxReplicas 1 → 2`; `replicas 2 (unchanged)`
/// when nothing did.
pub fn describe_change(from: &PoolSize, to: &PoolSize) -> String {
    let field = |name: &str, a: u32, b: u32| (a != b).then(|| format!("{name} {a} → {b}"));
    let changed: Vec<String> = match (from, to) {
        (PoolSize::Fixed { replicas: a }, PoolSize::Fixed { replicas: b }) => {
            field("replicas", *a, *b).into_iter().collect()
        }
        (
            PoolSize::ByDemand {
                min_replicas: a0,
                max_replicas: a1,
            },
            PoolSize::ByDemand {
                min_replicas: b0,
                max_replicas: b1,
            },
        ) => [field("minReplicas", *a0, *b0), field("maxReplicas", *a1, *b1)]
            .into_iter()
            .flatten()
            .collect(),
        // A scale never changes how a Pool is sized; said plainly should it ever happen.
        _ => vec![format!("{from} → {to}")],
    };
    if changed.is_empty() {
        format!("{to} (unchanged)")
    } else {
        changed.join(", ")
    }
}

/// What a scale asks for, already checked for shape (some field, not both kinds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SizeChange {
    /// A new `spec.replicas`, for a Pool of fixed size.
    Replicas(u32),
    /// New `spec.scaling` bounds, for a Pool sized by demand; what is left out stays.
    Bounds {
        /// The new `minReplicas`.
        min: Option<u32>,
        /// The new `maxReplicas`.
        max: Option<u32>,
    },
}

/// Why a [`SizeChange`] does not fit a Pool. The messages name the Pool, the field and the
/// value, and say what to do instead.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    /// `replicas` for a Pool sized by `scaling`.
    #[error(
        "pool `{pool}` is sized by demand (`scaling`: minReplicas {min_replicas}, maxReplicas {max_replicas}), \
         so it has no fixed replica count to set: change its bounds with `orchctl scale pool/{pool} --min A --max B` \
         (`min_replicas`, `max_replicas`), or remove `scaling` from its manifest and set `replicas: N` to fix its size"
    )]
    SizedByDemand {
        /// The Pool.
        pool: String,
        /// Its `minReplicas`.
        min_replicas: u32,
        /// Its `maxReplicas`.
        max_replicas: u32,
    },
    /// `minReplicas`/`maxReplicas` for a Pool of fixed size.
    #[error(
        "pool `{pool}` has a fixed size (`replicas: {replicas}`), so it has no minimum or maximum to set: scale it \
         with `orchctl scale pool/{pool} --replicas N` (`replicas`), or make it demand-driven by replacing \
         `replicas: {replicas}` in its manifest with `scaling: {{minReplicas: 0, maxReplicas: {replicas_or_one}, \
         idleTimeout: 5m}}` (docs/scaling.md)"
    )]
    FixedSize {
        /// The Pool.
        pool: String,
        /// Its `replicas`.
        replicas: u32,
        /// `replicas`, or 1 for a Pool of none: the example's `maxReplicas`.
        replicas_or_one: u32,
    },
    /// The Pool after the change breaks a manifest limit (`validate::check_pool_size`).
    #[error("pool `{pool}` cannot be scaled so: {}", problems_text(.problems))]
    OutOfRange {
        /// The Pool.
        pool: String,
        /// Each limit broken, with its field and what to do.
        problems: Vec<Problem>,
    },
}

fn problems_text(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("{}: {}; {}", p.field, p.message, p.hint))
        .collect::<Vec<_>>()
        .join("; ")
}

impl SizeChange {
    /// `spec` of Pool `pool` with this change made, checked against the manifest limits.
    pub fn apply(&self, pool: &str, spec: &PoolSpec) -> Result<PoolSpec, SizeError> {
        let changed = match (*self, &spec.scaling) {
            (SizeChange::Replicas(_), Some(s)) => {
                return Err(SizeError::SizedByDemand {
                    pool: pool.to_string(),
                    min_replicas: s.min_replicas,
                    max_replicas: s.max_replicas,
                });
            }
            (SizeChange::Bounds { .. }, None) => {
                let replicas = spec.replicas.unwrap_or(0);
                return Err(SizeError::FixedSize {
                    pool: pool.to_string(),
                    replicas,
                    replicas_or_one: replicas.max(1),
                });
            }
            (SizeChange::Replicas(n), None) => PoolSpec {
                replicas: Some(n),
                ..spec.clone()
            },
            (SizeChange::Bounds { min, max }, Some(s)) => PoolSpec {
                scaling: Some(ScalingSpec {
                    min_replicas: min.unwrap_or(s.min_replicas),
                    max_replicas: max.unwrap_or(s.max_replicas),
                    ..s.clone()
                }),
                ..spec.clone()
            },
        };
        let problems = validate::check_pool_size(&changed);
        if problems.is_empty() {
            Ok(changed)
        } else {
            Err(SizeError::OutOfRange {
                pool: pool.to_string(),
                problems,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn spec(size: &str) -> PoolSpec {
        let text = format!(
            "apiVersion: llama-orch.dev/v1alpha1\nkind: Pool\nmetadata: {{name: chat}}\nspec: {{engine: e, model: m, {size}}}\n"
        );
        match &crate::parse_file("p.yaml", text.as_bytes()).unwrap()[0].object {
            crate::AnyObject::Pool(p) => p.spec.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_fixed_pool_takes_a_replica_count_within_the_manifest_limit() {
        let fixed = spec("replicas: 2");
        let three = SizeChange::Replicas(3).apply("chat", &fixed).unwrap();
        assert_eq!(PoolSize::of(&three), PoolSize::Fixed { replicas: 3 });
        assert_eq!(
            SizeChange::Replicas(0).apply("chat", &fixed).unwrap().replicas,
            Some(0),
            "0 stops every replica"
        );
        let err = SizeChange::Replicas(17).apply("chat", &fixed).unwrap_err();
        assert_eq!(
            err.to_string(),
            "pool `chat` cannot be scaled so: spec.replicas: 17 is above the maximum of 16; use fewer replicas"
        );
    }

    #[test]
    fn a_pool_sized_by_demand_takes_either_bound_and_keeps_the_other() {
        let by_demand = spec("scaling: {minReplicas: 0, maxReplicas: 1, idleTimeout: 90s}");
        let up = SizeChange::Bounds {
            min: None,
            max: Some(3),
        }
        .apply("c", &by_demand)
        .unwrap();
        assert_eq!(
            PoolSize::of(&up),
            PoolSize::ByDemand {
                min_replicas: 0,
                max_replicas: 3
            }
        );
        assert_eq!(up.scaling.unwrap().idle_timeout.to_string(), "90s", "idleTimeout kept");
        let err = SizeChange::Bounds {
            min: Some(2),
            max: None,
        }
        .apply("c", &by_demand)
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("spec.scaling.minReplicas: 2 is above maxReplicas (1)"),
            "{err}"
        );
        let err = SizeChange::Bounds {
            min: None,
            max: Some(0),
        }
        .apply("c", &by_demand)
        .unwrap_err();
        assert!(
            err.to_string().contains("spec.scaling.maxReplicas: 0 is outside 1–16"),
            "{err}"
        );
    }

    #[test]
    fn a_change_of_the_wrong_kind_says_what_to_do_instead() {
        let err = SizeChange::Replicas(2)
            .apply("coder", &spec("scaling: {maxReplicas: 2}"))
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("pool `coder` is sized by demand"), "{text}");
        assert!(
            text.contains("--min A --max B") && text.contains("remove `scaling`"),
            "{text}"
        );
        let err = SizeChange::Bounds {
            min: None,
            max: Some(2),
        }
        .apply("chat", &spec("replicas: 2"))
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("pool `chat` has a fixed size (`replicas: 2`)"), "{text}");
        assert!(
            text.contains("`scaling: {minReplicas: 0, maxReplicas: 2, idleTimeout: 5m}` (docs/scaling.md)"),
            "{text}"
        );
    }

    #[test]
    fn a_change_is_described_by_the_fields_it_changes() {
        let fixed = |replicas| PoolSize::Fixed { replicas };
        let bounds = |min_replicas, max_replicas| PoolSize::ByDemand {
            min_replicas,
            max_replicas,
        };
        assert_eq!(describe_change(&fixed(2), &fixed(3)), "replicas 2 → 3");
        assert_eq!(describe_change(&fixed(2), &fixed(2)), "replicas 2 (unchanged)");
        assert_eq!(describe_change(&bounds(0, 1), &bounds(0, 3)), "maxReplicas 1 → 3");
        assert_eq!(
            describe_change(&bounds(0, 1), &bounds(1, 2)),
            "minReplicas 0 → 1, maxReplicas 1 → 2"
        );
        assert_eq!(
            serde_json::to_value(bounds(0, 2)).unwrap(),
            serde_json::json!({"min_replicas": 0, "max_replicas": 2})
        );
        assert_eq!(
            serde_json::from_value::<PoolSize>(serde_json::json!({"replicas": 2})).unwrap(),
            fixed(2)
        );
    }
}

//! Rolling (surge) replacement of a Pool's replicas when their spec changes — an Engine, Model
//! or Pool edit, or an explicit reload — with rollback when the new revision fails.
//!
//! For each replica index whose container is outdated and Ready, the new revision starts
//! *alongside* it; the old one keeps serving. All indices of the pool surge at once, and the
//! cut-over is atomic: only when every new container is Ready do the new ones take traffic
//! (published Ready) and the old ones retire (published `Draining`, closed to new tasks through
//! the [`ReplicaGate`](crate::retire::ReplicaGate), removed once idle or after
//! [`RETIRE_DEADLINE`]). If any new container fails before the cut-over (exits, misses its
//! startup timeout, cannot be created), the rollout ROLLS BACK: every new container goes, the
//! old ones are left exactly as they are (same ids, never restarted), and the failed revision is
//! remembered in the Pool's status (`rollout.phase: rolled-back`), so it is not retried until
//! the spec changes again or an explicit reload bumps the revision. Indices without a Ready old
//! container (crash-looping, first start) are simply replaced, as before.
//!
//! Level-triggered: [`decide`] sees only what is observed now (containers, probes) plus the
//! per-slot memory (which old container retires since when, a failed create) and the persisted
//! status. After a daemon restart mid-rollout an index with two containers of different hashes
//! is the same observation as before the restart, so the same decision follows: nothing is
//! duplicated or lost.
//!
//! This module decides and records; `pool.rs` observes and acts on the runtime.

use std::collections::BTreeMap;
use std::time::Duration;

use llorch_manifests::status::{EventType, LastError, ObjectStatus, Rollout, RolloutMethod, RolloutPhase};
use llorch_manifests::{ObjectRef, Reason};

use crate::state_dir::{EventLog, now_rfc3339};

/// An old container that still has tasks in flight is removed anyway after this long: the
/// data plane's wall-clock watchdog ends every task within it.
pub const RETIRE_DEADLINE: Duration = Duration::from_secs(600);

/// The label with the Model a container serves (for `rollout.fromModel`).
pub const MODEL_LABEL: &str = "dev.llama-orch.model";

/// The new revision's container of one index, as observed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NewState {
    /// Not created yet.
    Absent,
    /// Created; its health probe has not passed yet.
    Starting,
    /// Its health probe passes.
    Ready,
    /// It exited, missed its startup timeout, or could not be created.
    Failed {
        /// What happened.
        message: String,
        /// The engine's last log lines.
        log_tail: Vec<String>,
    },
}

/// One replica index that has a Ready old container and a new revision to roll out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Surge {
    /// Replica index.
    pub index: u32,
    /// The old container's spec hash.
    pub old_hash: String,
    /// The target spec hash.
    pub new_hash: String,
    /// The Model the old container serves, from its label.
    pub old_model: Option<String>,
    /// Where the new container is.
    pub new: NewState,
    /// The old container is already retiring (closed to new tasks).
    pub retiring: bool,
}

/// What to do with the surging indices this pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Start the missing new containers; old ones serve; new ones wait (not Ready to tasks).
    Progress,
    /// Every new container is Ready (or retirement already began): new ones serve, old ones
    /// retire.
    CutOver,
    /// `Recreate` (no room for two copies, or the Pool asks for it): the old container of
    /// index `next` finishes its tasks and is removed, then its new revision starts; one index
    /// at a time, the others serve on their old containers meanwhile. `None`: a new revision is
    /// still starting somewhere in the Pool, so no other old container stops yet.
    Recreate {
        /// The index whose old container stops now.
        next: Option<u32>,
    },
    /// A new container failed before the cut-over: remove every new one, keep every old one.
    RollBack {
        /// The index whose new container failed first.
        index: u32,
        /// Why.
        message: String,
        /// Its engine's last log lines.
        log_tail: Vec<String>,
    },
}

/// The step for `surges` (sorted by index) rolled out by `method`; `None` when nothing
/// surges. `in_motion`: some index of the Pool has a new container that is not Ready yet and
/// no old one (a `Recreate` in progress there).
pub fn decide(surges: &[Surge], method: RolloutMethod, in_motion: bool) -> Option<Step> {
    if surges.is_empty() {
        return None;
    }
    // A surge already under way (a new container exists) finishes as a surge.
    if method == RolloutMethod::Recreate && surges.iter().all(|s| s.new == NewState::Absent) {
        // Stop-first, one index at a time: the lowest index whose new revision has not
        // started; the one already stopping keeps its turn.
        let stopping = surges.iter().find(|s| s.retiring).map(|s| s.index);
        let next = stopping.or_else(|| {
            (!in_motion)
                .then(|| surges.iter().find(|s| s.new == NewState::Absent).map(|s| s.index))
                .flatten()
        });
        return Some(Step::Recreate { next });
    }
    // Once an old container was closed to new tasks, the rollout is committed: a new container
    // that fails now is restarted like any crashed replica (and its old one reopened).
    let committed = surges.iter().any(|s| s.retiring);
    if !committed
        && let Some((index, message, log_tail)) = surges.iter().find_map(|s| match &s.new {
            NewState::Failed { message, log_tail } => Some((s.index, message.clone(), log_tail.clone())),
            _ => None,
        })
    {
        return Some(Step::RollBack {
            index,
            message,
            log_tail,
        });
    }
    if committed || surges.iter().all(|s| s.new == NewState::Ready) {
        Some(Step::CutOver)
    } else {
        Some(Step::Progress)
    }
}

/// The revision a past rollout failed on, when the pool still targets it (some index's target
/// hash equals it): such a target is held back, not retried.
pub fn failed_target(status: &ObjectStatus, targets: &BTreeMap<u32, String>) -> Option<String> {
    let r = status.rollout.as_ref()?;
    (r.phase == RolloutPhase::RolledBack && targets.values().any(|h| *h == r.to_revision))
        .then(|| r.to_revision.clone())
}

/// What [`record`] needs besides the step.
pub struct Record<'a> {
    /// The Pool.
    pub obj: &'a ObjectRef,
    /// The Model the Pool declares now.
    pub model: &'a str,
    /// The surging indices (sorted by index).
    pub surges: &'a [Surge],
    /// This pass's step.
    pub step: Option<&'a Step>,
    /// Old containers removed this pass after draining.
    pub retired: usize,
    /// Some index still has an old container (its probe may not have reported yet).
    pub olds_left: bool,
    /// Every index has a Ready container of the target revision and no old one.
    pub settled: bool,
    /// How this rollout replaces replicas.
    pub method: RolloutMethod,
}

/// Updates `status.rollout` and emits an event on every phase change: `RolloutStarted`
/// (progressing), `RolloutDraining`, `RolloutComplete`, `RolloutFailed`.
pub fn record(status: &mut ObjectStatus, events: &EventLog, r: Record<'_>) {
    let prev = status.rollout.clone();
    let emit = |kind: EventType, reason: Reason, message: String| events.emit(Some(r.obj), None, kind, reason, message);
    let Some(step) = r.step else {
        if r.olds_left || !r.settled {
            return;
        }
        complete(status, prev, emit);
        return;
    };
    let Some(first) = r.surges.first() else { return };
    let same = prev.as_ref().filter(|p| p.to_revision == first.new_hash);
    let from_model = first.old_model.clone().filter(|m| m != r.model);
    let to_model = from_model.as_ref().map(|_| r.model.to_string());
    let started_at = same
        .filter(|p| p.phase != RolloutPhase::Complete)
        .map(|p| p.started_at.clone())
        .unwrap_or_else(now_rfc3339);
    let (phase, message) = phase_of(status, step, &r, first);
    let changed = same.is_none_or(|p| p.phase != phase);
    if changed {
        let (kind, reason) = match phase {
            RolloutPhase::Progressing => (EventType::Normal, Reason::RolloutStarted),
            RolloutPhase::Draining => (EventType::Normal, Reason::RolloutDraining),
            RolloutPhase::RolledBack => (EventType::Warning, Reason::RolloutFailed),
            RolloutPhase::Complete => (EventType::Normal, Reason::RolloutComplete),
        };
        let models = match (&from_model, &to_model) {
            (Some(f), Some(t)) => format!(" (model {f} → {t})"),
            _ => String::new(),
        };
        emit(
            kind,
            reason,
            format!(
                "rollout {} → {}{models} ({}): {message}",
                first.old_hash, first.new_hash, r.method
            ),
        );
    }
    status.rollout = Some(Rollout {
        phase,
        from_revision: same
            .map(|p| p.from_revision.clone())
            .unwrap_or_else(|| first.old_hash.clone()),
        to_revision: first.new_hash.clone(),
        from_model: same.and_then(|p| p.from_model.clone()).or(from_model),
        to_model: same.and_then(|p| p.to_model.clone()).or(to_model),
        message,
        started_at,
        method: r.method,
    });
}

/// Nothing surges, no old container is left and every replica is Ready on the new
/// revision: a rollout in motion (`prev`) has finished.
fn complete(status: &mut ObjectStatus, prev: Option<Rollout>, emit: impl Fn(EventType, Reason, String)) {
    if let Some(mut done) = prev.filter(|p| matches!(p.phase, RolloutPhase::Progressing | RolloutPhase::Draining)) {
        done.phase = RolloutPhase::Complete;
        done.message = format!("every replica runs revision {}", done.to_revision);
        emit(
            EventType::Normal,
            Reason::RolloutComplete,
            format!("rollout {} → {} complete", done.from_revision, done.to_revision),
        );
        status.rollout = Some(done);
    }
}

/// The phase `step` puts the rollout in, with its status message; a rollback also sets
/// `status.last_error`.
fn phase_of(status: &mut ObjectStatus, step: &Step, r: &Record<'_>, first: &Surge) -> (RolloutPhase, String) {
    let n = r.surges.len();
    match step {
        Step::Progress => {
            let ready = r.surges.iter().filter(|s| s.new == NewState::Ready).count();
            (
                RolloutPhase::Progressing,
                format!("{ready}/{n} new replicas Ready; the old ones serve until all are"),
            )
        }
        Step::Recreate { next } => {
            let doing = match next {
                Some(i) => format!("replica {i} finishes its tasks and stops, then its new revision starts"),
                None => "a new replica is starting; the next old one stops once it is Ready".to_string(),
            };
            (
                RolloutPhase::Progressing,
                format!(
                    "Recreate (no room for a second copy, or spec.rollout.strategy: Recreate): {doing}; {n} old \
                     replica(s) left to replace; tasks wait in the queue meanwhile"
                ),
            )
        }
        Step::CutOver => {
            let left = n.saturating_sub(r.retired);
            (
                RolloutPhase::Draining,
                format!("new replicas serve; {left} old replica(s) finish their tasks before removal"),
            )
        }
        Step::RollBack {
            index,
            message,
            log_tail,
        } => {
            let last = engine_reason(log_tail);
            let text = format!(
                "rolled back: the new revision {} failed on replica {index}: {message}{last}; the {n} old replica(s) were kept and serve on",
                first.new_hash
            );
            status.last_error = Some(LastError {
                message: text.clone(),
                log_tail: log_tail.clone(),
                at: now_rfc3339(),
            });
            (RolloutPhase::RolledBack, text)
        }
    }
}

/// The engine's own words for a failure: its first error line (llama.cpp prints the cause
/// first, then several generic "failed to load model" lines) and its last line.
fn engine_reason(log_tail: &[String]) -> String {
    let cause = log_tail.iter().find(|l| l.to_lowercase().contains("error"));
    match (cause, log_tail.last()) {
        (Some(c), Some(l)) if c != l => format!("; engine log: {c} … {l}"),
        (_, Some(l)) => format!("; engine log: {l}"),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn surge(index: u32, new: NewState, retiring: bool) -> Surge {
        Surge {
            index,
            old_hash: "old".into(),
            new_hash: "new".into(),
            old_model: Some("tiny".into()),
            new,
            retiring,
        }
    }

    fn failed() -> NewState {
        NewState::Failed {
            message: "engine exited with code 1".into(),
            log_tail: vec!["unknown architecture".into()],
        }
    }

    #[test]
    fn the_engine_reason_is_its_first_error_line_and_its_last_line() {
        let tail: Vec<String> = [
            "loading",
            "llama_model_load: error loading model architecture: unknown model architecture: 'brokenarch'",
            "error: failed to load model",
            "main: exiting due to model loading error",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            engine_reason(&tail),
            "; engine log: llama_model_load: error loading model architecture: unknown model architecture: \
             'brokenarch' … main: exiting due to model loading error"
        );
        assert_eq!(engine_reason(&[]), "");
    }

    #[test]
    fn nothing_surges_means_no_step() {
        assert_eq!(decide(&[], RolloutMethod::Surge, false), None);
    }

    #[test]
    fn old_replicas_serve_until_every_new_one_is_ready() {
        let s = [surge(0, NewState::Ready, false), surge(1, NewState::Starting, false)];
        assert_eq!(decide(&s, RolloutMethod::Surge, false), Some(Step::Progress));
        let s = [surge(0, NewState::Ready, false), surge(1, NewState::Ready, false)];
        assert_eq!(decide(&s, RolloutMethod::Surge, false), Some(Step::CutOver));
    }

    #[test]
    fn any_failure_before_the_cut_over_rolls_back_the_whole_pool() {
        let s = [surge(0, NewState::Ready, false), surge(1, failed(), false)];
        let Some(Step::RollBack { index, log_tail, .. }) = decide(&s, RolloutMethod::Surge, false) else {
            panic!("expected a rollback")
        };
        assert_eq!((index, log_tail), (1, vec!["unknown architecture".to_string()]));
    }

    #[test]
    fn after_retirement_began_a_failure_is_a_crash_not_a_rollback() {
        let s = [surge(0, NewState::Ready, true), surge(1, failed(), false)];
        assert_eq!(decide(&s, RolloutMethod::Surge, false), Some(Step::CutOver));
    }

    #[test]
    fn recreate_stops_one_old_replica_at_a_time_and_only_when_nothing_is_starting() {
        let s = [surge(0, NewState::Absent, false), surge(1, NewState::Absent, false)];
        let recreate = |s: &[Surge], in_motion| decide(s, RolloutMethod::Recreate, in_motion);
        assert_eq!(recreate(&s, false), Some(Step::Recreate { next: Some(0) }));
        assert_eq!(
            recreate(&s[1..], true),
            Some(Step::Recreate { next: None }),
            "index 0's new replica is starting: index 1 waits"
        );
        assert_eq!(recreate(&s[1..], false), Some(Step::Recreate { next: Some(1) }));
        let stopping = [surge(0, NewState::Absent, false), surge(1, NewState::Absent, true)];
        assert_eq!(
            recreate(&stopping, false),
            Some(Step::Recreate { next: Some(1) }),
            "the index already stopping keeps its turn"
        );
        let surging = [surge(0, NewState::Starting, false), surge(1, NewState::Absent, false)];
        assert_eq!(
            recreate(&surging, false),
            Some(Step::Progress),
            "a surge under way finishes as one"
        );
    }

    #[test]
    fn a_rolled_back_revision_is_held_back_while_it_is_still_the_target() {
        let mut status = ObjectStatus::new(ObjectRef::new(llorch_manifests::Kind::Pool, "chat"));
        status.rollout = Some(Rollout {
            phase: RolloutPhase::RolledBack,
            from_revision: "old".into(),
            to_revision: "bad".into(),
            from_model: None,
            to_model: None,
            message: String::new(),
            started_at: String::new(),
            method: RolloutMethod::Surge,
        });
        let targets = BTreeMap::from([(0, "bad".to_string())]);
        assert_eq!(failed_target(&status, &targets).as_deref(), Some("bad"));
        let edited = BTreeMap::from([(0, "fixed".to_string())]);
        assert_eq!(failed_target(&status, &edited), None, "a new spec is tried again");
    }
}

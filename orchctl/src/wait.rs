//! `orchctl wait <kind>/<name> --for=condition=Ready|Progressing|Degraded | --for=delete`.
//!
//! A condition counts only for the manifest as it is on disk now: the object's
//! `observedGeneration` must equal `short_hash` of the object parsed from the manifests
//! directory at this moment (the generation the daemon will compute). So `apply` then `wait`
//! never reports the previous version as Ready. When the object is not in the local manifests
//! directory (e.g. `--server` points at another machine), the daemon's own `generation` is
//! used instead. Polls every 200 ms until the deadline.

use std::time::Duration;

use llorch_manifests::api::ObjectView;
use llorch_manifests::status::ConditionType;
use llorch_manifests::{ObjectRef, hash};
use tokio::time::Instant;

use crate::Io;
use crate::cli::WaitArgs;
use crate::client::{Client, RequestError};
use crate::context::Context;
use crate::context::WriteTarget;
use crate::delete::parse_object_ref;
use crate::duration;
use llorch_controller::manifest_dir::ManifestDir;

/// Time between polls.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// What to wait for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitFor {
    /// The condition holds for the current manifest.
    Condition(ConditionType),
    /// The daemon no longer knows the object.
    Delete,
}

/// Parses `condition=Ready` (any case) or `delete`.
pub fn parse_for(text: &str) -> Result<WaitFor, String> {
    if text.eq_ignore_ascii_case("delete") {
        return Ok(WaitFor::Delete);
    }
    let hint = "use --for=condition=Ready, --for=condition=Progressing, --for=condition=Degraded or --for=delete";
    let Some(condition) = text.strip_prefix("condition=") else {
        return Err(format!("`{text}` is not something to wait for; {hint}"));
    };
    match condition.to_ascii_lowercase().as_str() {
        "ready" => Ok(WaitFor::Condition(ConditionType::Ready)),
        "progressing" => Ok(WaitFor::Condition(ConditionType::Progressing)),
        "degraded" => Ok(WaitFor::Condition(ConditionType::Degraded)),
        _ => Err(format!("`{condition}` is not a condition; {hint}")),
    }
}

/// The generation of `object` as declared in `dir` now, if it is declared there.
pub fn local_generation(dir: &ManifestDir, object: &ObjectRef) -> Option<String> {
    dir.find(object)
        .first()
        .map(|(_, located)| hash::short_hash(&located.object))
}

/// Whether a condition holds for the expected generation; `Err` says why not.
pub fn condition_met(
    view: &ObjectView,
    condition: ConditionType,
    expected_generation: Option<&str>,
) -> Result<(), String> {
    let status = &view.status;
    let expected = expected_generation.or(status.generation.as_deref());
    if let Some(expected) = expected
        && status.observed_generation.as_deref() != Some(expected)
    {
        return Err(format!(
            "the daemon has not yet acted on the current manifest (generation {expected}, observed {})",
            status.observed_generation.as_deref().unwrap_or("none")
        ));
    }
    match status.condition(condition) {
        Some(c) if c.status => Ok(()),
        Some(c) => Err(format!("{condition:?} is False ({}: {})", c.reason, c.message)),
        None => Err(format!("{condition:?} is not reported yet")),
    }
}

fn summary(view: &ObjectView) -> String {
    let mut lines = Vec::new();
    for c in &view.status.conditions {
        lines.push(format!(
            "  {:?}={} ({}): {}",
            c.type_,
            if c.status { "True" } else { "False" },
            c.reason,
            c.message
        ));
    }
    if let Some(e) = &view.status.last_error {
        lines.push(format!("  last error: {}", e.message));
        for line in &e.log_tail {
            lines.push(format!("    | {line}"));
        }
    }
    for e in &view.status.manifest_errors {
        lines.push(format!("  manifest error: {e}"));
    }
    lines.join("\n")
}

/// Polls until `for_` holds for `object` or `timeout` passes. Returns the exit code. With
/// `manifests_dir`, a condition must hold for the generation declared there now; without
/// (the daemon is elsewhere), for the generation the daemon itself declares.
pub async fn wait(
    client: &Client,
    manifests_dir: Option<&std::path::Path>,
    object: &ObjectRef,
    for_: WaitFor,
    timeout: Duration,
    interval: Duration,
    io: &mut Io<'_>,
) -> anyhow::Result<u8> {
    let deadline = Instant::now() + timeout;
    let mut last_view: Option<ObjectView> = None;
    let mut last_reason;
    let mut first = true;
    loop {
        match client.object(object).await {
            Err(e @ RequestError::Unreachable { .. }) if first => return Err(e.into()),
            Err(e) if for_ == WaitFor::Delete && e.is_not_found() => {
                writeln!(io.out, "{object} deleted")?;
                return Ok(0);
            }
            Err(e) => last_reason = e.to_string(),
            Ok(view) => {
                match for_ {
                    WaitFor::Delete => last_reason = "it still exists".into(),
                    WaitFor::Condition(condition) => {
                        let expected = match manifests_dir {
                            Some(dir) => local_generation(&ManifestDir::read(dir)?, object),
                            None => None,
                        };
                        match condition_met(&view, condition, expected.as_deref()) {
                            Ok(()) => {
                                writeln!(io.out, "{object} condition met")?;
                                return Ok(0);
                            }
                            Err(why) => last_reason = why,
                        }
                    }
                }
                last_view = Some(view);
            }
        }
        first = false;
        let now = Instant::now();
        if now >= deadline {
            let what = match for_ {
                WaitFor::Delete => "deletion".to_string(),
                WaitFor::Condition(c) => format!("condition={c:?}"),
            };
            writeln!(
                io.err,
                "error: timed out after {} waiting for {what} on {object}: {last_reason}",
                duration::human(timeout)
            )?;
            if let Some(view) = &last_view {
                let text = summary(view);
                if !text.is_empty() {
                    writeln!(io.err, "last status:\n{text}")?;
                }
            }
            return Ok(1);
        }
        tokio::time::sleep(interval.min(deadline - now)).await;
    }
}

/// `orchctl wait`.
pub async fn run(ctx: &Context, args: &WaitArgs, io: &mut Io<'_>) -> anyhow::Result<u8> {
    let object = parse_object_ref(&args.target, None)?;
    let for_ = parse_for(&args.for_).map_err(anyhow::Error::msg)?;
    let timeout = duration::parse(&args.timeout).map_err(|e| anyhow::anyhow!("--timeout: {e}"))?;
    let client = ctx.client()?;
    let local = (ctx.writes == WriteTarget::Directory).then_some(ctx.manifests_dir.as_path());
    wait(&client, local, &object, for_, timeout, POLL_INTERVAL, io).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use llorch_manifests::Kind;
    use llorch_manifests::status::{Condition, ObjectStatus};

    fn ready_view(generation: Option<&str>, observed: Option<&str>) -> ObjectView {
        let object = ObjectRef::new(Kind::Pool, "chat");
        let mut status = ObjectStatus::new(object.clone());
        status.generation = generation.map(String::from);
        status.observed_generation = observed.map(String::from);
        status.conditions = vec![Condition {
            type_: ConditionType::Ready,
            status: true,
            reason: llorch_manifests::Reason::ReplicasReady,
            message: String::new(),
            last_transition_time: String::new(),
        }];
        ObjectView {
            object,
            source: None,
            manifest: None,
            status,
        }
    }

    #[test]
    fn ready_counts_only_for_the_generation_on_disk() {
        let view = ready_view(Some("old"), Some("old"));
        assert!(condition_met(&view, ConditionType::Ready, Some("new")).is_err());
        assert!(condition_met(&view, ConditionType::Ready, Some("old")).is_ok());
    }

    #[test]
    fn without_a_local_manifest_the_daemons_generation_is_the_reference() {
        assert!(condition_met(&ready_view(Some("g2"), Some("g1")), ConditionType::Ready, None).is_err());
        assert!(condition_met(&ready_view(Some("g2"), Some("g2")), ConditionType::Ready, None).is_ok());
        let err = condition_met(&ready_view(None, None), ConditionType::Degraded, None).unwrap_err();
        assert!(err.contains("not reported yet"), "{err}");
    }

    #[test]
    fn wait_targets_parse_case_insensitively() {
        assert_eq!(
            parse_for("condition=Ready"),
            Ok(WaitFor::Condition(ConditionType::Ready))
        );
        assert_eq!(
            parse_for("condition=degraded"),
            Ok(WaitFor::Condition(ConditionType::Degraded))
        );
        assert_eq!(parse_for("delete"), Ok(WaitFor::Delete));
        assert!(parse_for("condition=Happy").unwrap_err().contains("not a condition"));
        assert!(parse_for("ready").unwrap_err().contains("--for=condition=Ready"));
    }
}

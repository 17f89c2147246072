//! `orchctl health pool/<name>`: whether a pool is live, Ready and admitting, what it has in
//! flight, its drain, and its last reload (`GET /v2/pools/{id}/health`). Also the pool-target
//! parsing and the health call that `drain` and `reload --wait` share.

use llorch_manifests::api::PoolHealth;
use llorch_manifests::status::{Rollout, RolloutPhase};

use crate::Io;
use crate::cli::HealthArgs;
use crate::client::{Client, RequestError};
use crate::context::Context;

/// The pool name in `pool/<name>`, `pools/<name>` or a bare `<name>`.
pub fn pool_target(text: &str) -> anyhow::Result<String> {
    let name = match text.split_once('/') {
        Some((kind, name)) if matches!(kind.to_ascii_lowercase().as_str(), "pool" | "pools") => name,
        Some((kind, _)) => {
            anyhow::bail!(
                "`{text}`: only pools can be drained, reloaded, woken, scaled or checked, not {kind}s; use pool/<name>"
            )
        }
        None => text,
    };
    if name.is_empty() {
        anyhow::bail!("`{text}` names no pool; use pool/<name> (see `orchctl get pools`)");
    }
    Ok(name.to_string())
}

impl Client {
    /// `GET /v2/pools/{id}/health`.
    pub async fn pool_health(&self, pool: &str) -> Result<PoolHealth, RequestError> {
        self.get(&["v2", "pools", pool, "health"], &[]).await
    }
}

/// One line about a rollout: phase, revisions, models and its message.
pub fn rollout_line(r: &Rollout) -> String {
    let phase = match r.phase {
        RolloutPhase::Progressing => "progressing",
        RolloutPhase::Draining => "draining",
        RolloutPhase::Complete => "complete",
        RolloutPhase::RolledBack => "rolled-back",
    };
    let models = match (&r.from_model, &r.to_model) {
        (Some(f), Some(t)) => format!(", model {f} → {t}"),
        _ => String::new(),
    };
    format!(
        "{phase} ({} → {}{models}): {}",
        r.from_revision, r.to_revision, r.message
    )
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// The health as aligned lines.
pub fn render(h: &PoolHealth) -> String {
    let state = if h.draining {
        "draining"
    } else if h.ready {
        "ready"
    } else if h.live {
        "live, not ready"
    } else {
        "down"
    };
    let mut out = format!("pool/{}: {state}\n", h.pool);
    let mut row = |k: &str, v: String| out.push_str(&format!("  {k:<11} {v}\n"));
    row("live", yes(h.live).into());
    row("ready", yes(h.ready).into());
    row(
        "draining",
        match (h.draining, h.drain_deadline_in_ms) {
            (true, Some(0)) => "yes (deadline passed)".into(),
            (true, Some(ms)) => format!(
                "yes ({} left)",
                crate::duration::short(std::time::Duration::from_millis(ms))
            ),
            (d, _) => yes(d).into(),
        },
    );
    row("in flight", h.in_flight.to_string());
    row("queued", h.queued.to_string());
    row("replicas", format!("{}/{} ready", h.replicas.ready, h.replicas.desired));
    row(
        "rollout",
        h.rollout.as_ref().map(rollout_line).unwrap_or_else(|| "-".into()),
    );
    row("last error", h.last_error.clone().unwrap_or_else(|| "-".into()));
    out
}

/// Runs `orchctl health`: 0 when the pool is Ready and admitting, 1 otherwise.
pub async fn run(ctx: &Context, args: &HealthArgs, io: &mut Io<'_>) -> anyhow::Result<u8> {
    let pool = pool_target(&args.target)?;
    let client = ctx.client()?;
    let health = client.pool_health(&pool).await?;
    match args.output {
        crate::cli::Output::Table => write!(io.out, "{}", render(&health))?,
        crate::cli::Output::Json => writeln!(io.out, "{}", serde_json::to_string_pretty(&health)?)?,
        crate::cli::Output::Yaml => write!(io.out, "{}", serde_saphyr::to_string(&health)?)?,
    }
    Ok(if health.ready { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use llorch_manifests::status::ReplicaCounts;

    #[test]
    fn targets_name_a_pool_or_say_what_to_write() {
        assert_eq!(pool_target("pool/chat").unwrap(), "chat");
        assert_eq!(pool_target("chat").unwrap(), "chat");
        assert!(
            pool_target("model/tiny")
                .unwrap_err()
                .to_string()
                .contains("pool/<name>")
        );
        assert!(pool_target("pool/").is_err());
    }

    #[test]
    fn a_draining_pool_shows_its_deadline_and_a_rolled_back_reload_its_reason() {
        let h = PoolHealth {
            pool: "chat".into(),
            live: true,
            ready: false,
            draining: true,
            drain_deadline_in_ms: Some(12_000),
            in_flight: 2,
            queued: 1,
            queued_interactive: 1,
            queued_batch: 0,
            slots_total: 4,
            slots_busy: 2,
            predicted_wait_ms: Some(1_000),
            replicas: ReplicaCounts { desired: 2, ready: 2 },
            rollout: Some(Rollout {
                phase: RolloutPhase::RolledBack,
                from_revision: "aaa".into(),
                to_revision: "bbb".into(),
                from_model: Some("tiny".into()),
                to_model: Some("broken".into()),
                message: "engine log: unknown model architecture".into(),
                started_at: String::new(),
                method: Default::default(),
            }),
            last_error: None,
        };
        let text = render(&h);
        assert!(text.starts_with("pool/chat: draining\n"), "{text}");
        assert!(text.contains("draining    yes (12s left)"), "{text}");
        assert!(
            text.contains("rolled-back (aaa → bbb, model tiny → broken): engine log: unknown model architecture"),
            "{text}"
        );
    }
}

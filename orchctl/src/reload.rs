//! `orchctl reload pool/<name> [--model <m>] [--wait]`: a rolling replacement of a pool's
//! replicas — onto another Model (its manifest's `spec.model` is changed), or on the same spec.
//! New replicas start next to the old ones, which serve until all new ones are Ready; if the
//! new ones fail, they are removed and the old ones serve on (rolled back). `--wait` follows
//! the pool's `rollout` to its end and exits 1 on a rollback, printing why.

use std::time::{Duration, Instant};

use llorch_manifests::api::{ReloadAccepted, ReloadRequest};
use llorch_manifests::status::RolloutPhase;

use crate::Io;
use crate::cli::ReloadArgs;
use crate::client::{Client, RequestError};
use crate::context::Context;
use crate::health::{pool_target, rollout_line};

/// Polling interval of `--wait`.
pub const POLL: Duration = Duration::from_millis(250);

impl Client {
    /// `POST /v2/pools/{id}/reload`.
    pub async fn reload_pool(&self, pool: &str, model: Option<&str>) -> Result<ReloadAccepted, RequestError> {
        let url = self.url(&["v2", "pools", pool, "reload"])?;
        let body = ReloadRequest {
            model: model.map(str::to_string),
        };
        let response = self
            .http
            .post(url.clone())
            .json(&body)
            .send()
            .await
            .map_err(|e| self.transport(&e))?;
        self.decode(&url, response).await
    }
}

/// Runs `orchctl reload`: 0 when accepted (with `--wait`: complete), 1 on a rollback or error.
pub async fn run(ctx: &Context, args: &ReloadArgs, io: &mut Io<'_>) -> anyhow::Result<u8> {
    let pool = pool_target(&args.target)?;
    let timeout = crate::duration::parse(&args.timeout).map_err(|e| anyhow::anyhow!("--timeout: {e}"))?;
    let client = ctx.client()?;
    // A rollout that started at or after this instant is this reload's.
    let asked = jiff::Timestamp::now()
        .round(jiff::Unit::Millisecond)
        .unwrap_or_else(|_| jiff::Timestamp::now());
    let accepted = client.reload_pool(&pool, args.model.as_deref()).await?;
    writeln!(io.out, "pool/{pool}: {}", accepted.message)?;
    if !args.wait {
        return Ok(0);
    }
    let deadline = Instant::now() + timeout;
    let mut last_line = String::new();
    loop {
        let health = client.pool_health(&pool).await?;
        let ours = health.rollout.filter(|r| {
            r.started_at
                .parse::<jiff::Timestamp>()
                .is_ok_and(|t| t >= asked.checked_sub(jiff::SignedDuration::from_millis(1)).unwrap_or(asked))
        });
        if let Some(r) = ours {
            let line = rollout_line(&r);
            if line != last_line {
                writeln!(io.err, "rollout {line}")?;
                last_line = line;
            }
            match r.phase {
                RolloutPhase::Complete => {
                    writeln!(
                        io.out,
                        "pool/{pool}: reload complete; every replica serves {}",
                        accepted.model
                    )?;
                    return Ok(0);
                }
                RolloutPhase::RolledBack => {
                    writeln!(
                        io.out,
                        "pool/{pool}: reload ROLLED BACK; the old replicas serve on. {}",
                        r.message
                    )?;
                    return Ok(1);
                }
                RolloutPhase::Progressing | RolloutPhase::Draining => {}
            }
        }
        if Instant::now() >= deadline {
            anyhow::bail!(
                "pool/{pool}: the reload did not finish within {} (see `orchctl health pool/{pool}` and \
                 `orchctl events pool/{pool}`)",
                crate::duration::short(timeout)
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

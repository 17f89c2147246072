//! `orchctl wake pool/<name> [--wait [--timeout 5m]]`: start a sleeping Pool now, before a task
//! needs it (`POST /v2/pools/{id}/wake`); with `--wait`, until a replica is Ready, following the
//! pool's health.

use std::time::{Duration, Instant};

use llorch_manifests::api::PoolHealth;

use crate::Io;
use crate::cli::WakeArgs;
use crate::client::{Client, RequestError};
use crate::context::Context;
use crate::health::pool_target;

/// How often `--wait` looks.
const POLL: Duration = Duration::from_millis(250);

impl Client {
    /// `POST /v2/pools/{id}/wake`.
    pub async fn wake_pool(&self, pool: &str) -> Result<PoolHealth, RequestError> {
        let url = self.url(&["v2", "pools", pool, "wake"])?;
        let response = self
            .http
            .post(url.clone())
            .send()
            .await
            .map_err(|e| self.transport(&e))?;
        self.decode(&url, response).await
    }
}

/// Runs `orchctl wake`.
pub async fn run(ctx: &Context, args: &WakeArgs, io: &mut Io<'_>) -> anyhow::Result<u8> {
    let pool = pool_target(&args.target)?;
    let timeout = crate::duration::parse(&args.timeout).map_err(|e| anyhow::anyhow!("--timeout: {e}"))?;
    let client = ctx.client()?;
    let h = client.wake_pool(&pool).await?;
    if h.replicas.ready > 0 {
        writeln!(
            io.out,
            "pool/{pool} is awake ({} ready); it stays up for its idleTimeout",
            h.replicas.ready
        )?;
        return Ok(0);
    }
    if !args.wait {
        writeln!(
            io.out,
            "pool/{pool} is waking; `orchctl wait pool/{pool} --for=condition=Ready` or `orchctl get pools` to follow it"
        )?;
        return Ok(0);
    }
    let started = Instant::now();
    loop {
        tokio::time::sleep(POLL).await;
        let h = client.pool_health(&pool).await?;
        if h.replicas.ready > 0 {
            writeln!(
                io.out,
                "pool/{pool} is awake after {} ({} ready); it stays up for its idleTimeout",
                crate::duration::short(started.elapsed()),
                h.replicas.ready
            )?;
            return Ok(0);
        }
        if started.elapsed() >= timeout {
            writeln!(
                io.err,
                "error: pool/{pool} has no Ready replica after {}{}; see `orchctl describe pool/{pool}`",
                crate::duration::short(timeout),
                h.last_error.map(|e| format!(" (last error: {e})")).unwrap_or_default()
            )?;
            return Ok(1);
        }
    }
}

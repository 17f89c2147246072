//! `orchctl drain pool/<name> [--deadline 30s] [--resume]`: stop admission to a pool (new
//! tasks get 503 `POOL_DRAINING`), give what runs until the deadline, or lift the drain.

use llorch_manifests::api::{DrainRequest, PoolHealth};

use crate::Io;
use crate::cli::DrainArgs;
use crate::client::{Client, RequestError};
use crate::context::Context;
use crate::health::pool_target;

impl Client {
    /// `POST /v2/pools/{id}/drain`.
    pub async fn drain_pool(&self, pool: &str, deadline_ms: u64) -> Result<PoolHealth, RequestError> {
        let url = self.url(&["v2", "pools", pool, "drain"])?;
        let response = self
            .http
            .post(url.clone())
            .json(&DrainRequest { deadline_ms })
            .send()
            .await
            .map_err(|e| self.transport(&e))?;
        self.decode(&url, response).await
    }

    /// `DELETE /v2/pools/{id}/drain`.
    pub async fn resume_pool(&self, pool: &str) -> Result<PoolHealth, RequestError> {
        let url = self.url(&["v2", "pools", pool, "drain"])?;
        let response = self
            .http
            .delete(url.clone())
            .send()
            .await
            .map_err(|e| self.transport(&e))?;
        self.decode(&url, response).await
    }
}

/// Runs `orchctl drain`.
pub async fn run(ctx: &Context, args: &DrainArgs, io: &mut Io<'_>) -> anyhow::Result<u8> {
    let pool = pool_target(&args.target)?;
    let client = ctx.client()?;
    if args.resume {
        let h = client.resume_pool(&pool).await?;
        writeln!(
            io.out,
            "pool/{pool} admits tasks again ({} running, {} queued)",
            h.in_flight, h.queued
        )?;
        return Ok(0);
    }
    let deadline = crate::duration::parse(&args.deadline).map_err(|e| anyhow::anyhow!("--deadline: {e}"))?;
    let h = client.drain_pool(&pool, deadline.as_millis() as u64).await?;
    writeln!(
        io.out,
        "pool/{pool} draining: new tasks are refused (503 POOL_DRAINING); {} running and {} queued have {} \
         to finish, then they are canceled. Lift it with `orchctl drain pool/{pool} --resume`.",
        h.in_flight,
        h.queued,
        crate::duration::short(deadline)
    )?;
    Ok(0)
}

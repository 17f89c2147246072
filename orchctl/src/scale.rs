//! `orchctl scale pool/<name> --replicas N` and `orchctl scale pool/<name> [--min A] [--max B]`:
//! a Pool's new size (`POST /v2/pools/{id}/scale`), which the daemon writes into the Pool's
//! manifest file and the controller works to from its next pass. `--replicas` is for a Pool
//! of fixed size, `--min`/`--max` for one sized by demand; the daemon refuses the other kind
//! and sizes outside the manifest limits, saying what to do instead.

use llorch_manifests::api::{ScaleAccepted, ScaleRequest};
use llorch_manifests::pool_size::describe_change;

use crate::Io;
use crate::cli::ScaleArgs;
use crate::client::{Client, RequestError};
use crate::context::Context;
use crate::health::pool_target;

impl Client {
    /// `POST /v2/pools/{id}/scale`.
    pub async fn scale_pool(&self, pool: &str, size: &ScaleRequest) -> Result<ScaleAccepted, RequestError> {
        let url = self.url(&["v2", "pools", pool, "scale"])?;
        let response = self
            .http
            .post(url.clone())
            .json(size)
            .send()
            .await
            .map_err(|e| self.transport(&e))?;
        self.decode(&url, response).await
    }
}

/// Runs `orchctl scale`: 0 when the daemon accepted the size, 1 on an error.
pub async fn run(ctx: &Context, args: &ScaleArgs, io: &mut Io<'_>) -> anyhow::Result<u8> {
    let pool = pool_target(&args.target)?;
    let size = ScaleRequest {
        replicas: args.replicas,
        min_replicas: args.min,
        max_replicas: args.max,
    };
    let accepted = ctx.client()?.scale_pool(&pool, &size).await?;
    writeln!(io.out, "{}", line(&accepted))?;
    Ok(0)
}

/// The one line `scale` prints for an accepted size.
fn line(a: &ScaleAccepted) -> String {
    if a.from == a.to {
        format!(
            "pool/{} unchanged: it already has {} ({} not edited)",
            a.pool, a.to, a.file
        )
    } else {
        format!(
            "pool/{} scaled: {} (edited {}); follow with `orchctl get pools`",
            a.pool,
            describe_change(&a.from, &a.to),
            a.file
        )
    }
}

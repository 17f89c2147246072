//! `orchctl logs <pool>/<index> | <replica-id> [--tail N]`: the last lines of a replica's
//! engine container, as llama-orchd reads them from the container runtime.

use crate::Io;
use crate::cli::LogsArgs;
use crate::context::Context;

/// The replica id for `chat/0`, `pool/chat/0` or `chat-0`.
pub fn replica_id(arg: &str) -> anyhow::Result<String> {
    let arg = arg
        .strip_prefix("pool/")
        .or_else(|| arg.strip_prefix("pools/"))
        .unwrap_or(arg);
    match arg.rsplit_once('/') {
        None if !arg.is_empty() => Ok(arg.to_string()),
        Some((pool, index)) if !pool.is_empty() && index.parse::<u32>().is_ok() => Ok(format!("{pool}-{index}")),
        _ => {
            anyhow::bail!("`{arg}` is not a replica; write `<pool>/<index>` (e.g. `chat/0`) or a replica id (`chat-0`)")
        }
    }
}

/// `orchctl logs`.
pub async fn run(ctx: &Context, args: &LogsArgs, io: &mut Io<'_>) -> anyhow::Result<u8> {
    let id = replica_id(&args.replica)?;
    let client = ctx.client()?;
    let tail = client.logs(&id, args.tail).await?;
    for line in &tail.lines {
        writeln!(io.out, "{line}")?;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_are_named_by_pool_and_index_or_by_id() {
        assert_eq!(replica_id("chat/0").unwrap(), "chat-0");
        assert_eq!(replica_id("pool/chat/1").unwrap(), "chat-1");
        assert_eq!(replica_id("chat-2").unwrap(), "chat-2");
        assert!(replica_id("chat/x").is_err());
        assert!(replica_id("/0").is_err());
    }
}

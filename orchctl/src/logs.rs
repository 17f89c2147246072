//! `orchctl logs <pool>/<index> | <replica-id> [--tail N] [-f]`: the last lines of a
//! replica's engine container, as llama-orchd reads them from the container runtime; with
//! `-f`, then each new line until the container stops (exit 0), the daemon goes away, or
//! Ctrl-C (exit 130).

use std::future::Future;

use llorch_manifests::task::TaskError;

use crate::Io;
use crate::cli::LogsArgs;
use crate::context::Context;

/// The exit code after Ctrl-C, as for `run`.
const EXIT_INTERRUPTED: u8 = 130;

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
pub async fn run(
    ctx: &Context,
    args: &LogsArgs,
    io: &mut Io<'_>,
    interrupt: impl Future<Output = ()>,
) -> anyhow::Result<u8> {
    let id = replica_id(&args.replica)?;
    let client = ctx.client()?;
    if args.follow {
        return follow(&client, &id, args.tail, io, interrupt).await;
    }
    let tail = client.logs(&id, args.tail).await?;
    for line in &tail.lines {
        writeln!(io.out, "{line}")?;
    }
    Ok(0)
}

/// `-f`: the stream of `line` events, printed as they come.
async fn follow(
    client: &crate::client::Client,
    id: &str,
    tail: usize,
    io: &mut Io<'_>,
    interrupt: impl Future<Output = ()>,
) -> anyhow::Result<u8> {
    let mut interrupt = std::pin::pin!(interrupt);
    let mut stream = tokio::select! {
        biased;
        () = &mut interrupt => return Ok(EXIT_INTERRUPTED),
        stream = client.follow_logs(id, tail) => stream?,
    };
    loop {
        let next = tokio::select! {
            biased;
            () = &mut interrupt => return Ok(EXIT_INTERRUPTED),
            next = stream.next() => next?,
        };
        let Some(event) = next else { return Ok(0) };
        match event.event.as_str() {
            "line" => {
                let line: String = serde_json::from_str(&event.data)
                    .map_err(|e| anyhow::anyhow!("llama-orchd sent a log line orchctl cannot read: {e}"))?;
                writeln!(io.out, "{line}")?;
                io.out.flush()?;
            }
            "error" => {
                let message = serde_json::from_str::<TaskError>(&event.data)
                    .map(|e| e.message)
                    .unwrap_or(event.data);
                anyhow::bail!("{message}");
            }
            _ => {}
        }
    }
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

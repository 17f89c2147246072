//! orchctl: a kubectl-like CLI for llama-orch.
//!
//! `apply`, `diff` and `delete` work on the manifests directory directly (no daemon needed),
//! or through a named daemon's write API (`--server`/`$LLAMA_ORCH_URL`, see
//! [`context::WriteTarget`]); `get`, `describe`, `wait`, `events` and `logs` read llama-orchd's
//! HTTP API; `run`, `tasks`
//! and `cancel` use its task API. Every command is a library function that writes to the
//! [`Io`] it is given, so tests run them without a terminal; `main.rs` only parses arguments
//! and picks the exit code.

pub mod apply;
pub mod artifacts;
pub mod cli;
pub mod client;
pub mod completion;
pub mod context;
pub mod delete;
pub mod describe;
pub mod diff;
pub mod doctor;
pub mod drain;
pub mod duration;
pub mod events;
pub mod explain;
pub mod export;
pub mod get;
pub mod health;
pub mod input;
pub mod logs;
pub mod manifest_api;
pub mod models;
pub mod output;
pub mod plan;
pub mod reload;
pub mod run;
pub mod scale;
pub mod selector;
pub mod sse;
pub mod status_line;
pub mod table;
pub mod task_api;
pub mod tasks;
pub mod version;
pub mod views;
pub mod wait;
pub mod wake;

use std::io::{Read, Write};

use cli::{Cli, Command};

/// Where a command writes and reads: stdout, stderr and stdin in the binary, buffers in tests.
pub struct Io<'a> {
    /// Results.
    pub out: &'a mut dyn Write,
    /// Errors, warnings and progress.
    pub err: &'a mut dyn Write,
    /// `-f -`, `run … -`.
    pub input: &'a mut dyn Read,
    /// Whether `err` is a terminal (progress lines are then rewritten in place).
    pub err_tty: bool,
}

/// Runs one command and returns the process exit code: 0 success, 1 failure (for `diff`:
/// 1 means differences and 2 failure, like `kubectl diff`; for `run`: 3 refused by
/// backpressure, 4 the task failed, 130 interrupted; for `replay`: 0 identical, 1 different,
/// 2 not reproducible, 3 failure). A reader that went away (`orchctl get pools | head -1`)
/// ends the command quietly with 0, as kubectl does: the output was not wanted any more.
pub async fn run(cli: Cli, io: &mut Io<'_>) -> u8 {
    let failure = if matches!(cli.command, Command::Diff(_)) { 2 } else { 1 };
    match dispatch(cli, io).await {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => 0,
        Err(e) => {
            let _ = writeln!(io.err, "error: {e:#}");
            failure
        }
    }
}

/// True when `e` is, or was caused by, a write to a pipe whose reader has closed it.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

async fn dispatch(cli: Cli, io: &mut Io<'_>) -> anyhow::Result<u8> {
    // The doctor reports a broken config file as one of its checks instead of failing on it.
    if let Command::Doctor(args) = &cli.command {
        return doctor::run(cli.config.as_deref(), args, io).await;
    }
    // `version --client` needs no config (a broken one must not hide the version).
    if let Command::Version(args) = &cli.command
        && args.client
    {
        return version::client_only(args, io);
    }
    // Neither needs a config nor a daemon: a broken config file must not stop them.
    match &cli.command {
        Command::Completion(args) => return completion::run(args, io),
        Command::Explain(args) => return explain::run(args, io),
        _ => {}
    }
    let mut ctx = context::Context::resolve(cli.config.as_deref(), cli.server.as_deref(), &|name| {
        std::env::var(name).ok()
    })?;
    ctx.token = cli.token.filter(|t| !t.trim().is_empty());
    match cli.command {
        Command::Apply(args) => apply::run(&ctx, &args, io).await,
        Command::Diff(args) => diff::run(&ctx, &args, io).await,
        Command::Delete(args) => delete::run(&ctx, &args, io).await,
        Command::Get(args) => get::run(&ctx, &args, io, ctrl_c()).await,
        Command::Describe(args) => describe::run(&ctx, &args, io).await,
        Command::Wait(args) => wait::run(&ctx, &args, io).await,
        Command::Events(args) => events::run(&ctx, &args, io).await,
        Command::Logs(args) => logs::run(&ctx, &args, io, ctrl_c()).await,
        Command::Run(args) => run::run(&ctx, &args, io, ctrl_c()).await,
        Command::Tasks(args) => tasks::list(&ctx, &args, io).await,
        Command::Cancel(args) => tasks::cancel(&ctx, &args, io).await,
        Command::Drain(args) => drain::run(&ctx, &args, io).await,
        Command::Wake(args) => wake::run(&ctx, &args, io).await,
        Command::Reload(args) => reload::run(&ctx, &args, io).await,
        Command::Scale(args) => scale::run(&ctx, &args, io).await,
        Command::Health(args) => health::run(&ctx, &args, io).await,
        Command::Models(args) => models::run(&ctx, &args, io).await,
        Command::Plan(args) => plan::run(&ctx, &args, io).await,
        Command::Artifacts(args) => artifacts::run(&ctx, &args, io).await,
        Command::Replay(args) => artifacts::replay(&ctx, &args, io).await,
        Command::Export(args) => export::command::run(&ctx, &args, io).await,
        Command::Doctor(args) => doctor::run(cli.config.as_deref(), &args, io).await,
        Command::Version(args) => version::run(&ctx, &args, io).await,
        Command::Completion(args) => completion::run(&args, io),
        Command::Explain(args) => explain::run(&args, io),
    }
}

/// Resolves on Ctrl-C; never, when the handler cannot be installed.
async fn ctrl_c() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

//! `mock-engine` binary: flags, socket, signals and exit codes; the engine is the library.
//!
//! It runs as PID 1 in a `FROM scratch` container, where the kernel ignores SIGTERM unless a
//! handler is installed: SIGTERM and SIGINT start a graceful shutdown capped at a few seconds.

use std::process::ExitCode;

use mock_engine::{Config, RunError, cli, run};
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    let config = match cli::parse(std::env::args_os()) {
        Ok(config) => config,
        // Prints the message (or --help/--version) and exits 2 (or 0).
        Err(err) => err.exit(),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(serve(config));
    // Exit at once: an injected crash must be abrupt, and lingering connections must not delay
    // the exit after the shutdown grace.
    std::process::exit(code)
}

async fn serve(config: Config) -> i32 {
    // Install the handlers before anything can report "ready".
    let (mut term, mut int) = match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(term), Ok(int)) => (term, int),
        (Err(err), _) | (_, Err(err)) => {
            eprintln!("error: cannot install signal handlers: {err}");
            return 1;
        }
    };
    let listener = match TcpListener::bind((config.host.as_str(), config.port)).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!(
                "error: couldn't bind HTTP server socket, hostname: {}, port: {}: {err}",
                config.host, config.port
            );
            return 1;
        }
    };
    let shutdown = CancellationToken::new();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            eprintln!("main: received {name}, shutting down");
            shutdown.cancel();
        }
    });
    match run(config, listener, shutdown).await {
        Ok(()) => 0,
        // The llama.cpp-like lines are already printed.
        Err(RunError::LoadModel { .. } | RunError::InjectedLoadFailure { .. }) => 1,
        Err(err) => {
            eprintln!("error: {err}");
            1
        }
    }
}

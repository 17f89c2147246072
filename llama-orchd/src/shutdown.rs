//! Stopping: the first SIGINT/SIGTERM stops admission (new tasks get 503 `SHUTTING_DOWN`),
//! stops the controller and lets open task streams finish within the grace period
//! (`shutdownGraceMs`); a second signal, or the end of the grace, exits at once. Engine
//! containers keep running either way: the next start adopts them.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use llorch_api::tasks::DataPlane;
use tokio::signal::unix::{Signal, SignalKind, signal};

/// SIGINT and SIGTERM, as one stream of "stop" requests.
pub struct Signals {
    interrupt: Option<Signal>,
    terminate: Option<Signal>,
}

impl Signals {
    /// Listens for both signals from now on.
    pub fn listen() -> Self {
        Self {
            interrupt: signal(SignalKind::interrupt()).ok(),
            terminate: signal(SignalKind::terminate()).ok(),
        }
    }

    /// The next SIGINT or SIGTERM.
    pub async fn next(&mut self) {
        async fn one(s: &mut Option<Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            _ = one(&mut self.interrupt) => {}
            _ = one(&mut self.terminate) => {}
        }
    }
}

/// After the first signal: waits for `served` (the API server, which finishes once its open
/// requests and streams have) at most `grace`, and no longer than the next signal.
pub async fn drain(
    data: Option<&Arc<DataPlane>>,
    served: impl Future<Output = ()>,
    grace: Duration,
    signals: &mut Signals,
) {
    let unfinished = data.map_or(0, |d| d.unfinished());
    tracing::info!(
        unfinished,
        grace_ms = grace.as_millis() as u64,
        human = %format!(
            "shutting down: no new tasks; waiting up to {} ms for {unfinished} queued or running task(s) \
             (signal again to exit now); engine containers keep running and will be adopted on the next start",
            grace.as_millis()
        ),
        "shutting down"
    );
    tokio::select! {
        _ = served => tracing::info!("every open stream ended; exiting"),
        _ = tokio::time::sleep(grace) => {
            let left = data.map_or(0, |d| d.unfinished());
            tracing::warn!(unfinished = left, human = %format!("grace period over; exiting with {left} task(s) unfinished"), "shutdown grace over");
        }
        _ = signals.next() => {
            let left = data.map_or(0, |d| d.unfinished());
            tracing::warn!(unfinished = left, human = %format!("second signal; exiting now with {left} task(s) unfinished"), "shutdown forced");
        }
    }
}

//! The things that wake the reconcile loop early: file events in the manifests directory and
//! lifecycle events of our containers. Both only *trigger*; the loop re-reads everything.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use notify::{RecursiveMode, Watcher};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::runtime::ContainerRuntime;

/// Watches `dir` (not recursively); any event wakes the loop. Keep the returned watcher alive.
pub fn watch_manifests(dir: &Path, wake: Arc<Notify>) -> notify::Result<notify::RecommendedWatcher> {
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
        // Reads (our own pass opening the directory and files among them) change nothing;
        // waking on them made the loop re-trigger itself every pass.
        Ok(event) if matches!(event.kind, notify::EventKind::Access(_)) => {}
        Ok(_) => wake.notify_one(),
        Err(e) => tracing::warn!(error = %e, "manifest watcher error; the periodic resync still applies"),
    })?;
    watcher.watch(dir, RecursiveMode::NonRecursive)?;
    Ok(watcher)
}

/// Follows the runtime's container events until `cancel`, reconnecting after errors.
pub async fn forward_runtime_events<R: ContainerRuntime>(
    runtime: Arc<R>,
    labels: Vec<(String, String)>,
    wake: Arc<Notify>,
    cancel: CancellationToken,
) {
    loop {
        let mut events = runtime.events(&labels);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                next = events.next() => match next {
                    Some(Ok(ev)) => {
                        tracing::debug!(container = %ev.container_id, action = %ev.action, "container event");
                        wake.notify_one();
                    }
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "container event stream failed; reconnecting");
                        break;
                    }
                    None => break,
                }
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

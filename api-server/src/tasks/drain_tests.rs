//! Drains through the data plane's store: a drain is recorded with its wall-clock deadline and
//! forgotten when lifted, and a new data plane over the same store (a restarted daemon) drains
//! the same Pool again with what is left of the deadline.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use llorch_manifests::api::Snapshot;
use tokio::sync::watch;

use super::DataPlane;
use crate::engine::EngineClients;
use crate::sources::DrainStore;

#[derive(Default)]
struct Store(Mutex<Vec<(String, SystemTime)>>);

impl DrainStore for Store {
    fn load(&self) -> Vec<(String, SystemTime)> {
        self.0.lock().unwrap().clone()
    }
    fn record(&self, pool: &str, deadline: SystemTime) -> std::io::Result<()> {
        let mut v = self.0.lock().unwrap();
        v.retain(|(p, _)| p != pool);
        v.push((pool.to_string(), deadline));
        Ok(())
    }
    fn lift(&self, pool: &str) -> std::io::Result<()> {
        self.0.lock().unwrap().retain(|(p, _)| p != pool);
        Ok(())
    }
}

fn plane(store: &Arc<Store>) -> Arc<DataPlane> {
    let (_tx, rx) = watch::channel(Arc::new(Snapshot::default()));
    DataPlane::with_drain_store(rx, EngineClients::new(), store.clone())
}

#[tokio::test]
async fn a_drain_outlives_the_data_plane_until_it_is_lifted() {
    let store = Arc::new(Store::default());
    let before = SystemTime::now();
    let dp = plane(&store);
    assert!(dp.drain("chat", Duration::from_secs(30)).await.draining);
    let recorded = store.load();
    assert_eq!(recorded.len(), 1);
    let at = recorded[0].1.duration_since(before).unwrap();
    assert!(at >= Duration::from_secs(30) && at < Duration::from_secs(40), "{at:?}");

    // A restart: a fresh data plane over the same store drains `chat` again.
    drop(dp);
    let dp = plane(&store);
    assert!(!dp.load("chat").await.draining, "nothing is restored until asked");
    assert_eq!(dp.restore_drains().await, 1);
    let load = dp.load("chat").await;
    assert!(load.draining);
    let left = load.deadline_in_ms.unwrap();
    assert!(
        left > 20_000 && left <= 30_000,
        "what is left of the deadline: {left} ms"
    );

    // Lifted: the record goes, and the next restart restores nothing.
    assert!(!dp.resume("chat").await.draining);
    assert!(store.load().is_empty());
    assert_eq!(plane(&store).restore_drains().await, 0);
}

#[tokio::test]
async fn a_drain_whose_deadline_passed_during_the_restart_still_refuses() {
    let store = Arc::new(Store::default());
    store
        .record("chat", SystemTime::now() - Duration::from_secs(5))
        .unwrap();
    let dp = plane(&store);
    assert_eq!(dp.restore_drains().await, 1);
    let load = dp.load("chat").await;
    assert!(load.draining, "the drain holds until lifted");
    assert_eq!(load.deadline_in_ms, Some(0));
}

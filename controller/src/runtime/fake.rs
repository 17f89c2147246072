//! In-memory fake of [`ContainerRuntime`] for reconciler unit tests: containers live in a
//! mutex-guarded map, host ports come from a counter, and lifecycle events go out on a tokio
//! broadcast channel. Tests drive failures by hand — crash a container ([`FakeRuntime::kill`]),
//! make creation fail for an image, hide an image — and read back what the reconciler asked for
//! (the specs, how many creates and removes). It follows the same contract as the real runtime
//! (see the module docs of `runtime`); it does no I/O and never sleeps.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Mutex, MutexGuard, PoisonError};

use futures_util::stream;
use tokio::sync::broadcast;

use super::{
    ContainerInfo, ContainerRuntime, ContainerSpec, ContainerState, EventStream, Result, RuntimeError, RuntimeEvent,
    RuntimeIdentity,
};

/// The made-up pid of the first container (`FIRST_PID + n` for the n-th one after it).
pub const FIRST_PID: u32 = 900_000;

/// The first host port handed out.
pub const FIRST_HOST_PORT: u16 = 40_000;

/// Events buffered per subscriber before it lags.
const EVENT_BUFFER: usize = 1024;

/// One fake container: what was asked for, and what it is now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeContainer {
    /// The spec it was created from.
    pub spec: ContainerSpec,
    /// How it looks to `list`.
    pub info: ContainerInfo,
    /// What `logs_tail` returns.
    pub logs: Vec<String>,
    /// What `pids` returns while it runs: one made-up pid unless a test sets others.
    pub pids: Vec<u32>,
}

#[derive(Debug)]
struct State {
    containers: BTreeMap<String, FakeContainer>,
    next_id: u64,
    next_port: u16,
    failing_images: BTreeMap<String, String>,
    missing_images: BTreeSet<String>,
    creates: usize,
    removes: usize,
}

/// The in-memory runtime.
#[derive(Debug)]
pub struct FakeRuntime {
    state: Mutex<State>,
    events: broadcast::Sender<RuntimeEvent>,
}

impl Default for FakeRuntime {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeRuntime {
    /// An empty runtime where every image exists.
    pub fn new() -> Self {
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        FakeRuntime {
            state: Mutex::new(State {
                containers: BTreeMap::new(),
                next_id: 1,
                next_port: FIRST_HOST_PORT,
                failing_images: BTreeMap::new(),
                missing_images: BTreeSet::new(),
                creates: 0,
                removes: 0,
            }),
            events,
        }
    }

    // A panic in one test thread must not hide the state from the assertions that follow.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn emit(&self, info: &ContainerInfo, action: &str) {
        // No subscriber is fine: events only trigger reconciles.
        let _ = self.events.send(RuntimeEvent {
            container_id: info.id.clone(),
            action: action.to_string(),
            labels: info.labels.clone(),
        });
    }

    /// Puts a running container in place without counting a create, as if a previous daemon had
    /// started it (for adoption tests). Emits nothing.
    pub fn seed_running(&self, spec: &ContainerSpec) -> ContainerInfo {
        let mut state = self.state();
        let info = state.new_container(spec);
        state.containers.insert(
            info.id.clone(),
            FakeContainer {
                spec: spec.clone(),
                info: info.clone(),
                logs: Vec::new(),
                pids: vec![fake_pid(&info.id)],
            },
        );
        info
    }

    /// Simulates a crash: the container exits with `exit_code` and a `die` event goes out.
    /// False when there is no such running container.
    pub fn kill(&self, id: &str, exit_code: i64) -> bool {
        let info = {
            let mut state = self.state();
            let Some(c) = state.containers.get_mut(id).filter(|c| c.info.state.is_running()) else {
                return false;
            };
            c.info.state = ContainerState::Exited(exit_code);
            c.info.host_port = None;
            c.info.clone()
        };
        self.emit(&info, "die");
        true
    }

    /// Makes every later `create_and_start` of `image` fail at the start step with `message`
    /// (nothing is left behind, as with the real runtime).
    pub fn fail_create_for(&self, image: &str, message: &str) {
        self.state()
            .failing_images
            .insert(image.to_string(), message.to_string());
    }

    /// Undoes [`FakeRuntime::fail_create_for`].
    pub fn stop_failing(&self, image: &str) {
        self.state().failing_images.remove(image);
    }

    /// Hides an image: `image_exists` is false and creating from it gives
    /// [`RuntimeError::ImageMissing`].
    pub fn remove_image(&self, image: &str) {
        self.state().missing_images.insert(image.to_string());
    }

    /// Makes a hidden image present again.
    pub fn add_image(&self, image: &str) {
        self.state().missing_images.remove(image);
    }

    /// Sets what `logs_tail` returns for a container. False when there is no such container.
    pub fn set_logs(&self, id: &str, lines: &[&str]) -> bool {
        match self.state().containers.get_mut(id) {
            Some(c) => {
                c.logs = lines.iter().map(|l| l.to_string()).collect();
                true
            }
            None => false,
        }
    }

    /// Sets what `pids` returns for a container while it runs. False when there is no such
    /// container.
    pub fn set_pids(&self, id: &str, pids: &[u32]) -> bool {
        match self.state().containers.get_mut(id) {
            Some(c) => {
                c.pids = pids.to_vec();
                true
            }
            None => false,
        }
    }

    /// How many times `create_and_start` was called, failures included.
    pub fn create_count(&self) -> usize {
        self.state().creates
    }

    /// How many times `remove` was called, already-gone containers included.
    pub fn remove_count(&self) -> usize {
        self.state().removes
    }

    /// Every container, by id.
    pub fn containers(&self) -> Vec<FakeContainer> {
        self.state().containers.values().cloned().collect()
    }

    /// One container.
    pub fn container(&self, id: &str) -> Option<FakeContainer> {
        self.state().containers.get(id).cloned()
    }
}

impl State {
    fn new_container(&mut self, spec: &ContainerSpec) -> ContainerInfo {
        let id = format!("fake{:060}", self.next_id);
        self.next_id += 1;
        let host_port = self.next_port;
        self.next_port = self.next_port.checked_add(1).unwrap_or(FIRST_HOST_PORT);
        ContainerInfo {
            id,
            name: spec.name.clone(),
            labels: spec.labels.clone(),
            state: ContainerState::Running,
            host_port: Some(host_port),
        }
    }
}

/// The made-up pid of a fake container, from its id's number.
fn fake_pid(id: &str) -> u32 {
    let n: u32 = id.trim_start_matches("fake").parse().unwrap_or(0);
    FIRST_PID.saturating_add(n)
}

fn carries_all(have: &BTreeMap<String, String>, wanted: &[(String, String)]) -> bool {
    wanted.iter().all(|(k, v)| have.get(k) == Some(v))
}

impl ContainerRuntime for FakeRuntime {
    fn identity(&self) -> RuntimeIdentity {
        RuntimeIdentity {
            kind: "fake".into(),
            socket: "memory://fake".into(),
            version: "0".into(),
        }
    }

    fn list(&self, labels: &[(String, String)]) -> impl Future<Output = Result<Vec<ContainerInfo>>> + Send {
        let found = self
            .state()
            .containers
            .values()
            .filter(|c| carries_all(&c.info.labels, labels))
            .map(|c| c.info.clone())
            .collect();
        std::future::ready(Ok(found))
    }

    fn create_and_start(&self, spec: &ContainerSpec) -> impl Future<Output = Result<ContainerInfo>> + Send {
        let result = {
            let mut state = self.state();
            state.creates += 1;
            if state.missing_images.contains(&spec.image) {
                Err(RuntimeError::ImageMissing {
                    image: spec.image.clone(),
                    runtime: "fake".into(),
                })
            } else if state.containers.values().any(|c| c.info.name == spec.name) {
                Err(RuntimeError::Api {
                    step: "create container",
                    message: format!("the container name `{}` is already in use", spec.name),
                })
            } else if let Some(message) = state.failing_images.get(&spec.image) {
                Err(RuntimeError::Api {
                    step: "start container",
                    message: message.clone(),
                })
            } else {
                let info = state.new_container(spec);
                let container = FakeContainer {
                    spec: spec.clone(),
                    info: info.clone(),
                    logs: Vec::new(),
                    pids: vec![fake_pid(&info.id)],
                };
                state.containers.insert(info.id.clone(), container);
                Ok(info)
            }
        };
        if let Ok(info) = &result {
            self.emit(info, "create");
            self.emit(info, "start");
        }
        std::future::ready(result)
    }

    fn remove(&self, id: &str) -> impl Future<Output = Result<()>> + Send {
        let removed = {
            let mut state = self.state();
            state.removes += 1;
            state.containers.remove(id)
        };
        if let Some(c) = removed {
            if c.info.state.is_running() {
                self.emit(&c.info, "die");
            }
            self.emit(&c.info, "destroy");
        }
        std::future::ready(Ok(()))
    }

    fn logs_tail(&self, id: &str, lines: usize) -> impl Future<Output = Result<Vec<String>>> + Send {
        let result = match self.state().containers.get(id) {
            Some(c) => Ok(c.logs[c.logs.len().saturating_sub(lines)..].to_vec()),
            None => Err(RuntimeError::Api {
                step: "read container logs",
                message: format!("no such container: {id}"),
            }),
        };
        std::future::ready(result)
    }

    fn image_exists(&self, image: &str) -> impl Future<Output = Result<bool>> + Send {
        std::future::ready(Ok(!self.state().missing_images.contains(image)))
    }

    /// Its pids while it runs (see [`FakeRuntime::set_pids`]), none once it exited.
    fn pids(&self, id: &str) -> impl Future<Output = Result<Vec<u32>>> + Send {
        let result = match self.state().containers.get(id) {
            Some(c) if c.info.state.is_running() => Ok(c.pids.clone()),
            Some(_) => Ok(Vec::new()),
            None => Err(RuntimeError::Api {
                step: "list container processes",
                message: format!("no such container: {id}"),
            }),
        };
        std::future::ready(result)
    }

    /// Every image is in the fake registry, except those [`FakeRuntime::fail_create_for`]
    /// names: pulling them fails with that message.
    fn pull_image(&self, image: &str) -> impl Future<Output = Result<()>> + Send {
        let mut state = self.state();
        let result = match state.failing_images.get(image) {
            Some(message) => Err(RuntimeError::Api {
                step: "pull image",
                message: message.clone(),
            }),
            None => {
                state.missing_images.remove(image);
                Ok(())
            }
        };
        std::future::ready(result)
    }

    fn events(&self, labels: &[(String, String)]) -> EventStream {
        let wanted = labels.to_vec();
        let receiver = self.events.subscribe();
        Box::pin(stream::unfold(
            (receiver, wanted),
            |(mut receiver, wanted)| async move {
                loop {
                    match receiver.recv().await {
                        Ok(event) if carries_all(&event.labels, &wanted) => {
                            return Some((Ok(event), (receiver, wanted)));
                        }
                        Ok(_) => continue,
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            let err = RuntimeError::Api {
                                step: "watch events",
                                message: format!("missed {n} events"),
                            };
                            return Some((Err(err), (receiver, wanted)));
                        }
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures_util::StreamExt;

    use super::*;
    use crate::runtime::GpuAttachment;

    fn spec(name: &str, pool: &str) -> ContainerSpec {
        ContainerSpec {
            name: name.into(),
            image: "llama-orch/mock-engine:dev".into(),
            launch: crate::runtime::Launch::Image,
            args: vec![],
            env: vec![],
            labels: BTreeMap::from([
                ("llama-orch.dev/owner".to_string(), "test".to_string()),
                ("llama-orch.dev/pool".to_string(), pool.to_string()),
            ]),
            container_port: 8080,
            mounts: vec![],
            gpus: GpuAttachment::Simulated(vec![0]),
        }
    }

    fn pool(p: &str) -> Vec<(String, String)> {
        vec![("llama-orch.dev/pool".to_string(), p.to_string())]
    }

    async fn next_event(events: &mut EventStream) -> RuntimeEvent {
        tokio::time::timeout(Duration::from_secs(1), events.next())
            .await
            .expect("an event arrives")
            .expect("the stream is open")
            .expect("no error")
    }

    #[tokio::test]
    async fn created_containers_run_with_distinct_host_ports_and_are_listed_by_label() {
        let rt = FakeRuntime::new();
        let a = rt.create_and_start(&spec("a", "chat")).await.unwrap();
        let b = rt.create_and_start(&spec("b", "code")).await.unwrap();
        assert!(a.state.is_running() && b.state.is_running());
        assert_eq!(a.host_port, Some(FIRST_HOST_PORT));
        assert_eq!(b.host_port, Some(FIRST_HOST_PORT + 1));
        assert_eq!(rt.list(&pool("chat")).await.unwrap(), vec![a.clone()]);
        assert_eq!(rt.list(&[]).await.unwrap().len(), 2);
        assert_eq!(rt.container(&a.id).unwrap().spec, spec("a", "chat"));
        assert_eq!(rt.create_count(), 2);
    }

    #[tokio::test]
    async fn a_killed_container_is_exited_without_a_port_and_a_die_event_goes_out() {
        let rt = FakeRuntime::new();
        let a = rt.create_and_start(&spec("a", "chat")).await.unwrap();
        let mut events = rt.events(&pool("chat"));
        assert!(rt.kill(&a.id, 137));
        let ev = next_event(&mut events).await;
        assert_eq!((ev.container_id.as_str(), ev.action.as_str()), (a.id.as_str(), "die"));
        assert_eq!(ev.labels, a.labels);
        let listed = rt.list(&pool("chat")).await.unwrap();
        assert_eq!(listed[0].state, ContainerState::Exited(137));
        assert_eq!(listed[0].host_port, None);
        assert!(!rt.kill(&a.id, 1), "an exited container cannot die again");
        assert!(!rt.kill("nope", 1));
    }

    #[tokio::test]
    async fn events_are_filtered_by_label() {
        let rt = FakeRuntime::new();
        let mut events = rt.events(&pool("code"));
        rt.create_and_start(&spec("a", "chat")).await.unwrap();
        let b = rt.create_and_start(&spec("b", "code")).await.unwrap();
        let ev = next_event(&mut events).await;
        assert_eq!((ev.container_id, ev.action.as_str()), (b.id.clone(), "create"));
        assert_eq!(next_event(&mut events).await.action, "start");
    }

    #[tokio::test]
    async fn a_failing_image_fails_at_start_and_leaves_nothing_behind() {
        let rt = FakeRuntime::new();
        rt.fail_create_for("llama-orch/mock-engine:dev", "exec format error");
        let err = rt.create_and_start(&spec("a", "chat")).await.unwrap_err();
        assert_eq!(err.to_string(), "start container failed: exec format error");
        assert!(rt.list(&[]).await.unwrap().is_empty());
        assert_eq!(rt.create_count(), 1);
        rt.stop_failing("llama-orch/mock-engine:dev");
        assert!(rt.create_and_start(&spec("a", "chat")).await.is_ok());
    }

    #[tokio::test]
    async fn a_missing_image_gives_image_missing() {
        let rt = FakeRuntime::new();
        rt.remove_image("llama-orch/mock-engine:dev");
        assert!(!rt.image_exists("llama-orch/mock-engine:dev").await.unwrap());
        let err = rt.create_and_start(&spec("a", "chat")).await.unwrap_err();
        assert!(matches!(err, RuntimeError::ImageMissing { ref image, .. } if image == "llama-orch/mock-engine:dev"));
        rt.add_image("llama-orch/mock-engine:dev");
        assert!(rt.image_exists("llama-orch/mock-engine:dev").await.unwrap());
    }

    #[tokio::test]
    async fn a_taken_name_is_refused() {
        let rt = FakeRuntime::new();
        rt.create_and_start(&spec("a", "chat")).await.unwrap();
        let err = rt.create_and_start(&spec("a", "chat")).await.unwrap_err();
        assert!(err.to_string().contains("already in use"), "{err}");
    }

    #[tokio::test]
    async fn remove_is_idempotent_counts_calls_and_reports_die_then_destroy() {
        let rt = FakeRuntime::new();
        let a = rt.create_and_start(&spec("a", "chat")).await.unwrap();
        let mut events = rt.events(&[]);
        rt.remove(&a.id).await.unwrap();
        rt.remove(&a.id).await.unwrap();
        assert_eq!(next_event(&mut events).await.action, "die");
        assert_eq!(next_event(&mut events).await.action, "destroy");
        assert_eq!(rt.remove_count(), 2);
        assert!(rt.list(&[]).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn logs_tail_returns_the_last_lines_set() {
        let rt = FakeRuntime::new();
        let a = rt.create_and_start(&spec("a", "chat")).await.unwrap();
        assert!(rt.set_logs(&a.id, &["one", "two", "three"]));
        assert_eq!(rt.logs_tail(&a.id, 2).await.unwrap(), ["two", "three"]);
        assert_eq!(rt.logs_tail(&a.id, 10).await.unwrap().len(), 3);
        assert!(rt.logs_tail("nope", 2).await.is_err());
        assert!(!rt.set_logs("nope", &[]));
    }

    #[tokio::test]
    async fn pids_are_made_up_settable_and_gone_once_it_exits() {
        let rt = FakeRuntime::new();
        let a = rt.create_and_start(&spec("a", "chat")).await.unwrap();
        let b = rt.create_and_start(&spec("b", "chat")).await.unwrap();
        let (pa, pb) = (rt.pids(&a.id).await.unwrap(), rt.pids(&b.id).await.unwrap());
        assert_eq!(pa.len(), 1);
        assert_ne!(pa, pb, "each container has its own");
        assert!(rt.set_pids(&a.id, &[7, 8]));
        assert_eq!(rt.pids(&a.id).await.unwrap(), [7, 8]);
        rt.kill(&a.id, 1);
        assert!(rt.pids(&a.id).await.unwrap().is_empty());
        assert!(rt.pids("nope").await.is_err());
    }

    #[tokio::test]
    async fn a_seeded_container_is_adoptable_without_counting_a_create() {
        let rt = FakeRuntime::new();
        let seeded = rt.seed_running(&spec("a", "chat"));
        assert_eq!(rt.list(&pool("chat")).await.unwrap(), vec![seeded]);
        assert_eq!(rt.create_count(), 0);
    }

    #[tokio::test]
    async fn a_slow_subscriber_is_told_it_missed_events() {
        let rt = FakeRuntime::new();
        let a = rt.seed_running(&spec("a", "chat"));
        let mut events = rt.events(&[]);
        for _ in 0..(EVENT_BUFFER + 5) {
            rt.emit(&a, "exec_start");
        }
        let first = tokio::time::timeout(Duration::from_secs(1), events.next())
            .await
            .unwrap()
            .unwrap();
        assert!(first.unwrap_err().to_string().contains("missed 5 events"));
    }
}

//! The dispatching runtime the daemon drives: container replicas go to Docker/Podman, process
//! replicas (`Launch::Executable`) to the [`ProcessRuntime`]; `list` and `events` merge both.
//! Ids route by their prefix (process ids start with `proc-`).
//!
//! The container side is optional: a daemon whose manifests declare only `binary`/`external`
//! engines starts without a reachable Docker or Podman, and any container work then fails
//! with the connection error it had at start-up (see `llama-orchd`).

use std::future::Future;
use std::sync::Arc;

use futures_util::StreamExt;

use super::process::ProcessRuntime;
use super::{
    ContainerInfo, ContainerRuntime, ContainerSpec, EventStream, Launch, LogStream, Result, RuntimeError,
    RuntimeIdentity,
};

/// Docker/Podman (when reachable) plus local processes.
pub struct MultiRuntime<C> {
    containers: std::result::Result<Arc<C>, String>,
    processes: ProcessRuntime,
}

impl<C: ContainerRuntime> MultiRuntime<C> {
    /// Both runtimes.
    pub fn new(containers: Arc<C>, processes: ProcessRuntime) -> Self {
        Self {
            containers: Ok(containers),
            processes,
        }
    }

    /// Processes only; container work fails with `why` (the connection error).
    pub fn processes_only(why: String, processes: ProcessRuntime) -> Self {
        Self {
            containers: Err(why),
            processes,
        }
    }

    /// The container runtime, if connected.
    pub fn containers(&self) -> Option<&Arc<C>> {
        self.containers.as_ref().ok()
    }

    /// The process runtime.
    pub fn processes(&self) -> &ProcessRuntime {
        &self.processes
    }

    fn container_side(&self) -> Result<&Arc<C>> {
        self.containers.as_ref().map_err(|why| RuntimeError::Connect {
            socket: "(none)".into(),
            message: format!(
                "llama-orchd started without a container runtime ({why}); start Docker or Podman and restart llama-orchd"
            ),
        })
    }
}

impl<C: ContainerRuntime> ContainerRuntime for MultiRuntime<C> {
    fn identity(&self) -> RuntimeIdentity {
        match &self.containers {
            Ok(c) => c.identity(),
            Err(_) => self.processes.identity(),
        }
    }

    fn list(&self, labels: &[(String, String)]) -> impl Future<Output = Result<Vec<ContainerInfo>>> + Send {
        let labels = labels.to_vec();
        async move {
            let mut all = match &self.containers {
                Ok(c) => c.list(&labels).await?,
                Err(_) => Vec::new(),
            };
            all.extend(self.processes.list(&labels).await?);
            Ok(all)
        }
    }

    fn create_and_start(&self, spec: &ContainerSpec) -> impl Future<Output = Result<ContainerInfo>> + Send {
        let spec = spec.clone();
        async move {
            match spec.launch {
                Launch::Executable(_) => self.processes.create_and_start(&spec).await,
                Launch::Image => self.container_side()?.create_and_start(&spec).await,
            }
        }
    }

    fn remove(&self, id: &str) -> impl Future<Output = Result<()>> + Send {
        let id = id.to_string();
        async move {
            if ProcessRuntime::owns(&id) {
                self.processes.remove(&id).await
            } else {
                self.container_side()?.remove(&id).await
            }
        }
    }

    fn logs_tail(&self, id: &str, lines: usize) -> impl Future<Output = Result<Vec<String>>> + Send {
        let id = id.to_string();
        async move {
            if ProcessRuntime::owns(&id) {
                self.processes.logs_tail(&id, lines).await
            } else {
                self.container_side()?.logs_tail(&id, lines).await
            }
        }
    }

    fn logs_follow(&self, id: &str, lines: usize) -> LogStream {
        if ProcessRuntime::owns(id) {
            return self.processes.logs_follow(id, lines);
        }
        match self.container_side() {
            Ok(c) => c.logs_follow(id, lines),
            Err(e) => Box::pin(futures_util::stream::once(std::future::ready(Err(e)))),
        }
    }

    fn image_exists(&self, image: &str) -> impl Future<Output = Result<bool>> + Send {
        let image = image.to_string();
        async move { self.container_side()?.image_exists(&image).await }
    }

    fn pull_image(&self, image: &str) -> impl Future<Output = Result<()>> + Send {
        let image = image.to_string();
        async move { self.container_side()?.pull_image(&image).await }
    }

    fn pids(&self, id: &str) -> impl Future<Output = Result<Vec<u32>>> + Send {
        let id = id.to_string();
        async move {
            if ProcessRuntime::owns(&id) {
                self.processes.pids(&id).await
            } else {
                self.container_side()?.pids(&id).await
            }
        }
    }

    fn events(&self, labels: &[(String, String)]) -> EventStream {
        let processes = self.processes.events(labels);
        match &self.containers {
            // When the container stream ends, say so: the follower then reconnects both.
            Ok(c) => {
                let ended = futures_util::stream::once(std::future::ready(Err(RuntimeError::Api {
                    step: "watch events",
                    message: "the container runtime's event stream ended".into(),
                })));
                Box::pin(futures_util::stream::select(c.events(labels).chain(ended), processes))
            }
            Err(_) => processes,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::BTreeMap;

    use super::*;
    use crate::runtime::GpuAttachment;
    use crate::runtime::fake::FakeRuntime;

    fn spec(launch: Launch) -> ContainerSpec {
        ContainerSpec {
            name: "m".into(),
            image: "img:dev".into(),
            launch,
            args: vec!["30".into()],
            env: Vec::new(),
            labels: BTreeMap::from([("pool".to_string(), "m".to_string())]),
            container_port: 8080,
            mounts: Vec::new(),
            gpus: GpuAttachment::None,
        }
    }

    #[tokio::test]
    async fn specs_route_by_launch_and_lists_merge() {
        let dir = tempfile::tempdir().unwrap();
        let fake = Arc::new(FakeRuntime::new());
        let rt = MultiRuntime::new(fake.clone(), ProcessRuntime::open(dir.path()).unwrap());
        let c = rt.create_and_start(&spec(Launch::Image)).await.unwrap();
        let p = rt
            .create_and_start(&spec(Launch::Executable("sleep".into())))
            .await
            .unwrap();
        assert!(!ProcessRuntime::owns(&c.id) && ProcessRuntime::owns(&p.id));
        assert_eq!(fake.create_count(), 1, "only the image went to the container runtime");
        let mut ids: Vec<String> = rt.list(&[]).await.unwrap().into_iter().map(|i| i.id).collect();
        ids.sort();
        assert_eq!(ids.len(), 2);
        rt.remove(&p.id).await.unwrap();
        rt.remove(&c.id).await.unwrap();
        assert!(rt.list(&[]).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn without_a_container_runtime_processes_still_work_and_images_say_why_not() {
        let dir = tempfile::tempdir().unwrap();
        let rt: MultiRuntime<FakeRuntime> =
            MultiRuntime::processes_only("no socket at /x".into(), ProcessRuntime::open(dir.path()).unwrap());
        assert_eq!(rt.identity().kind, "process");
        let err = rt.create_and_start(&spec(Launch::Image)).await.unwrap_err().to_string();
        assert!(
            err.contains("started without a container runtime (no socket at /x)"),
            "{err}"
        );
        let p = rt
            .create_and_start(&spec(Launch::Executable("sleep".into())))
            .await
            .unwrap();
        assert_eq!(rt.list(&[]).await.unwrap().len(), 1);
        rt.remove(&p.id).await.unwrap();
    }
}

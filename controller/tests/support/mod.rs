//! What the fake-runtime tests with real health probes share: one simulated GPU, and the
//! in-memory runtime with a tiny HTTP server behind every running container's port that
//! answers the probe (200, or 503 for images named `sick…`), so replicas really become Ready.
//! Images named `crash…` exit right after they start, with an engine-like last log line.
// Each test crate uses part of it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

use llorch_controller::gpu::{GpuError, GpuInventory};
use llorch_controller::runtime::fake::FakeRuntime;
use llorch_controller::runtime::{
    ContainerInfo, ContainerRuntime, ContainerSpec, EventStream, Result as RtResult, RuntimeIdentity,
};
use llorch_manifests::api::{GpuSource, GpuView};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One simulated GPU of 64 GiB.
pub struct OneGpu;

impl GpuInventory for OneGpu {
    fn devices(&self) -> Result<Vec<GpuView>, GpuError> {
        Ok(vec![GpuView {
            index: 0,
            uuid: "SIM-GPU-0".into(),
            name: "sim".into(),
            total_bytes: 1 << 36,
            used_bytes: 0,
            free_bytes: 1 << 36,
            utilization_pct: None,
            simulated: true,
            processes: Vec::new(),
            process_listing: Default::default(),
            errors: Vec::new(),
        }])
    }
    fn simulated(&self) -> bool {
        true
    }
    fn source(&self) -> GpuSource {
        GpuSource::Simulated
    }
}

/// The fake runtime, with a real health endpoint behind every running container's port.
pub struct Served {
    /// The in-memory runtime underneath.
    pub fake: FakeRuntime,
    ports: Mutex<HashMap<String, u16>>,
}

/// Answers every request with 200, or 503 when `sick`.
pub async fn health_server(sick: bool) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = conn.read(&mut buf).await;
                let status = if sick { "503 Service Unavailable" } else { "200 OK" };
                let reply = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                let _ = conn.write_all(reply.as_bytes()).await;
            });
        }
    });
    port
}

impl Served {
    async fn served(&self, mut c: ContainerInfo) -> ContainerInfo {
        if c.host_port.is_some() {
            let known = self.ports.lock().unwrap().get(&c.id).copied();
            let port = match known {
                Some(p) => p,
                None => {
                    let sick = c.name.contains("sick") || self.image_of(&c.id).starts_with("sick");
                    let p = health_server(sick).await;
                    self.ports.lock().unwrap().insert(c.id.clone(), p);
                    p
                }
            };
            c.host_port = Some(port);
        }
        c
    }

    fn image_of(&self, id: &str) -> String {
        self.fake.container(id).map(|c| c.spec.image).unwrap_or_default()
    }
}

impl ContainerRuntime for Served {
    fn identity(&self) -> RuntimeIdentity {
        self.fake.identity()
    }
    fn list(&self, labels: &[(String, String)]) -> impl Future<Output = RtResult<Vec<ContainerInfo>>> + Send {
        let listed = self.fake.list(labels);
        async move {
            let mut out = Vec::new();
            for c in listed.await? {
                out.push(self.served(c).await);
            }
            Ok(out)
        }
    }
    fn create_and_start(&self, spec: &ContainerSpec) -> impl Future<Output = RtResult<ContainerInfo>> + Send {
        let spec = spec.clone();
        async move {
            let c = self.fake.create_and_start(&spec).await?;
            if spec.image.starts_with("crash") {
                self.fake.set_logs(
                    &c.id,
                    &["loading model", "error: unknown model architecture: 'brokenarch'"],
                );
                self.fake.kill(&c.id, 1);
                return Ok(self.fake.container(&c.id).unwrap().info);
            }
            Ok(self.served(c).await)
        }
    }
    fn remove(&self, id: &str) -> impl Future<Output = RtResult<()>> + Send {
        self.fake.remove(id)
    }
    fn logs_tail(&self, id: &str, lines: usize) -> impl Future<Output = RtResult<Vec<String>>> + Send {
        self.fake.logs_tail(id, lines)
    }
    fn image_exists(&self, image: &str) -> impl Future<Output = RtResult<bool>> + Send {
        self.fake.image_exists(image)
    }
    fn pull_image(&self, image: &str) -> impl Future<Output = RtResult<()>> + Send {
        self.fake.pull_image(image)
    }
    fn events(&self, labels: &[(String, String)]) -> EventStream {
        self.fake.events(labels)
    }
    fn pids(&self, id: &str) -> impl Future<Output = RtResult<Vec<u32>>> + Send {
        self.fake.pids(id)
    }
}

impl Served {
    /// An empty runtime.
    pub fn new() -> Self {
        Served {
            fake: FakeRuntime::new(),
            ports: Mutex::default(),
        }
    }
}

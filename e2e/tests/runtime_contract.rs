//! The container runtime contract (`controller/src/runtime/mod.rs`), proven against real Docker
//! and real Podman with the mock engine image: every test below runs once per runtime. A runtime
//! that does not answer, or lacks the image, fails the test with what to run; nothing is skipped.
//!
//! Each test labels its containers with a value unique to it, so tests running in parallel never
//! see each other's containers, and a guard removes them even when the test fails.

// A test crate: its helpers fail the test by panicking, which clippy only knows inside `#[test]`.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::StreamExt;
use llama_orch_e2e::{ContainerGuard, MOCK_IMAGE_ENV, mock_image, run_cli, socket_of, unique};
use llorch_controller::runtime::docker::DockerRuntime;
use llorch_controller::runtime::{
    ContainerInfo, ContainerRuntime, ContainerSpec, ContainerState, EventStream, GpuAttachment, Mount, RuntimeError,
};
use llorch_manifests::config::RuntimeKind;
use tempfile::TempDir;

/// The label that ties a container to one test.
const TEST_LABEL: &str = "llama-orch.dev/e2e-test";
/// Where the model is mounted inside the engine container.
const MODEL_IN_CONTAINER: &str = "/models/m.gguf";
/// How long an engine may take to answer `/health` after it started.
const HEALTH_WITHIN: Duration = Duration::from_secs(20);
/// How long any single runtime call or awaited event may take.
const STEP_WITHIN: Duration = Duration::from_secs(30);

/// One test's runtime, label and model file.
struct Fixture {
    runtime: &'static str,
    socket: String,
    rt: DockerRuntime,
    test_id: String,
    image: String,
    // Dropped before `model_dir`: containers go before the file they mount.
    guard: ContainerGuard,
    model_dir: TempDir,
}

impl Fixture {
    /// Connects to `runtime` (`docker` or `podman`) and checks the mock image is there.
    async fn new(runtime: &'static str) -> Fixture {
        let socket = socket_of(runtime);
        let kind = if runtime == "podman" {
            RuntimeKind::Podman
        } else {
            RuntimeKind::Docker
        };
        let rt = match DockerRuntime::connect(kind, Some(&socket)).await {
            Ok(rt) => rt,
            Err(e) => panic!(
                "{runtime} does not answer at {socket}: {e}\n\
                 The e2e tests need both runtimes: run `bash scripts/setup-runtimes.sh` (or set \
                 LLORCH_DOCKER_SOCKET / LLORCH_PODMAN_SOCKET to running ones)."
            ),
        };
        assert_eq!(rt.identity().kind, runtime, "the server at {socket} is not {runtime}");
        let image = mock_image();
        let present = within(rt.image_exists(&image))
            .await
            .unwrap_or_else(|e| panic!("{runtime}: {e}"));
        assert!(
            present,
            "image `{image}` is not in {runtime}; build it with `bash scripts/build-mock-image.sh` (or set \
             {MOCK_IMAGE_ENV} to an image that is)"
        );
        let test_id = unique("contract");
        let guard = ContainerGuard::new(runtime, &socket, TEST_LABEL, &test_id);
        let model_dir = tempfile::tempdir().expect("a temp dir");
        std::fs::write(
            model_dir.path().join("m.gguf"),
            llorch_gguf::fixture::tiny_model("llama"),
        )
        .expect("a model file");
        Fixture {
            runtime,
            socket,
            rt,
            test_id,
            image,
            guard,
            model_dir,
        }
    }

    /// This test's label selector.
    fn selector(&self) -> Vec<(String, String)> {
        vec![(TEST_LABEL.to_string(), self.test_id.clone())]
    }

    /// A mock engine serving the model read-only on port 8080, labelled for this test.
    fn spec(&self) -> ContainerSpec {
        let host_path = self.model_dir.path().join("m.gguf").to_string_lossy().into_owned();
        ContainerSpec {
            name: format!("llorch-{}", self.test_id),
            image: self.image.clone(),
            launch: llorch_controller::runtime::Launch::Image,
            args: ["--model", MODEL_IN_CONTAINER, "--host", "0.0.0.0", "--port", "8080"]
                .map(String::from)
                .to_vec(),
            env: vec![("MOCK_SEED".into(), "7".into())],
            labels: BTreeMap::from([
                (TEST_LABEL.to_string(), self.test_id.clone()),
                ("llama-orch.dev/pool".to_string(), "contract".to_string()),
            ]),
            container_port: 8080,
            mounts: vec![Mount {
                host_path,
                container_path: MODEL_IN_CONTAINER.into(),
                read_only: true,
            }],
            gpus: GpuAttachment::Simulated(vec![0]),
        }
    }

    /// Creates and starts the spec and waits for `/health` to answer 200.
    async fn start_healthy(&self) -> ContainerInfo {
        let info = within(self.rt.create_and_start(&self.spec()))
            .await
            .unwrap_or_else(|e| panic!("{}: create_and_start failed: {e}", self.runtime));
        let port = info
            .host_port
            .unwrap_or_else(|| panic!("{}: no host port in {info:?}", self.runtime));
        wait_healthy(port).await.unwrap_or_else(|e| {
            let logs = run_cli(self.runtime, &self.socket, &["logs", &info.id]).unwrap_or_else(|e| e);
            panic!(
                "{}: the engine never became healthy on 127.0.0.1:{port}: {e}\nits logs:\n{logs}",
                self.runtime
            )
        });
        info
    }

    /// The runtime's CLI; panics with its stderr on failure.
    fn cli(&self, args: &[&str]) -> String {
        run_cli(self.runtime, &self.socket, args).unwrap_or_else(|e| panic!("{e}"))
    }

    async fn list(&self) -> Vec<ContainerInfo> {
        within(self.rt.list(&self.selector()))
            .await
            .unwrap_or_else(|e| panic!("{}: list failed: {e}", self.runtime))
    }
}

/// Awaits a runtime call, failing the test if it hangs.
async fn within<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(STEP_WITHIN, f)
        .await
        .unwrap_or_else(|_| panic!("a runtime call took over {STEP_WITHIN:?}"))
}

/// Polls `GET http://127.0.0.1:<port>/health` until it answers 200.
async fn wait_healthy(port: u16) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(2))
        .build()
        .map_err(|e| e.to_string())?;
    let url = format!("http://127.0.0.1:{port}/health");
    let deadline = tokio::time::Instant::now() + HEALTH_WITHIN;
    let mut last = String::from("no answer yet");
    while tokio::time::Instant::now() < deadline {
        match client.get(&url).send().await {
            Ok(r) if r.status() == reqwest::StatusCode::OK => return Ok(()),
            Ok(r) => last = format!("HTTP {}", r.status()),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("{url}: {last} after {HEALTH_WITHIN:?}"))
}

/// Waits for `action` on container `id`, skipping other events.
async fn wait_for_event(events: &mut EventStream, id: &str, action: &str) {
    let seen = tokio::time::timeout(STEP_WITHIN, async {
        let mut seen = Vec::new();
        while let Some(event) = events.next().await {
            let event = event.unwrap_or_else(|e| panic!("the event stream failed: {e}"));
            if event.container_id == id && event.action == action {
                return Ok(());
            }
            seen.push(event.action);
        }
        Err(seen)
    })
    .await;
    match seen {
        Ok(Ok(())) => {}
        Ok(Err(seen)) => panic!("the event stream ended before `{action}`; saw {seen:?}"),
        Err(_) => panic!("no `{action}` event for {id} within {STEP_WITHIN:?}"),
    }
}

async fn a_started_engine_serves_health_on_loopback_and_is_listed_and_logged(runtime: &'static str) {
    let fx = Fixture::new(runtime).await;
    let spec = fx.spec();
    let info = fx.start_healthy().await;
    assert_eq!(info.state, ContainerState::Running);
    assert_eq!(info.name, spec.name);
    assert_eq!(info.labels.get(TEST_LABEL), Some(&fx.test_id));

    // `list` by label finds the same container, id, name and port.
    assert_eq!(fx.list().await, vec![info.clone()]);

    // The engine got our args: it logged loading the model from the path we passed. The engine
    // keeps logging (its access log), so a tail read first must be a window of a later full read.
    let last_two = within(fx.rt.logs_tail(&info.id, 2)).await.unwrap();
    let logs = within(fx.rt.logs_tail(&info.id, 200))
        .await
        .unwrap_or_else(|e| panic!("{runtime}: logs: {e}"));
    assert!(
        logs.iter().any(|l| l.contains(MODEL_IN_CONTAINER)),
        "{runtime}: startup lines missing: {logs:?}"
    );
    assert_eq!(last_two.len(), 2, "{runtime}: tail 2 gave {last_two:?}");
    assert!(
        logs.windows(2).any(|w| w == last_two.as_slice()),
        "{runtime}: tail 2 {last_two:?} is not a window of the log {logs:?}"
    );

    // What the runtime itself recorded: the model mount is read-only, the port is on loopback.
    let mounts = fx.cli(&["inspect", "--format", "{{json .Mounts}}", &info.id]);
    assert!(
        mounts.contains(MODEL_IN_CONTAINER) && mounts.contains("\"RW\":false"),
        "{runtime}: {mounts}"
    );
    let ports = fx.cli(&["inspect", "--format", "{{json .NetworkSettings.Ports}}", &info.id]);
    let port = info.host_port.unwrap_or_default().to_string();
    assert!(
        ports.contains("\"HostIp\":\"127.0.0.1\"") && ports.contains(&port),
        "{runtime}: {ports}"
    );
    assert!(
        !ports.contains("0.0.0.0"),
        "{runtime}: published beyond loopback: {ports}"
    );
}

async fn a_killed_engine_is_reported_by_a_die_event_and_listed_as_exited_without_a_port(runtime: &'static str) {
    let fx = Fixture::new(runtime).await;
    let info = fx.start_healthy().await;
    let mut events = fx.rt.events(&fx.selector());
    // A followed log (`orchctl logs -f`) gives the tail first, and ends when the container stops.
    let mut followed = fx.rt.logs_follow(&info.id, 200);
    within(async {
        loop {
            match followed.next().await {
                Some(Ok(line)) if line.contains(MODEL_IN_CONTAINER) => break,
                Some(Ok(_)) => {}
                other => panic!("{runtime}: the followed log ended before the startup line: {other:?}"),
            }
        }
    })
    .await;
    fx.cli(&["kill", &info.id]);
    wait_for_event(&mut events, &info.id, "die").await;
    within(async {
        while let Some(line) = followed.next().await {
            line.unwrap_or_else(|e| panic!("{runtime}: the followed log failed: {e}"));
        }
    })
    .await;
    let listed = fx.list().await;
    assert_eq!(listed.len(), 1, "{runtime}: {listed:?}");
    assert_eq!(listed[0].id, info.id);
    assert_eq!(listed[0].state, ContainerState::Exited(137), "{runtime}: SIGKILL");
    assert_eq!(listed[0].host_port, None, "{runtime}: a stopped container has no port");
}

async fn removing_twice_succeeds_reports_destroy_and_leaves_nothing(runtime: &'static str) {
    let fx = Fixture::new(runtime).await;
    let info = fx.start_healthy().await;
    let mut events = fx.rt.events(&fx.selector());
    within(fx.rt.remove(&info.id))
        .await
        .unwrap_or_else(|e| panic!("{runtime}: first remove: {e}"));
    within(fx.rt.remove(&info.id))
        .await
        .unwrap_or_else(|e| panic!("{runtime}: second remove: {e}"));
    within(fx.rt.remove(&format!("llorch-never-{}", fx.test_id)))
        .await
        .unwrap();
    // Docker says `destroy`, Podman `remove`: the runtime reports both as `destroy`.
    wait_for_event(&mut events, &info.id, "destroy").await;
    assert_eq!(fx.list().await, vec![]);
    assert_eq!(
        fx.guard.container_ids().unwrap(),
        Vec::<String>::new(),
        "{runtime}: the CLI still lists it"
    );
}

async fn a_missing_image_is_image_missing_and_creates_nothing(runtime: &'static str) {
    let fx = Fixture::new(runtime).await;
    let image = format!("llama-orch/no-such-image:{}", fx.test_id);
    assert!(!within(fx.rt.image_exists(&image)).await.unwrap());
    let spec = ContainerSpec {
        image: image.clone(),
        ..fx.spec()
    };
    match within(fx.rt.create_and_start(&spec)).await {
        Err(RuntimeError::ImageMissing {
            image: missing,
            runtime: which,
        }) => {
            assert_eq!((missing.as_str(), which.as_str()), (image.as_str(), runtime));
        }
        other => panic!("{runtime}: expected ImageMissing, got {other:?}"),
    }
    assert_eq!(fx.list().await, vec![]);
}

/// An NVIDIA attachment the runtime cannot make must fail loudly — never start an engine
/// without its GPU — and leave no container behind.
async fn a_gpu_the_runtime_cannot_attach_fails_and_leaves_no_container(runtime: &'static str) {
    let fx = Fixture::new(runtime).await;
    // GPU 7 exists nowhere: the test dockerd's NVIDIA toolkit stand-in (setup-runtimes.sh)
    // fails it as the real toolkit does ("unknown device"); Podman 4.3 is refused before.
    let spec = ContainerSpec {
        gpus: GpuAttachment::Nvidia(vec![7]),
        ..fx.spec()
    };
    match within(fx.rt.create_and_start(&spec)).await {
        Err(RuntimeError::Api { step, message }) => {
            eprintln!("{runtime}: {step} failed: {message}");
            assert!(
                matches!(step, "start container" | "create container" | "attach GPUs"),
                "{runtime}: {step}"
            );
        }
        other => panic!("{runtime}: an NVIDIA GPU on a host without one must fail, got {other:?}"),
    }
    assert_eq!(
        fx.list().await,
        vec![],
        "{runtime}: the unstarted container was left behind"
    );
    assert_eq!(fx.guard.container_ids().unwrap(), Vec::<String>::new());
}

/// `pids` (what the NotOnGpu check looks for in NVML's process lists): the engine's host
/// processes, the runtime's own `State.Pid` among them, carrying the container's environment;
/// none once it stopped.
async fn pids_are_the_engines_host_processes_and_none_once_it_stopped(runtime: &'static str) {
    let fx = Fixture::new(runtime).await;
    let info = fx.start_healthy().await;
    let pids = within(fx.rt.pids(&info.id))
        .await
        .unwrap_or_else(|e| panic!("{runtime}: pids: {e}"));
    let main: u32 = fx
        .cli(&["inspect", "--format", "{{.State.Pid}}", &info.id])
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{runtime}: State.Pid: {e}"));
    assert!(pids.contains(&main), "{runtime}: {pids:?} lacks State.Pid {main}");
    let environ = std::fs::read(format!("/proc/{main}/environ")).expect("the engine's environment");
    assert!(
        environ.split(|b| *b == 0).any(|e| e == b"MOCK_SEED=7"),
        "{runtime}: pid {main} is not the engine (no MOCK_SEED=7 in its environment)"
    );
    let mut events = fx.rt.events(&fx.selector());
    fx.cli(&["kill", &info.id]);
    wait_for_event(&mut events, &info.id, "die").await;
    let after = within(fx.rt.pids(&info.id)).await.unwrap();
    assert_eq!(
        after,
        Vec::<u32>::new(),
        "{runtime}: a stopped container has no processes"
    );
}

async fn auto_connects_to_the_given_socket_and_names_the_runtime_truthfully(runtime: &'static str) {
    let socket = socket_of(runtime);
    let rt = DockerRuntime::connect(RuntimeKind::Auto, Some(&socket))
        .await
        .unwrap_or_else(|e| panic!("{runtime} does not answer at {socket}: {e}; run `bash scripts/setup-runtimes.sh`"));
    let id = rt.identity();
    assert_eq!((id.kind.as_str(), id.socket.as_str()), (runtime, socket.as_str()));
    assert!(!id.version.is_empty());
}

macro_rules! for_both_runtimes {
    ($($name:ident),* $(,)?) => {
        mod docker {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name("docker").await } )*
        }
        mod podman {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name("podman").await } )*
        }
    };
}

for_both_runtimes!(
    a_started_engine_serves_health_on_loopback_and_is_listed_and_logged,
    a_killed_engine_is_reported_by_a_die_event_and_listed_as_exited_without_a_port,
    removing_twice_succeeds_reports_destroy_and_leaves_nothing,
    a_missing_image_is_image_missing_and_creates_nothing,
    a_gpu_the_runtime_cannot_attach_fails_and_leaves_no_container,
    pids_are_the_engines_host_processes_and_none_once_it_stopped,
    auto_connects_to_the_given_socket_and_names_the_runtime_truthfully,
);

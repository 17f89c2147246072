//! A real `llama-orchd` for end-to-end tests: a temporary home with a config (simulated GPUs,
//! the runtime under test, a unique instance label, a free loopback port), the built binary as
//! a child process, and helpers to write manifests, read the snapshot, run `orchctl` and the
//! runtime's own CLI. Dropping it kills the daemon and removes every container of its instance.

// Test support: failing loudly, with context, is what a harness should do.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use llorch_manifests::api::Snapshot;

/// A container runtime under test.
#[derive(Clone, Debug)]
pub struct Runtime {
    /// `docker` or `podman`.
    pub name: &'static str,
    /// Its API socket URL.
    pub socket: String,
}

impl Runtime {
    /// Docker at `LLORCH_DOCKER_SOCKET` (default: the socket scripts/setup-runtimes.sh starts).
    pub fn docker() -> Self {
        Self {
            name: "docker",
            socket: crate::docker_socket(),
        }
    }

    /// Podman at `LLORCH_PODMAN_SOCKET` (default: the socket scripts/setup-runtimes.sh starts).
    pub fn podman() -> Self {
        Self {
            name: "podman",
            socket: crate::podman_socket(),
        }
    }

    /// The runtime's CLI, pointed at the same engine as the socket.
    pub fn cli(&self) -> Command {
        crate::runtime_cli(self.name, &self.socket)
    }

    /// Runs the CLI and returns trimmed stdout; panics with stderr on failure.
    pub fn run(&self, args: &[&str]) -> String {
        let out = self
            .cli()
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.name));
        assert!(
            out.status.success(),
            "{} {args:?} failed: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Ids of all containers (any state) labelled with `instance`, sorted.
    pub fn container_ids(&self, instance: &str) -> Vec<String> {
        let filter = format!("label=dev.llama-orch.instance={instance}");
        let mut ids: Vec<String> = self
            .run(&["ps", "-a", "--no-trunc", "--filter", &filter, "--format", "{{.ID}}"])
            .lines()
            .map(str::to_string)
            .collect();
        ids.sort();
        ids
    }

    /// Removes all containers labelled with `instance` (best effort).
    pub fn remove_instance(&self, instance: &str) {
        for id in self.container_ids(instance) {
            let _ = self.cli().args(["rm", "-f", &id]).output();
        }
    }
}

/// Where the workspace's built binaries are: `LLORCH_BIN_DIR`, else `target/debug`.
pub fn bin(name: &str) -> PathBuf {
    let dir = std::env::var("LLORCH_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug"));
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first (`cargo build --bins`; scripts/test.sh does)",
        path.display()
    );
    path
}

/// The reference workstation every e2e daemon has unless a test says otherwise: two
/// simulated GPUs of 24 and 12 GiB.
const SIMULATED_GPUS: &str = "{simulate: [{name: Simulated RTX 3090, vramBytes: 25769803776}, \
                              {name: Simulated RTX 3060, vramBytes: 12884901888}]}";

/// A running daemon.
pub struct Daemon {
    /// The temporary home (`LLAMA_ORCH_HOME`).
    pub home: tempfile::TempDir,
    /// Unique instance label.
    pub instance: String,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// The runtime it drives.
    pub runtime: Runtime,
    /// The API token it requires, when it was started with one.
    pub token: Option<String>,
    /// Variables added to its environment.
    env: Vec<(String, String)>,
    child: Option<Child>,
    http: reqwest::blocking::Client,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(18080)
}

impl Daemon {
    /// Starts a daemon on `runtime` with two simulated GPUs and waits until it is ready.
    pub fn start(runtime: Runtime) -> Daemon {
        Self::start_with(runtime, "")
    }

    /// [`start`](Self::start), with `extra` (YAML lines such as `shutdownGraceMs: 1000`)
    /// added to the config.
    pub fn start_with(runtime: Runtime, extra: &str) -> Daemon {
        Self::launch(
            runtime,
            extra,
            &[],
            std::net::Ipv4Addr::LOCALHOST.into(),
            &[],
            SIMULATED_GPUS,
        )
    }

    /// [`start_with`](Self::start_with), requiring `tokens` (name and token, written to a
    /// `chmod 600` token file) and listening on `ip`; the harness's own requests and
    /// [`orchctl`](Self::orchctl) present the first token.
    pub fn start_secured(runtime: Runtime, tokens: &[(&str, &str)], ip: std::net::IpAddr, extra: &str) -> Daemon {
        Self::launch(runtime, extra, tokens, ip, &[], SIMULATED_GPUS)
    }

    /// [`start_with`](Self::start_with), with `env` added to the daemon's environment (kept
    /// across restarts).
    pub fn start_with_env(runtime: Runtime, extra: &str, env: &[(&str, &str)]) -> Daemon {
        Self::launch(
            runtime,
            extra,
            &[],
            std::net::Ipv4Addr::LOCALHOST.into(),
            env,
            SIMULATED_GPUS,
        )
    }

    /// [`start_with_env`](Self::start_with_env) with the config's `gpus:` value replaced by
    /// `gpus` (e.g. `nvml`) instead of the two simulated GPUs.
    pub fn start_with_gpus(runtime: Runtime, gpus: &str, extra: &str, env: &[(&str, &str)]) -> Daemon {
        Self::launch(runtime, extra, &[], std::net::Ipv4Addr::LOCALHOST.into(), env, gpus)
    }

    fn launch(
        runtime: Runtime,
        extra: &str,
        tokens: &[(&str, &str)],
        ip: std::net::IpAddr,
        env: &[(&str, &str)],
        gpus: &str,
    ) -> Daemon {
        let token = tokens.first().map(|(_, token)| *token);
        let home = tempfile::Builder::new()
            .prefix("llorch-e2e-")
            .tempdir()
            .expect("temp home");
        let instance = crate::unique("e2e");
        let port = free_port();
        std::fs::create_dir_all(home.path().join("manifests")).expect("manifests dir");
        std::fs::create_dir_all(home.path().join("models")).expect("models dir");
        std::fs::write(
            home.path().join("models/tiny.gguf"),
            llorch_gguf::fixture::tiny_model("llama"),
        )
        .expect("model file");
        let auth = match token {
            Some(_) => {
                let file = home.path().join("tokens.yaml");
                let lines: String = tokens
                    .iter()
                    .map(|(name, token)| format!("{name}: {token}\n"))
                    .collect();
                std::fs::write(&file, lines).expect("token file");
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod token file");
                "auth:\n  tokenFile: tokens.yaml\n"
            }
            None => "",
        };
        let config = format!(
            "{auth}bind: {ip}:{port}\ninstance: {instance}\nresyncIntervalMs: 2000\nruntime:\n  kind: {}\n  socket: {}\n\
             gpus: {gpus}\n{extra}",
            runtime.name, runtime.socket
        );
        std::fs::write(home.path().join("config.yaml"), config).expect("config");
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(token) = token {
            let value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")).expect("token header");
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        let mut d = Daemon {
            home,
            instance,
            url: format!("http://{}", std::net::SocketAddr::new(ip, port)),
            runtime,
            token: token.map(str::to_string),
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            child: None,
            http: reqwest::blocking::Client::builder()
                .no_proxy()
                .default_headers(headers)
                .timeout(Duration::from_secs(10))
                .build()
                .expect("http client"),
        };
        for attempt in 1.. {
            match d.try_spawn() {
                Ok(()) => break,
                // Another process took the port between `free_port` and the daemon's bind
                // (Docker publishes engine ports from the same ephemeral range): a new port.
                Err(exit) if attempt < 5 && exit.contains("Address already in use") => d.rebind(free_port()),
                Err(exit) => panic!("{exit}"),
            }
        }
        d
    }

    /// Moves the (not running) daemon to `port`: its config's `bind:` and [`url`](Self::url).
    fn rebind(&mut self, port: u16) {
        let path = self.home.path().join("config.yaml");
        let config = std::fs::read_to_string(&path).expect("config");
        let mut addr = None;
        let lines: Vec<String> = config
            .lines()
            .map(|line| {
                match line
                    .strip_prefix("bind: ")
                    .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
                {
                    Some(old) => {
                        let new = std::net::SocketAddr::new(old.ip(), port);
                        addr = Some(new);
                        format!("bind: {new}")
                    }
                    None => line.to_string(),
                }
            })
            .collect();
        std::fs::write(&path, lines.join("\n") + "\n").expect("config");
        self.url = format!("http://{}", addr.expect("the config binds an address"));
    }

    fn spawn(&mut self) {
        if let Err(exit) = self.try_spawn() {
            panic!("{exit}");
        }
    }

    /// Starts the daemon and waits until it is ready; `Err` with its exit status and what it
    /// logged when it exits during start-up.
    fn try_spawn(&mut self) -> Result<(), String> {
        let logged_before = self.log().len();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.home.path().join("daemon.log"))
            .expect("daemon log");
        let child = Command::new(bin("llama-orchd"))
            .env("LLAMA_ORCH_HOME", self.home.path())
            .env_remove("DOCKER_HOST")
            // The token is the config's (or none), not the test runner's environment's.
            .env_remove("LLAMA_ORCH_TOKEN")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn llama-orchd");
        self.child = Some(child);
        self.wait_ready(logged_before)
    }

    fn wait_ready(&mut self, logged_before: usize) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = self.http.get(format!("{}/readyz", self.url)).send()
                && r.status().is_success()
            {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                // The daemon flushes its log buffer as it exits: the file is whole now.
                let log = self.log();
                let this_start = log.get(logged_before..).unwrap_or(&log);
                return Err(format!(
                    "llama-orchd exited with {status} during start-up:\n{this_start}"
                ));
            }
            assert!(
                Instant::now() < deadline,
                "llama-orchd not ready after 30 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The daemon's log so far (lines reach the file within a few milliseconds: the daemon
    /// buffers them; see [`log_until`](Self::log_until)).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.home.path().join("daemon.log")).unwrap_or_default()
    }

    /// The log once `done` holds for it, or as it is after `timeout`. The daemon writes its
    /// lines from a buffer every 10 ms, so a line about something that just happened may not
    /// be in the file yet.
    pub fn log_until(&self, timeout: Duration, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.log();
            if done(&log) || Instant::now() >= deadline {
                return log;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILLs the daemon (no clean shutdown) and starts a new one on the same home.
    pub fn kill_and_restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// SIGKILLs the daemon.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `signal` (`TERM`, `INT`, …) to the daemon process.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().map(Child::id).expect("the daemon runs");
        let status = Command::new("kill")
            .args(["-s", signal, &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -s {signal} {pid} failed");
    }

    /// Waits up to `timeout` for the daemon process to exit; its exit status, or `None` when
    /// it still runs.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut()?;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// True while the daemon process runs and answers `/healthz`.
    pub fn is_healthy(&mut self) -> bool {
        let alive = self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)));
        alive
            && self
                .http
                .get(format!("{}/healthz", self.url))
                .send()
                .is_ok_and(|r| r.status().is_success())
    }

    /// The watched manifests directory.
    pub fn manifests_dir(&self) -> PathBuf {
        self.home.path().join("manifests")
    }

    /// The model file every test Model points at.
    pub fn model_path(&self) -> PathBuf {
        self.home.path().join("models/tiny.gguf")
    }

    /// Writes `text` to `<manifests>/<file>` atomically (temp file + rename), as editors do.
    pub fn write_manifest(&self, file: &str, text: &str) {
        let path = self.manifests_dir().join(file);
        let tmp = self.home.path().join(format!(".{file}.tmp"));
        std::fs::write(&tmp, text).expect("write manifest");
        std::fs::rename(&tmp, &path).expect("move manifest into place");
    }

    /// Deletes `<manifests>/<file>`.
    pub fn delete_manifest(&self, file: &str) {
        std::fs::remove_file(self.manifests_dir().join(file)).expect("delete manifest");
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Snapshot {
        self.http
            .get(format!("{}/v2/snapshot", self.url))
            .send()
            .and_then(|r| r.json())
            .unwrap_or_else(|e| panic!("GET /v2/snapshot: {e}\n{}", self.log()))
    }

    /// Polls the snapshot until `done` holds; panics with the last snapshot after `timeout`.
    pub fn wait_for(&self, what: &str, timeout: Duration, done: impl Fn(&Snapshot) -> bool) -> Snapshot {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.snapshot();
            if done(&s) {
                return s;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {what}; last snapshot:\n{}",
                    serde_json::to_string_pretty(&s).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs `orchctl` against this daemon and home, as its user on this machine: the URL comes
    /// from the home's config (`bind`), so `apply`, `diff` and `delete` edit the manifests
    /// directory directly (naming a server would send them through the write API).
    pub fn orchctl(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(bin("orchctl"));
        cmd.env("LLAMA_ORCH_HOME", self.home.path())
            .env_remove("LLAMA_ORCH_URL")
            .env_remove("LLAMA_ORCH_CONFIG");
        match &self.token {
            Some(token) => cmd.env("LLAMA_ORCH_TOKEN", token),
            None => cmd.env_remove("LLAMA_ORCH_TOKEN"),
        };
        cmd.args(args).output().expect("run orchctl")
    }

    /// Ids of this instance's containers, sorted.
    pub fn container_ids(&self) -> Vec<String> {
        self.runtime.container_ids(&self.instance)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
        self.runtime.remove_instance(&self.instance);
    }
}

/// An Engine (`name`) running the mock engine image with `extra_args`, a Model `tiny` at
/// `model`, and a Pool `pool` of `replicas` on that engine: one multi-document manifest.
pub fn mock_stack(engine: &str, pool: &str, replicas: u32, model: &Path, extra_args: &[&str]) -> String {
    let extra = if extra_args.is_empty() {
        String::new()
    } else {
        format!(
            "  extraArgs: [{}]\n",
            extra_args
                .iter()
                .map(|a| format!("\"{a}\""))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    format!(
        "apiVersion: llama-orch.dev/v1alpha1\nkind: Engine\nmetadata: {{name: {engine}}}\nspec:\n  image: llama-orch/mock-engine:dev\n  version: \"0.1.0\"\n{extra}  health: {{path: /health, intervalMs: 200}}\n  \
         \n---\napiVersion: llama-orch.dev/v1alpha1\nkind: Model\nmetadata: {{name: {pool}-model}}\nspec:\n  ref: file:{}\n  ctxMax: 4096\n\
         ---\napiVersion: llama-orch.dev/v1alpha1\nkind: Pool\nmetadata: {{name: {pool}}}\nspec:\n  engine: {engine}\n  model: {pool}-model\n  replicas: {replicas}\n  \
         slotsPerReplica: 2\n  restart: {{backoffInitialMs: 200, backoffMaxMs: 3000, circuitBreakerFailures: 8}}\n",
        model.display()
    )
}

/// The status of pool `name` in `s`, if present.
pub fn pool_status<'a>(s: &'a Snapshot, name: &str) -> Option<&'a llorch_manifests::status::ObjectStatus> {
    s.objects
        .iter()
        .find(|o| o.object.kind == llorch_manifests::Kind::Pool && o.object.name == name)
        .map(|o| &o.status)
}

/// True when pool `name` is Ready with `n` ready replicas and has observed its current manifest.
pub fn pool_ready(s: &Snapshot, name: &str, n: u32) -> bool {
    pool_status(s, name).is_some_and(|st| {
        st.is_ready()
            && st.replicas.is_some_and(|r| r.ready == n && r.desired == n)
            && st.observed_generation == st.generation
    })
}

/// Container ids of pool `name`'s replicas in `s`, by index.
pub fn replica_containers(s: &Snapshot, name: &str) -> Vec<Option<String>> {
    s.replicas
        .iter()
        .filter(|r| r.pool == name)
        .map(|r| r.container_id.clone())
        .collect()
}

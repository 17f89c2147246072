//! Docker and Podman through the Docker Engine API (bollard): [`DockerRuntime`] implements
//! [`ContainerRuntime`] against either, telling them apart by what the server says about
//! itself. It owns connecting (socket choice, API version negotiation, ping) and the calls;
//! building request bodies and reading responses are pure functions in `create_body` and
//! `convert`, unit-tested without a daemon. It pulls an image only when asked
//! ([`ContainerRuntime::pull_image`]), which the controller does only when config
//! `provisioning.allowImagePulls` is true.

mod convert;
mod create_body;
mod pid;
mod server;

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::errors::Error as BollardError;
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, EventsOptions, ListContainersOptions, LogsOptions,
    RemoveContainerOptions,
};
use bollard::{API_DEFAULT_VERSION, ClientVersion, Docker};
use futures_util::StreamExt;
use llorch_manifests::config::RuntimeKind;

pub use create_body::{HOST_IP, create_body};
pub use server::{
    DOCKER_SOCKET, PODMAN_CDI_MIN, PODMAN_SOCKET, ServerInfo, ServerKind, candidate_sockets, normalize_socket,
};

use super::{
    ContainerInfo, ContainerRuntime, ContainerSpec, ContainerState, EventStream, LogStream, Result, RuntimeError,
    RuntimeIdentity,
};

/// How long connecting (version, negotiation, ping) may take per socket.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// bollard's per-request timeout (until response headers), in seconds.
const REQUEST_TIMEOUT_S: u64 = 120;
/// What to tell someone whose runtime does not answer.
const START_HINT: &str = "start it with `scripts/setup-runtimes.sh` (or `systemctl start docker` / \
                          `systemctl start podman.socket`), or point `runtime.socket` / DOCKER_HOST at a \
                          running one";

/// A Docker or Podman server behind a socket.
#[derive(Clone, Debug)]
pub struct DockerRuntime {
    docker: Docker,
    socket: String,
    server: ServerInfo,
}

impl DockerRuntime {
    /// Connects to the runtime: `socket` if given, else `DOCKER_HOST`, else the kind's usual
    /// socket (`auto`: Docker's, then Podman's). Negotiates the API version, pings, and finds
    /// out whether Docker or Podman answers — which is what [`ContainerRuntime::identity`]
    /// reports, whatever `kind` asked for.
    pub async fn connect(kind: RuntimeKind, socket: Option<&str>) -> Result<Self> {
        let docker_host = std::env::var("DOCKER_HOST").ok();
        let candidates = candidate_sockets(kind, socket, docker_host.as_deref());
        let mut failures = Vec::new();
        for candidate in &candidates {
            match Self::connect_to(candidate).await {
                Ok(runtime) => {
                    let asked = match kind {
                        RuntimeKind::Docker => Some(ServerKind::Docker),
                        RuntimeKind::Podman => Some(ServerKind::Podman),
                        RuntimeKind::Auto => None,
                    };
                    if asked.is_some_and(|k| k != runtime.server.kind) {
                        tracing::warn!(
                            socket = %candidate,
                            found = runtime.server.kind.as_str(),
                            "runtime.kind asked for another runtime than the one answering on this socket; using it as what it is"
                        );
                    }
                    return Ok(runtime);
                }
                Err(e) => failures.push(e),
            }
        }
        match failures.len() {
            1 => Err(failures.remove(0)),
            _ => Err(RuntimeError::Connect {
                socket: candidates.join(" or "),
                message: failures.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "),
            }),
        }
    }

    /// Connects to exactly this socket URL (`unix:///…`, `tcp://…`).
    pub async fn connect_to(socket: &str) -> Result<Self> {
        let socket = normalize_socket(socket);
        match tokio::time::timeout(CONNECT_TIMEOUT, Self::handshake(&socket)).await {
            Ok(result) => result,
            Err(_) => Err(RuntimeError::Connect {
                socket: socket.clone(),
                message: format!("no answer within {} s; {START_HINT}", CONNECT_TIMEOUT.as_secs()),
            }),
        }
    }

    /// What answers on the socket.
    pub fn server(&self) -> &ServerInfo {
        &self.server
    }

    /// The API version in use after negotiation.
    pub fn api_version(&self) -> ClientVersion {
        self.docker.client_version()
    }

    async fn handshake(socket: &str) -> Result<Self> {
        let unreachable = |e: BollardError| RuntimeError::Connect {
            socket: socket.to_string(),
            message: match e {
                BollardError::SocketNotFoundError(path) => {
                    format!("no socket at {path}: the runtime is not running; {START_HINT}")
                }
                e => format!("{e}; {START_HINT}"),
            },
        };
        // Docker 20.10 refuses bollard's default (newer) API version on every path, `/version`
        // included, but names its maximum in the refusal.
        let mut docker = open(socket, API_DEFAULT_VERSION).map_err(unreachable)?;
        let version = match docker.version().await {
            Ok(v) => v,
            Err(BollardError::DockerResponseServerError {
                status_code: 400,
                message,
            }) => {
                let max = server::max_api_version(&message).ok_or_else(|| RuntimeError::Connect {
                    socket: socket.to_string(),
                    message: format!("the server refused API {API_DEFAULT_VERSION}: {message}"),
                })?;
                docker = open(socket, &max).map_err(unreachable)?;
                docker.version().await.map_err(unreachable)?
            }
            Err(e) => return Err(unreachable(e)),
        };
        let negotiated = server::negotiated_api_version(version.api_version.as_deref(), &docker.client_version());
        if negotiated != docker.client_version() {
            docker = open(socket, &negotiated).map_err(unreachable)?;
        }
        docker.ping().await.map_err(unreachable)?;
        let server = ServerInfo::from_version(&version);
        tracing::info!(socket, kind = server.kind.as_str(), version = %server.version, api = %negotiated, "connected to the container runtime");
        Ok(DockerRuntime {
            docker,
            socket: socket.to_string(),
            server,
        })
    }

    /// Maps a failed call: the server's own refusals become [`RuntimeError::Api`] named by
    /// `step`; transport failures mean the runtime went away.
    fn error(&self, step: &'static str, e: BollardError) -> RuntimeError {
        match e {
            BollardError::DockerResponseServerError { status_code, message } => RuntimeError::Api {
                step,
                message: format!("{message} (HTTP {status_code})"),
            },
            BollardError::JsonDataError { .. } | BollardError::JsonSerdeError { .. } => RuntimeError::Api {
                step,
                message: format!("unreadable answer from {}: {e}", self.server.kind.as_str()),
            },
            e => RuntimeError::Connect {
                socket: self.socket.clone(),
                message: format!("{step}: {e}; {START_HINT}"),
            },
        }
    }

    /// An answer neither bollard nor the lenient reader could read.
    fn unreadable(&self, step: &'static str, strict: &str, lenient: &serde_json::Error) -> RuntimeError {
        let server = self.server.kind.as_str();
        RuntimeError::Api {
            step,
            message: format!("unreadable answer from {server}: {strict}; read leniently: {lenient}"),
        }
    }

    async fn inspect(&self, id: &str) -> Result<ContainerInfo> {
        let info = match self.docker.inspect_container(id, None).await {
            Ok(inspected) => convert::from_inspect(&inspected),
            Err(BollardError::JsonDataError { contents, message, .. }) => {
                convert::inspect_leniently(&contents).map_err(|e| self.unreadable("inspect container", &message, &e))?
            }
            Err(e) => return Err(self.error("inspect container", e)),
        };
        info.ok_or_else(|| RuntimeError::Api {
            step: "inspect container",
            message: format!("the answer for `{id}` carries no container id"),
        })
    }

    /// Force-removes after a failed start; the start error is what the caller needs to see.
    async fn discard(&self, id: &str, start_error: RuntimeError) -> RuntimeError {
        match self.remove(id).await {
            Ok(()) => start_error,
            Err(cleanup) => RuntimeError::Api {
                step: "start container",
                message: format!("{start_error}; removing the unstarted container {id} also failed: {cleanup}"),
            },
        }
    }
}

/// A bollard client for `socket` speaking `version`.
fn open(socket: &str, version: &ClientVersion) -> Result<Docker, BollardError> {
    if socket.starts_with("unix://") {
        Docker::connect_with_unix(socket, REQUEST_TIMEOUT_S, version)
    } else if socket.starts_with("tcp://") || socket.starts_with("http://") {
        Docker::connect_with_http(socket, REQUEST_TIMEOUT_S, version)
    } else {
        Err(BollardError::UnsupportedURISchemeError {
            uri: socket.to_string(),
        })
    }
}

/// `repo[:tag]` or `repo@digest` → (repo, tag or digest); no tag means `latest`.
fn split_tag(image: &str) -> (&str, &str) {
    if let Some((repo, digest)) = image.split_once('@') {
        return (repo, digest);
    }
    let last_slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[last_slash..].rfind(':') {
        Some(i) => (&image[..last_slash + i], &image[last_slash + i + 1..]),
        None => (image, "latest"),
    }
}

fn label_filter(labels: &[(String, String)]) -> Vec<String> {
    labels.iter().map(|(k, v)| format!("{k}={v}")).collect()
}

fn carries_all(have: &std::collections::BTreeMap<String, String>, wanted: &[(String, String)]) -> bool {
    wanted.iter().all(|(k, v)| have.get(k) == Some(v))
}

impl ContainerRuntime for DockerRuntime {
    fn identity(&self) -> RuntimeIdentity {
        RuntimeIdentity {
            kind: self.server.kind.as_str().to_string(),
            socket: self.socket.clone(),
            version: self.server.version.clone(),
        }
    }

    fn list(&self, labels: &[(String, String)]) -> impl Future<Output = Result<Vec<ContainerInfo>>> + Send {
        let wanted = labels.to_vec();
        async move {
            let filters = (!wanted.is_empty()).then(|| HashMap::from([("label".to_string(), label_filter(&wanted))]));
            let options = ListContainersOptions {
                all: true,
                filters,
                ..Default::default()
            };
            let listed: Vec<ContainerInfo> = match self.docker.list_containers(Some(options)).await {
                Ok(summaries) => summaries.iter().filter_map(convert::from_summary).collect(),
                // Podman 4.3 lists a container as `stopped` between `die` and `cleanup`.
                Err(BollardError::JsonDataError { contents, message, .. }) => {
                    convert::summaries_leniently(&contents)
                        .map_err(|e| self.unreadable("list containers", &message, &e))?
                }
                Err(e) => return Err(self.error("list containers", e)),
            };
            let mut found = Vec::with_capacity(listed.len());
            for info in listed {
                // The server filtered already; checking again keeps the contract exact.
                if !carries_all(&info.labels, &wanted) {
                    continue;
                }
                let info = match info.state {
                    // An exit code the status text did not give away: ask.
                    ContainerState::Other(ref s) if s.starts_with("exited") => match self.inspect(&info.id).await {
                        Ok(inspected) => inspected,
                        Err(_) => info,
                    },
                    _ => info,
                };
                found.push(info);
            }
            Ok(found)
        }
    }

    fn create_and_start(&self, spec: &ContainerSpec) -> impl Future<Output = Result<ContainerInfo>> + Send {
        let spec = spec.clone();
        async move {
            let body = create_body(&spec, &self.server)?;
            let options = CreateContainerOptions {
                name: Some(spec.name.clone()),
                ..Default::default()
            };
            let created = match self.docker.create_container(Some(options), body).await {
                Ok(created) => created,
                Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => {
                    return Err(RuntimeError::ImageMissing {
                        image: spec.image.clone(),
                        runtime: self.server.kind.as_str().to_string(),
                    });
                }
                Err(e) => return Err(self.error("create container", e)),
            };
            for warning in &created.warnings {
                tracing::warn!(container = %spec.name, %warning, "the runtime warned while creating a container");
            }
            if let Err(e) = self.docker.start_container(&created.id, None).await {
                let start_error = self.error("start container", e);
                return Err(self.discard(&created.id, start_error).await);
            }
            self.inspect(&created.id).await
        }
    }

    fn remove(&self, id: &str) -> impl Future<Output = Result<()>> + Send {
        let id = id.to_string();
        async move {
            // `v`: anonymous volumes the image declares go with the container.
            let options = RemoveContainerOptions {
                force: true,
                v: true,
                link: false,
            };
            match self.docker.remove_container(&id, Some(options)).await {
                Ok(()) => Ok(()),
                Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => Ok(()),
                // Someone else is removing it already: it will be gone.
                Err(BollardError::DockerResponseServerError {
                    status_code: 409,
                    message,
                }) if message.contains("already in progress") => Ok(()),
                Err(e) => Err(self.error("remove container", e)),
            }
        }
    }

    fn logs_tail(&self, id: &str, lines: usize) -> impl Future<Output = Result<Vec<String>>> + Send {
        let id = id.to_string();
        async move {
            if lines == 0 {
                return Ok(Vec::new());
            }
            let options = LogsOptions {
                stdout: true,
                stderr: true,
                tail: lines.to_string(),
                ..Default::default()
            };
            let mut frames = self.docker.logs(&id, Some(options));
            let mut assembled = convert::LogLines::default();
            while let Some(frame) = frames.next().await {
                let frame = frame.map_err(|e| self.error("read container logs", e))?;
                assembled.push(&frame);
            }
            Ok(assembled.finish(lines))
        }
    }

    fn logs_follow(&self, id: &str, lines: usize) -> LogStream {
        let options = LogsOptions {
            follow: true,
            stdout: true,
            stderr: true,
            tail: lines.to_string(),
            ..Default::default()
        };
        let this = self.clone();
        let mut assembled = convert::LogLines::default();
        // Docker and Podman end a followed log when the container stops.
        let lines = self.docker.logs(id, Some(options)).flat_map(move |frame| {
            let out: Vec<Result<String>> = match frame {
                Ok(frame) => {
                    assembled.push(&frame);
                    assembled.take().into_iter().map(Ok).collect()
                }
                Err(e) => vec![Err(this.error("follow container logs", e))],
            };
            futures_util::stream::iter(out)
        });
        Box::pin(lines)
    }

    fn image_exists(&self, image: &str) -> impl Future<Output = Result<bool>> + Send {
        let image = image.to_string();
        async move {
            match self.docker.inspect_image(&image).await {
                Ok(_) => Ok(true),
                Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => Ok(false),
                Err(e) => Err(self.error("inspect image", e)),
            }
        }
    }

    fn pull_image(&self, image: &str) -> impl Future<Output = Result<()>> + Send {
        let (from_image, tag) = split_tag(image);
        let options = CreateImageOptions {
            from_image: Some(from_image.to_string()),
            // Without a tag the API pulls every tag of the repository.
            tag: Some(tag.to_string()),
            ..Default::default()
        };
        let mut progress = self.docker.create_image(Some(options), None, None);
        async move {
            while let Some(step) = progress.next().await {
                step.map_err(|e| self.error("pull image", e))?;
            }
            Ok(())
        }
    }

    /// `State.Pid` from inspect, then its descendants in `/proc`.
    fn pids(&self, id: &str) -> impl Future<Output = Result<Vec<u32>>> + Send {
        let id = id.to_string();
        async move {
            let root = match self.docker.inspect_container(&id, None).await {
                Ok(inspected) => pid::pid_of(&inspected),
                Err(BollardError::JsonDataError { contents, .. }) => pid::pid_leniently(&contents),
                Err(e) => return Err(self.error("inspect container", e)),
            };
            let Some(root) = root else {
                return Ok(Vec::new());
            };
            super::proc_tree::tree(root).await.map_err(|e| RuntimeError::Api {
                step: "list container processes",
                message: e.to_string(),
            })
        }
    }

    fn events(&self, labels: &[(String, String)]) -> EventStream {
        let wanted = labels.to_vec();
        let mut filters = HashMap::from([("type".to_string(), vec!["container".to_string()])]);
        if !wanted.is_empty() {
            filters.insert("label".to_string(), label_filter(&wanted));
        }
        // The request goes out on first poll; `since` = now makes the server replay whatever
        // happened in between, so nothing after this call is missed.
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let options = EventsOptions {
            since: Some(since.to_string()),
            until: None,
            filters: Some(filters),
        };
        let this = self.clone();
        let stream = self.docker.events(Some(options)).filter_map(move |item| {
            let mapped = match item {
                Ok(message) => convert::event(&message)
                    .filter(|e| carries_all(&e.labels, &wanted))
                    .map(Ok),
                Err(e) => Some(Err(this.error("watch events", e))),
            };
            std::future::ready(mapped)
        });
        Box::pin(stream)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_missing_socket_is_named_with_how_to_start_the_runtime() {
        let err = DockerRuntime::connect_to("/tmp/llorch-no-such-runtime.sock")
            .await
            .unwrap_err();
        let RuntimeError::Connect { socket, message } = &err else {
            panic!("not a connect error: {err}")
        };
        assert_eq!(socket, "unix:///tmp/llorch-no-such-runtime.sock");
        assert!(
            message.contains("no socket at /tmp/llorch-no-such-runtime.sock"),
            "{message}"
        );
        assert!(message.contains("scripts/setup-runtimes.sh"), "{message}");
    }

    #[tokio::test]
    async fn an_explicit_socket_is_the_only_one_tried() {
        let err = DockerRuntime::connect(RuntimeKind::Podman, Some("unix:///tmp/llorch-none.sock"))
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot reach the container runtime at unix:///tmp/llorch-none.sock:")
        );
    }

    #[test]
    fn image_references_split_into_repository_and_tag() {
        assert_eq!(
            split_tag("ghcr.io/ggml-org/llama.cpp:server-cuda"),
            ("ghcr.io/ggml-org/llama.cpp", "server-cuda")
        );
        assert_eq!(split_tag("localhost:5000/x"), ("localhost:5000/x", "latest"));
        assert_eq!(split_tag("busybox"), ("busybox", "latest"));
        assert_eq!(split_tag("a/b@sha256:00"), ("a/b", "sha256:00"));
    }

    #[tokio::test]
    async fn an_unsupported_scheme_is_a_connect_error() {
        let err = DockerRuntime::connect_to("ssh://host").await.unwrap_err();
        assert!(matches!(err, RuntimeError::Connect { .. }), "{err}");
    }
}

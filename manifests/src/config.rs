//! The daemon's one config file (`~/.llama-orch/config.yaml`) and where llama-orch keeps its
//! files. Pure types plus path resolution from values the caller passes in.

use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Environment variable that overrides the home directory (`~/.llama-orch`).
pub const HOME_ENV: &str = "LLAMA_ORCH_HOME";

/// The config file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Config {
    /// Address the API listens on. Loopback by default (HME-002).
    #[serde(default = "default_bind")]
    pub bind: String,
    /// The watched manifests directory; default `<home>/manifests`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifests_dir: Option<PathBuf>,
    /// Status, events and catalog; default `<home>/state`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_dir: Option<PathBuf>,
    /// Tells this daemon's containers from another daemon's on the same runtime. Containers
    /// labelled with another instance are never touched.
    #[serde(default = "default_instance")]
    pub instance: String,
    /// The container runtime.
    #[serde(default)]
    pub runtime: RuntimeConfig,
    /// Where GPUs come from: `nvml` (the default), an explicit simulated list, or `none` (a
    /// daemon without GPUs that only serves Pools on `external` Engines).
    #[serde(default)]
    pub gpus: GpuConfig,
    /// How long a Ready replica on NVML GPUs may go without its processes showing up on every
    /// GPU it was placed on before it is marked NotOnGpu (taken out of service, left running).
    /// `0s` checks at once. Never applies to simulated GPUs or `gpus: none`. Default `60s`.
    #[serde(default = "default_on_gpu_grace")]
    pub on_gpu_grace: crate::duration::HumanDuration,
    /// Periodic full reconcile, in milliseconds, on top of file and container events.
    #[serde(default = "default_resync_ms")]
    pub resync_interval_ms: u64,
    /// On SIGINT/SIGTERM, how long open task streams may take to finish before the daemon
    /// exits, in milliseconds (new tasks are refused at once; a second signal exits at once).
    #[serde(default = "default_shutdown_grace_ms")]
    pub shutdown_grace_ms: u64,
    /// The model cache and the download policy (ORCH-3080, ORCH-3091, ORCH-3205).
    #[serde(default)]
    pub models: ModelsConfig,
    /// What provisioning may do on its own: pull images, build from source, install packages
    /// (ORCH-3202..3206). Everything is off by default: llama-orch says what is missing instead.
    #[serde(default)]
    pub provisioning: ProvisioningPolicy,
    /// Who may call the API (AUTH-1001..1008): bearer tokens, and what stays open without one.
    #[serde(default)]
    pub auth: AuthConfig,
    /// Web pages on other origins allowed to call the API (CORS). None by default.
    #[serde(default)]
    pub cors: CorsConfig,
    /// `Host` header names accepted besides IP addresses and `localhost` (the defence against
    /// DNS rebinding), e.g. `gpu-box.lan` when the API is reached by that name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_hosts: Vec<String>,
    /// Job records (one per finished task, under `<state>/artifacts`) and their retention.
    #[serde(default)]
    pub records: RecordsConfig,
    /// Trace export (OpenTelemetry). Off by default.
    #[serde(default)]
    pub telemetry: TelemetryConfig,
}

/// Job records and how long they are kept: the oldest go first once the store holds more
/// than `maxBytes` or a record is older than `maxAge`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RecordsConfig {
    /// Record finished tasks (a Pool or a request may still opt out).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Most bytes all artifacts (records, plans, diffs) may take. Default 256 MiB.
    #[serde(default = "default_records_max_bytes")]
    pub max_bytes: u64,
    /// Artifacts older than this are removed (`90s`, `30m`, `168h`). Default `168h` (7 days).
    #[serde(default = "default_records_max_age")]
    pub max_age: crate::duration::HumanDuration,
}

fn default_records_max_bytes() -> u64 {
    256 << 20
}

fn default_records_max_age() -> crate::duration::HumanDuration {
    crate::duration::HumanDuration::minutes(7 * 24 * 60)
}

impl Default for RecordsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_bytes: default_records_max_bytes(),
            max_age: default_records_max_age(),
        }
    }
}

/// Where traces go. With no endpoint nothing is exported and no exporter runs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TelemetryConfig {
    /// An OTLP/HTTP receiver's base URL, `http://host:port` (a collector's usual port is
    /// 4318): spans are sent as protobuf to `<otlpEndpoint>/v1/traces`. `http://` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otlp_endpoint: Option<String>,
}

impl TelemetryConfig {
    /// The URL spans are `POST`ed to, when an endpoint is set and well-formed:
    /// `http://host[:port][/path]` without credentials, query or fragment, `/v1/traces` added.
    pub fn otlp_traces_url(&self) -> Result<Option<String>, String> {
        let Some(endpoint) = self.otlp_endpoint.as_deref() else {
            return Ok(None);
        };
        let Some(rest) = endpoint.strip_prefix("http://") else {
            return Err(if endpoint.starts_with("https://") {
                format!(
                    "`{endpoint}`: https is not supported (the daemon carries no TLS for OTLP); send to a collector \
                     on loopback over http://, and let it forward with TLS"
                )
            } else {
                format!("`{endpoint}` is not an http:// URL such as http://127.0.0.1:4318")
            });
        };
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let bad = |why: &str| {
            Err(format!(
                "`{endpoint}` {why}; expected a URL such as http://127.0.0.1:4318"
            ))
        };
        if authority.contains('@') {
            // Not echoed: the message is logged.
            return Err(
                "the URL carries credentials (`user:…@`), which would end up in logs; give an \
                 authorization header in OTEL_EXPORTER_OTLP_HEADERS instead"
                    .into(),
            );
        }
        if endpoint.contains(['?', '#']) || !endpoint.bytes().all(|b| b.is_ascii_graphic()) {
            return bad("has a query, a fragment, a space or a character that is not ASCII");
        }
        match split_authority(authority) {
            None => return bad("has an unclosed IPv6 bracket"),
            Some(("", _)) => return bad("has no host"),
            Some((_, Some(port))) if port.parse::<u16>().is_err() => return bad("has a bad port"),
            Some(_) => {}
        }
        Ok(Some(format!(
            "http://{authority}{}/v1/traces",
            path.trim_end_matches('/')
        )))
    }
}

/// API authentication. Without tokens the API listens on loopback only and every client is
/// `localhost`; with tokens every route but `/healthz` needs one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AuthConfig {
    /// A YAML file of `name: token` lines, readable by its owner only (`chmod 600`). The
    /// `LLAMA_ORCH_TOKEN` environment variable adds a token named `env`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// Clients on loopback need no token (remote ones still do).
    #[serde(default)]
    pub optional_on_loopback: bool,
    /// `/metrics` needs no token (for a scraper).
    #[serde(default)]
    pub open_metrics: bool,
}

/// Cross-origin access for browsers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CorsConfig {
    /// Origins (`scheme://host[:port]`) whose pages may call the API; a request from any
    /// other origin is refused with 403.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_origins: Vec<String>,
}

/// The model cache and what may be downloaded into it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ModelsConfig {
    /// The content-addressed model cache; default `~/.cache/llama-orch/models`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_dir: Option<PathBuf>,
    /// Global switch for outbound model downloads. Off: remote `ref`s fail with an advisory
    /// error that says how to fetch the file yourself.
    #[serde(default = "yes")]
    pub downloads: bool,
    /// Hosts models may be downloaded from; a name also allows its subdomains (`hf.co` allows
    /// `cdn-lfs.hf.co`). Redirects are followed only to allowed hosts.
    #[serde(default = "default_allow_hosts")]
    pub allow_hosts: Vec<String>,
    /// Directories a Model's `file:` ref must resolve into (symlinks resolved); default: the
    /// model cache, the llama-orch home and the user's home. Relative entries are relative to
    /// the config file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_roots: Option<Vec<PathBuf>>,
    /// Largest download, in bytes: a larger `Content-Length` is refused before any byte is
    /// written, and a body without one is cut off there. Default 512 GiB.
    #[serde(default = "default_max_download_bytes")]
    pub max_download_bytes: u64,
}

fn default_max_download_bytes() -> u64 {
    512 << 30
}

impl Default for ModelsConfig {
    fn default() -> Self {
        Self {
            cache_dir: None,
            downloads: true,
            allow_hosts: default_allow_hosts(),
            file_roots: None,
            max_download_bytes: default_max_download_bytes(),
        }
    }
}

/// The environment variable the Hugging Face token is read from (never from a file, never logged).
pub const HF_TOKEN_ENV: &str = "HF_TOKEN";

/// What provisioning may do without asking.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProvisioningPolicy {
    /// Pull a `container` Engine's image when it is not present locally.
    #[serde(default)]
    pub allow_image_pulls: bool,
    /// Run a `source` Engine's git + cmake build.
    #[serde(default)]
    pub allow_source_builds: bool,
    /// Install a `package` Engine with pacman (and makepkg for the AUR) on Arch Linux.
    #[serde(default)]
    pub allow_package_installs: bool,
    /// Where engines are built and unpacked; default `~/.cache/llama-orch/engines`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_cache_dir: Option<PathBuf>,
    /// Let `binary` Engines run any executable. Off by default: a manifest would otherwise
    /// run any program as the daemon's user.
    #[serde(default)]
    pub allow_binaries: bool,
    /// Executables `binary` Engines may run while `allowBinaries` is false (absolute paths;
    /// symlinks are resolved on both sides).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_executables: Vec<PathBuf>,
}

fn yes() -> bool {
    true
}

fn default_allow_hosts() -> Vec<String> {
    vec!["huggingface.co".into(), "hf.co".into()]
}

/// `host[:port]` or `[v6]:port` as host and port; `None` for an unclosed bracket or text after it.
fn split_authority(authority: &str) -> Option<(&str, Option<&str>)> {
    if let Some(v6) = authority.strip_prefix('[') {
        let (host, rest) = v6.split_once(']')?;
        return match rest {
            "" => Some((host, None)),
            _ => Some((host, Some(rest.strip_prefix(':')?))),
        };
    }
    Some(match authority.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    })
}

/// `~/.cache/llama-orch`, from `XDG_CACHE_HOME` or `$HOME/.cache`.
pub fn cache_root(xdg_cache_home: Option<&str>, user_home: Option<&str>) -> PathBuf {
    match (xdg_cache_home, user_home) {
        (Some(x), _) if !x.is_empty() => Path::new(x).join("llama-orch"),
        (_, Some(u)) => Path::new(u).join(".cache/llama-orch"),
        _ => PathBuf::from(".cache/llama-orch"),
    }
}

/// Largest config file read.
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: default_bind(),
            manifests_dir: None,
            state_dir: None,
            instance: default_instance(),
            runtime: RuntimeConfig::default(),
            gpus: GpuConfig::default(),
            on_gpu_grace: default_on_gpu_grace(),
            resync_interval_ms: default_resync_ms(),
            shutdown_grace_ms: default_shutdown_grace_ms(),
            models: ModelsConfig::default(),
            provisioning: ProvisioningPolicy::default(),
            auth: AuthConfig::default(),
            cors: CorsConfig::default(),
            allowed_hosts: Vec::new(),
            records: RecordsConfig::default(),
            telemetry: TelemetryConfig::default(),
        }
    }
}

/// Which container runtime to use.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RuntimeConfig {
    /// `docker`, `podman` or `auto` (Docker's socket first, then Podman's).
    #[serde(default)]
    pub kind: RuntimeKind,
    /// Socket URL, e.g. `unix:///var/run/docker.sock`; default: `DOCKER_HOST`, then the
    /// runtime's usual socket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket: Option<String>,
}

/// Container runtime kinds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeKind {
    /// Whichever answers.
    #[default]
    Auto,
    /// Docker Engine.
    Docker,
    /// Podman's Docker-compatible service.
    Podman,
}

/// Where GPUs come from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum GpuConfig {
    /// NVIDIA's management library: real GPUs. Without a driver the daemon refuses to start.
    #[default]
    Nvml,
    /// An explicit, simulated inventory for tests and demos. Everything that shows GPUs labels
    /// them as simulated, and no inference ever runs on them.
    Simulate(Vec<SimulatedGpu>),
    /// This daemon has no GPUs: only Pools on `external` Engines run (a gateway in front of
    /// engines that run elsewhere, e.g. on Kubernetes). Any other Pool is blocked with the
    /// reason, and no container runtime is needed.
    None,
}

/// One simulated GPU.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SimulatedGpu {
    /// Display name, e.g. `Simulated RTX 3090`.
    pub name: String,
    /// Total VRAM in bytes.
    pub vram_bytes: u64,
}

fn default_bind() -> String {
    "127.0.0.1:8080".into()
}

fn default_instance() -> String {
    "default".into()
}

fn default_on_gpu_grace() -> crate::duration::HumanDuration {
    crate::duration::HumanDuration::seconds(60)
}

fn default_resync_ms() -> u64 {
    10_000
}

fn default_shutdown_grace_ms() -> u64 {
    10_000
}

/// Resolves llama-orch's home directory from `LLAMA_ORCH_HOME` or `$HOME/.llama-orch`.
pub fn home_dir(env_home: Option<&str>, user_home: Option<&str>) -> PathBuf {
    match (env_home, user_home) {
        (Some(h), _) if !h.is_empty() => PathBuf::from(h),
        (_, Some(u)) => Path::new(u).join(".llama-orch"),
        _ => PathBuf::from(".llama-orch"),
    }
}

/// Why the config file's text is not a config.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The text is not YAML.
    #[error("{message}")]
    Yaml {
        /// The parser's words, without a source snippet.
        message: String,
    },
    /// The YAML is not a config, and no field is to blame (e.g. a list at the top).
    #[error("{0}")]
    Shape(#[source] serde_json::Error),
    /// A field has the wrong type or value, or is unknown.
    #[error("field `{path}`: {source}")]
    Field {
        /// Its dotted path.
        path: String,
        /// What is wrong with it.
        #[source]
        source: serde_json::Error,
    },
}

impl Config {
    /// Parses the config file's text; errors name the field.
    pub fn from_yaml(text: &str) -> Result<Config, ConfigError> {
        if text.trim().is_empty() {
            return Ok(Config::default());
        }
        let value: serde_json::Value = serde_saphyr::from_str(text).map_err(|e| ConfigError::Yaml {
            message: e.without_snippet().to_string(),
        })?;
        if value.is_null() {
            return Ok(Config::default());
        }
        serde_path_to_error::deserialize::<_, Config>(value).map_err(|e| {
            let path = e.path().to_string();
            if path.is_empty() || path == "." {
                ConfigError::Shape(e.into_inner())
            } else {
                ConfigError::Field {
                    path,
                    source: e.into_inner(),
                }
            }
        })
    }

    /// The manifests directory under `home`, unless configured.
    pub fn manifests_dir(&self, home: &Path) -> PathBuf {
        self.manifests_dir.clone().unwrap_or_else(|| home.join("manifests"))
    }

    /// The state directory under `home`, unless configured.
    pub fn state_dir(&self, home: &Path) -> PathBuf {
        self.state_dir.clone().unwrap_or_else(|| home.join("state"))
    }

    /// `(manifests dir, state dir)` with relative configured paths taken from the config
    /// file's folder, as the daemon and orchctl both must see them.
    pub fn resolved_dirs(&self, home: &Path, config_path: &Path) -> (PathBuf, PathBuf) {
        let base = config_path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(home);
        let anchor = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
        (anchor(self.manifests_dir(home)), anchor(self.state_dir(home)))
    }
}

#[cfg(test)]
mod from_yaml_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn config_errors_name_the_field_when_there_is_one() {
        assert_eq!(Config::from_yaml("").unwrap(), Config::default());
        let field = Config::from_yaml("resyncIntervalMs: soon\n").unwrap_err();
        assert!(matches!(field, ConfigError::Field { .. }), "{field:?}");
        assert!(field.to_string().starts_with("field `resyncIntervalMs`: "), "{field}");
        let shape = Config::from_yaml("42\n").unwrap_err();
        assert!(matches!(shape, ConfigError::Shape(_)), "{shape:?}");
        let yaml = Config::from_yaml("bind: [oops\n").unwrap_err();
        assert!(matches!(yaml, ConfigError::Yaml { .. }), "{yaml:?}");
    }

    #[test]
    fn gpus_is_nvml_by_default_a_simulated_list_or_none() {
        assert_eq!(Config::from_yaml("").unwrap().gpus, GpuConfig::Nvml);
        assert_eq!(Config::from_yaml("gpus: nvml\n").unwrap().gpus, GpuConfig::Nvml);
        assert_eq!(Config::from_yaml("gpus: none\n").unwrap().gpus, GpuConfig::None);
        let sim = Config::from_yaml("gpus: {simulate: [{name: s, vramBytes: 1}]}\n").unwrap();
        assert!(
            matches!(sim.gpus, GpuConfig::Simulate(ref l) if l.len() == 1),
            "{:?}",
            sim.gpus
        );
        let wrong = Config::from_yaml("gpus: nothing\n").unwrap_err().to_string();
        assert!(wrong.contains("gpus"), "{wrong}");
        // Written back the way it is read: `gpus: none` round-trips.
        let yaml = serde_json::to_value(GpuConfig::None).unwrap();
        assert_eq!(yaml, serde_json::json!("none"));
    }

    #[test]
    fn on_gpu_grace_is_60s_by_default_and_reads_like_other_durations() {
        assert_eq!(Config::default().on_gpu_grace.get(), std::time::Duration::from_secs(60));
        let c = Config::from_yaml("onGpuGrace: 1m30s\n").unwrap();
        assert_eq!(c.on_gpu_grace.get(), std::time::Duration::from_secs(90));
        assert_eq!(serde_json::to_value(&c).unwrap()["onGpuGrace"], "1m30s");
        let bad = Config::from_yaml("onGpuGrace: soon\n").unwrap_err().to_string();
        assert!(bad.starts_with("field `onGpuGrace`: "), "{bad}");
    }

    fn traces_url(endpoint: &str) -> Result<Option<String>, String> {
        let text = format!("telemetry: {{otlpEndpoint: '{endpoint}'}}\n");
        Config::from_yaml(&text).unwrap().telemetry.otlp_traces_url()
    }

    #[test]
    fn an_otlp_endpoint_becomes_its_traces_url() {
        assert_eq!(Config::default().telemetry.otlp_traces_url(), Ok(None));
        let url = |e| traces_url(e).unwrap().unwrap();
        assert_eq!(url("http://127.0.0.1:4318"), "http://127.0.0.1:4318/v1/traces");
        assert_eq!(url("http://collector:4318/"), "http://collector:4318/v1/traces");
        assert_eq!(url("http://[::1]:4318/otlp"), "http://[::1]:4318/otlp/v1/traces");
        assert_eq!(url("http://localhost"), "http://localhost/v1/traces");
    }

    #[test]
    fn bad_otlp_endpoints_are_refused_saying_why() {
        let why = |e| traces_url(e).unwrap_err();
        assert!(
            why("https://c:4318").contains("https is not supported"),
            "{}",
            why("https://c:4318")
        );
        assert!(why("c:4318").contains("not an http:// URL"));
        assert!(why("http://").contains("no host"));
        assert!(why("http://:4318").contains("no host"));
        let credentials = why("http://user:secret@c:4318");
        assert!(
            credentials.contains("credentials") && !credentials.contains("secret"),
            "{credentials}"
        );
        assert!(why("http://c:4318/?x=1").contains("query"));
        assert!(why("http://c:43x8").contains("bad port"));
        assert!(why("http://cöllector:4318").contains("not ASCII"));
        assert!(why("http://[::1:4318").contains("unclosed IPv6 bracket"));
        let unknown = Config::from_yaml("telemetry: {otlp: x}\n").unwrap_err();
        assert!(unknown.to_string().contains("telemetry"), "{unknown}");
    }
}

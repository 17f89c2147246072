//! `Engine`: how to run one inference engine — where it comes from (provisioning mode and
//! image), how it is started (args template, env, port), how it is probed and which API it
//! speaks.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::meta::{Kind, Spec};
use crate::secrets::EnvValue;

/// `Engine.spec`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EngineSpec {
    /// How the engine is provisioned (ORCH-3201): `container` (the default), `external`,
    /// `binary`, `source` or `package`. `orchctl plan pool/<name>` shows what it will do.
    #[serde(default)]
    pub provisioning: Provisioning,
    /// Container image, e.g. `ghcr.io/ggml-org/llama.cpp:server-cuda` or
    /// `llama-orch/mock-engine:dev`. Required for `container`; it must be present locally unless
    /// the config's `provisioning.allowImagePulls` lets llama-orch pull it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(crate::validate::NO_SPACE_PATTERN))]
    pub image: Option<String>,
    /// `external`: the base URL of an engine that is already running, e.g.
    /// `http://127.0.0.1:8081`. llama-orch probes it and sends it work; it never starts or
    /// stops it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(crate::validate::URL_PATTERN))]
    pub url: Option<String>,
    /// `binary`: the executable to spawn (absolute path, or a name looked up on `PATH`), e.g.
    /// `/usr/local/bin/llama-server`. `{port}` is a free loopback port chosen per replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(crate::validate::NOT_BLANK_PATTERN))]
    pub executable: Option<String>,
    /// `source`: where to build the engine from (git + cmake).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceBuild>,
    /// `package`: the system package that provides the engine (pacman/AUR on Arch Linux).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<PackageInstall>,
    /// A version label pinned by every replica of a Pool (shown in status and capabilities).
    #[schemars(pattern(crate::validate::NOT_BLANK_PATTERN))]
    pub version: String,
    /// Which HTTP API the engine speaks.
    #[serde(default)]
    pub api: ApiFlavour,
    /// Port the engine listens on inside the container. It is published on 127.0.0.1 only.
    #[serde(default = "default_port")]
    #[schemars(range(min = 1))]
    pub port: u16,
    /// Command-line arguments. Placeholders: `{model_path}` (the model file as mounted,
    /// read-only, inside the container; the host path for `binary`), `{port}`, `{ctx_size}`,
    /// `{slots}`, `{host}`, `{tensor_split}` (the Pool's `tensorSplit` as `2,1`; an argument
    /// that uses it, and the flag just before it, are dropped when the Pool sets none).
    #[serde(default = "default_args")]
    #[schemars(inner(pattern(crate::validate::ARG_PATTERN)))]
    pub args: Vec<String>,
    /// Appended after `args` (same placeholders).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(pattern(crate::validate::ARG_PATTERN)))]
    pub extra_args: Vec<String>,
    /// Environment variables for the engine process: a value, or `{valueFrom: {env: NAME}}` /
    /// `{valueFrom: {file: PATH}}` read when a replica starts. Values from `valueFrom`, and
    /// values whose names look like secrets (`*_KEY`, `*_TOKEN`, `*PASSWORD*`, `*SECRET*`),
    /// are shown as `<redacted>`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("propertyNames" = { "pattern": crate::validate::ENV_NAME_PATTERN }))]
    pub env: BTreeMap<String, EnvValue>,
    /// The readiness probe.
    #[serde(default)]
    pub health: HealthCheck,
}

impl Spec for EngineSpec {
    const KIND: Kind = Kind::Engine;
}

/// `source` provisioning: a git repository built with cmake into the engine cache.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SourceBuild {
    /// Repository URL, e.g. `https://github.com/ggml-org/llama.cpp`.
    #[schemars(pattern(crate::validate::NOT_BLANK_PATTERN))]
    pub repo: String,
    /// Tag, branch or commit to build (pin a tag or commit for reproducible builds).
    #[serde(rename = "ref")]
    #[schemars(pattern(crate::validate::NOT_BLANK_PATTERN))]
    pub git_ref: String,
    /// Extra cmake `-D` flags, e.g. `["GGML_CUDA=ON"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cmake_flags: Vec<String>,
    /// The cmake target and binary to run, e.g. `llama-server`: a plain file name.
    #[serde(default = "default_source_target")]
    #[schemars(pattern(crate::validate::PLAIN_FILE_NAME_PATTERN))]
    pub target: String,
}

/// `package` provisioning: a system package.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PackageInstall {
    /// Package name, e.g. `llama.cpp-cuda`.
    pub name: String,
    /// True when the package comes from the AUR (built with `makepkg`), not the official repos.
    #[serde(default)]
    pub aur: bool,
    /// The binary the package installs, e.g. `llama-server`.
    #[serde(default = "default_source_target")]
    pub binary: String,
}

fn default_source_target() -> String {
    "llama-server".to_string()
}

/// Where the engine comes from (ORCH-3201).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Provisioning {
    /// A container image run by Docker or Podman (the default).
    #[default]
    Container,
    /// Attach to an engine already listening at `url`.
    External,
    /// Spawn and supervise a local `executable`.
    Binary,
    /// Build `source` with git + cmake, then run it like `binary`.
    Source,
    /// Install `package` with the system package manager, then run it like `binary`.
    Package,
}

impl Provisioning {
    /// The mode as written in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Provisioning::Container => "container",
            Provisioning::External => "external",
            Provisioning::Binary => "binary",
            Provisioning::Source => "source",
            Provisioning::Package => "package",
        }
    }
}

/// The HTTP API an engine speaks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ApiFlavour {
    /// llama.cpp's `llama-server` native API (`/completion`, `/health`, `/slots`).
    #[default]
    Llamacpp,
    /// An OpenAI-compatible server (`/v1/completions`, `/v1/chat/completions`).
    Openai,
    /// Hugging Face text-generation-inference's native API: `/generate_stream` for a raw
    /// prompt, its OpenAI-compatible Messages API (`/v1/chat/completions`) for chat.
    Tgi,
}

impl ApiFlavour {
    /// The flavour as written in manifests (`api:`).
    pub fn as_str(self) -> &'static str {
        match self {
            ApiFlavour::Llamacpp => "llamacpp",
            ApiFlavour::Openai => "openai",
            ApiFlavour::Tgi => "tgi",
        }
    }
}

/// The readiness probe: an HTTP GET that must answer 2xx.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HealthCheck {
    /// Path probed on the engine's port.
    #[serde(default = "default_health_path")]
    #[schemars(pattern("^/"))]
    pub path: String,
    /// Time between probes, in milliseconds (at least 50).
    #[serde(default = "default_interval_ms")]
    #[schemars(range(min = 50))]
    pub interval_ms: u64,
    /// Time one probe may take, in milliseconds (at least 50).
    #[serde(default = "default_timeout_ms")]
    #[schemars(range(min = 50))]
    pub timeout_ms: u64,
    /// How long a new replica may take to become healthy before it counts as failed, in
    /// milliseconds (at least 1000).
    #[serde(default = "default_startup_timeout_ms")]
    #[schemars(range(min = 1000))]
    pub startup_timeout_ms: u64,
    /// Consecutive failed probes that take a Ready replica out of service.
    #[serde(default = "default_failure_threshold")]
    #[schemars(range(min = 1))]
    pub failure_threshold: u32,
}

impl Default for HealthCheck {
    fn default() -> Self {
        Self {
            path: default_health_path(),
            interval_ms: default_interval_ms(),
            timeout_ms: default_timeout_ms(),
            startup_timeout_ms: default_startup_timeout_ms(),
            failure_threshold: default_failure_threshold(),
        }
    }
}

fn default_port() -> u16 {
    8080
}

fn default_args() -> Vec<String> {
    [
        "--model",
        "{model_path}",
        "--host",
        "{host}",
        "--port",
        "{port}",
        "--ctx-size",
        "{ctx_size}",
        "--parallel",
        "{slots}",
    ]
    .into_iter()
    .map(String::from)
    .collect()
}

fn default_health_path() -> String {
    "/health".to_string()
}

fn default_interval_ms() -> u64 {
    1_000
}

fn default_timeout_ms() -> u64 {
    2_000
}

fn default_startup_timeout_ms() -> u64 {
    120_000
}

fn default_failure_threshold() -> u32 {
    3
}

//! `Engine`: how to run one inference engine — where it comes from (provisioning mode and
//! image), how it is started (args template, env, port), how it is probed and which API it
//! speaks.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::meta::{Kind, Spec};

/// `Engine.spec`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EngineSpec {
    /// How the engine is provisioned. Only `container` is supported in this release; the other
    /// modes are reserved and refused with a clear message.
    #[serde(default)]
    pub provisioning: Provisioning,
    /// Container image, e.g. `ghcr.io/ggml-org/llama.cpp:server-cuda` or
    /// `llama-orch/mock-engine:dev`. Required for `container`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// A version label pinned by every replica of a Pool (shown in status and capabilities).
    pub version: String,
    /// Which HTTP API the engine speaks.
    #[serde(default)]
    pub api: ApiFlavour,
    /// Port the engine listens on inside the container. It is published on 127.0.0.1 only.
    #[serde(default = "default_port")]
    pub port: u16,
    /// Command-line arguments. Placeholders: `{model_path}` (the model file as mounted,
    /// read-only, inside the container), `{port}`, `{ctx_size}`, `{slots}`, `{host}`.
    #[serde(default = "default_args")]
    pub args: Vec<String>,
    /// Appended after `args` (same placeholders).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_args: Vec<String>,
    /// Environment variables for the engine process.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// The readiness probe.
    #[serde(default)]
    pub health: HealthCheck,
}

impl Spec for EngineSpec {
    const KIND: Kind = Kind::Engine;
}

/// Where the engine comes from (ORCH-3201).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Provisioning {
    /// A container image run by Docker or Podman (the default).
    #[default]
    Container,
    /// Attach to an engine already listening at a URL (reserved).
    External,
    /// Spawn a local executable (reserved).
    Binary,
    /// Build from source with git + cmake (reserved).
    Source,
    /// Install with the system package manager (reserved).
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
}

/// The readiness probe: an HTTP GET that must answer 2xx.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HealthCheck {
    /// Path probed on the engine's port.
    #[serde(default = "default_health_path")]
    pub path: String,
    /// Time between probes, in milliseconds.
    #[serde(default = "default_interval_ms")]
    pub interval_ms: u64,
    /// Time one probe may take, in milliseconds.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// How long a new replica may take to become healthy before it counts as failed.
    #[serde(default = "default_startup_timeout_ms")]
    pub startup_timeout_ms: u64,
    /// Consecutive failed probes that take a Ready replica out of service.
    #[serde(default = "default_failure_threshold")]
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

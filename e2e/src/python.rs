//! The Python side of the e2e tier: the virtual environments `scripts/test.sh` installs (the
//! official `openai` package; Playwright for the browser test), found the same way by every test.
//! A missing piece is a test failure with the command that provides it, hence the panics.
#![allow(clippy::panic, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;

/// The venv with the `openai` package: `${LLORCH_CACHE:-$HOME/.cache/llama-orch-ci}/venv-openai`.
pub fn venv() -> PathBuf {
    venv_named("venv-openai")
}

/// `${LLORCH_CACHE:-$HOME/.cache/llama-orch-ci}/<name>`, where `scripts/test.sh` puts its venvs.
pub fn venv_named(name: &str) -> PathBuf {
    let cache = std::env::var("LLORCH_CACHE")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").expect("HOME is set")).join(".cache/llama-orch-ci"));
    cache.join(name)
}

/// Debian's Chromium, which the browser tests drive through Playwright.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// The python of `venv-browser`, after checking that it can import Playwright and that
/// [`CHROMIUM`] exists; panics with the command that provides both.
pub fn with_playwright() -> PathBuf {
    let python = venv_named("venv-browser").join("bin/python");
    let setup = "bash scripts/test.sh (it installs Debian's chromium and the playwright package)";
    let ok = std::process::Command::new(&python)
        .args(["-c", "import playwright.sync_api"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "{} cannot import playwright; run {setup}", python.display());
    assert!(
        std::path::Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing; run {setup}"
    );
    python
}

/// The venv's python, after checking that it can import `openai`; panics with the command
/// that provides it.
pub fn with_openai() -> PathBuf {
    let venv = venv();
    let python = venv.join("bin/python");
    let setup = format!(
        "python3 -m venv {0} && {0}/bin/pip install openai   (scripts/test.sh does this)",
        venv.display()
    );
    assert!(python.exists(), "{} is missing; run:\n  {setup}", python.display());
    let ok = Command::new(&python)
        .args(["-c", "import openai"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "{} cannot import openai; run:\n  {setup}", python.display());
    python
}

/// The venv's python with the pinned `opentelemetry-proto` (the OTLP receiver of
/// `e2e/python/otlp_receiver.py`); panics with the command that provides it.
pub fn with_otlp_proto() -> PathBuf {
    let venv = venv_named("venv-otlp");
    let python = venv.join("bin/python");
    let setup = format!(
        "python3 -m venv {0} && {0}/bin/pip install opentelemetry-proto==1.45.2 protobuf==7.36.2   (scripts/test.sh does this)",
        venv.display()
    );
    assert!(python.exists(), "{} is missing; run:\n  {setup}", python.display());
    let ok = Command::new(&python)
        .args(["-c", "import opentelemetry.proto.collector.trace.v1.trace_service_pb2"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{} cannot import opentelemetry.proto; run:\n  {setup}",
        python.display()
    );
    python
}

#!/usr/bin/env bash
# The test command (README): sets up everything the tests need on a fresh Debian 12 machine,
# then runs every tier. Real Docker and real Podman are installed and started when absent,
# the mock engine image is built for both, and the end-to-end suite runs against both.
#
#   scripts/test.sh            everything
#   scripts/test.sh --fast     unit and integration tiers only (no containers)
set -euo pipefail
cd "$(dirname "$0")/.."

fast=0
[ "${1:-}" = "--fast" ] && fast=1

step() { printf '\n==> %s\n' "$*"; }

# A Python virtual environment at $1, kept between runs (Debian ships venv's pip bootstrap
# separately: python3-venv is installed when it is missing).
make_venv() {
  [ -x "$1/bin/pip" ] && return
  if ! { command -v python3 >/dev/null && python3 -m venv --clear "$1" >/dev/null 2>&1; }; then
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3 python3-venv >/dev/null
    python3 -m venv --clear "$1"
  fi
}

step "format and lints"
cargo fmt --all -- --check
cargo fmt --manifest-path fuzz/Cargo.toml -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

step "unit and integration tests"
cargo test --locked

if [ "$fast" = 1 ]; then exit 0; fi

step "container runtimes (Docker and Podman)"
eval "$(bash scripts/setup-runtimes.sh)"
export LLORCH_DOCKER_SOCKET="$DOCKER_SOCKET" LLORCH_PODMAN_SOCKET="$PODMAN_SOCKET"
# What the NVIDIA toolkit stand-in on dockerd's PATH recorded (e2e/tests/nvml_shim.rs reads it).
export LLORCH_NVIDIA_HOOK_LOG="$NVIDIA_HOOK_LOG"

step "mock engine image for both runtimes"
bash scripts/build-mock-image.sh --docker "$DOCKER_SOCKET" --podman "$PODMAN_SOCKET"

step "real llama-server image (llama.cpp) and the SmolLM2-135M model for both runtimes"
# A test fixture, cached in ${LLORCH_CACHE:-~/.cache/llama-orch-ci}: ~4 min the first time.
LLORCH_SMOLLM2_GGUF=$(bash scripts/build-llama-server-image.sh --docker "$DOCKER_SOCKET" --podman "$PODMAN_SOCKET")
export LLORCH_SMOLLM2_GGUF

step "the official openai Python SDK for the OpenAI-compatibility e2e test"
# A virtual environment in ${LLORCH_CACHE:-~/.cache/llama-orch-ci}/venv-openai; kept between runs.
openai_venv="${LLORCH_CACHE:-$HOME/.cache/llama-orch-ci}/venv-openai"
make_venv "$openai_venv"
"$openai_venv/bin/python" -c 'import openai' 2>/dev/null || "$openai_venv/bin/pip" install -q openai

step "the OTLP protobuf definitions (PyPI opentelemetry-proto) for the traces e2e test"
# e2e/python/otlp_receiver.py decodes what the daemon exports with them. Venv kept between runs.
otlp_venv="${LLORCH_CACHE:-$HOME/.cache/llama-orch-ci}/venv-otlp"
make_venv "$otlp_venv"
"$otlp_venv/bin/python" -c 'import importlib.metadata as m; assert m.version("opentelemetry-proto") == "1.45.2" and m.version("protobuf") == "7.36.2"' 2>/dev/null \
  || "$otlp_venv/bin/pip" install -q opentelemetry-proto==1.45.2 protobuf==7.36.2

step "the official openai Node SDK (npm) for the agent e2e test"
# node_modules in ${LLORCH_CACHE:-~/.cache/llama-orch-ci}/node-openai, kept between runs; the
# test finds it through NODE_PATH. Debian's nodejs + npm are installed when missing.
if ! command -v npm >/dev/null; then
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm >/dev/null
fi
node_openai="${LLORCH_CACHE:-$HOME/.cache/llama-orch-ci}/node-openai"
mkdir -p "$node_openai"
[ -f "$node_openai/package.json" ] || echo '{"private": true}' >"$node_openai/package.json"
grep -q '"version": "6.49.0"' "$node_openai/node_modules/openai/package.json" 2>/dev/null \
  || (cd "$node_openai" && npm install --silent --no-audit --no-fund openai@6.49.0)

step "a headless browser (Debian's chromium + Playwright for Python) for the cross-site and status-page e2e tests"
# e2e/tests/browser.rs and e2e/tests/ui.rs drive the system chromium through Playwright (its own browser download
# is not needed: executable_path=/usr/bin/chromium). Venv kept between runs.
if ! command -v chromium >/dev/null; then
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null
fi
browser_venv="${LLORCH_CACHE:-$HOME/.cache/llama-orch-ci}/venv-browser"
make_venv "$browser_venv"
"$browser_venv/bin/python" -c 'import importlib.metadata as m; assert m.version("playwright") == "1.65.2"' 2>/dev/null \
  || "$browser_venv/bin/pip" install -q playwright==1.65.2

step "GGUF files from the PyPI gguf package, for the VRAM-estimate e2e test"
# GGUFWriter makes small files of several shapes, GGUFReader the expectations (also for SmolLM2);
# e2e/tests/gguf_estimate.rs checks llorch_gguf against them. Venv kept between runs.
gguf_venv="${LLORCH_CACHE:-$HOME/.cache/llama-orch-ci}/venv-gguf"
make_venv "$gguf_venv"
"$gguf_venv/bin/python" -c 'import importlib.metadata as m; assert m.version("gguf") == "0.19.0"' 2>/dev/null \
  || "$gguf_venv/bin/pip" install -q gguf==0.19.0
LLORCH_GGUF_FIXTURES="${LLORCH_CACHE:-$HOME/.cache/llama-orch-ci}/gguf-fixtures"
rm -rf "$LLORCH_GGUF_FIXTURES"
"$gguf_venv/bin/python" scripts/gguf/make_fixtures.py "$LLORCH_GGUF_FIXTURES" --smollm2 "$LLORCH_SMOLLM2_GGUF"
export LLORCH_GGUF_FIXTURES

step "Kubernetes' OpenAPI schemas (PyPI kubernetes-validate, pinned) for the export e2e test"
# e2e/tests/kubernetes_export.rs validates what `orchctl export kubernetes` writes against the
# schemas of Kubernetes 1.35 and 1.37 (offline, strict) and KubeAI Models against the vendored
# CRD (jsonschema, a dependency of kubernetes-validate). Venv kept between runs.
k8s_venv="${LLORCH_CACHE:-$HOME/.cache/llama-orch-ci}/venv-k8s"
make_venv "$k8s_venv"
"$k8s_venv/bin/python" -c 'import importlib.metadata as m; assert m.version("kubernetes-validate") == "1.37.0"' 2>/dev/null \
  || "$k8s_venv/bin/pip" install -q kubernetes-validate==1.37.0

step "promtool (Debian's prometheus package) for the /metrics exposition e2e test"
# Installed when missing, with every service start denied during the install: no Prometheus
# server is left running. e2e/tests/metrics_exposition.rs runs `promtool check metrics`;
# e2e/tests/alert_rules.rs runs `promtool check rules` and `promtool test rules` on deploy/prometheus/.
LLORCH_PROMTOOL=$(bash scripts/install-promtool.sh)
export LLORCH_PROMTOOL

step "systemd-analyze (Debian's systemd package) for the install e2e test"
# e2e/tests/install.rs installs the units into a scratch root (scripts/install.sh --root) and
# checks them with `systemd-analyze verify`. Installing the package starts nothing here.
if ! command -v systemd-analyze >/dev/null; then
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends systemd >/dev/null
fi
LLORCH_SYSTEMD_ANALYZE=$(command -v systemd-analyze)
export LLORCH_SYSTEMD_ANALYZE

step "binaries for the end-to-end tests, and the NVML shim (a test-only libnvidia-ml.so.1)"
cargo build --locked --bins
cargo build --locked -p llama-orch-nvml-shim

step "end-to-end tests against real Docker and real Podman"
# Two at a time: each test runs its own daemon and engine containers on a 2-core machine.
cargo test --locked -p llama-orch-e2e -- --test-threads=2

step "the README's demo, end to end (simulated GPUs, mock engine, real Docker)"
bash scripts/demo.sh --ci

step "fuzz smoke: each afl.rs target for 20 s (scripts/fuzz.sh; the campaign is scripts/fuzz.sh without --smoke)"
# Fails on any crash or hang, and on any committed corpus or regression input that crashes.
bash scripts/fuzz.sh --smoke

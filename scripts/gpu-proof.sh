#!/usr/bin/env bash
# Proves llama-orch's NVML path on a machine with an NVIDIA GPU, in one run:
#   1. the driver's own view (`nvidia-smi`), when it is installed;
#   2. the inventory exactly as llama-orch reads it through NVML (index, UUID, name, total/used/
#      free VRAM, utilisation, processes, ECC/driver problems) — controller/examples/gpu-inventory.rs;
#   3. the Docker device request and the Podman CDI device that the container create body holds
#      for a replica on GPU 0;
#   4. a cross-check: NVML's free VRAM of GPU 0 against nvidia-smi's (they must agree within
#      64 MiB, the driver's own rounding and what other processes allocate in between);
#   5. with --model: the engine is on its GPU. The real llama-orchd (`gpus: nvml`) runs two
#      one-replica Pools of the real llama.cpp server on GPU 0 — `on-gpu` with
#      `--n-gpu-layers 999`, `on-cpu` with `--n-gpu-layers 0` — and must find `on-gpu`'s engine
#      in NVML's process list holding its weights (Ready), and mark `on-cpu` NotOnGpu with the
#      fix. The engine is the llama.cpp server image (--image, default
#      ghcr.io/ggml-org/llama.cpp:server-cuda, on Docker with the NVIDIA container toolkit), or
#      a CUDA build of llama-server run as a `binary` Engine (--llama-server PATH).
#
#   scripts/gpu-proof.sh [--bin PATH]      # PATH: a prebuilt gpu-inventory example binary
#   scripts/gpu-proof.sh --model M.gguf [--image IMAGE | --llama-server PATH] [--daemon-dir DIR]
#                                          # DIR: where llama-orchd and orchctl are (default:
#                                          # target/release, else target/debug, else cargo build)
#
# Without --bin it builds the example with cargo, or, without cargo, uses
# target/{release,debug}/examples/gpu-inventory. On a machine that cannot build, build here with
#   cargo build --release -p llama-orch-controller --example gpu-inventory
# and carry target/release/examples/gpu-inventory along (NVML is loaded at run time, so the
# binary runs on any machine with the same glibc).
#
# Exit status: 0 proven; 1 no usable NVIDIA GPU (the reason, and what to install, on stderr);
# 2 a GPU reports driver/ECC errors; 3 NVML and nvidia-smi disagree; 4 the engine check (5.)
# failed. Nothing falls back to CPU.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n== %s\n' "$*"; }
fail() { # <status> <message>
  printf 'gpu-proof: %s\n' "$2" >&2
  exit "$1"
}

BIN=""
MODEL=""
IMAGE="ghcr.io/ggml-org/llama.cpp:server-cuda"
LLAMA_SERVER=""
DAEMON_DIR=""
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) BIN="${2:?--bin needs a path}"; shift 2 ;;
    --model) MODEL="${2:?--model needs a GGUF file}"; shift 2 ;;
    --image) IMAGE="${2:?--image needs an image}"; shift 2 ;;
    --llama-server) LLAMA_SERVER="${2:?--llama-server needs a path}"; shift 2 ;;
    --daemon-dir) DAEMON_DIR="${2:?--daemon-dir needs a directory}"; shift 2 ;;
    -h|--help) sed -n '2,31p' "$0"; exit 0 ;;
    *) fail 64 "unknown argument \`$1\`; see --help" ;;
  esac
done

if [ -z "$BIN" ] && command -v cargo >/dev/null 2>&1; then
  cargo build -q -p llama-orch-controller --example gpu-inventory
  BIN=target/debug/examples/gpu-inventory
fi
if [ -z "$BIN" ]; then
  for candidate in target/release/examples/gpu-inventory target/debug/examples/gpu-inventory; do
    if [ -x "$candidate" ]; then BIN=$candidate; break; fi
  done
fi
[ -n "$BIN" ] || fail 1 "no gpu-inventory binary and no cargo to build one: pass --bin PATH (see --help)"

say "host"
uname -srm
have_smi=false
if command -v nvidia-smi >/dev/null 2>&1; then
  have_smi=true
  say "nvidia-smi (the driver's own view)"
  nvidia-smi --query-gpu=index,uuid,name,driver_version,memory.total,memory.used,memory.free,utilization.gpu,ecc.errors.uncorrected.volatile.total \
    --format=csv || true
else
  echo "nvidia-smi: not installed"
fi

say "llama-orch's inventory through NVML ($BIN)"
set +e
"$BIN"
status=$?
set -e
case $status in
  0) ;;
  2) fail 2 "a GPU reports driver/ECC errors (above): llama-orch keeps replicas off it" ;;
  *) fail 1 "no usable NVIDIA GPU on this machine (the reason is above). Run this on a machine with an NVIDIA GPU and its driver: \`nvidia-smi\` must list the GPU" ;;
esac

if $have_smi; then
  say "cross-check: free VRAM of GPU 0, NVML vs nvidia-smi"
  smi_mib=$(nvidia-smi --query-gpu=memory.free --format=csv,noheader,nounits -i 0 | tr -d ' ')
  nvml_bytes=$("$BIN" | sed -n 's/.*free [0-9.]* GiB (\([0-9]*\) B).*/\1/p' | head -1)
  nvml_mib=$((nvml_bytes / 1048576))
  diff=$((nvml_mib > smi_mib ? nvml_mib - smi_mib : smi_mib - nvml_mib))
  echo "nvidia-smi: ${smi_mib} MiB free; llama-orch (NVML): ${nvml_mib} MiB free; difference ${diff} MiB"
  [ "$diff" -le 64 ] || fail 3 "NVML and nvidia-smi disagree on GPU 0's free VRAM by ${diff} MiB"
fi

if [ -n "$MODEL" ]; then
  bash scripts/gpu-proof-engine.sh --model "$MODEL" --image "$IMAGE" --llama-server "$LLAMA_SERVER" \
    --daemon-dir "$DAEMON_DIR" || fail 4 "the engine-on-its-GPU check failed (above)"
fi

say "proven: llama-orch reads this machine's GPUs through NVML and attaches GPU 0 as shown"

#!/usr/bin/env bash
# Step 5 of scripts/gpu-proof.sh (run that; it calls this with --model): the engine is on its
# GPU, on a machine with a real NVIDIA GPU. The real llama-orchd with `gpus: nvml` runs two
# one-replica Pools of the real llama.cpp server on GPU 0:
#   on-gpu   --n-gpu-layers 999   must be Ready: its engine is in NVML's process list of GPU 0,
#                                 holding at least the model's weights there;
#   on-cpu   --n-gpu-layers 0     must become NotOnGpu (phase, event, metric) with the fix: a CUDA
#                                 build that offloads nothing still opens a CUDA context, so it
#                                 is listed — with less memory than its weights.
# The engine is the llama.cpp server image on Docker (`--image`, needs the NVIDIA container
# toolkit) or a CUDA build of llama-server as a `binary` Engine (`--llama-server PATH`).
#
#   scripts/gpu-proof-engine.sh --model M.gguf [--image IMAGE] [--llama-server PATH] [--daemon-dir DIR]
#
# Exit status: 0 proven; 1 the check failed or could not run (why, on stderr). Needs curl and
# python3 (to read the daemon's JSON). Leaves nothing running: the Pools are deleted and the
# daemon stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n== %s\n' "$*"; }
die() { printf 'gpu-proof-engine: %s\n' "$*" >&2; exit 1; }

MODEL="" IMAGE="ghcr.io/ggml-org/llama.cpp:server-cuda" LLAMA_SERVER="" DAEMON_DIR=""
while [ $# -gt 0 ]; do
  case "$1" in
    --model) MODEL="$2"; shift 2 ;;
    --image) IMAGE="$2"; shift 2 ;;
    --llama-server) LLAMA_SERVER="$2"; shift 2 ;;
    --daemon-dir) DAEMON_DIR="$2"; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) die "unknown argument \`$1\`; see --help" ;;
  esac
done
[ -f "$MODEL" ] || die "--model must name a GGUF file (got \`$MODEL\`)"
MODEL=$(realpath "$MODEL")
command -v curl >/dev/null && command -v python3 >/dev/null || die "needs curl and python3"

if [ -z "$DAEMON_DIR" ]; then
  for d in target/release target/debug; do
    if [ -x "$d/llama-orchd" ] && [ -x "$d/orchctl" ]; then DAEMON_DIR=$d; break; fi
  done
fi
if [ -z "$DAEMON_DIR" ]; then
  command -v cargo >/dev/null || die "no llama-orchd/orchctl and no cargo: pass --daemon-dir DIR"
  cargo build -q --release -p llama-orchd -p orchctl
  DAEMON_DIR=target/release
fi
DAEMON_DIR=$(realpath "$DAEMON_DIR")

home=$(mktemp -d /tmp/llorch-gpu-proof.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port"
export LLAMA_ORCH_HOME="$home"
mkdir -p "$home/manifests"

if [ -n "$LLAMA_SERVER" ]; then
  [ -x "$LLAMA_SERVER" ] || die "--llama-server $LLAMA_SERVER is not an executable"
  LLAMA_SERVER=$(realpath "$LLAMA_SERVER")
  mode="binary $LLAMA_SERVER"
  engine_source="provisioning: binary\n  executable: $LLAMA_SERVER"
  runtime_config="provisioning: {allowedExecutables: [$LLAMA_SERVER]}"
else
  command -v docker >/dev/null || die "no docker: pass --llama-server PATH (a CUDA build of llama-server) instead"
  docker image inspect "$IMAGE" >/dev/null 2>&1 || docker pull "$IMAGE" || die "cannot pull $IMAGE"
  mode="image $IMAGE"
  engine_source="image: $IMAGE"
  runtime_config="runtime: {kind: docker}"
fi

cat >"$home/config.yaml" <<EOF
bind: 127.0.0.1:$port
instance: gpu-proof
gpus: nvml
onGpuGrace: 20s
resyncIntervalMs: 2000
models: {fileRoots: [$(dirname "$MODEL")], downloads: false}
$runtime_config
EOF

engine() { # <name> <n-gpu-layers>
  printf 'apiVersion: llama-orch.dev/v1alpha1\nkind: Engine\nmetadata: {name: %s}\nspec:\n  %b\n  version: proof\n  api: llamacpp\n  args: [--model, "{model_path}", --host, "{host}", --port, "{port}", --ctx-size, "{ctx_size}", --parallel, "{slots}", --n-gpu-layers, "%s"]\n  health: {path: /health}\n' \
    "$1" "$engine_source" "$2"
}
pool() { # <name> <engine>
  printf 'apiVersion: llama-orch.dev/v1alpha1\nkind: Pool\nmetadata: {name: %s}\nspec:\n  engine: %s\n  model: proof-model\n  replicas: 1\n  gpus: [0]\n  slotsPerReplica: 1\n  ctxSize: 1024\n' "$1" "$2"
}
{
  engine proof-gpu 999; echo ---; engine proof-cpu 0; echo ---
  printf 'apiVersion: llama-orch.dev/v1alpha1\nkind: Model\nmetadata: {name: proof-model}\nspec:\n  ref: file:%s\n  ctxMax: 1024\n' "$MODEL"
  echo ---; pool on-gpu proof-gpu; echo ---; pool on-cpu proof-cpu
} >"$home/manifests/proof.yaml"

daemon_pid=""
cleanup() {
  if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
    rm -f "$home/manifests/proof.yaml"
    for _ in $(seq 60); do   # the daemon stops the engines once their Pools are gone
      n=$(curl -sf "$url/v2/snapshot" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["replicas"]))' 2>/dev/null || echo 0)
      [ "$n" = 0 ] && break
      sleep 0.5
    done
    kill "$daemon_pid" 2>/dev/null || true
    wait "$daemon_pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT

say "the engine is on its GPU: llama-orchd (gpus: nvml) with the llama.cpp server ($mode), model $MODEL"
"$DAEMON_DIR/llama-orchd" 2>"$home/daemon.log" &
daemon_pid=$!
for _ in $(seq 100); do curl -sf "$url/readyz" >/dev/null && break; sleep 0.2; done
curl -sf "$url/readyz" >/dev/null || { tail -n 20 "$home/daemon.log" >&2; die "llama-orchd did not start (log above)"; }

# phase of Pool $1's replica, from the snapshot
phase() {
  curl -sf "$url/v2/snapshot" | python3 -c '
import json, sys
s = json.load(sys.stdin)
print(next((r["phase"] for r in s["replicas"] if r["pool"] == sys.argv[1]), "none"))' "$1" 2>/dev/null || echo none
}
started=$SECONDS
while [ $((SECONDS - started)) -lt 300 ]; do
  gpu=$(phase on-gpu); cpu=$(phase on-cpu)
  [ "$gpu" = Ready ] && [ "$cpu" = NotOnGpu ] && break
  sleep 1
done
echo "after $((SECONDS - started)) s: on-gpu is $gpu, on-cpu is $cpu"

"$DAEMON_DIR/orchctl" get replicas || true
"$DAEMON_DIR/orchctl" get gpus || true
command -v nvidia-smi >/dev/null && nvidia-smi --query-compute-apps=pid,process_name,used_memory --format=csv
echo "events:"
grep -E '"(NotOnGpu|OnGpu|OnGpuUnchecked|ReplicaCreated)"' "$home/state/events.jsonl" | cut -c1-600 || true
curl -sf "$url/metrics" | grep -E '^llorch_pool_replicas_not_on_gpu' || true

if [ "$gpu" != Ready ] || [ "$cpu" != NotOnGpu ]; then
  tail -n 30 "$home/daemon.log" >&2
  die "expected on-gpu Ready and on-cpu NotOnGpu within 300 s; got $gpu and $cpu"
fi
echo "proven: the engine with --n-gpu-layers 999 holds its weights on GPU 0; the one with 0 is caught (NotOnGpu)"

#!/usr/bin/env bash
# llama-orch demo — NO GPU NEEDED. It uses an explicitly SIMULATED GPU inventory (two fake
# cards, 24 GiB + 12 GiB) and the mock engine (a test engine that speaks llama.cpp's API and
# does no inference). Everything else is real: a real Docker daemon, the real llama-orchd
# and orchctl, real containers.
#
#   scripts/demo.sh          set up, run the walkthrough, leave the daemon running to explore
#   scripts/demo.sh --stop   stop the demo daemon and remove its containers
#   scripts/demo.sh --ci     the walkthrough, then stop (used by scripts/test.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
DEMO_HOME=${LLAMA_ORCH_DEMO_HOME:-/tmp/llama-orch-demo}
PORT=${LLAMA_ORCH_DEMO_PORT:-18080}
mode=${1:-run}

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

stop() {
  if [ -f "$DEMO_HOME/llama-orchd.pid" ]; then
    kill "$(cat "$DEMO_HOME/llama-orchd.pid")" 2>/dev/null || true
    rm -f "$DEMO_HOME/llama-orchd.pid"
  fi
  if [ -n "${DOCKER_HOST:-}" ] || [ -S /tmp/lo-docker/docker.sock ]; then
    ids=$(DOCKER_HOST=${DOCKER_HOST:-unix:///tmp/lo-docker/docker.sock} docker ps -aq --filter label=dev.llama-orch.instance=demo 2>/dev/null || true)
    [ -n "$ids" ] && DOCKER_HOST=${DOCKER_HOST:-unix:///tmp/lo-docker/docker.sock} docker rm -f $ids >/dev/null
  fi
  echo "demo stopped"
}

if [ "$mode" = "--stop" ]; then stop; exit 0; fi

say "1/6  Docker (installed and started if absent)"
eval "$(bash scripts/setup-runtimes.sh)"
export DOCKER_HOST="$DOCKER_SOCKET"

say "2/6  The mock engine image and the binaries"
bash scripts/build-mock-image.sh --docker "$DOCKER_SOCKET"
cargo build --locked --bins -q
export PATH="$ROOT/target/debug:$PATH"

say "3/6  A llama-orch home with SIMULATED GPUs in $DEMO_HOME"
stop >/dev/null 2>&1 || true
rm -rf "$DEMO_HOME"
mkdir -p "$DEMO_HOME"
cat >"$DEMO_HOME/config.yaml" <<CONF
# Demo config: simulated GPUs (no GPU needed), Docker, loopback only.
bind: 127.0.0.1:$PORT
instance: demo
runtime: {kind: docker, socket: $DOCKER_SOCKET}
gpus:
  simulate:
    - {name: Simulated RTX 3090, vramBytes: 25769803776}
    - {name: Simulated RTX 3060, vramBytes: 12884901888}
# The example Model's file lives in this checkout; Models may only use files under these.
models:
  fileRoots: [$ROOT/examples/models, $DEMO_HOME]
CONF
cat "$DEMO_HOME/config.yaml"
export LLAMA_ORCH_HOME="$DEMO_HOME" LLAMA_ORCH_URL="http://127.0.0.1:$PORT"
llama-orchd >"$DEMO_HOME/daemon.log" 2>&1 &
echo $! >"$DEMO_HOME/llama-orchd.pid"
for _ in $(seq 1 100); do curl -sf "$LLAMA_ORCH_URL/readyz" >/dev/null && break; sleep 0.1; done
curl -sf "$LLAMA_ORCH_URL/readyz" >/dev/null || { echo "llama-orchd did not start; its log:"; cat "$DEMO_HOME/daemon.log"; exit 1; }
echo "llama-orchd is up at $LLAMA_ORCH_URL (log: $DEMO_HOME/daemon.log)"

say "4/6  Declare an Engine, a Model and a Pool of 2 replicas"
run orchctl apply -f examples/
run orchctl wait pool/chat --for=condition=Ready --timeout=60s
run orchctl get pools
run orchctl get replicas
run orchctl get gpus

say "5/6  Self-healing: kill one engine container behind llama-orch's back"
victim=$(docker ps -q --filter label=dev.llama-orch.instance=demo --filter label=dev.llama-orch.replica=0 | head -n1)
run docker kill "$victim"
sleep 1
run orchctl wait pool/chat --for=condition=Ready --timeout=60s
run orchctl get pools
run orchctl events pool/chat --limit 6

say "6/6  Scale to 1 by editing the manifest (what a git pull would do)"
sed 's/replicas: 2/replicas: 1/' "$DEMO_HOME/manifests/pool-chat.yaml" >"$DEMO_HOME/pool-chat.yaml.new"
mv "$DEMO_HOME/pool-chat.yaml.new" "$DEMO_HOME/manifests/pool-chat.yaml"
sleep 1
run orchctl wait pool/chat --for=condition=Ready --timeout=60s
run orchctl get replicas

if [ "$mode" = "--ci" ]; then stop; exit 0; fi
cat <<EOF

The demo daemon keeps running. Its status page: $LLAMA_ORCH_URL/ui
Explore with:
  export LLAMA_ORCH_HOME=$DEMO_HOME LLAMA_ORCH_URL=$LLAMA_ORCH_URL PATH=$ROOT/target/debug:\$PATH DOCKER_HOST=$DOCKER_SOCKET
  orchctl describe pool/chat
  orchctl logs chat/0 --tail 5
  curl -s \$LLAMA_ORCH_URL/metrics | grep simulated
Stop it with: scripts/demo.sh --stop
EOF

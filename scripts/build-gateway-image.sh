#!/usr/bin/env bash
# Builds the llama-orchd image that `orchctl export kubernetes --with-gateway` runs as the
# gateway (docs/kubernetes.md), offline: the binary and the shared libraries it links (as `ldd`
# lists them: glibc, libgcc_s, the loader) in a FROM-scratch image, run as user 65532.
#
#   scripts/build-gateway-image.sh [--binary PATH] [--tag TAG] [--docker unix:///var/run/docker.sock]
#
#   --binary  the llama-orchd to package [default: a release build, `cargo build --release`]
#   --tag     the image name [default: llama-orch/llama-orchd:<workspace version>, what export names]
#   --docker  Docker's socket [default: $DOCKER_HOST, else Docker's own default]
#
# Push it where the cluster pulls from (`docker tag` + `docker push`) and export with
# `--gateway-image <that name>`. The e2e test builds it from the debug binary.
set -euo pipefail

log() { printf '[build-gateway-image] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

repo=$(cd "$(dirname "$0")/.." && pwd)
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo/Cargo.toml" | head -n 1)
binary=""
tag="llama-orch/llama-orchd:$version"
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) [ $# -ge 2 ] || die "--binary needs a path"; binary=$2; shift 2 ;;
    --tag) [ $# -ge 2 ] || die "--tag needs a name"; tag=$2; shift 2 ;;
    --docker) [ $# -ge 2 ] || die "--docker needs a socket URL"; export DOCKER_HOST=$2; shift 2 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done

if [ -z "$binary" ]; then
  log "building llama-orchd (release)"
  (cd "$repo" && cargo build --release --locked -p llama-orchd)
  binary=${CARGO_TARGET_DIR:-$repo/target}/release/llama-orchd
fi
[ -x "$binary" ] || die "no executable at $binary"
timeout 10 docker version --format '{{.Server.Version}}' >/dev/null 2>&1 \
  || die "Docker does not answer${DOCKER_HOST:+ at $DOCKER_HOST}"

context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
mkdir -p "$context/root/usr/local/bin" "$context/root/var/lib/llama-orch" "$context/root/tmp"
# Debug symbols are not needed to run; stripping keeps a debug build's image small.
objcopy --strip-debug "$binary" "$context/root/usr/local/bin/llama-orchd"
# The shared libraries, at the paths the binary's loader looks for them.
libs=$(ldd "$binary" | awk '/=> \// { print $3 } /^\t\/lib/ { print $1 }')
[ -n "$libs" ] || die "ldd lists no libraries for $binary"
for lib in $libs; do
  mkdir -p "$context/root$(dirname "$lib")"
  cp -L "$lib" "$context/root$lib"
done
cat >"$context/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY root/ /
USER 65532:65532
ENV LLAMA_ORCH_HOME=/var/lib/llama-orch
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/llama-orchd"]
DOCKERFILE
log "building $tag from $binary"
docker build -q -t "$tag" "$context" >/dev/null
log "built $tag"
printf '%s\n' "$tag"

# Shared by the image build scripts (source it after setting LOG_TAG, DEFAULT_DOCKER and
# DEFAULT_PODMAN): logging, the usage text taken from the calling script's header comment,
# `--docker SOCK` / `--podman SOCK` parsing (both default sockets when neither is given) and
# unix:// socket paths. Sets docker_sock and podman_sock.

log() { printf '[%s] %s\n' "$LOG_TAG" "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2
  exit "${1:-2}"
}

docker_sock=""
podman_sock=""
while [ $# -gt 0 ]; do
  case "$1" in
    --docker) [ $# -ge 2 ] || usage; docker_sock=$2; shift 2 ;;
    --docker=*) docker_sock=${1#*=}; shift ;;
    --podman) [ $# -ge 2 ] || usage; podman_sock=$2; shift 2 ;;
    --podman=*) podman_sock=${1#*=}; shift ;;
    -h|--help) usage 0 ;;
    *) log "unknown argument: $1"; usage ;;
  esac
done
if [ -z "$docker_sock" ] && [ -z "$podman_sock" ]; then
  docker_sock=$DEFAULT_DOCKER
  podman_sock=$DEFAULT_PODMAN
fi

socket_path() { # unix:///x/y.sock -> /x/y.sock
  case "$1" in
    unix://*) printf '%s' "${1#unix://}" ;;
    *) die "only unix:// sockets are supported, got '$1'" ;;
  esac
}

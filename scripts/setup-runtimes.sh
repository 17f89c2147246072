#!/usr/bin/env bash
# Installs (when absent) and starts a real Docker daemon and a real Podman service on a
# Debian 12 machine, following ../shared/docs/container-runtimes.md. Idempotent: a socket
# that already answers is left alone. Prints the two DOCKER_HOST values to use.
#
# Sockets:  Docker  unix:///tmp/lo-docker/docker.sock
#           Podman  unix:///tmp/lo-podman.sock
#
# dockerd starts with a TEST STAND-IN for the NVIDIA container toolkit's prestart hook on its
# PATH (see install_toolkit_hook_stand_in): Docker registers its `nvidia` device driver only
# when `nvidia-container-runtime-hook` is on the daemon's PATH, so without it a container
# with a GPU device request cannot start on a machine without the toolkit. The stand-in makes
# no device available; it records what Docker asked for, so the NVML-shim e2e tests can check
# the device request of a real `gpus: nvml` daemon end to end.
set -euo pipefail

DOCKER_DIR=${LLORCH_DOCKER_DIR:-/tmp/lo-docker}
DOCKER_SOCK="$DOCKER_DIR/docker.sock"
PODMAN_SOCK=${LLORCH_PODMAN_SOCK:-/tmp/lo-podman.sock}

log() { printf '[setup-runtimes] %s\n' "$*" >&2; }

need_root() {
  if [ "$(id -u)" -ne 0 ]; then
    log "this step installs packages and starts daemons: run it as root (or with sudo)"
    exit 1
  fi
}

install_packages() {
  local missing=()
  command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
  command -v podman >/dev/null 2>&1 || missing+=(podman)
  command -v runc >/dev/null 2>&1 || missing+=(runc)
  if [ ${#missing[@]} -gt 0 ]; then
    need_root
    log "installing ${missing[*]} from Debian's packages"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
  fi
}

wait_for() { # wait_for <seconds> <command...>
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then return 1; fi
    sleep 0.5
  done
}

TOOLKIT_DIR="$DOCKER_DIR/toolkit-stand-in"
HOOK_LOG="$DOCKER_DIR/nvidia-hook.log"

# Writes the stand-in hook. runc runs it before a container with an `nvidia` device request
# starts, with the OCI state (JSON, holding the bundle path) on stdin and an empty
# environment; it appends the container id and the NVIDIA_VISIBLE_DEVICES Docker put in the
# container's spec to $HOOK_LOG, and exits 0 — or 1 for a GPU other than 0 and 1, as the real
# toolkit fails for a GPU the machine lacks.
install_toolkit_hook_stand_in() {
  # On a machine with the real toolkit, dockerd keeps the real hook.
  if command -v nvidia-container-runtime-hook >/dev/null 2>&1; then
    log "docker: the NVIDIA container toolkit is installed; no stand-in"
    return
  fi
  mkdir -p "$TOOLKIT_DIR"
  cat >"$TOOLKIT_DIR/nvidia-container-runtime-hook" <<HOOK
#!/bin/sh
# llama-orch TEST STAND-IN for nvidia-container-runtime-hook: attaches no GPU, only records
# what Docker asked for (written by scripts/setup-runtimes.sh).
PATH=/usr/sbin:/usr/bin:/sbin:/bin
[ "\$1" = prestart ] || exit 0
state=\$(cat)
id=\$(printf '%s' "\$state" | sed -n 's/.*"id":"\([^"]*\)".*/\1/p')
bundle=\$(printf '%s' "\$state" | sed -n 's/.*"bundle":"\([^"]*\)".*/\1/p')
devices=\$(grep -o 'NVIDIA_VISIBLE_DEVICES=[^"]*' "\$bundle/config.json" | head -n 1)
echo "\$id \$devices" >>"$HOOK_LOG"
# Like the real toolkit, a GPU the machine does not have fails the start (the tests'
# workstation has GPUs 0 and 1).
for d in \$(printf '%s' "\${devices#NVIDIA_VISIBLE_DEVICES=}" | tr ',' ' '); do
  case "\$d" in
    0|1) ;;
    *) echo "nvidia-container-cli: device error: \$d: unknown device (llama-orch test stand-in: GPUs 0 and 1 only)" >&2; exit 1 ;;
  esac
done
exit 0
HOOK
  chmod 755 "$TOOLKIT_DIR/nvidia-container-runtime-hook"
}

# True when the running dockerd was started with the stand-in on its PATH.
docker_has_stand_in() {
  local pid
  [ -x "$TOOLKIT_DIR/nvidia-container-runtime-hook" ] || return 0
  pid=$(cat "$DOCKER_DIR/dockerd.pid" 2>/dev/null) || return 1
  tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -q "^PATH=$TOOLKIT_DIR:"
}

start_docker() {
  install_toolkit_hook_stand_in
  if DOCKER_HOST="unix://$DOCKER_SOCK" docker version >/dev/null 2>&1; then
    if docker_has_stand_in; then
      log "docker: already answering on $DOCKER_SOCK"; return
    fi
    log "docker: restarting dockerd so that the toolkit stand-in is on its PATH"
    kill "$(cat "$DOCKER_DIR/dockerd.pid")"
    wait_for 30 sh -c "! DOCKER_HOST=unix://$DOCKER_SOCK docker version" || true
  fi
  need_root
  mkdir -p "$DOCKER_DIR"
  # A stale pid file from a killed daemon makes dockerd refuse to start.
  rm -f "$DOCKER_DIR/dockerd.pid"
  log "docker: starting dockerd on $DOCKER_SOCK"
  (cd / && PATH="$TOOLKIT_DIR:$PATH" exec nohup dockerd --host "unix://$DOCKER_SOCK" --data-root "$DOCKER_DIR/data" \
    --exec-root "$DOCKER_DIR/exec" --pidfile "$DOCKER_DIR/dockerd.pid") \
    >"$DOCKER_DIR/dockerd.log" 2>&1 </dev/null &
  if ! wait_for 60 env DOCKER_HOST="unix://$DOCKER_SOCK" docker version; then
    log "docker: dockerd did not answer within 60 s; its log:"; tail -n 30 "$DOCKER_DIR/dockerd.log" >&2
    exit 1
  fi
}

configure_podman() {
  # crun fails here ("cgroups in hybrid mode not supported") and containers need explicit
  # ulimits below the VM's hard limit: see container-runtimes.md.
  local conf=/etc/containers/containers.conf
  if ! grep -q 'runtime = "runc"' "$conf" 2>/dev/null; then
    need_root
    mkdir -p /etc/containers
    cat >"$conf" <<'CONF'
[containers]
default_ulimits = ["nofile=16384:16384", "nproc=16384:16384"]
[engine]
runtime = "runc"
CONF
  fi
}

start_podman() {
  # A service whose working directory was deleted (it was started from a checkout that is
  # gone) still answers, but conmon fails every container start ("Failed to get working
  # directory"): restart it.
  local pid
  pid=$(pgrep -f "podman system service --time=0 unix://$PODMAN_SOCK" | head -n 1 || true)
  if [ -n "$pid" ] && readlink "/proc/$pid/cwd" | grep -q ' (deleted)$'; then
    log "podman: the service's working directory was deleted; restarting it"
    kill "$pid"; sleep 1
  fi
  if curl -sf --unix-socket "$PODMAN_SOCK" http://d/_ping >/dev/null 2>&1; then
    log "podman: already answering on $PODMAN_SOCK"; return
  fi
  rm -f "$PODMAN_SOCK"
  log "podman: starting the API service on $PODMAN_SOCK"
  # Started from / so that removing the checkout it was started from cannot break it.
  (cd / && exec nohup podman system service --time=0 "unix://$PODMAN_SOCK") >/tmp/lo-podman.log 2>&1 </dev/null &
  if ! wait_for 60 curl -sf --unix-socket "$PODMAN_SOCK" http://d/_ping; then
    log "podman: service did not answer within 60 s; its log:"; tail -n 30 /tmp/lo-podman.log >&2
    exit 1
  fi
}

install_packages
start_docker
configure_podman
start_podman
echo "DOCKER_SOCKET=unix://$DOCKER_SOCK"
echo "PODMAN_SOCKET=unix://$PODMAN_SOCK"
echo "NVIDIA_HOOK_LOG=$HOOK_LOG"

#!/usr/bin/env bash
# Installs llama-orchd and orchctl with a systemd unit (README, "Install as a service").
#
#   scripts/install.sh --build-only            release build (as yourself), commit recorded
#   sudo scripts/install.sh [--system]         /usr/local/bin, user llama-orch, system unit
#   scripts/install.sh --user [--build]        ~/.local/bin, a `systemctl --user` unit
#   scripts/install.sh … --uninstall           removes binaries and unit; keeps config and state
#
# Options:
#   --system | --user   the mode (default: --system as root, --user otherwise)
#   --binaries DIR      install DIR/llama-orchd and DIR/orchctl (default: the release build,
#                       ${CARGO_TARGET_DIR:-target}/release)
#   --build             run the release build first; --build-only runs it and stops
#   --root DIR          install into DIR as if it were / (every path prefixed): files only,
#                       no useradd, no systemctl (for tests and packaging)
#   --no-start          enable the unit but do not start or restart it
#   --dry-run           print what would be done, change nothing
#   --uninstall         stop and disable the unit, remove it and the binaries
#
# Idempotent: a rerun says `unchanged` for what is already in place and restarts a running
# daemon onto new binaries (an upgrade). The config file is written once, as a commented
# starter, and never overwritten. The unit's stop timeout follows the config's
# `shutdownGraceMs`: rerun after changing it.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

usage() { sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; }
die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }

mode=""; binaries=""; build=0; build_only=0; root=""; start=1; dry=0; uninstall=0
while [ $# -gt 0 ]; do
  case "$1" in
    --system) mode=system ;;
    --user) mode=user ;;
    --binaries) [ $# -ge 2 ] || die "--binaries needs a directory"; binaries=$2; shift ;;
    --binaries=*) binaries=${1#*=} ;;
    --build) build=1 ;;
    --build-only) build=1; build_only=1 ;;
    --root) [ $# -ge 2 ] || die "--root needs a directory"; root=$2; shift ;;
    --root=*) root=${1#*=} ;;
    --no-start) start=0 ;;
    --dry-run) dry=1 ;;
    --uninstall) uninstall=1 ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option \`$1\` (see --help)" ;;
  esac
  shift
done

# --- the release build ------------------------------------------------------------------
release_dir="${CARGO_TARGET_DIR:-$repo/target}/release"
if [ "$build" = 1 ]; then
  [ "$(id -u)" != 0 ] || [ -n "$root" ] || die "build as yourself, not as root: \`scripts/install.sh --build-only\`, then \`sudo scripts/install.sh\`"
  command -v cargo >/dev/null || die "cargo is not on PATH (https://rustup.rs)"
  # orchctl version prints it (option_env! at compile time; cargo rebuilds when it changes).
  LLORCH_GIT_COMMIT=$(git -C "$repo" rev-parse --short=12 HEAD 2>/dev/null || true)
  export LLORCH_GIT_COMMIT
  if [ "$dry" = 1 ]; then
    echo "would run: cargo build --release --locked -p llama-orchd -p orchctl"
  else
    cargo build --release --locked -p llama-orchd -p orchctl
  fi
  [ "$build_only" = 0 ] || { echo "built: $release_dir/llama-orchd, $release_dir/orchctl"; exit 0; }
fi

# --- where things go -----------------------------------------------------------------------
[ -n "$mode" ] || { [ "$(id -u)" = 0 ] && mode=system || mode=user; }
if [ -n "$root" ]; then
  [ "$dry" = 1 ] || mkdir -p "$root"
  root=$(cd "$root" 2>/dev/null && pwd || printf '%s' "$root")
fi
live=1; [ -n "$root" ] && live=0   # live: a real install (useradd, systemctl)

if [ "$mode" = system ]; then
  [ "$live" = 0 ] || [ "$(id -u)" = 0 ] || [ "$dry" = 1 ] || die "--system needs root (sudo), or --root DIR"
  user=llama-orch
  bindir=/usr/local/bin
  unit_dir=/etc/systemd/system
  template=$repo/deploy/systemd/llama-orchd.service
  home=/var/lib/llama-orch
  config=/etc/llama-orch/config.yaml
  systemctl=(systemctl)
else
  [ -n "${HOME:-}" ] || die "--user needs \$HOME"
  user=$(id -un)
  bindir=$HOME/.local/bin
  unit_dir=$HOME/.config/systemd/user
  template=$repo/deploy/systemd/llama-orchd.user.service
  home=$HOME/.llama-orch
  config=$home/config.yaml
  systemctl=(systemctl --user)
fi
unit=$unit_dir/llama-orchd.service

# Runs a command, or prints it under --dry-run.
act() {
  if [ "$dry" = 1 ]; then printf 'would run: %s\n' "$*"; else "$@"; fi
}

# Puts $1 (a file) at $root$2 with mode $3: atomically, and only when it differs.
put() {
  local src=$1 dest=$root$2 mode=$3 what
  if [ -f "$dest" ] && cmp -s "$src" "$dest"; then
    what=unchanged
  elif [ -e "$dest" ]; then
    what=updated
  else
    what=created
  fi
  if [ "$dry" = 1 ]; then
    [ "$what" = unchanged ] && echo "unchanged: $dest" || echo "would write: $dest ($what)"
    return
  fi
  if [ "$what" != unchanged ]; then
    mkdir -p "$(dirname "$dest")"
    # A new file renamed over the old one: a running binary is never written in place.
    install -m "$mode" "$src" "$dest.install-tmp"
    mv -f "$dest.install-tmp" "$dest"
  else
    chmod "$mode" "$dest"
  fi
  echo "$what: $dest"
}

# --- uninstall -------------------------------------------------------------------------------
if [ "$uninstall" = 1 ]; then
  if [ "$live" = 1 ] && command -v systemctl >/dev/null; then
    act "${systemctl[@]}" disable --now llama-orchd.service 2>/dev/null || true
  fi
  for f in "$unit" "$bindir/llama-orchd" "$bindir/orchctl"; do
    if [ -e "$root$f" ]; then
      act rm -f "$root$f"
      [ "$dry" = 1 ] || echo "removed: $root$f"
    fi
  done
  if [ "$live" = 1 ] && command -v systemctl >/dev/null; then act "${systemctl[@]}" daemon-reload; fi
  echo "kept: $root$config and $root$home (manifests, state, job records)"
  if [ "$mode" = system ]; then
    echo "to remove them too: sudo userdel $user; sudo rm -rf /etc/llama-orch $home /var/cache/llama-orch"
  else
    echo "to remove them too: rm -rf $home ~/.cache/llama-orch"
  fi
  exit 0
fi

# --- binaries ----------------------------------------------------------------------------
bin_src=${binaries:-$release_dir}
for b in llama-orchd orchctl; do
  [ -x "$bin_src/$b" ] || die "$bin_src/$b is missing: build it first (\`scripts/install.sh --build-only\`, or cargo build --release --locked -p llama-orchd -p orchctl), or name the folder with --binaries"
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# --- the system user ---------------------------------------------------------------------
if [ "$mode" = system ] && [ "$live" = 1 ]; then
  if id "$user" >/dev/null 2>&1; then
    echo "unchanged: user $user"
  else
    act useradd --system --user-group --home-dir "$home" --no-create-home \
      --shell /usr/sbin/nologin --comment "llama-orch daemon" "$user"
    [ "$dry" = 1 ] || echo "created: user $user"
  fi
  # Docker's socket is group `docker`; Podman's rootful socket is root's (see README).
  if getent group docker >/dev/null; then
    if id -nG "$user" 2>/dev/null | tr ' ' '\n' | grep -qx docker; then
      echo "unchanged: $user in group docker"
    else
      act usermod -aG docker "$user"
      [ "$dry" = 1 ] || echo "added: $user to group docker"
    fi
  else
    echo "note: no \`docker\` group here; for Podman's rootful socket see the README (Install as a service)"
  fi
fi

for b in llama-orchd orchctl; do
  put "$bin_src/$b" "$bindir/$b" 0755
done

# --- the config (written once) ---------------------------------------------------------------
if [ -e "$root$config" ]; then
  echo "kept: $root$config (never overwritten)"
else
  sed -e "s|@HOME@|$home|g" -e "s|@SYSTEMCTL@|${systemctl[*]}|g" >"$tmp/config.yaml" <<'EOF'
# llama-orchd's config, written once by scripts/install.sh (which never overwrites it).
# Every field is optional; the defaults are shown commented out. Reference:
# docs/manifests.md#configyaml. After editing: `@SYSTEMCTL@ restart llama-orchd`.
#
# LLAMA_ORCH_HOME is @HOME@: manifests/ (the watched directory) and state/ live there.

# The API's address. Loopback unless an API token is set (docs/security.md).
# bind: 127.0.0.1:8080

# docker | podman | auto (Docker's socket, then Podman's rootful /run/podman/podman.sock).
# runtime:
#   kind: auto
#   socket: unix:///var/run/docker.sock

# GPUs from NVML (the NVIDIA driver); `none` for a gateway to external Engines only.
# gpus: nvml

# How long open task streams may finish after SIGTERM. Rerun scripts/install.sh after
# changing it: the unit's stop timeout follows it.
# shutdownGraceMs: 10000

# Model cache and downloads (docs/models.md).
# models:
#   downloads: true
#   allowHosts: [huggingface.co, hf.co]

# API tokens (`name: token` lines, chmod 600, owned by the daemon's user), relative to this file.
# auth:
#   tokenFile: tokens
EOF
  if [ "$dry" = 1 ]; then
    echo "would write: $root$config (a commented starter)"
  else
    mkdir -p "$(dirname "$root$config")"
    install -m 0640 "$tmp/config.yaml" "$root$config"
    if [ "$mode" = system ] && [ "$live" = 1 ]; then chgrp "$user" "$root$config"; fi
    echo "created: $root$config (a commented starter)"
  fi
fi

# --- the unit ----------------------------------------------------------------------------
grace_ms=10000
if [ -r "$root$config" ]; then
  g=$(sed -n 's/^shutdownGraceMs:[[:space:]]*\([0-9][0-9]*\).*/\1/p' "$root$config" | tail -n 1)
  [ -z "$g" ] || grace_ms=$g
fi
# The grace, rounded up, plus 15 s for the rest of the shutdown; at least systemd's usual 30 s.
stop_timeout=$(( (grace_ms + 999) / 1000 + 15 ))
[ "$stop_timeout" -ge 30 ] || stop_timeout=30

sed -e "s|@USER@|$user|g" -e "s|@HOME@|$home|g" -e "s|@CACHE_PARENT@|/var/cache|g" \
  -e "s|@BINDIR@|$bindir|g" -e "s|@CONFIG@|$config|g" -e "s|@GRACE_MS@|$grace_ms|g" \
  -e "s|@STOP_TIMEOUT@|${stop_timeout}s|g" "$template" >"$tmp/llama-orchd.service"
if grep -n '@[A-Z_]*@' "$tmp/llama-orchd.service" >&2; then die "$template: a placeholder was left unrendered"; fi
put "$tmp/llama-orchd.service" "$unit" 0644

# --- systemd ----------------------------------------------------------------------------
if [ "$live" = 0 ]; then
  echo "files only (--root $root): no user created, systemctl not run"
  exit 0
fi
command -v systemctl >/dev/null || die "systemctl not found: the files are in place, but no systemd runs here"
act "${systemctl[@]}" daemon-reload
if [ "$start" = 0 ]; then
  act "${systemctl[@]}" enable llama-orchd.service
elif "${systemctl[@]}" is-active --quiet llama-orchd.service; then
  # An upgrade: the new binaries and unit take over; engines keep running and are adopted.
  act "${systemctl[@]}" enable llama-orchd.service
  act "${systemctl[@]}" restart llama-orchd.service
else
  act "${systemctl[@]}" enable --now llama-orchd.service
fi
if [ "$mode" = system ]; then
  echo "status: systemctl status llama-orchd; logs: journalctl -u llama-orchd -f"
else
  echo "status: systemctl --user status llama-orchd; logs: journalctl --user -u llama-orchd -f"
  echo "to keep it running after you log out: loginctl enable-linger $user"
  case ":$PATH:" in *":$bindir:"*) ;; *) echo "note: $bindir is not on your PATH" ;; esac
fi

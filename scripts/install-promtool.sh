#!/usr/bin/env bash
# Prints the path of Prometheus's `promtool` (e2e/tests/metrics_exposition.rs checks the
# daemon's /metrics with `promtool check metrics`). When it is missing, installs Debian's
# `prometheus` package, which ships it, without starting the Prometheus server: a
# policy-rc.d that denies every service start is in place for the install (an existing one is
# put back afterwards), recommends are skipped, and the service is disabled at boot. Fails if
# a Prometheus server runs after the install that did not run before.
#
#   bash scripts/install-promtool.sh     # as root when promtool is missing
set -euo pipefail

log() { printf '[install-promtool] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

if path=$(command -v promtool); then
  printf '%s\n' "$path"
  exit 0
fi
[ "$(id -u)" -eq 0 ] || die "promtool is missing and installing Debian's prometheus package needs root"

running() { pgrep -x prometheus | sort | tr '\n' ' ' || true; }
before=$(running)

policy=/usr/sbin/policy-rc.d
saved=""
restore_policy() {
  if [ -n "$saved" ]; then mv -f "$saved" "$policy"; else rm -f "$policy"; fi
}
if [ -e "$policy" ] || [ -L "$policy" ]; then
  saved="$policy.llorch-saved"
  mv -f "$policy" "$saved"
fi
trap restore_policy EXIT
# invoke-rc.d and deb-systemd-invoke ask this script; 101 means "action forbidden".
printf '#!/bin/sh\nexit 101\n' >"$policy"
chmod 0755 "$policy"

log "installing Debian's prometheus package for promtool (no service start)"
apt-get update -q >/dev/null
DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1 apt-get install -y -q --no-install-recommends prometheus >/dev/null
restore_policy
trap - EXIT

# The package enables its service for the next boot; this install only wants the tool.
if [ -d /run/systemd/system ]; then
  systemctl disable prometheus.service >/dev/null 2>&1 || true
elif command -v update-rc.d >/dev/null 2>&1; then
  update-rc.d prometheus disable >/dev/null 2>&1 || true
fi

after=$(running)
[ "$after" = "$before" ] || die "a Prometheus server runs after the install (pids: $after); stop it with: systemctl stop prometheus"
path=$(command -v promtool) || die "the prometheus package is installed but promtool is not on PATH"
"$path" --version >/dev/null 2>&1 || die "$path --version failed"
printf '%s\n' "$path"

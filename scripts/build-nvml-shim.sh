#!/usr/bin/env bash
# Test only: builds the NVML shim (nvml-shim/, a libnvidia-ml.so.1 that serves GPUs from a JSON
# file) and places it as DIR/libnvidia-ml.so.1, then prints DIR. Run llama-orch against it with
#
#   LD_LIBRARY_PATH=DIR LLORCH_NVML_SHIM_STATE=/path/state.json llama-orchd …   (gpus: nvml)
#
#   scripts/build-nvml-shim.sh [--out DIR]
#
#   --out  where libnvidia-ml.so.1 goes [default: $CARGO_TARGET_DIR (or target/)/nvml-shim]
#
# The state file's format is in nvml-shim/src/lib.rs. Never install this where a real driver's
# library is found: it answers for GPUs that do not exist.
set -euo pipefail

log() { printf '[build-nvml-shim] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

repo=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
out="$target/nvml-shim"
while [ $# -gt 0 ]; do
  case "$1" in
    --out) [ $# -ge 2 ] || die "--out needs a directory"; out=$2; shift 2 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done

log "building llama-orch-nvml-shim"
(cd "$repo" && cargo build --locked -p llama-orch-nvml-shim >&2)
so="$target/debug/libllorch_nvml_shim.so"
[ -f "$so" ] || die "cargo built no $so"
mkdir -p "$out"
# Copy, then rename: a process loading the library meanwhile sees the old file or the new one.
cp "$so" "$out/.libnvidia-ml.so.1.$$"
mv -f "$out/.libnvidia-ml.so.1.$$" "$out/libnvidia-ml.so.1"
out=$(cd "$out" && pwd)
log "placed $out/libnvidia-ml.so.1"
printf '%s\n' "$out"

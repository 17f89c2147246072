#!/usr/bin/env bash
# Coverage-guided fuzzing on stable Rust with afl.rs (docs/testing.md, "Fuzzing"). Installs what
# it needs, builds the targets in fuzz/ with afl's instrumentation, runs each one in turn from
# its corpus plus its regressions, and fails if any run saved a crash or a hang.
#
#   scripts/fuzz.sh                      every target for 600 s
#   scripts/fuzz.sh --smoke              every target for 20 s (the test command's smoke)
#   scripts/fuzz.sh --seconds N [TARGET...]
#
# Output: fuzz/out/<target>/ (afl's queue, crashes/, hangs/) and fuzz/out/<target>.log.
set -euo pipefail
cd "$(dirname "$0")/.."

AFL_RS_VERSION=0.18.2
ALL_TARGETS=(manifest config task_request openai_request engine_sse)

seconds=600
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) seconds=20 ;;
    --seconds) seconds="$2"; shift ;;
    -h | --help) sed -n '2,10p' "$0"; exit 0 ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1") ;;
  esac
  shift
done
[ ${#targets[@]} -gt 0 ] || targets=("${ALL_TARGETS[@]}")

step() { printf '\n==> %s\n' "$*"; }

# cargo-afl builds AFL++ (afl-fuzz and the runtime the targets link) from the source bundled in
# the crate, with make and cc, into ~/.local/share/afl.rs. Without its LLVM plugins it
# instruments through rustc's own SanitizerCoverage flags, which work on stable; Debian's
# afl++ (4.04c) is not used: the runtime and afl-fuzz must come from the same AFL++.
step "cargo-afl $AFL_RS_VERSION and AFL++"
if ! command -v make >/dev/null || ! command -v cc >/dev/null; then
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q make gcc libc6-dev >/dev/null
fi
if ! cargo install --list | grep -q "^cargo-afl v$AFL_RS_VERSION:"; then
  cargo install cargo-afl --locked --version "$AFL_RS_VERSION"
fi
# Installing builds AFL++ for the current rustc; after a Rust upgrade it must be built again.
if ! out=$(cargo afl config --build 2>&1) && ! grep -q 'already built' <<<"$out"; then
  printf '%s\n' "$out" >&2
  exit 1
fi

# The instrumented build lives outside the checkout, so a fresh clone (CI) reuses the
# dependencies built last time; LLORCH_FUZZ_TARGET_DIR overrides it.
target_dir=${LLORCH_FUZZ_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/llama-orch/fuzz-target}
bin_dir="$target_dir/release"
step "instrumented targets ($bin_dir)"
(cd fuzz && CARGO_TARGET_DIR="$target_dir" cargo afl build --release --bins --locked)

export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1 AFL_NO_AFFINITY=1 AFL_FAST_CAL=1
# `cargo test` replays every file of fuzz/corpus and fuzz/regressions without afl
# (manifests/tests/fuzz_corpus.rs, api-server/tests/fuzz_corpus.rs).
failed=()
for target in "${targets[@]}"; do
  step "fuzz $target for ${seconds}s"
  [ -d "fuzz/corpus/$target" ] || { echo "no target $target (fuzz/corpus/$target)" >&2; exit 2; }
  # afl-fuzz skips a seed that crashes or hangs with only a warning, so every seed and
  # regression is first run once outside afl (the target then reads one input from stdin).
  bad=()
  for f in fuzz/corpus/"$target"/* fuzz/regressions/"$target"/*; do
    [ -f "$f" ] || continue
    (timeout 10 "$bin_dir/$target" <"$f" || exit 1) >/dev/null 2>&1 || bad+=("$f")
  done
  if [ ${#bad[@]} -gt 0 ]; then
    for f in "${bad[@]}"; do
      echo "$f crashes or hangs; reproduce with: $bin_dir/$target < $f" >&2
    done
    failed+=("$target (${#bad[@]} corpus or regression inputs fail)")
    continue
  fi
  seeds=$(mktemp -d)
  cp fuzz/corpus/"$target"/* "$seeds"/
  if [ -d "fuzz/regressions/$target" ]; then
    for f in fuzz/regressions/"$target"/*; do cp "$f" "$seeds/regression-$(basename "$f")"; done
  fi
  dict=()
  [ -f "fuzz/dict/$target.dict" ] && dict=(-x "fuzz/dict/$target.dict")
  out="fuzz/out/$target"
  rm -rf "$out"
  mkdir -p fuzz/out
  # -t 1000: an input that takes over a second is a hang; -m 2048: over 2 GiB is an OOM.
  if ! cargo afl fuzz -V "$seconds" -t 1000 -m 2048 "${dict[@]}" -i "$seeds" -o "$out" \
    -- "$bin_dir/$target" >"$out.log" 2>&1; then
    tail -n 20 "$out.log" >&2
    failed+=("$target (afl-fuzz failed: $out.log)")
    rm -rf "$seeds"
    continue
  fi
  rm -rf "$seeds"
  field() { sed -n "s/^$1 *: //p" "$out/default/fuzzer_stats"; }
  run_time=$(field run_time)
  execs=$(field execs_done)
  printf '%s: %ss, %s execs (%s/s), corpus %s, stability %s, crashes %s, hangs %s\n' \
    "$target" "$run_time" "$execs" "$((execs / (run_time > 0 ? run_time : 1)))" "$(field corpus_count)" \
    "$(field stability)" "$(field saved_crashes)" "$(field saved_hangs)"
  found=$(find "$out/default/crashes" "$out/default/hangs" -type f ! -name README.txt)
  if [ -n "$found" ]; then
    printf 'reproduce with: %s/%s < FILE\n%s\n' "$bin_dir" "$target" "$found" >&2
    failed+=("$target")
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  printf '\nfuzzing found problems in: %s\n' "${failed[*]}" >&2
  exit 1
fi

#!/usr/bin/env bash
# Fuzz smoke run (fuzz/README.md): builds every cargo-fuzz target, replays the inputs of crashes
# found before (fuzz/regressions/<target>/), then fuzzes each target for MAGNUM_FUZZ_SECONDS
# (default 20) from its seed corpus (fuzz/corpus/<target>/). Fails on any crash, panic, leak,
# timeout or out-of-memory; the failing input is left in fuzz/artifacts/<target>/.
#
# Needs the nightly toolchain (libFuzzer's instrumentation and AddressSanitizer); installs
# cargo-fuzz from crates.io when it is missing. New inputs found go to a temporary directory,
# not into the checked-in corpus.
#   MAGNUM_FUZZ_SECONDS=600 deploy/fuzz.sh            a longer run of every target
#   MAGNUM_FUZZ_TARGETS="csr json_patch" deploy/fuzz.sh   some targets only
#   MAGNUM_FUZZ_PROFILE=dev deploy/fuzz.sh            unoptimised build (CI's smoke run: the
#                                                     build, not the few seconds of fuzzing,
#                                                     is what costs there)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root/fuzz"
secs=${MAGNUM_FUZZ_SECONDS:-20}
toolchain=${MAGNUM_FUZZ_TOOLCHAIN:-nightly}
cargo_fuzz_version=0.13.2
# Instrumented builds of the dependencies are kept outside the checkout, so a fresh clone on the
# same machine (CI) rebuilds only what changed instead of everything.
target_dir=${MAGNUM_FUZZ_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/magnum-fuzz/target}

if ! rustup run "$toolchain" rustc --version >/dev/null 2>&1; then
  echo "fuzz: the $toolchain toolchain is not installed (rustup toolchain install $toolchain)" >&2
  exit 1
fi
if ! cargo fuzz --version 2>/dev/null | grep -q "$cargo_fuzz_version"; then
  echo "== installing cargo-fuzz $cargo_fuzz_version =="
  cargo install cargo-fuzz --locked --version "$cargo_fuzz_version"
fi

targets=${MAGNUM_FUZZ_TARGETS:-$(cargo +"$toolchain" fuzz list)}
started=$(date +%s)
echo "== building the fuzz targets: $(echo $targets) =="
case ${MAGNUM_FUZZ_PROFILE:-release} in
  release) profile_flag=(); profile_dir=release ;;
  dev) profile_flag=(--dev); profile_dir=debug ;;
  *) echo "fuzz: MAGNUM_FUZZ_PROFILE is release or dev" >&2; exit 2 ;;
esac
# The cache outlives the clone and keeps every stale artifact of earlier sources and lock files:
# past a bound it starts again, so it cannot fill the disk over many runs.
cache_limit_mib=${MAGNUM_FUZZ_CACHE_LIMIT_MIB:-12288}
if [ -d "$target_dir" ] && (($(du -sm "$target_dir" | cut -f1) > cache_limit_mib)); then
  echo "   the build cache $target_dir is over $cache_limit_mib MiB: removed"
  rm -rf "$target_dir"
fi
build_log=$(mktemp)
# No incremental state (never reused by these one-shot builds, about 1 GiB) and line tables only
# (what sanitizer reports need): half the disk of a default dev build.
if ! CARGO_INCREMENTAL=0 CARGO_PROFILE_DEV_DEBUG=line-tables-only CARGO_PROFILE_RELEASE_DEBUG=line-tables-only \
  cargo +"$toolchain" fuzz build "${profile_flag[@]}" --target-dir "$target_dir" >"$build_log" 2>&1; then
  # The whole diagnosis, not the last lines of a backtrace.
  grep -E -B2 -A12 "^error|error:|fatal|No space|Killed|signal" "$build_log" | head -n 80 || tail -n 80 "$build_log"
  df -h "$target_dir" /tmp || true
  echo "fuzz: building the targets failed (log above)" >&2
  rm -f "$build_log"
  exit 1
fi
rm -f "$build_log"
built=$(date +%s)
echo "   built in $((built - started)) s"

bin_dir=$target_dir/x86_64-unknown-linux-gnu/$profile_dir
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
# Bounds of one input: 10 s and 2 GiB (the conductor's own bodies are at most 8 MiB).
limits=(-rss_limit_mb=2048 -malloc_limit_mb=2048 -timeout=10)
failed=()

for t in $targets; do
  shopt -s nullglob
  regressions=(regressions/"$t"/*)
  shopt -u nullglob
  if ((${#regressions[@]})); then
    echo "== $t: replaying ${#regressions[@]} regression input(s) =="
    if ! "$bin_dir/$t" "${limits[@]}" "${regressions[@]}" >"$scratch/$t.replay.log" 2>&1; then
      tail -n 40 "$scratch/$t.replay.log"
      failed+=("$t (regression replay)")
      continue
    fi
  fi
done

for t in $targets; do
  echo "== $t: fuzzing for $secs s =="
  mkdir -p "$scratch/$t" "artifacts/$t"
  log="$scratch/$t.log"
  if "$bin_dir/$t" "${limits[@]}" -max_total_time="$secs" -print_final_stats=1 \
    -artifact_prefix="artifacts/$t/" "$scratch/$t" "corpus/$t" >"$log" 2>&1; then
    execs=$(awk '/stat::number_of_executed_units:/ { print $2 }' "$log")
    echo "   ok: ${execs:-?} executions, $(find "$scratch/$t" -type f | wc -l) new corpus inputs"
  else
    grep -E -A 30 "^==[0-9]+==|panicked at|SUMMARY" "$log" | head -n 60 || tail -n 60 "$log"
    echo "   CRASH: input saved in fuzz/artifacts/$t/ (keep it in fuzz/regressions/$t/ once fixed)"
    failed+=("$t")
  fi
done

echo "== fuzz: $(($(date +%s) - started)) s in all (build $((built - started)) s) =="
if ((${#failed[@]})); then
  echo "fuzz: failed: ${failed[*]}" >&2
  exit 1
fi

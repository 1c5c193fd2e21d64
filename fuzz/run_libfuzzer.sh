#!/bin/sh
# Runs one libFuzzer binary for a bounded time over a fresh copy of its seeds (ctest entry
# fuzz_<target>_libfuzzer). New inputs and crash artifacts land in WORK_DIR, never in the source
# tree.
#   run_libfuzzer.sh BINARY WORK_DIR SECONDS [SEED_DIR_OR_FILE...]
# Exit 77 (ctest: skipped) when BINARY is a contributed target that failed to build with clang.
set -eu
bin="$1"
work="$2"
secs="$3"
shift 3
if [ ! -x "$bin" ]; then
  if [ -e "$bin.build-failed" ]; then
    echo "SKIP: $(basename "$bin") did not build with clang; see $bin.build.log"
    exit 77
  fi
  echo "missing fuzzer binary $bin (was the clang fuzz build run?)" >&2
  exit 1
fi
rm -rf "$work"
mkdir -p "$work/corpus" "$work/artifacts"
n=0
for seed in "$@"; do
  # Seed dirs may nest; flatten them into the working corpus under unique names.
  find "$seed" -type f | sort | while read -r f; do
    n=$((n + 1))
    cp "$f" "$work/corpus/seed-$(basename "$seed")-$n-$(basename "$f")"
  done
done
cd "$work"
# Leak detection stays on (libFuzzer's default). Where LeakSanitizer cannot run (under ptrace,
# some sandboxes) set ASAN_OPTIONS=detect_leaks=0 in the environment. -max_len is left to
# libFuzzer: 4096 or the largest seed, whichever is larger.
UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}" \
exec "$bin" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
  -artifact_prefix="$work/artifacts/" "$work/corpus"

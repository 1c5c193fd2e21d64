#!/bin/sh
# Builds the libFuzzer sub-build: the required targets (a failure fails the main build), then each
# optional target on its own; an optional target that fails is removed and its log kept, and its
# ctest entry reports the skip (fuzz/run_libfuzzer.sh).
#   build.sh BUILD_DIR [OPTIONAL_TARGET...]
set -eu
dir="$1"
shift
cmake --build "$dir" -j 2
for t in "$@"; do
  if cmake --build "$dir" -j 2 --target "$t" >"$dir/$t.build.log" 2>&1; then
    rm -f "$dir/$t.build-failed"
  else
    rm -f "$dir/$t"
    touch "$dir/$t.build-failed"
    echo "warning: optional fuzz target $t did not build with clang; see $dir/$t.build.log" >&2
  fi
done

#!/usr/bin/env bash
# Set up, build into build/ and run every test; ends with ctest's summary.
#   ./test.sh               everything
#   ./test.sh -L unit       one area (labels: unit integration kms providers tools tee keyd kubectl)
# Fuzz targets always run in ctest through a standalone replay driver; when clang is installed they
# are also built with libFuzzer + ASan/UBSan into build/fuzz-clang/ and each runs a short bounded
# session (15 s) as a ctest entry (label fuzz).
set -euo pipefail
cd "$(dirname "$0")"
./scripts/install-deps.sh
JOBS="${KSHIELD_JOBS:-$(nproc)}"
fuzz_flag=OFF
if command -v clang++ >/dev/null 2>&1; then fuzz_flag=ON; fi
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DKSHIELD_FUZZ_CLANG="${fuzz_flag}" >/dev/null
ninja -C build -j"${JOBS}"
cd build
exec ctest --output-on-failure -j"${JOBS}" --timeout 600 "$@"

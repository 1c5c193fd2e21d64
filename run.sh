#!/usr/bin/env bash
# Set up, build (Release) and start kshield-kms on its embedded default:
#   a `local` keyset created on first start under ./var/lib/kshield-kms (sealing key 0600 there),
#   KMS socket ./var/run/kshield-kms.sock, admin socket ./var/run/kshield-kms-admin.sock,
#   HTTP /healthz /readyz /metrics on 127.0.0.1:8787.
# Prints the EncryptionConfiguration snippet for kube-apiserver and serves until Ctrl-C.
# Extra arguments are passed to kshield-kms (e.g. ./run.sh --log-level=debug).
set -euo pipefail
cd "$(dirname "$0")"
./scripts/install-deps.sh
cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=Release -DKSHIELD_BENCH=ON >/dev/null
ninja -C build-release -j"$(nproc)" kshield-kms
mkdir -p var
exec ./build-release/bin/kshield-kms \
  --socket var/run/kshield-kms.sock \
  --admin-socket var/run/kshield-kms-admin.sock \
  --data-dir var/lib/kshield-kms \
  --http 127.0.0.1:8787 "$@"

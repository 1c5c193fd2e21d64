#!/usr/bin/env bash
# Installs every Debian 12 package kshield's build, tests and benchmarks need.
# Idempotent: packages already present are skipped; apt is only called for what is missing.
# Works as root, uses sudo otherwise. Nothing is downloaded outside apt.
set -euo pipefail

PACKAGES=(
  # toolchain
  build-essential cmake ninja-build pkg-config git clang libclang-rt-14-dev
  # libraries
  libssl-dev libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc libabsl-dev
  libyaml-cpp-dev nlohmann-json3-dev libspdlog-dev libfmt-dev libcli11-dev libboost-dev
  libp11-kit-dev libgtest-dev libgmock-dev googletest libbenchmark-dev
  # real components used by tests (never mocks)
  etcd-server etcd-client softhsm2 opensc python3-pykmip prometheus
  python3-grpcio python3-protobuf
  # test helpers: setpriv (util-linux), ps/pgrep (procps), curl, wrk
  util-linux procps curl wrk openssl
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# --no-install-recommends keeps the image small; prometheus's recommends pull in web assets we don't need.
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
# The Debian prometheus / etcd packages start system services on install; our tests start their own
# instances on free loopback ports, so stop the system ones if an init system started them.
for svc in prometheus etcd; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
    $SUDO systemctl stop "$svc" || true
  fi
done
echo "install-deps: done"

#!/usr/bin/env bash
# Provider comparison (issue 3 §5): v2 Encrypt, v2 Decrypt and v1 Encrypt at 64 clients against
# kshield-kms with each provider, in one run, with ratios to pkcs11 direct (the per-call design).
#
#   bench/providers.sh [BUILD_DIR] [SECONDS_PER_OP]
#
# Sets up its own SoftHSM2 token and PyKMIP server in a temp dir on loopback (nothing else is
# touched) and removes them at the end.
set -euo pipefail
BUILD=${1:-build}
SECS=${2:-5}
BIN=$(cd "$BUILD/bin" && pwd)
T=$(mktemp -d /tmp/kshield-provbench-XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -n "${KMIP_PGID:-}" ] && kill -- -"$KMIP_PGID" 2>/dev/null || true
  sleep 1
  [ -n "${KMIP_PGID:-}" ] && kill -9 -- -"$KMIP_PGID" 2>/dev/null || true
  rm -rf "$T"
}
trap cleanup EXIT
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start_kms() {  # name config-file
  local name=$1 cfg=$2
  "$BIN/kshield-kms" --config "$cfg" --socket "$T/$name.sock" --admin-socket "$T/$name-admin.sock" \
    --data-dir "$T/$name-data" --http off --no-snippet --log-level warn >"$T/$name.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 300); do
    "$BIN/kshieldctl" --socket "$T/$name.sock" --admin-socket "$T/$name-admin.sock" --timeout 1 status \
      >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "kshield-kms ($name) did not become healthy:"; cat "$T/$name.log"; return 1
}

declare -A RATE
run_ops() {  # name
  for op in encrypt decrypt v1-encrypt; do
    line=$("$BIN/kshield-bench" kms --socket "$T/$1.sock" --clients 64 --duration "$SECS" --op "$op")
    echo "$1 $line"
    RATE["$1/$op"]=$(sed -n 's/.*ops\/s=\([0-9]*\).*/\1/p' <<<"$line")
  done
}

# --- local
echo "provider: local" >"$T/local.yaml"
start_kms local "$T/local.yaml"

# --- pkcs11 (SoftHSM2), cached and direct
if [ -x /usr/bin/softhsm2-util ] && [ -f /usr/lib/softhsm/libsofthsm2.so ]; then
  mkdir -p "$T/tokens"
  printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' "$T" >"$T/softhsm2.conf"
  export SOFTHSM2_CONF="$T/softhsm2.conf"
  softhsm2-util --init-token --free --label kshield-bench --so-pin 87654321 --pin 12345678 >/dev/null
  pkcs11-tool --module /usr/lib/softhsm/libsofthsm2.so --token-label kshield-bench --login --pin 12345678 \
    --keygen --key-type AES:32 --label kshield-master >/dev/null 2>&1
  printf '12345678' >"$T/pin"; chmod 600 "$T/pin"
  for mode in cached direct; do
    cat >"$T/pkcs11-$mode.yaml" <<EOC
provider: pkcs11
pkcs11:
  module: /usr/lib/softhsm/libsofthsm2.so
  token_label: kshield-bench
  pin_file: $T/pin
  master_key_label: kshield-master
  mode: $mode
  sessions: 16
EOC
    start_kms "pkcs11-$mode" "$T/pkcs11-$mode.yaml" || true
  done
fi

# --- kmip (PyKMIP)
if [ -x /usr/bin/pykmip-server ]; then
  K="$T/kmip"; mkdir -p "$K/policies"; PORT=$(free_port)
  (cd "$K"
   openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -keyout ca.key -out ca.pem -subj /CN=bench-ca 2>/dev/null
   printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >server.ext
   printf 'extendedKeyUsage=clientAuth\n' >client.ext
   for n in server client; do
     openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $n.key -out $n.csr -subj /CN=$n 2>/dev/null
     openssl x509 -req -in $n.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -out $n.pem -extfile $n.ext 2>/dev/null
   done
   cat >server.conf <<EOC
[server]
hostname=127.0.0.1
port=$PORT
certificate_path=$K/server.pem
key_path=$K/server.key
ca_path=$K/ca.pem
auth_suite=TLS1.2
enable_tls_client_auth=True
policy_path=$K/policies
database_path=$K/pykmip.db
logging_level=WARNING
EOC
  )
  setsid /usr/bin/pykmip-server -f "$K/server.conf" -l "$K/server.log" >"$K/out.log" 2>&1 &
  KMIP_PGID=$!
  # PyKMIP's Python start-up takes seconds: wait until it accepts TCP before starting the plugin.
  for _ in $(seq 1 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
    sleep 0.1
  done
  cat >"$T/kmip.yaml" <<EOC
provider: kmip
kmip:
  endpoint: 127.0.0.1:$PORT
  ca_file: $K/ca.pem
  cert_file: $K/client.pem
  key_file: $K/client.key
  server_name: 127.0.0.1
EOC
  start_kms kmip "$T/kmip.yaml" || true
fi

echo "# $(date -u +%FT%TZ) $(nproc) cores; 64 clients, 1 connection, ${SECS}s per op"
for name in local pkcs11-cached pkcs11-direct kmip; do
  [ -S "$T/$name.sock" ] && run_ops "$name"
done
if [ -n "${RATE[pkcs11-direct/encrypt]:-}" ]; then
  echo "# ratios to pkcs11 direct (goal: cached >= 5x)"
  for name in local pkcs11-cached kmip; do
    for op in encrypt decrypt v1-encrypt; do
      base=${RATE[pkcs11-direct/$op]}; v=${RATE[$name/$op]:-}
      [ -n "$v" ] && [ "$base" -gt 0 ] && awk -v n="$name" -v o="$op" -v a="$v" -v b="$base" \
        'BEGIN { printf "%-14s %-10s %6.1fx\n", n, o, a / b }'
    done
  done
fi

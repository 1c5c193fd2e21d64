#!/usr/bin/env bash
# kshield-kubectl proxy vs the real `kubectl proxy` (issue 6 §5): wrk, small GET of one Secret
# (/api/v1/namespaces/default/secrets/s1, ~0.4 KiB of JSON) against the same test apiserver:
#
#   (a) daemon         https://127.0.0.1:<daemon>/clusters/bench/...   local token (Bearer) from
#                      `kshield-kubectl credential`; upstream: client certificate (imported)
#   (b) kubectl proxy  http://127.0.0.1:<port>/...                     `kubectl proxy` with a
#                      kubeconfig holding the same kind of client certificate
#   (c) direct         https://127.0.0.1:<apiserver>/...               straight to the test
#                      apiserver; wrk cannot present a client certificate, so this run
#                      authenticates with a bearer token the test apiserver also accepts (the
#                      same TLS listener and handler; only the identity lookup differs: a token
#                      compare instead of reading the already-verified certificate's CN)
#
#   bench/kubectl_proxy.sh [BUILD_DIR] [SECONDS]        (defaults: build, 10)
#   env: CONNECTIONS (32), THREADS (wrk threads, 2), PROXY_THREADS (the daemon's proxy_threads, 2)
#
# Two measurements per target: throughput (requests/s, p50, p99) at $CONNECTIONS keep-alive
# connections, and latency at ONE connection (p50, p99), because at 32 connections on a small
# machine the latency is mostly queueing. During the throughput run the proxy process's own CPU
# time (user + system, from /proc/PID/stat) is divided by the requests it served: "cpu us/req",
# which depends far less on what else the machine is doing than requests/s does.
# "added p50" = p50(target, 1 conn) - p50(direct, 1 conn).
# Goal (issue 6 §5): daemon >= 2 x kubectl proxy throughput, added p50 <= 0.3 ms.
#
# Needs: wrk, kubectl, openssl, python3, and BUILD_DIR/bin/kshield-kubectl,
# BUILD_DIR/tests/kshield-test-apiserver. Everything runs on loopback in a temp dir that is
# removed at the end; only processes this script started are stopped.
set -euo pipefail
BUILD=${1:-build}
SECS=${2:-10}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
PROXY_THREADS=${PROXY_THREADS:-2}
BIN=$(cd "$BUILD/bin" && pwd)
TBIN=$(cd "$BUILD/tests" && pwd)
for tool in wrk kubectl openssl python3; do
  command -v "$tool" >/dev/null || { echo "kubectl_proxy.sh: $tool not found" >&2; exit 77; }
done
for f in "$BIN/kshield-kubectl" "$TBIN/kshield-test-apiserver"; do
  [ -x "$f" ] || { echo "kubectl_proxy.sh: $f not built" >&2; exit 77; }
done

T=$(mktemp -d /tmp/kshield-kubectl-bench-XXXXXX)
chmod 700 "$T"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$T"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() {  # seconds command...
  local n=$(( $1 * 20 )); shift
  for _ in $(seq 1 "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.05; done
  return 1
}

# --- PKI (openssl CLI: cluster CA, apiserver serving cert, one client cert) ----------------------
cd "$T"
ec() { openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "$@" 2>/dev/null; }
ec -x509 -keyout ca.key -out ca.pem -days 1 -subj /CN=bench-cluster-ca
ec -keyout srv.key -out srv.csr -subj /CN=bench-apiserver
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >srv.ext
openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem -days 1 \
  -extfile srv.ext 2>/dev/null
ec -keyout alice.key -out alice.csr -subj "/O=dev/CN=alice"
printf 'extendedKeyUsage=clientAuth\n' >cli.ext
openssl x509 -req -in alice.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out alice.pem -days 1 \
  -extfile cli.ext 2>/dev/null
DIRECT_TOKEN=$(openssl rand -hex 24)
echo "$DIRECT_TOKEN" >tokens
chmod 600 ./*.key tokens

# --- the upstream: one test apiserver (client certs from ca.pem, or the direct token) -----------
"$TBIN/kshield-test-apiserver" --cert srv.pem --key srv.key --client-ca ca.pem \
  --token-file tokens --name bench >apiserver.out 2>apiserver.err &
PIDS+=($!)
wait_for 10 grep -q listening apiserver.out || { cat apiserver.err; exit 1; }
API_PORT=$(sed -n 's/^listening 127.0.0.1://p' apiserver.out)

kubeconfig_for() {  # file server-url
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: bench
  cluster:
    server: $2
    certificate-authority-data: $(base64 -w0 ca.pem)
users:
- name: alice
  user:
    client-certificate-data: $(base64 -w0 alice.pem)
    client-key-data: $(base64 -w0 alice.key)
contexts:
- name: bench
  context: {cluster: bench, user: alice}
current-context: bench
EOF
  chmod 600 "$1"
}

# --- (a) kshield-kubectl daemon, the client certificate imported into its memory ---------------
mkdir -m 700 xdg home
SOCK="$T/xdg/kshield-kubectl.sock"
cat >daemon.yaml <<EOF
listen_port: 0
control_socket: $SOCK
audit_log: $T/audit.log
log_level: warn
proxy_threads: ${PROXY_THREADS}
clusters:
  - name: bench
    server: https://127.0.0.1:$API_PORT
    ca_file: $T/ca.pem
    credential: imported
EOF
KSH() { HOME="$T/home" XDG_RUNTIME_DIR="$T/xdg" "$BIN/kshield-kubectl" --socket "$SOCK" "$@"; }
HOME="$T/home" XDG_RUNTIME_DIR="$T/xdg" "$BIN/kshield-kubectl" daemon --config daemon.yaml \
  >daemon.log 2>&1 &
PIDS+=($!)
DAEMON_PID=$!
wait_for 20 KSH status || { cat daemon.log; exit 1; }
kubeconfig_for import.kubeconfig "https://127.0.0.1:$API_PORT"
KSH import import.kubeconfig --delete >/dev/null
DAEMON_PORT=$(KSH status -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["port"])')
LOCAL_TOKEN=$(KSH credential --cluster bench | python3 -c \
  'import json,sys; print(json.load(sys.stdin)["status"]["token"])')

# --- (b) the real kubectl proxy ------------------------------------------------------------------
kubeconfig_for proxy.kubeconfig "https://127.0.0.1:$API_PORT"
KP_PORT=$(free_port)
HOME="$T/home" kubectl --kubeconfig proxy.kubeconfig proxy --address 127.0.0.1 --port "$KP_PORT" \
  >kubectl-proxy.log 2>&1 &
PIDS+=($!)
KP_PID=$!
wait_for 20 python3 -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$KP_PORT/version')" \
  || { cat kubectl-proxy.log; exit 1; }

P=/api/v1/namespaces/default/secrets/s1
URL_DAEMON="https://127.0.0.1:$DAEMON_PORT/clusters/bench$P"
URL_PROXY="http://127.0.0.1:$KP_PORT$P"
URL_DIRECT="https://127.0.0.1:$API_PORT$P"

# Sanity: every target answers 200 with the Secret before we measure.
check() {  # url [token]
  python3 - "$@" <<'EOF'
import ssl, sys, urllib.request
url = sys.argv[1]
req = urllib.request.Request(url)
if len(sys.argv) > 2: req.add_header("Authorization", "Bearer " + sys.argv[2])
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
body = urllib.request.urlopen(req, context=ctx).read()
assert b'"name":"s1"' in body, body[:200]
EOF
}
check "$URL_DAEMON" "$LOCAL_TOKEN"
check "$URL_PROXY"
check "$URL_DIRECT" "$DIRECT_TOKEN"

# wrk output → "rps p50_ms p99_ms" (latency lines are like "50%  1.23ms" / "99%  850.00us").
run_wrk() {  # connections threads url [token]
  local c=$1 t=$2 url=$3 tok=${4:-}
  local hdr=()
  [ -n "$tok" ] && hdr=(-H "Authorization: Bearer $tok")
  wrk -t"$t" -c"$c" -d"${SECS}s" --latency "${hdr[@]}" "$url" | python3 -c '
import re, sys
text = sys.stdin.read()
def ms(v, unit):
    return float(v) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
lat = {p: ms(v, u) for p, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)}
errs = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
if errs: sys.stderr.write("wrk: %s non-2xx responses\n" % errs.group(1))
print(rps, lat["50"], lat["99"], errs.group(1) if errs else 0)
'
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }  # utime + stime, clock ticks
TICK=$(getconf CLK_TCK)

declare -A RPS P50 P99 L50 L99 CPU
echo "kshield-kubectl proxy benchmark: GET $P, ${SECS}s per run, $(nproc) cores"
for target in daemon kubectl-proxy direct; do
  case $target in
    daemon) url=$URL_DAEMON tok=$LOCAL_TOKEN pid=$DAEMON_PID ;;
    kubectl-proxy) url=$URL_PROXY tok= pid=$KP_PID ;;
    direct) url=$URL_DIRECT tok=$DIRECT_TOKEN pid= ;;
  esac
  # Warm-up (connection pools, discovery) so the measured runs see steady state.
  SECS=2 run_wrk 4 1 "$url" "$tok" >/dev/null
  [ -n "$pid" ] && t0=$(cpu_ticks "$pid")
  read -r rps p50 p99 bad < <(run_wrk "$CONNECTIONS" "$THREADS" "$url" "$tok")
  [ "$bad" = 0 ] || { echo "$target: $bad non-2xx responses" >&2; exit 1; }
  RPS[$target]=$rps P50[$target]=$p50 P99[$target]=$p99 CPU[$target]=-
  if [ -n "$pid" ]; then
    CPU[$target]=$(python3 -c "print('%.0f' % (($(cpu_ticks "$pid") - $t0) / $TICK / ($rps * $SECS) * 1e6))")
  fi
  read -r _ l50 l99 bad < <(run_wrk 1 1 "$url" "$tok")
  [ "$bad" = 0 ] || { echo "$target: $bad non-2xx responses" >&2; exit 1; }
  L50[$target]=$l50 L99[$target]=$l99
done

printf '\n%-15s %12s %10s %10s %12s   %12s %12s\n' target "req/s@$CONNECTIONS" "p50 ms" "p99 ms" \
  "cpu us/req" "p50 ms@1" "p99 ms@1"
for target in daemon kubectl-proxy direct; do
  printf '%-15s %12.0f %10.3f %10.3f %12s   %12.3f %12.3f\n' "$target" "${RPS[$target]}" \
    "${P50[$target]}" "${P99[$target]}" "${CPU[$target]}" "${L50[$target]}" "${L99[$target]}"
done
python3 - "${RPS[daemon]}" "${RPS[kubectl-proxy]}" "${RPS[direct]}" "${L50[daemon]}" \
  "${L50[kubectl-proxy]}" "${L50[direct]}" "${CPU[daemon]}" "${CPU[kubectl-proxy]}" <<'EOF'
import sys
rd, rk, rx, ld, lk, lx, cd, ck = map(float, sys.argv[1:])
print()
print("throughput daemon / kubectl proxy: %.2fx   (goal >= 2x)" % (rd / rk))
print("CPU per request kubectl proxy / daemon: %.2fx" % (ck / cd))
print("throughput daemon / direct:        %.2fx" % (rd / rx))
print("added p50 over direct (1 conn):    daemon %.3f ms (goal <= 0.3 ms), kubectl proxy %.3f ms"
      % (ld - lx, lk - lx))
EOF

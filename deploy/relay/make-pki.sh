#!/bin/sh
# Builds the relay's PKI with the openssl CLI (docs/relay.md "Building the PKI"):
#   root.key / root.crt           the global root, 10 years. Move root.key OFFLINE afterwards:
#                                 the relay never needs it.
#   <cluster>-ca.key / -ca.crt    one intermediate CA per cluster (pathlen 0, 1 year), signed by
#                                 the root. The relay holds these keys (0600).
#
# Usage: make-pki.sh OUT_DIR CLUSTER [CLUSTER...]
#        ROOT_DIR=/media/offline make-pki.sh OUT_DIR CLUSTER...   # reuse an existing root
#
# Each cluster's kube-apiserver trusts ONLY its own intermediate:
#   kube-apiserver --client-ca-file=<cluster>-ca.crt
# (trusting root.crt instead would let a certificate issued for one cluster log in to another).
set -eu

if [ $# -lt 2 ]; then
  echo "usage: $0 OUT_DIR CLUSTER [CLUSTER...]" >&2
  exit 2
fi
out=$1
shift
umask 077
mkdir -p "$out"
root_dir=${ROOT_DIR:-$out}
ext=$(mktemp)
trap 'rm -f "$ext"' EXIT

newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }
serial() { echo "0x$(openssl rand -hex 16)"; }

if [ ! -f "$root_dir/root.crt" ]; then
  newkey "$root_dir/root.key"
  openssl req -x509 -new -key "$root_dir/root.key" -sha256 -days 3650 \
    -subj "/O=kshield/CN=kshield global root" -set_serial "$(serial)" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash" \
    -out "$root_dir/root.crt"
  echo "created $root_dir/root.crt and $root_dir/root.key (move root.key offline)"
fi
[ "$root_dir" = "$out" ] || cp "$root_dir/root.crt" "$out/root.crt"

cat >"$ext" <<'X'
basicConstraints=critical,CA:TRUE,pathlen:0
keyUsage=critical,keyCertSign,cRLSign,digitalSignature
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid:always
X
for cluster in "$@"; do
  newkey "$out/$cluster-ca.key"
  openssl req -new -key "$out/$cluster-ca.key" -subj "/O=kshield/CN=kshield $cluster cluster CA" \
    -out "$out/$cluster-ca.csr"
  openssl x509 -req -in "$out/$cluster-ca.csr" -CA "$root_dir/root.crt" \
    -CAkey "$root_dir/root.key" -set_serial "$(serial)" -days 365 -sha256 -extfile "$ext" \
    -out "$out/$cluster-ca.crt"
  rm -f "$out/$cluster-ca.csr"
  chmod 600 "$out/$cluster-ca.key"
  echo "created $out/$cluster-ca.crt and $out/$cluster-ca.key"
done

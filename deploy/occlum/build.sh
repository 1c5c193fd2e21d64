#!/bin/bash
# Builds an Occlum instance running kshield (kshield-kms or kshield-keyd) with --tee occlum.
#
# NOT RUN BY kshield's CI (no SGX there). Needs the Occlum toolchain (occlum, copy_bom, jq) on an
# SGX host with the DCAP stack; see docs/tee.md ("Occlum").
#
#   deploy/occlum/build.sh [instance_dir] [sign_key.pem]
#   cd occlum_instance && occlum run /bin/kshield-keyd --tee occlum --config /etc/kshield/kshield-keyd.yaml
#
# Inside Occlum, OCCLUM=yes (Occlum.json env) and /dev/sgx let `--tee auto` pick `occlum` too;
# quotes come from SGXIOC_GEN_DCAP_QUOTE and the sealing key from SGXIOC_GET_KEY (MRENCLAVE policy).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
instance="${1:-occlum_instance}"
sign_key="${2:-}"

for tool in occlum copy_bom jq; do
  command -v "$tool" >/dev/null || { echo "build.sh: $tool not found (install Occlum)" >&2; exit 2; }
done

rm -rf "$instance"
occlum new "$instance"
cd "$instance"

copy_bom -f "$here/kshield.yaml" --root image --include-dir /opt/occlum/etc/template

# Merge our settings into the generated Occlum.json (debuggable: false, OCCLUM=yes, limits).
jq -s '.[0] * .[1]' Occlum.json "$here/Occlum.json.patch.json" > Occlum.json.new
mv Occlum.json.new Occlum.json

if [[ -n "$sign_key" ]]; then
  occlum build --sign-key "$sign_key"
else
  occlum build
fi

# The measurement a peer's attestation policy pins (docs/tee.md, "Computing MRENCLAVE").
if occlum print mrenclave >/dev/null 2>&1; then
  echo "MRENCLAVE: $(occlum print mrenclave)"
  echo "MRSIGNER:  $(occlum print mrsigner)"
else
  echo "read MRENCLAVE with: sgx_sign dump -enclave build/lib/libocclum-libos.signed.so -dumpfile sigstruct.txt"
fi

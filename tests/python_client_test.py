#!/usr/bin/python3
"""Proves the kshield-kms wire from another language: Python grpcio with stubs generated at test
time from our .proto files by the system protoc and grpc_python_plugin.

usage: python_client_test.py BIN_DIR PROTO_DIR
Exit 0 on success; prints 'SKIP: <reason>' and exits 77 when a prerequisite is missing.
"""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time


def skip(reason):
    print("SKIP: " + reason)
    sys.exit(77)


def main():
    bin_dir, proto_dir = sys.argv[1], sys.argv[2]
    try:
        import grpc  # noqa: F401
    except ImportError:
        skip("python3-grpcio is not installed")
    plugin = "/usr/bin/grpc_python_plugin"
    if not os.access(plugin, os.X_OK):
        skip("grpc_python_plugin (protobuf-compiler-grpc) is not installed")

    with tempfile.TemporaryDirectory(prefix="kshield-py-") as tmp:
        gen = os.path.join(tmp, "gen")
        os.mkdir(gen)
        subprocess.run(
            ["protoc", "-I", proto_dir, "--python_out=" + gen, "--grpc_python_out=" + gen,
             "--plugin=protoc-gen-grpc_python=" + plugin, "kms_v2.proto", "kms_v1beta1.proto"],
            check=True)
        sys.path.insert(0, gen)
        import grpc
        import kms_v2_pb2
        import kms_v2_pb2_grpc
        import kms_v1beta1_pb2
        import kms_v1beta1_pb2_grpc

        sock = os.path.join(tmp, "kms.sock")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        log = open(os.path.join(tmp, "kms.log"), "w")
        proc = subprocess.Popen(
            [os.path.join(bin_dir, "kshield-kms"), "--socket=" + sock,
             "--admin-socket=" + os.path.join(tmp, "admin.sock"),
             "--data-dir=" + os.path.join(tmp, "data"), "--http=127.0.0.1:%d" % port,
             "--no-snippet"], stdout=log, stderr=log)
        try:
            channel = grpc.insecure_channel("unix:" + sock)
            v2 = kms_v2_pb2_grpc.KeyManagementServiceStub(channel)
            deadline = time.time() + 20
            status = None
            while time.time() < deadline:
                try:
                    status = v2.Status(kms_v2_pb2.StatusRequest(), timeout=1)
                    break
                except grpc.RpcError:
                    if proc.poll() is not None:
                        raise SystemExit("kshield-kms exited: " + open(log.name).read())
                    time.sleep(0.05)
            assert status is not None, "kshield-kms never answered Status"
            assert status.version == "v2", status
            assert status.healthz == "ok", status
            assert status.key_id.startswith("ksh1:"), status

            seed = os.urandom(32)
            enc = v2.Encrypt(kms_v2_pb2.EncryptRequest(plaintext=seed, uid="py-1"), timeout=3)
            assert enc.key_id == status.key_id
            dec = v2.Decrypt(kms_v2_pb2.DecryptRequest(ciphertext=enc.ciphertext, uid="py-1",
                                                       key_id=enc.key_id), timeout=3)
            assert dec.plaintext == seed

            try:
                v2.Decrypt(kms_v2_pb2.DecryptRequest(ciphertext=enc.ciphertext[:-1] + b"\0",
                                                     key_id=enc.key_id), timeout=3)
                raise AssertionError("tampered ciphertext decrypted")
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e
                assert e.details() == "authentication failed", e.details()

            v1 = kms_v1beta1_pb2_grpc.KeyManagementServiceStub(channel)
            ver = v1.Version(kms_v1beta1_pb2.VersionRequest(version="v1beta1"), timeout=3)
            assert ver.version == "v1beta1"
            dek = os.urandom(32)
            c = v1.Encrypt(kms_v1beta1_pb2.EncryptRequest(version="v1beta1", plain=dek), timeout=3)
            p = v1.Decrypt(kms_v1beta1_pb2.DecryptRequest(version="v1beta1", cipher=c.cipher),
                           timeout=3)
            assert p.plain == dek
            try:
                v1.Encrypt(kms_v1beta1_pb2.EncryptRequest(version="v2", plain=dek), timeout=3)
                raise AssertionError("wrong v1 version accepted")
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e
            print("python client: v2 Status/Encrypt/Decrypt and v1beta1 Version/Encrypt/Decrypt ok")
        finally:
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(timeout=20)
            assert rc == 0, "kshield-kms exit code %d" % rc
    return 0


if __name__ == "__main__":
    sys.exit(main())

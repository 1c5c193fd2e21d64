#!/usr/bin/env python3
"""Regenerates the seed corpora under fuzz/corpus/ (deterministic: same bytes every run).

    python3 fuzz/make_seed_corpus.py

The keyset files are protobuf (proto/keyset.proto) encoded by hand, framed as keyset_store.h
describes: "KSHKEYS1" | uint32-BE length | body | SHA-256 of all before. Key material in them is
filler derived from SHA-256 of a label, never a real key.
"""
import hashlib
import os
import struct

BASE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def write(target, name, data):
    os.makedirs(os.path.join(BASE, target), exist_ok=True)
    with open(os.path.join(BASE, target, name), "wb") as f:
        f.write(data)


def det(n, tag):
    out, i = b"", 0
    while len(out) < n:
        out += hashlib.sha256(tag.encode() + bytes([i])).digest()
        i += 1
    return out[:n]


# --- wrapped DEK (keys/wrapped_dek.h): "kS" | format | version BE32 | nonce12 | ct | tag16
def wrapped(fmt, ver, ct_len, tag):
    return (b"kS" + bytes([fmt]) + struct.pack(">I", ver) + det(12, tag + "n") +
            det(ct_len, tag + "c") + det(16, tag + "t"))


write("wrapped_dek_fuzz", "v2_seed32", wrapped(1, 1, 32, "a"))
write("wrapped_dek_fuzz", "v1beta1_dek32", wrapped(2, 7, 32, "b"))
write("wrapped_dek_fuzz", "v2_min_size", wrapped(1, 2, 1, "c"))
write("wrapped_dek_fuzz", "v2_max_version", wrapped(1, 0xFFFFFFFF, 32, "d"))
write("wrapped_dek_fuzz", "v2_max_size", wrapped(1, 3, 1024 - 7 - 12 - 16, "e"))

# --- key_id (keys/key_id.h)
for name, s in [("v1", "ksh1:0123456789abcdef:1"), ("v42", "ksh1:a1b2c3d4e5f60718:42"),
                ("vmax", "ksh1:ffffffffffffffff:4294967295"),
                ("bad_prefix", "ksh2:0123456789abcdef:7")]:
    write("key_id_fuzz", name, s.encode())


# --- keyset file (keys/keyset_store.h, proto/keyset.proto)
def varint(n):
    out = b""
    while True:
        b, n = n & 0x7F, n >> 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def ld(field, data):
    return varint(field << 3 | 2) + varint(len(data)) + data


def vi(field, n):
    return varint(field << 3) + varint(n)


def version(v, state, created, provider, material):
    return vi(1, v) + vi(2, state) + vi(3, created) + ld(4, provider) + ld(5, material)


def record(keyset_id, versions, next_version):
    body = vi(1, 1) + ld(2, keyset_id)
    for v in versions:
        body += ld(3, version(*v))
    return body + vi(4, next_version)


def frame(body):
    out = b"KSHKEYS1" + struct.pack(">I", len(body)) + body
    return out + hashlib.sha256(out).digest()


PRIMARY, ACTIVE, RETIRED = 1, 2, 3
r1 = record(b"0123456789abcdef", [(1, PRIMARY, 1700000000, b"local", b"L1" + det(60, "m1"))], 2)
r3 = record(b"a1b2c3d4e5f60718",
            [(1, RETIRED, 1700000000, b"local", b""),
             (2, ACTIVE, 1700000100, b"local", b"L1" + det(60, "m2")),
             (4, PRIMARY, 1700000200, b"pkcs11", b"W" + det(40, "m4"))], 5)
no_primary = record(b"0123456789abcdef",
                    [(1, ACTIVE, 1, b"static", b""), (2, ACTIVE, 2, b"static", b"")], 3)
write("keyset_file_fuzz", "file_one_version", frame(r1))
write("keyset_file_fuzz", "file_three_versions", frame(r3))
write("keyset_file_fuzz", "file_no_primary", frame(no_primary))
# The target also frames its input itself, so bare bodies are useful seeds too.
write("keyset_file_fuzz", "body_one_version", r1)
write("keyset_file_fuzz", "body_three_versions", r3)

# --- static emergency keys file (keys/static_provider.h)
import base64


def b64key(tag):
    return base64.b64encode(det(32, tag)).decode()


write("static_keys_fuzz", "two_versions_yaml",
      ("# kshield static emergency keys\n1: %s\n2: %s\n" % (b64key("s1"), b64key("s2"))).encode())
write("static_keys_fuzz", "space_syntax_crlf_quoted",
      ("7 %s\r\n\n9: \"%s\"" % (b64key("s7"), b64key("s9"))).encode())
write("static_keys_fuzz", "max_version", ("4294967294: %s\n" % b64key("smax")).encode())

// kube-apiserver's etcd storage formats (DESIGN.md §4), one include for users of src/envelope/:
//
//   value_kind.h  ClassifyValue / SplitValuePrefix: which transformer wrote a value
//   kms_v2.h      KMS v2 EncryptedObject values: parse, build (rewrap), decrypt, encrypt
//   kms_v1.h      KMS v1 values: parse, build, GCM decrypt / encrypt, legacy CBC decrypt
//   secret.h      the decrypted Secret protobuf: decode, encode, kubectl YAML
//
// Everything here parses untrusted bytes read from etcd: every function returns a status for bad
// input and never asserts on it (fuzz/envelope_fuzz.cc). All functions are stateless and
// thread-safe; nothing here logs.
#pragma once

#include "envelope/kms_v1.h"
#include "envelope/kms_v2.h"
#include "envelope/secret.h"
#include "envelope/value_kind.h"

// "No key, DEK, seed or Secret value in a log line, error message, metric label or file": run
// kshield-kms through every path (round trips, rotations, refresh, bad inputs, rejected callers,
// SIGTERM), then scan every file the run produced — logs, stdout, metrics dump, keyset, socket
// dir — for the KEK bytes and every plaintext, raw, hex (both cases) and base64.
#include <gtest/gtest.h>

#include <filesystem>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "crypto/aead.h"
#include "crypto/hkdf.h"
#include "crypto/sha256.h"
#include "keys/keyset_store.h"
#include "support/kms_instance.h"

namespace kshield::testing {
namespace {

// Independent re-implementation of the local provider's unseal (the on-disk format is part of
// the contract): sealing.key -> HKDF -> AES-256-GCM over "L1"-prefixed material.
std::vector<std::string> UnsealKeks(const std::string& data_dir) {
  std::vector<std::string> keks;
  std::string sealing = ReadWholeFile(data_dir + "/sealing.key");
  auto wrap_key = crypto::HkdfSha256(SecretBytes::CopyFrom(sealing), "",
                                     "kshield local provider wrap v1", 32);
  if (!wrap_key.ok()) return keks;
  auto aead = crypto::AesGcmAead::New(std::move(*wrap_key));
  auto record = keys::FileKeysetStore::Decode(ReadWholeFile(data_dir + "/keyset.bin"));
  if (!aead.ok() || !record.ok()) return keks;
  for (const auto& v : record->versions()) {
    std::string aad = "kshield/local/kek/v1:" + record->keyset_id() + ":" +
                      std::to_string(v.version());
    auto kek = (*aead)->Decrypt(v.material().substr(2), aad);
    if (kek.ok()) keks.push_back(*kek);
  }
  return keks;
}

std::vector<std::string> Encodings(const std::string& secret) {
  std::string hex = crypto::HexEncode(secret);
  return {secret, hex, absl::AsciiStrToUpper(hex), absl::Base64Escape(secret),
          absl::WebSafeBase64Escape(secret)};
}

TEST(SecretScanTest, NoKeyOrPlaintextInAnyFileOfARun) {
  TempDir dir;
  std::vector<std::string> plaintexts;
  {
    KmsInstance kms({"--log-level=debug"}, &dir);
    ASSERT_TRUE(kms.Start()) << kms.log();
    auto v2 = kms.V2();
    auto v1 = kms.V1();
    auto admin = kms.Admin();
    for (int i = 0; i < 20; ++i) {
      std::string p = "SEEDSEED" + std::to_string(1000000 + i) + "-secret-material!";
      plaintexts.push_back(p);
      ::v2::EncryptResponse enc;
      ASSERT_TRUE(V2Encrypt(v2.get(), p, &enc).ok());
      std::string back;
      ASSERT_TRUE(V2Decrypt(v2.get(), enc.ciphertext(), enc.key_id(), &back).ok());
      // Failure paths must not echo the ciphertext's plaintext either.
      std::string bad = enc.ciphertext();
      bad.back() ^= 1;
      V2Decrypt(v2.get(), bad, enc.key_id(), nullptr);
      V2Decrypt(v2.get(), enc.ciphertext(), "ksh1:ffffffffffffffff:1", nullptr);
      grpc::ClientContext ctx;
      ::v1beta1::EncryptRequest req;
      req.set_version(i % 2 ? "v1beta1" : "bogus");
      req.set_plain(p);
      ::v1beta1::EncryptResponse resp;
      v1->Encrypt(&ctx, req, &resp);
      // An oversized plaintext containing the secret: refused without echo.
      ::v2::EncryptResponse big;
      V2Encrypt(v2.get(), p + std::string(5000, 'x'), &big);
      if (i % 5 == 0) {
        grpc::ClientContext rctx;
        ::kshield::admin::v1::RotateResponse rr;
        ASSERT_TRUE(admin->Rotate(&rctx, {}, &rr).ok());
      }
    }
    grpc::ClientContext fctx;
    ::kshield::admin::v1::RefreshResponse fr;
    ASSERT_TRUE(admin->Refresh(&fctx, {}, &fr).ok());
    std::string metrics;
    ASSERT_EQ(HttpGet(kms.http_port(), "/metrics", &metrics), 200);
    FILE* f = fopen(dir.Sub("metrics.txt").c_str(), "w");
    fwrite(metrics.data(), 1, metrics.size(), f);
    fclose(f);
    kms.Stop(SIGTERM);
    ASSERT_NE(kms.WaitExit(), -1);
  }

  std::vector<std::string> keks = UnsealKeks(dir.Sub("data"));
  ASSERT_GE(keks.size(), 5u) << "could not unseal the KEKs to look for them";

  std::vector<std::string> needles;
  for (const auto& k : keks) {
    for (auto& e : Encodings(k)) needles.push_back(e);
  }
  for (const auto& p : plaintexts) {
    for (auto& e : Encodings(p)) needles.push_back(e);
  }
  size_t files = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir.path())) {
    if (!entry.is_regular_file()) continue;
    // The sealing key file is the one place a key lives by design (the `none` platform).
    if (entry.path().filename() == "sealing.key") continue;
    std::string contents = ReadWholeFile(entry.path().string());
    ++files;
    for (const auto& n : needles) {
      ASSERT_EQ(contents.find(n), std::string::npos)
          << "secret material found in " << entry.path() << " (needle of " << n.size()
          << " bytes)";
    }
  }
  EXPECT_GE(files, 3u);  // kms.log, keyset.bin, metrics.txt at least
  // The log did record the run (so the scan looked at something real).
  std::string log = ReadWholeFile(dir.Sub("kms.log"));
  EXPECT_NE(log.find("keyset.rotated"), std::string::npos);
  EXPECT_NE(log.find("admin.refresh"), std::string::npos);
}

}  // namespace
}  // namespace kshield::testing

// kshield-kms with the kmip provider against a real PyKMIP server, end to end (issue 3 §4):
// with the key manager gone, Encrypt / Decrypt keep working for loaded versions; after the next
// probe Status fails (so the apiserver stops writes) and /readyz says why; Rotate fails cleanly
// and loses nothing; everything recovers without a restart when the key manager returns.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <fstream>

#include "kmip_server_fixture.h"
#include "support/kms_instance.h"

namespace kshield::testing {
namespace {

const std::string kSeed = "0123456789abcdef0123456789abcdef";

TEST(KmsKmipOutageTest, CachedKeysSurviveOutageAndEverythingRecovers) {
  if (!PyKmipServer::Available()) GTEST_SKIP() << PyKmipServer::SkipReason();
  TempDir dir;
  ASSERT_EQ(mkdir(dir.Sub("kmip").c_str(), 0700), 0);
  PyKmipServer kmip(dir.Sub("kmip"));
  absl::Status started = kmip.Start();
  ASSERT_TRUE(started.ok()) << started;
  auto o = kmip.ProviderOptions();
  std::string cfg = dir.Sub("kms.yaml");
  {
    std::ofstream f(cfg);
    f << "provider: kmip\nkmip:\n  endpoint: " << o.endpoint << "\n  ca_file: " << o.ca_file
      << "\n  cert_file: " << o.cert_file << "\n  key_file: " << o.key_file
      << "\n  server_name: " << o.server_name << "\n  timeout: 2s\n";
  }
  KmsInstance kms({"--config=" + cfg}, &dir);
  ASSERT_TRUE(kms.Start(std::chrono::seconds(60))) << kms.log();
  auto v2 = kms.V2();
  auto admin = kms.Admin();
  ::v2::EncryptResponse before;
  ASSERT_TRUE(V2Encrypt(v2.get(), kSeed, &before).ok());
  const std::string keyset_before = ReadWholeFile(kms.data_dir() + "/keyset.bin");

  // Outage.
  kmip.Stop();
  ASSERT_TRUE(WaitFor(
      [&] {
        ::v2::StatusResponse st;
        return V2Status(v2.get(), &st).error_code() == grpc::StatusCode::UNAVAILABLE;
      },
      std::chrono::seconds(20)))
      << "Status never reported the provider down";
  ::v2::StatusResponse st;
  grpc::Status s = V2Status(v2.get(), &st);
  EXPECT_NE(s.error_message().find("kmip"), std::string::npos) << s.error_message();
  std::string body;
  EXPECT_EQ(HttpGet(kms.http_port(), "/readyz", &body), 503);
  EXPECT_NE(body.find("not ready"), std::string::npos) << body;
  // Loaded versions keep working.
  ::v2::EncryptResponse during;
  ASSERT_TRUE(V2Encrypt(v2.get(), kSeed, &during).ok());
  std::string plain;
  ASSERT_TRUE(V2Decrypt(v2.get(), before.ciphertext(), before.key_id(), &plain).ok());
  EXPECT_EQ(plain, kSeed);
  // Rotate fails cleanly, the keyset file is untouched.
  grpc::ClientContext rctx;
  rctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(15));
  ::kshield::admin::v1::RotateResponse rr;
  EXPECT_FALSE(admin->Rotate(&rctx, {}, &rr).ok());
  EXPECT_EQ(ReadWholeFile(kms.data_dir() + "/keyset.bin"), keyset_before);

  // Recovery without a restart.
  started = kmip.Start();
  ASSERT_TRUE(started.ok()) << started;
  ASSERT_TRUE(WaitFor([&] { return V2Status(v2.get(), &st).ok(); }, std::chrono::seconds(30)))
      << kms.log();
  EXPECT_EQ(HttpGet(kms.http_port(), "/readyz", &body), 200);
  grpc::ClientContext r2;
  r2.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(15));
  ASSERT_TRUE(admin->Rotate(&r2, {}, &rr).ok());
  ::v2::EncryptResponse after;
  ASSERT_TRUE(V2Encrypt(v2.get(), kSeed, &after).ok());
  EXPECT_NE(after.key_id(), before.key_id());
  for (auto* e : {&before, &during, &after}) {
    ASSERT_TRUE(V2Decrypt(v2.get(), e->ciphertext(), e->key_id(), &plain).ok());
    EXPECT_EQ(plain, kSeed);
  }
}

}  // namespace
}  // namespace kshield::testing

// The `kmip` key provider with KeysetManager, DekCipher and FileKeysetStore against the real
// PyKMIP server: round trip, rotation, reload (each version fetched once), destroy, TLS trust
// errors, and an outage (server killed, then restarted on the same port and database).
#include "keys/kmip/kmip_provider.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <mutex>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/log.h"
#include "common/testing/temp_dir.h"
#include "keys/dek_cipher.h"
#include "keys/key_id.h"
#include "keys/keyset_manager.h"
#include "keys/keyset_store.h"
#include "kmip_server_fixture.h"
#include "support/process.h"

namespace kshield::keys::kmip {
namespace {

using kshield::testing::PyKmipServer;
using Clock = std::chrono::steady_clock;

std::string Msg(const absl::Status& s) { return std::string(s.message()); }

constexpr char kSeed[] = "0123456789abcdef0123456789abcdef";  // a 32-byte KMS v2 seed

class KmipProviderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!PyKmipServer::Available()) GTEST_SKIP() << PyKmipServer::SkipReason();
    server_ = std::make_unique<PyKmipServer>(dir_.path());
    ASSERT_TRUE(server_->setup_status().ok()) << server_->setup_status();
    absl::Status started = server_->Start();
    ASSERT_TRUE(started.ok()) << started;
  }
  void TearDown() override { log::SetSinkForTesting(nullptr); }

  std::shared_ptr<KmipProvider> NewProvider(KmipOptions o) {
    auto p = KmipProvider::New(o);
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? std::shared_ptr<KmipProvider>(std::move(*p)) : nullptr;
  }
  std::shared_ptr<KmipProvider> NewProvider() { return NewProvider(server_->ProviderOptions()); }

  std::unique_ptr<KeysetManager> NewManager(std::shared_ptr<KmipProvider> p) {
    return std::make_unique<KeysetManager>(std::make_unique<FileKeysetStore>(keyset_path()),
                                           std::move(p));
  }
  std::string keyset_path() const { return dir_.Sub("keyset.bin"); }
  std::unique_ptr<KmipClient> DirectClient() {
    KmipClientOptions o;
    o.host = "127.0.0.1";
    o.port = static_cast<uint16_t>(server_->port());
    o.ca_file = server_->ca_file();
    o.cert_file = server_->client_cert();
    o.key_file = server_->client_key();
    auto c = KmipClient::New(o);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? std::move(*c) : nullptr;
  }

  kshield::testing::TempDir dir_;
  std::unique_ptr<PyKmipServer> server_;
};

TEST_F(KmipProviderTest, RoundTripRotationAndReloadFetchEachVersionOnce) {
  std::vector<std::string> lines;
  std::mutex mu;
  log::SetSinkForTesting([&](std::string_view line) {
    std::lock_guard<std::mutex> lock(mu);
    lines.emplace_back(line);
  });

  auto provider = NewProvider();
  ASSERT_NE(provider, nullptr);
  EXPECT_EQ(provider->name(), "kmip");
  auto manager = NewManager(provider);
  ASSERT_TRUE(manager->Init().ok());
  DekCipher cipher(manager.get());
  const std::string keyset_id = manager->Current()->keyset_id();

  std::vector<Wrapped> wrapped;
  for (int rotation = 0; rotation < 3; ++rotation) {
    if (rotation > 0) {
      auto r = manager->Rotate();
      ASSERT_TRUE(r.ok()) << r.status();
      EXPECT_EQ(r->key_id, FormatKeyId(keyset_id, static_cast<uint32_t>(rotation + 1)));
    }
    auto w = cipher.Wrap(kSeed, WrapFormat::kKmsV2);
    ASSERT_TRUE(w.ok()) << w.status();
    EXPECT_EQ(w->key_id, FormatKeyId(keyset_id, static_cast<uint32_t>(rotation + 1)));
    wrapped.push_back(*w);
  }
  for (int i = 0; i < 20; ++i) {
    for (const Wrapped& w : wrapped) {
      auto dek = cipher.Unwrap(w.ciphertext, w.key_id, WrapFormat::kKmsV2);
      ASSERT_TRUE(dek.ok()) << dek.status();
      EXPECT_EQ(*dek, kSeed);
    }
  }
  KmipClientStats s = provider->stats();
  EXPECT_EQ(s.creates, 3u);
  EXPECT_EQ(s.activates, 3u);
  EXPECT_EQ(s.gets, 3u) << "each KEK version is fetched exactly once";
  EXPECT_EQ(server_->CountInLog("Processing operation: Get"), 3);

  // The KMIP objects carry the documented names and are the persisted material.
  auto record = FileKeysetStore(keyset_path()).Load();
  ASSERT_TRUE(record.ok() && record->has_value());
  auto client = DirectClient();
  ASSERT_NE(client, nullptr);
  std::vector<std::string> uids;
  for (const auto& v : (*record)->versions()) {
    const std::string name = absl::StrCat("kshield-", keyset_id, "-", v.version());
    EXPECT_EQ(provider->ObjectName({keyset_id, v.version()}), name);
    auto found = client->LocateByName(name);
    ASSERT_TRUE(found.ok()) << found.status();
    EXPECT_EQ(*found, std::vector<std::string>{v.material()}) << name;
    EXPECT_EQ(v.provider(), "kmip");
    uids.push_back(v.material());
  }
  ASSERT_EQ(uids.size(), 3u);

  // Reload from the keyset file with a fresh provider: each version fetched once more, no
  // object created, old ciphertexts still open.
  auto provider2 = NewProvider();
  ASSERT_NE(provider2, nullptr);
  auto manager2 = NewManager(provider2);
  ASSERT_TRUE(manager2->Init().ok());
  DekCipher cipher2(manager2.get());
  for (const Wrapped& w : wrapped) {
    auto dek = cipher2.Unwrap(w.ciphertext, w.key_id, WrapFormat::kKmsV2);
    ASSERT_TRUE(dek.ok()) << dek.status();
    EXPECT_EQ(*dek, kSeed);
  }
  ASSERT_TRUE(manager2->Refresh().ok());  // nothing new: no refetch
  EXPECT_EQ(provider2->stats().gets, 3u);
  EXPECT_EQ(provider2->stats().creates, 0u);
  EXPECT_EQ(server_->CountInLog("Processing operation: Get"), 6);

  // No kshield log line carries a KEK (raw or hex).
  std::vector<std::string> secrets;
  for (const std::string& uid : uids) {
    auto key = client->GetSymmetricKey(uid);
    ASSERT_TRUE(key.ok()) << key.status();
    secrets.emplace_back(key->UnsafeStringView());
  }
  std::lock_guard<std::mutex> lock(mu);
  ASSERT_FALSE(lines.empty());
  for (const std::string& line : lines) {
    for (const std::string& k : secrets) {
      const std::string hex = absl::BytesToHexString(k);
      EXPECT_EQ(line.find(k), std::string::npos);
      EXPECT_EQ(line.find(hex), std::string::npos) << line;
      EXPECT_EQ(line.find(absl::AsciiStrToUpper(hex)), std::string::npos) << line;
      EXPECT_EQ(line.find(absl::Base64Escape(k)), std::string::npos) << line;
    }
  }
}

TEST_F(KmipProviderTest, DestroyVersion) {
  auto provider = NewProvider();
  ASSERT_NE(provider, nullptr);
  KekContext ctx{"00112233aabbccdd", 7};
  auto uid = provider->CreateVersion(ctx);
  ASSERT_TRUE(uid.ok()) << uid.status();
  auto kek = provider->OpenVersion(ctx, *uid);
  ASSERT_TRUE(kek.ok()) << kek.status();
  auto ct = (*kek)->Encrypt("dek", "aad");
  ASSERT_TRUE(ct.ok());

  ASSERT_TRUE(provider->DestroyVersion(ctx, *uid).ok());
  auto reopened = provider->OpenVersion(ctx, *uid);
  ASSERT_FALSE(reopened.ok());
  EXPECT_EQ(reopened.status().code(), absl::StatusCode::kNotFound) << reopened.status();
  EXPECT_NE(Msg(reopened.status()).find(absl::StrCat("KMIP object ", *uid)), std::string::npos)
      << reopened.status();
  EXPECT_TRUE(provider->DestroyVersion(ctx, *uid).ok()) << "destroying twice is fine";
  EXPECT_EQ(server_->CountInLog("Processing operation: Revoke"), 2);
  EXPECT_EQ(server_->CountInLog("Processing operation: Destroy"), 1);

  // An object that was never activated (Pre-Active) is destroyed without Revoke succeeding.
  auto client = DirectClient();
  ASSERT_NE(client, nullptr);
  auto pre = client->CreateAes256Key("kshield-preactive");
  ASSERT_TRUE(pre.ok());
  EXPECT_TRUE(provider->DestroyVersion(ctx, *pre).ok());
  EXPECT_EQ(client->GetSymmetricKey(*pre).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(KmipProviderTest, BadMaterialIsRefusedWithoutARoundTrip) {
  auto provider = NewProvider();
  ASSERT_NE(provider, nullptr);
  for (std::string bad : {std::string(""), std::string("1\n2"), std::string(2000, '7')}) {
    auto kek = provider->OpenVersion({"00112233aabbccdd", 1}, bad);
    EXPECT_EQ(kek.status().code(), absl::StatusCode::kDataLoss) << kek.status();
  }
  EXPECT_EQ(provider->stats().gets, 0u);
  // A Unique Identifier that the server does not know.
  auto kek = provider->OpenVersion({"00112233aabbccdd", 1}, "987654");
  EXPECT_EQ(kek.status().code(), absl::StatusCode::kNotFound) << kek.status();
}

TEST_F(KmipProviderTest, LeftoverObjectUnderTheSameNameIsNotReused) {
  auto provider = NewProvider();
  ASSERT_NE(provider, nullptr);
  KekContext ctx{"00112233aabbccdd", 3};
  auto client = DirectClient();
  ASSERT_NE(client, nullptr);
  auto leftover = client->CreateAes256Key(provider->ObjectName(ctx));
  ASSERT_TRUE(leftover.ok());
  auto uid = provider->CreateVersion(ctx);
  ASSERT_TRUE(uid.ok()) << uid.status();
  EXPECT_NE(*uid, *leftover);
  EXPECT_TRUE(client->GetSymmetricKey(*leftover).ok()) << "left alone, not destroyed";
}

TEST_F(KmipProviderTest, WrongCaOrUntrustedClientCertificateIsAClearError) {
  KmipOptions wrong_ca = server_->ProviderOptions();
  wrong_ca.ca_file = server_->rogue_ca_file();
  auto p1 = NewProvider(wrong_ca);
  ASSERT_NE(p1, nullptr);
  absl::Status probe = p1->Probe();
  EXPECT_EQ(probe.code(), absl::StatusCode::kUnauthenticated) << probe;
  EXPECT_NE(Msg(probe).find("server certificate not accepted"), std::string::npos) << probe;
  auto m1 = NewManager(p1);
  absl::Status init = m1->Init();
  EXPECT_EQ(init.code(), absl::StatusCode::kUnauthenticated) << init;
  EXPECT_FALSE(FileExists(keyset_path())) << "nothing persisted when no key could be made";

  KmipOptions rogue_client = server_->ProviderOptions();
  rogue_client.cert_file = server_->rogue_client_cert();
  rogue_client.key_file = server_->rogue_client_key();
  auto p2 = NewProvider(rogue_client);
  ASSERT_NE(p2, nullptr);
  probe = p2->Probe();
  EXPECT_EQ(probe.code(), absl::StatusCode::kUnauthenticated) << probe;
  EXPECT_NE(Msg(probe).find("rejected our client certificate"), std::string::npos) << probe;
  EXPECT_NE(Msg(probe).find(server_->endpoint()), std::string::npos) << probe;
}

TEST_F(KmipProviderTest, OutageCachedVersionsKeepWorkingAndEverythingRecovers) {
  KmipOptions o = server_->ProviderOptions();
  o.timeout = std::chrono::seconds(2);
  auto provider = NewProvider(o);
  ASSERT_NE(provider, nullptr);
  auto manager = NewManager(provider);
  ASSERT_TRUE(manager->Init().ok());
  ASSERT_TRUE(manager->Rotate().ok());
  DekCipher cipher(manager.get());
  auto before = cipher.Wrap(kSeed, WrapFormat::kKmsV2);
  ASSERT_TRUE(before.ok());
  ASSERT_TRUE(provider->Probe().ok());
  const std::string primary_before = manager->Current()->primary().key_id;
  const std::string file_before = kshield::testing::ReadWholeFile(keyset_path());
  ASSERT_FALSE(file_before.empty());

  server_->Kill();

  // Probe fails, and fails fast.
  for (int i = 0; i < 3; ++i) {
    auto t0 = Clock::now();
    absl::Status down = provider->Probe();
    auto took = Clock::now() - t0;
    EXPECT_EQ(down.code(), absl::StatusCode::kUnavailable) << down;
    EXPECT_NE(Msg(down).find(server_->endpoint()), std::string::npos) << down;
    EXPECT_LT(took, o.timeout + std::chrono::milliseconds(500));
  }
  // Loaded versions keep wrapping and unwrapping locally.
  for (int i = 0; i < 50; ++i) {
    auto w = cipher.Wrap(kSeed, WrapFormat::kKmsV2);
    ASSERT_TRUE(w.ok()) << w.status();
    EXPECT_EQ(w->key_id, primary_before);
    auto d = cipher.Unwrap(w->ciphertext, w->key_id, WrapFormat::kKmsV2);
    ASSERT_TRUE(d.ok()) << d.status();
    auto d0 = cipher.Unwrap(before->ciphertext, before->key_id, WrapFormat::kKmsV2);
    ASSERT_TRUE(d0.ok()) << d0.status();
  }
  // Rotate fails cleanly and loses nothing.
  auto t0 = Clock::now();
  auto rotated = manager->Rotate();
  EXPECT_LT(Clock::now() - t0, 2 * o.timeout + std::chrono::milliseconds(500));
  ASSERT_FALSE(rotated.ok());
  EXPECT_EQ(rotated.status().code(), absl::StatusCode::kUnavailable) << rotated.status();
  EXPECT_NE(Msg(rotated.status()).find("rotate"), std::string::npos) << rotated.status();
  EXPECT_EQ(kshield::testing::ReadWholeFile(keyset_path()), file_before);
  EXPECT_EQ(manager->Current()->primary().key_id, primary_before);

  // Same port, same database: the same provider recovers without a restart.
  absl::Status restarted = server_->Start();
  ASSERT_TRUE(restarted.ok()) << restarted;
  EXPECT_TRUE(
      kshield::testing::WaitFor([&] { return provider->Probe().ok(); }, std::chrono::seconds(10)));
  auto after = manager->Rotate();
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->previous_key_id, primary_before);
  EXPECT_NE(kshield::testing::ReadWholeFile(keyset_path()), file_before);
  auto w3 = cipher.Wrap(kSeed, WrapFormat::kKmsV2);
  ASSERT_TRUE(w3.ok());
  EXPECT_EQ(w3->key_id, after->key_id);
  auto d0 = cipher.Unwrap(before->ciphertext, before->key_id, WrapFormat::kKmsV2);
  ASSERT_TRUE(d0.ok()) << d0.status();
  EXPECT_EQ(provider->stats().gets, 3u);  // v1, v2, v3: once each, outage or not

  // The restarted server still has every version: a fresh process can load the keyset.
  auto manager2 = NewManager(NewProvider(o));
  ASSERT_TRUE(manager2->Init().ok());
  DekCipher cipher2(manager2.get());
  auto d2 = cipher2.Unwrap(before->ciphertext, before->key_id, WrapFormat::kKmsV2);
  ASSERT_TRUE(d2.ok()) << d2.status();
  EXPECT_EQ(*d2, kSeed);
}

TEST_F(KmipProviderTest, ProbeNeverHangsPastTheTimeout) {
  // A server that accepts TCP connections and never answers.
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(fd, 16), 0);
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  KmipOptions o = server_->ProviderOptions();
  o.endpoint = absl::StrCat("127.0.0.1:", ntohs(addr.sin_port));
  o.timeout = std::chrono::milliseconds(500);
  auto provider = NewProvider(o);
  ASSERT_NE(provider, nullptr);
  auto t0 = Clock::now();
  absl::Status s = provider->Probe();
  auto took = Clock::now() - t0;
  close(fd);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_NE(Msg(s).find("timed out"), std::string::npos) << s;
  EXPECT_LT(took, std::chrono::milliseconds(1500));
}

}  // namespace
}  // namespace kshield::keys::kmip

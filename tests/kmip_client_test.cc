// KmipClient against the real PyKMIP server: every operation, TLS trust failures, timeouts and
// reconnection.
#include "keys/kmip/kmip_client.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "common/log.h"
#include "common/testing/log_capture.h"
#include "common/testing/temp_dir.h"
#include "kmip_server_fixture.h"

namespace kshield::keys::kmip {
namespace {

using ::kshield::testing::LogCapture;
using kshield::testing::PyKmipServer;
using Clock = std::chrono::steady_clock;

std::string Msg(const absl::Status& s) { return std::string(s.message()); }

// A TCP listener on loopback that accepts connections and never answers: a hung server.
class BlackHole {
 public:
  BlackHole() {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    listen(fd_, 16);  // the kernel completes handshakes; nobody ever reads
    socklen_t len = sizeof(addr);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
  ~BlackHole() { close(fd_); }
  uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

class KmipClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!PyKmipServer::Available()) GTEST_SKIP() << PyKmipServer::SkipReason();
    server_ = std::make_unique<PyKmipServer>(dir_.path());
    ASSERT_TRUE(server_->setup_status().ok()) << server_->setup_status();
    absl::Status started = server_->Start();
    ASSERT_TRUE(started.ok()) << started;
  }

  KmipClientOptions Options() const {
    KmipClientOptions o;
    o.host = "127.0.0.1";
    o.port = static_cast<uint16_t>(server_->port());
    o.ca_file = server_->ca_file();
    o.cert_file = server_->client_cert();
    o.key_file = server_->client_key();
    o.timeout = std::chrono::seconds(3);
    return o;
  }

  std::unique_ptr<KmipClient> Client(const KmipClientOptions& o) {
    auto c = KmipClient::New(o);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? std::move(*c) : nullptr;
  }

  kshield::testing::TempDir dir_;
  std::unique_ptr<PyKmipServer> server_;
};

TEST_F(KmipClientTest, CreateActivateLocateGetRevokeDestroy) {
  LogCapture logs;
  auto client = Client(Options());
  ASSERT_NE(client, nullptr);
  const std::string name = "kshield-0123456789abcdef-1";

  auto uid = client->CreateAes256Key(name);
  ASSERT_TRUE(uid.ok()) << uid.status();
  EXPECT_FALSE(uid->empty());

  auto located = client->LocateByName(name);
  ASSERT_TRUE(located.ok()) << located.status();
  EXPECT_EQ(*located, std::vector<std::string>{*uid});
  auto nothing = client->LocateByName("kshield-no-such-name");
  ASSERT_TRUE(nothing.ok()) << nothing.status();
  EXPECT_TRUE(nothing->empty());

  ASSERT_TRUE(client->Activate(*uid).ok());
  // The server's own words come back in the error.
  absl::Status again = client->Activate(*uid);
  EXPECT_EQ(again.code(), absl::StatusCode::kPermissionDenied) << again;
  EXPECT_NE(Msg(again).find("not pre-active"), std::string::npos) << again;

  auto key = client->GetSymmetricKey(*uid);
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_EQ(key->size(), 32u);
  auto key2 = client->GetSymmetricKey(*uid);
  ASSERT_TRUE(key2.ok()) << key2.status();
  EXPECT_TRUE(key->Equals(*key2));

  // An active object cannot be destroyed.
  absl::Status early = client->Destroy(*uid);
  EXPECT_EQ(early.code(), absl::StatusCode::kPermissionDenied) << early;
  EXPECT_NE(Msg(early).find("active"), std::string::npos) << early;

  ASSERT_TRUE(client->Revoke(*uid).ok());
  // Revoked (Deactivated) keys can still be read, for decryption of old data.
  EXPECT_TRUE(client->GetSymmetricKey(*uid).ok());
  ASSERT_TRUE(client->Destroy(*uid).ok());

  auto gone = client->GetSymmetricKey(*uid);
  EXPECT_EQ(gone.status().code(), absl::StatusCode::kNotFound) << gone.status();
  EXPECT_NE(Msg(gone.status()).find("Item Not Found"), std::string::npos) << gone.status();
  auto after = client->LocateByName(name);
  ASSERT_TRUE(after.ok());
  EXPECT_TRUE(after->empty());

  KmipClientStats s = client->stats();
  EXPECT_EQ(s.creates, 1u);
  EXPECT_EQ(s.activates, 1u);
  EXPECT_EQ(s.gets, 3u);
  EXPECT_EQ(s.locates, 3u);
  EXPECT_EQ(s.revokes, 1u);
  EXPECT_EQ(s.destroys, 1u);
  EXPECT_EQ(s.connects, 1u);  // one TLS session carried every call
  EXPECT_EQ(s.failures, 3u);  // second Activate, early Destroy, Get after Destroy
  EXPECT_EQ(server_->CountInLog("Processing operation: Create"), 1);
  EXPECT_EQ(server_->CountInLog("Processing operation: Get"), 4);

  // Our log lines never carry the key, raw or hex.
  const std::string raw(key->UnsafeStringView());
  const std::string hex = absl::BytesToHexString(raw);
  bool saw_connected = false;
  for (const std::string& line : logs.Lines()) {
    EXPECT_EQ(line.find(raw), std::string::npos);
    EXPECT_EQ(line.find(hex), std::string::npos) << line;
    EXPECT_EQ(line.find(absl::AsciiStrToUpper(hex)), std::string::npos) << line;
    if (line.find("kmip.connected") != std::string::npos) {
      saw_connected = true;
      EXPECT_NE(line.find("TLSv1.2 ECDHE-ECDSA-"), std::string::npos) << line;
    }
  }
  EXPECT_TRUE(saw_connected);
}

TEST_F(KmipClientTest, EachCreateIsANewKey) {
  auto client = Client(Options());
  ASSERT_NE(client, nullptr);
  auto a = client->CreateAes256Key("kshield-k-a");
  auto b = client->CreateAes256Key("kshield-k-b");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(*a, *b);
  auto ka = client->GetSymmetricKey(*a);
  auto kb = client->GetSymmetricKey(*b);
  ASSERT_TRUE(ka.ok() && kb.ok());
  EXPECT_FALSE(ka->Equals(*kb));
  EXPECT_TRUE(client->Query().ok());
}

TEST_F(KmipClientTest, ConcurrentCallsShareOneConnection) {
  auto client = Client(Options());
  ASSERT_NE(client, nullptr);
  auto uid = client->CreateAes256Key("kshield-concurrent");
  ASSERT_TRUE(uid.ok()) << uid.status();
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10; ++i) {
        if (client->Query().ok() && client->GetSymmetricKey(*uid).ok()) ++ok;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 40);
  EXPECT_EQ(client->stats().connects, 1u);
  EXPECT_EQ(client->stats().gets, 40u);
}

TEST_F(KmipClientTest, UnknownObjectIsNotFound) {
  auto client = Client(Options());
  ASSERT_NE(client, nullptr);
  auto key = client->GetSymmetricKey("424242");
  ASSERT_FALSE(key.ok());
  EXPECT_EQ(key.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(Msg(key.status()).find("Could not locate object: 424242"), std::string::npos)
      << key.status();
}

TEST_F(KmipClientTest, ServerCertificateFromAnotherCaIsRefused) {
  KmipClientOptions o = Options();
  o.ca_file = server_->rogue_ca_file();
  auto client = Client(o);
  ASSERT_NE(client, nullptr);
  absl::Status s = client->Query();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnauthenticated) << s;
  EXPECT_NE(Msg(s).find("server certificate not accepted"), std::string::npos) << s;
  EXPECT_NE(Msg(s).find("ca_file"), std::string::npos) << s;
  EXPECT_EQ(server_->CountInLog("Processing operation: Query"), 0);
}

TEST_F(KmipClientTest, ServerNameMustMatchCertificate) {
  KmipClientOptions o = Options();
  o.server_name = "kms.example.com";
  auto client = Client(o);
  ASSERT_NE(client, nullptr);
  absl::Status s = client->Query();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnauthenticated) << s;
  EXPECT_NE(Msg(s).find("server_name"), std::string::npos) << s;
  EXPECT_NE(Msg(s).find("mismatch"), std::string::npos) << s;

  o.server_name = "127.0.0.2";  // IP SAN checked as an address
  client = Client(o);
  ASSERT_NE(client, nullptr);
  EXPECT_EQ(client->Query().code(), absl::StatusCode::kUnauthenticated);

  o.server_name = "localhost";  // DNS SAN of the test certificate
  client = Client(o);
  ASSERT_NE(client, nullptr);
  EXPECT_TRUE(client->Query().ok());
}

TEST_F(KmipClientTest, ClientCertificateNotTrustedByServer) {
  KmipClientOptions o = Options();
  o.cert_file = server_->rogue_client_cert();
  o.key_file = server_->rogue_client_key();
  auto client = Client(o);
  ASSERT_NE(client, nullptr);
  absl::Status s = client->Query();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnauthenticated) << s;
  EXPECT_NE(Msg(s).find("rejected our client certificate"), std::string::npos) << s;
  EXPECT_NE(Msg(s).find("cert_file"), std::string::npos) << s;
}

TEST_F(KmipClientTest, ClientCertificateWithoutClientAuthUsage) {
  KmipClientOptions o = Options();
  o.cert_file = server_->no_eku_client_cert();
  o.key_file = server_->no_eku_client_key();
  auto client = Client(o);
  ASSERT_NE(client, nullptr);
  absl::Status s = client->Query();
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << s;
  EXPECT_NE(Msg(s).find("Authentication Not Successful"), std::string::npos) << s;
}

TEST_F(KmipClientTest, MismatchedKeyAndCertificateRefusedAtLoad) {
  KmipClientOptions o = Options();
  o.key_file = server_->rogue_client_key();
  auto c = KmipClient::New(o);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(Msg(c.status()).find("does not belong to cert_file"), std::string::npos) << c.status();
}

TEST_F(KmipClientTest, ReconnectsAfterServerRestart) {
  KmipClientOptions o = Options();
  o.timeout = std::chrono::seconds(2);
  auto client = Client(o);
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->Query().ok());

  server_->Kill();
  auto t0 = Clock::now();
  absl::Status down = client->Query();
  auto took = Clock::now() - t0;
  EXPECT_EQ(down.code(), absl::StatusCode::kUnavailable) << down;
  EXPECT_LT(took, o.timeout + std::chrono::milliseconds(500));
  EXPECT_EQ(client->LocateByName("x").status().code(), absl::StatusCode::kUnavailable);

  absl::Status restarted = server_->Start();
  ASSERT_TRUE(restarted.ok()) << restarted;
  EXPECT_TRUE(client->Query().ok());
  EXPECT_EQ(client->stats().connects, 2u);
}

TEST_F(KmipClientTest, HungServerTimesOut) {
  BlackHole hole;
  KmipClientOptions o = Options();
  o.port = hole.port();
  o.timeout = std::chrono::milliseconds(400);
  auto client = Client(o);
  ASSERT_NE(client, nullptr);
  for (int i = 0; i < 2; ++i) {
    auto t0 = Clock::now();
    absl::Status s = client->Query();
    auto took = Clock::now() - t0;
    EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
    EXPECT_NE(Msg(s).find("timed out"), std::string::npos) << s;
    EXPECT_GE(took, std::chrono::milliseconds(350));
    EXPECT_LT(took, std::chrono::milliseconds(1400));
  }
}

TEST(KmipClientRsa, RsaServerCertificateNegotiatesTls12) {
  if (!PyKmipServer::Available()) GTEST_SKIP() << PyKmipServer::SkipReason();
  kshield::testing::TempDir dir;
  PyKmipServer server(dir.path(), "rsa");
  ASSERT_TRUE(server.setup_status().ok()) << server.setup_status();
  absl::Status started = server.Start();
  ASSERT_TRUE(started.ok()) << started;
  LogCapture logs;
  KmipClientOptions o;
  o.host = "127.0.0.1";
  o.port = static_cast<uint16_t>(server.port());
  o.ca_file = server.ca_file();
  o.cert_file = server.client_cert();
  o.key_file = server.client_key();
  auto client = KmipClient::New(o);
  ASSERT_TRUE(client.ok()) << client.status();
  ASSERT_TRUE((*client)->Query().ok());
  bool saw = false;
  for (const std::string& line : logs.Lines()) {
    if (line.find("kmip.connected") == std::string::npos) continue;
    saw = true;
    EXPECT_NE(line.find("TLSv1.2 ECDHE-RSA-"), std::string::npos) << line;
  }
  EXPECT_TRUE(saw);
}

}  // namespace
}  // namespace kshield::keys::kmip

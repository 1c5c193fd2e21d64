// kshield-kms end to end: the real binary on temp sockets, driven over gRPC.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <unistd.h>

#include <atomic>
#include <mutex>
#include <set>
#include <random>
#include <thread>

#include "support/kms_instance.h"

namespace kshield::testing {
namespace {

const std::string kSeed = "0123456789abcdef0123456789abcdef";

TEST(KmsIntegrationTest, V2RoundTripAndStatus) {
  KmsInstance kms;
  ASSERT_TRUE(kms.Start()) << kms.log();
  auto stub = kms.V2();
  ::v2::StatusResponse st;
  ASSERT_TRUE(V2Status(stub.get(), &st).ok());
  EXPECT_EQ(st.version(), "v2");
  EXPECT_EQ(st.healthz(), "ok");
  EXPECT_EQ(st.key_id().rfind("ksh1:", 0), 0u);

  ::v2::EncryptResponse enc;
  ASSERT_TRUE(V2Encrypt(stub.get(), kSeed, &enc).ok());
  EXPECT_EQ(enc.key_id(), st.key_id());
  EXPECT_NE(enc.ciphertext(), kSeed);
  EXPECT_LE(enc.ciphertext().size(), 1024u);
  std::string plain;
  grpc::Status s = V2Decrypt(stub.get(), enc.ciphertext(), enc.key_id(), &plain);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(plain, kSeed);
}

TEST(KmsIntegrationTest, V1beta1RoundTripAndVersion) {
  KmsInstance kms;
  ASSERT_TRUE(kms.Start()) << kms.log();
  auto stub = kms.V1();
  {
    grpc::ClientContext ctx;
    ::v1beta1::VersionRequest req;
    req.set_version("v1beta1");
    ::v1beta1::VersionResponse resp;
    ASSERT_TRUE(stub->Version(&ctx, req, &resp).ok());
    EXPECT_EQ(resp.version(), "v1beta1");
    EXPECT_EQ(resp.runtime_name(), "kshield-kms");
  }
  grpc::ClientContext ectx;
  ::v1beta1::EncryptRequest ereq;
  ereq.set_version("v1beta1");
  ereq.set_plain(kSeed);
  ::v1beta1::EncryptResponse eresp;
  ASSERT_TRUE(stub->Encrypt(&ectx, ereq, &eresp).ok());
  grpc::ClientContext dctx;
  ::v1beta1::DecryptRequest dreq;
  dreq.set_version("v1beta1");
  dreq.set_cipher(eresp.cipher());
  ::v1beta1::DecryptResponse dresp;
  ASSERT_TRUE(stub->Decrypt(&dctx, dreq, &dresp).ok());
  EXPECT_EQ(dresp.plain(), kSeed);
}

TEST(KmsIntegrationTest, WrongV1VersionStringIsRefused) {
  KmsInstance kms;
  ASSERT_TRUE(kms.Start()) << kms.log();
  auto stub = kms.V1();
  for (const char* v : {"", "v1", "v2", "V1BETA1", "v1beta1 "}) {
    grpc::ClientContext ctx;
    ::v1beta1::VersionRequest req;
    req.set_version(v);
    ::v1beta1::VersionResponse resp;
    grpc::Status s = stub->Version(&ctx, req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << v;
    grpc::ClientContext ectx;
    ::v1beta1::EncryptRequest ereq;
    ereq.set_version(v);
    ereq.set_plain(kSeed);
    ::v1beta1::EncryptResponse eresp;
    EXPECT_EQ(stub->Encrypt(&ectx, ereq, &eresp).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
    grpc::ClientContext dctx;
    ::v1beta1::DecryptRequest dreq;
    dreq.set_version(v);
    dreq.set_cipher("x");
    ::v1beta1::DecryptResponse dresp;
    EXPECT_EQ(stub->Decrypt(&dctx, dreq, &dresp).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }
}

TEST(KmsIntegrationTest, BadInputsGetClearErrorsAndServerKeepsServing) {
  KmsInstance kms;
  ASSERT_TRUE(kms.Start()) << kms.log();
  auto stub = kms.V2();
  ::v2::EncryptResponse enc;
  ASSERT_TRUE(V2Encrypt(stub.get(), kSeed, &enc).ok());
  const std::string ct = enc.ciphertext();
  const std::string kid = enc.key_id();

  // Encrypt: empty and oversized plaintext.
  ::v2::EncryptResponse r;
  EXPECT_EQ(V2Encrypt(stub.get(), "", &r).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(V2Encrypt(stub.get(), std::string(4097, 'x'), &r).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(V2Encrypt(stub.get(), std::string(4096, 'x'), &r).ok());

  auto expect_auth_failed = [&](const std::string& bad, const std::string& key_id) {
    grpc::Status s = V2Decrypt(stub.get(), bad, key_id, nullptr);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(s.error_message(), "authentication failed");
  };
  expect_auth_failed("", kid);                               // empty
  expect_auth_failed(ct.substr(0, ct.size() / 2), kid);      // truncated
  expect_auth_failed(std::string(5000, 'x'), kid);           // oversized
  for (size_t i : {size_t{0}, size_t{2}, size_t{10}, ct.size() - 1}) {  // bit flips
    std::string bad = ct;
    bad[i] ^= 0x04;
    expect_auth_failed(bad, kid);
  }
  // Wrong key_id: malformed, unknown version, another keyset.
  grpc::Status s = V2Decrypt(stub.get(), ct, "1", nullptr);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("not issued by kshield"), std::string::npos);
  std::string keyset = kid.substr(5, 16);
  s = V2Decrypt(stub.get(), ct, "ksh1:" + keyset + ":2", nullptr);
  EXPECT_EQ(s.error_message(), "authentication failed");
  s = V2Decrypt(stub.get(), ct, "ksh1:ffffffffffffffff:1", nullptr);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("belongs to keyset ffffffffffffffff"), std::string::npos);

  // Still serving; the failures were counted by reason on /metrics.
  std::string plain;
  ASSERT_TRUE(V2Decrypt(stub.get(), ct, kid, &plain).ok());
  EXPECT_EQ(plain, kSeed);
  std::string metrics;
  ASSERT_EQ(HttpGet(kms.http_port(), "/metrics", &metrics), 200);
  EXPECT_NE(metrics.find("kshield_kms_decrypt_failures_total{api=\"v2\",reason=\"too_short\"}"),
            std::string::npos);
  EXPECT_NE(metrics.find("reason=\"other_keyset\""), std::string::npos);
  EXPECT_NE(metrics.find("reason=\"auth\""), std::string::npos);
}

TEST(KmsIntegrationTest, KeyIdOfAnotherKeysetIsRefused) {
  KmsInstance a, b;
  ASSERT_TRUE(a.Start()) << a.log();
  ASSERT_TRUE(b.Start()) << b.log();
  auto sa = a.V2();
  auto sb = b.V2();
  ::v2::EncryptResponse enc;
  ASSERT_TRUE(V2Encrypt(sa.get(), kSeed, &enc).ok());
  grpc::Status s = V2Decrypt(sb.get(), enc.ciphertext(), enc.key_id(), nullptr);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("belongs to keyset"), std::string::npos);
}

TEST(KmsIntegrationTest, RotationUnder64ConcurrentClients) {
  KmsInstance kms;
  ASSERT_TRUE(kms.Start()) << kms.log();
  auto admin = kms.Admin();
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::atomic<int64_t> calls{0};
  std::mutex mu;
  std::vector<std::pair<std::string, std::string>> issued;  // (ciphertext, key_id)
  std::vector<std::thread> clients;
  for (int i = 0; i < 64; ++i) {
    clients.emplace_back([&, i] {
      auto stub = kms.V2();  // one channel per client, like 64 apiservers would
      std::string seed = kSeed;
      seed[0] = static_cast<char>('a' + i % 26);
      while (!stop) {
        ::v2::EncryptResponse enc;
        if (!V2Encrypt(stub.get(), seed, &enc).ok()) {
          ++failures;
          continue;
        }
        std::string plain;
        if (!V2Decrypt(stub.get(), enc.ciphertext(), enc.key_id(), &plain).ok() || plain != seed) {
          ++failures;
        }
        calls += 2;
        std::lock_guard<std::mutex> lock(mu);
        if (issued.size() < 5000) issued.emplace_back(enc.ciphertext(), enc.key_id());
      }
    });
  }
  std::set<std::string> key_ids;
  std::string last_key_id;
  for (int r = 0; r < 10; ++r) {
    grpc::ClientContext ctx;
    ::kshield::admin::v1::RotateResponse resp;
    ASSERT_TRUE(admin->Rotate(&ctx, ::kshield::admin::v1::RotateRequest(), &resp).ok());
    key_ids.insert(resp.key_id());
    last_key_id = resp.key_id();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // let traffic use this version
  }
  stop = true;
  for (auto& t : clients) t.join();
  EXPECT_EQ(failures, 0);
  EXPECT_GT(calls, 640);
  EXPECT_EQ(key_ids.size(), 10u);
  // Every ciphertext issued during the rotations still decrypts.
  auto stub = kms.V2();
  std::set<std::string> used;
  for (auto& [ct, kid] : issued) {
    std::string plain;
    ASSERT_TRUE(V2Decrypt(stub.get(), ct, kid, &plain).ok()) << kid;
    used.insert(kid);
  }
  EXPECT_GE(used.size(), 2u);
  ::v2::StatusResponse st;
  ASSERT_TRUE(V2Status(stub.get(), &st).ok());
  EXPECT_EQ(st.key_id(), last_key_id);
}

TEST(KmsIntegrationTest, RestartOverStaleSocketKeepsKeyset) {
  TempDir dir;
  std::string ct, kid;
  {
    KmsInstance kms({}, &dir);
    ASSERT_TRUE(kms.Start()) << kms.log();
    ::v2::EncryptResponse enc;
    ASSERT_TRUE(V2Encrypt(kms.V2().get(), kSeed, &enc).ok());
    ct = enc.ciphertext();
    kid = enc.key_id();
    kms.Stop(SIGKILL);  // leaves the socket file behind
    kms.WaitExit();
    struct stat st;
    ASSERT_EQ(lstat(kms.socket().c_str(), &st), 0) << "SIGKILL should leave a stale socket";
  }
  KmsInstance kms({}, &dir);
  ASSERT_TRUE(kms.Start()) << kms.log();
  EXPECT_NE(kms.log().find("socket.stale_removed"), std::string::npos);
  std::string plain;
  ASSERT_TRUE(V2Decrypt(kms.V2().get(), ct, kid, &plain).ok());
  EXPECT_EQ(plain, kSeed);
}

TEST(KmsIntegrationTest, Kill9MidRotationLosesNothing) {
  TempDir dir;
  std::vector<std::pair<std::string, std::string>> issued;
  std::mt19937 rng(42);
  for (int round = 0; round < 20; ++round) {
    KmsInstance kms({}, &dir);
    ASSERT_TRUE(kms.Start()) << kms.log();
    auto stub = kms.V2();
    auto admin = kms.Admin();
    // Every earlier ciphertext decrypts after the restart.
    for (auto& [ct, kid] : issued) {
      std::string plain;
      ASSERT_TRUE(V2Decrypt(stub.get(), ct, kid, &plain).ok()) << "round " << round << " " << kid;
    }
    std::atomic<bool> stop{false};
    std::thread rotator([&] {
      while (!stop) {
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
        ::kshield::admin::v1::RotateResponse resp;
        admin->Rotate(&ctx, ::kshield::admin::v1::RotateRequest(), &resp);
      }
    });
    auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(50 + rng() % 150);
    while (std::chrono::steady_clock::now() < until) {
      ::v2::EncryptResponse enc;
      if (!V2Encrypt(stub.get(), kSeed, &enc).ok()) continue;
      // Keep a bounded random sample so re-verification stays cheap as rounds accumulate.
      if (issued.size() < 400) {
        issued.emplace_back(enc.ciphertext(), enc.key_id());
      } else {
        issued[rng() % issued.size()] = {enc.ciphertext(), enc.key_id()};
      }
    }
    kms.Stop(SIGKILL);
    kms.WaitExit();
    stop = true;
    rotator.join();
  }
  EXPECT_GT(issued.size(), 8u);
}

TEST(KmsIntegrationTest, SigtermDrainsAndRemovesSocket) {
  KmsInstance kms;
  ASSERT_TRUE(kms.Start()) << kms.log();
  std::atomic<bool> stop{false};
  std::atomic<int> bad{0}, ok{0};
  std::mutex bad_mu;
  std::string bad_codes;
  std::vector<std::thread> clients;
  for (int i = 0; i < 8; ++i) {
    clients.emplace_back([&] {
      auto stub = kms.V2();
      while (!stop) {
        ::v2::EncryptResponse enc;
        grpc::Status s = V2Encrypt(stub.get(), kSeed, &enc);
        if (s.ok()) {
          ++ok;
        } else if (s.error_code() != grpc::StatusCode::UNAVAILABLE &&
                   s.error_code() != grpc::StatusCode::CANCELLED) {
          // A call a handler started must complete. Calls refused while draining get
          // UNAVAILABLE; streams gRPC had received but not dispatched when it closed the
          // connection get CANCELLED. The apiserver retries both; nothing else is allowed.
          ++bad;
          std::lock_guard<std::mutex> lock(bad_mu);
          bad_codes += std::to_string(s.error_code()) + ":" + s.error_message() + "; ";
        }
      }
    });
  }
  WaitFor([&] { return ok > 100; }, std::chrono::seconds(10));
  auto t0 = std::chrono::steady_clock::now();
  kms.Stop(SIGTERM);
  int status = kms.WaitExit(std::chrono::seconds(15));
  auto exit_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                     std::chrono::steady_clock::now() - t0).count();
  stop = true;
  for (auto& t : clients) t.join();
  ASSERT_NE(status, -1) << "did not exit after SIGTERM";
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_EQ(bad, 0) << bad_codes;
  EXPECT_LT(exit_ms, 5000) << "drain took longer than the grace";
  struct stat st;
  EXPECT_NE(lstat(kms.socket().c_str(), &st), 0) << "socket file left behind";
  EXPECT_NE(lstat(kms.admin_socket().c_str(), &st), 0);
  EXPECT_NE(kms.log().find("kms.stopped"), std::string::npos);
}

TEST(KmsIntegrationTest, HealthEndpointsAndAdmin) {
  KmsInstance kms;
  ASSERT_TRUE(kms.Start()) << kms.log();
  std::string body;
  EXPECT_EQ(HttpGet(kms.http_port(), "/healthz", &body), 200);
  EXPECT_EQ(HttpGet(kms.http_port(), "/readyz", &body), 200);
  EXPECT_NE(body.find("ksh1:"), std::string::npos);
  EXPECT_EQ(HttpGet(kms.http_port(), "/nope", &body), 404);

  auto admin = kms.Admin();
  grpc::ClientContext ctx;
  ::kshield::admin::v1::KeysetInfoResponse info;
  ASSERT_TRUE(admin->KeysetInfo(&ctx, {}, &info).ok());
  EXPECT_EQ(info.provider(), "local");
  EXPECT_EQ(info.tee_platform(), "none");
  EXPECT_TRUE(info.healthy());
  ASSERT_EQ(info.versions_size(), 1);
  EXPECT_EQ(info.versions(0).state(), "primary");

  grpc::ClientContext rctx;
  ::kshield::admin::v1::RefreshResponse refresh;
  ASSERT_TRUE(admin->Refresh(&rctx, {}, &refresh).ok());
  EXPECT_TRUE(refresh.healthy());
  EXPECT_EQ(refresh.key_id(), info.primary_key_id());

  // Admin methods are not served on the KMS socket.
  auto wrong = ::kshield::admin::v1::Admin::NewStub(
      grpc::CreateChannel("unix:" + kms.socket(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext wctx;
  ::kshield::admin::v1::RotateResponse rr;
  EXPECT_EQ(wrong->Rotate(&wctx, {}, &rr).error_code(), grpc::StatusCode::UNIMPLEMENTED);
}

TEST(KmsIntegrationTest, MetricsPassPromtool) {
  if (access("/usr/bin/promtool", X_OK) != 0) GTEST_SKIP() << "promtool not installed";
  KmsInstance kms;
  ASSERT_TRUE(kms.Start()) << kms.log();
  ::v2::EncryptResponse enc;
  ASSERT_TRUE(V2Encrypt(kms.V2().get(), kSeed, &enc).ok());
  V2Decrypt(kms.V2().get(), "bad", enc.key_id(), nullptr);
  std::string metrics;
  ASSERT_EQ(HttpGet(kms.http_port(), "/metrics", &metrics), 200);
  for (const char* name :
       {"kshield_kms_requests_total", "kshield_kms_request_duration_seconds_bucket",
        "kshield_kms_provider_healthy", "kshield_kms_provider_probe_duration_seconds",
        "kshield_kms_key_info", "kshield_kms_decrypt_failures_total", "kshield_kms_build_info",
        "kshield_secure_memory_bytes"}) {
    EXPECT_NE(metrics.find(name), std::string::npos) << name;
  }
  std::string path = kms.dir() + "/metrics.txt";
  FILE* f = fopen(path.c_str(), "w");
  fwrite(metrics.data(), 1, metrics.size(), f);
  fclose(f);
  std::string out;
  int rc = RunCommand("/usr/bin/promtool check metrics < " + path, &out);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_EQ(out, "") << out;
}

TEST(KmsIntegrationTest, BadConfigFailsWithClearMessage) {
  TempDir dir;
  std::string cfg = dir.Sub("kms.yaml");
  FILE* f = fopen(cfg.c_str(), "w");
  fputs("socket: /tmp/x.sock\nbogus_key: 1\n", f);
  fclose(f);
  std::string out;
  int rc = RunCommand(std::string(KSHIELD_BIN_DIR) + "/kshield-kms --config " + cfg, &out);
  EXPECT_EQ(rc, 1);
  EXPECT_NE(out.find("unknown config key \"bogus_key\""), std::string::npos) << out;
  rc = RunCommand(std::string(KSHIELD_BIN_DIR) + "/kshield-kms --no-such-flag", &out);
  EXPECT_EQ(rc, 2);
  rc = RunCommand(std::string(KSHIELD_BIN_DIR) + "/kshield-kms --help", &out);
  EXPECT_EQ(rc, 0);
  EXPECT_NE(out.find("--allow-uid"), std::string::npos);
}

}  // namespace
}  // namespace kshield::testing

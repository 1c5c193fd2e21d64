// Mutual RA-TLS over gRPC with the sim platform (issue 5 §4): a sim server and a sim client, each
// presenting an RA-TLS certificate and checking the other's against the pinned sim root and a
// policy, complete a call; a peer with a wrong MRENCLAVE, a debug enclave under a no-debug policy,
// a plain certificate, or no certificate is refused.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <chrono>

#include "common/log.h"
#include "common/testing/temp_dir.h"

#include <mutex>
#include "crypto/sha256.h"
#include "kms_v2.grpc.pb.h"
#include "support/process.h"
#include "tee/ratls.h"
#include "tee/ratls_grpc.h"
#include "tee/sim_platform.h"

namespace kshield::tee {
namespace {

class StatusService final : public ::v2::KeyManagementService::Service {
  grpc::Status Status(grpc::ServerContext*, const ::v2::StatusRequest*,
                      ::v2::StatusResponse* out) override {
    out->set_version("v2");
    out->set_healthz("ok");
    return grpc::Status::OK;
  }
};

std::string PlainCertIdentity(RaTlsIdentity* out) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* cert = X509_new();
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 7);
  X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("plain"), -1, -1, 0);
  X509_set_issuer_name(cert, X509_get_subject_name(cert));
  X509_gmtime_adj(X509_getm_notBefore(cert), -60);
  X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
  X509_set_pubkey(cert, key);
  X509_sign(cert, key, EVP_sha256());
  BIO* b = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(b, cert);
  char* data = nullptr;
  long len = BIO_get_mem_data(b, &data);
  out->certificate_pem.assign(data, static_cast<size_t>(len));
  BIO_free(b);
  b = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(b, key, nullptr, nullptr, 0, nullptr, nullptr);
  len = BIO_get_mem_data(b, &data);
  out->private_key_pem = SecretBytes::CopyFrom(std::string_view(data, static_cast<size_t>(len)));
  BIO_free(b);
  X509_free(cert);
  EVP_PKEY_free(key);
  return out->certificate_pem;
}

class RaTlsGrpcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    log::SetSinkForTesting([this](std::string_view line) {
      std::lock_guard<std::mutex> lock(log_mu_);
      if (line.find("ratls.peer_refused") != std::string_view::npos) refusals_ += line;
    });
    server_sim_ = MakeSim("server", false);
    client_sim_ = MakeSim("client", false);
    ASSERT_NE(server_sim_, nullptr);
    ASSERT_NE(client_sim_, nullptr);
    root_ = server_sim_->RootCaPem();
    // Same data directory = same simulated machine = same root key and name (the PEM bytes
    // differ per process because ECDSA signatures are randomised); either side's copy works.
    // Each side accepts the other's signer and this build's measurement, no debug.
    server_policy_.mrsigner = {crypto::HexEncode(crypto::Sha256("kshield-sim-signer:client"))};
    client_policy_.mrenclave = {crypto::HexEncode(server_sim_->mrenclave())};
  }
  void TearDown() override {
    if (server_) server_->Shutdown(std::chrono::system_clock::now());
    log::SetSinkForTesting(nullptr);
  }
  // The refusal reasons logged so far (one JSON line each).
  std::string Refusals() {
    std::lock_guard<std::mutex> lock(log_mu_);
    return refusals_;
  }

  std::unique_ptr<SimPlatform> MakeSim(const std::string& identity, bool debug) {
    PlatformOptions o{dir_.path()};
    o.sim_identity = identity;
    o.sim_debug = debug;
    auto p = SimPlatform::New(o);
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? std::move(*p) : nullptr;
  }

  RaTlsIdentity Identity(SimPlatform& sim) {
    auto id = MakeRaTlsIdentity(sim);
    EXPECT_TRUE(id.ok()) << id.status();
    return std::move(*id);
  }

  RaTlsVerifyOptions Peer(const quote::Policy& policy) const {
    RaTlsVerifyOptions o;
    o.root_pem = root_;
    o.policy = policy;
    return o;
  }

  void StartServer(const RaTlsIdentity& id) {
    port_ = testing::FreeLoopbackPort();
    grpc::ServerBuilder b;
    b.AddListeningPort("127.0.0.1:" + std::to_string(port_),
                       RaTlsServerCredentials(id, Peer(server_policy_)));
    b.RegisterService(&service_);
    server_ = b.BuildAndStart();
    ASSERT_NE(server_, nullptr);
  }

  grpc::Status Call(const RaTlsIdentity& client_id, const quote::Policy& policy) {
    auto creds = RaTlsChannelCredentials(client_id, Peer(policy));
    auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(port_), creds);
    auto stub = ::v2::KeyManagementService::NewStub(channel);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    ::v2::StatusResponse resp;
    grpc::Status s = stub->Status(&ctx, {}, &resp);
    if (s.ok()) {
      EXPECT_EQ(resp.healthz(), "ok");
    }
    return s;
  }

  testing::TempDir dir_;
  std::unique_ptr<SimPlatform> server_sim_, client_sim_;
  std::string root_;
  quote::Policy server_policy_, client_policy_;
  StatusService service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::mutex log_mu_;
  std::string refusals_;
};

TEST_F(RaTlsGrpcTest, MutualRaTlsCallSucceeds) {
  StartServer(Identity(*server_sim_));
  grpc::Status s = Call(Identity(*client_sim_), client_policy_);
  EXPECT_TRUE(s.ok()) << s.error_code() << " " << s.error_message();
}

TEST_F(RaTlsGrpcTest, ClientRefusesServerWithWrongMrenclave) {
  StartServer(Identity(*server_sim_));
  quote::Policy wrong = client_policy_;
  wrong.mrenclave = {std::string(64, 'a')};
  EXPECT_FALSE(Call(Identity(*client_sim_), wrong).ok());
  EXPECT_NE(Refusals().find("policy: mrenclave"), std::string::npos) << Refusals();
}

TEST_F(RaTlsGrpcTest, ClientRefusesDebugServerUnderNoDebugPolicy) {
  auto debug_server = MakeSim("server", /*debug=*/true);
  ASSERT_NE(debug_server, nullptr);
  StartServer(Identity(*debug_server));
  EXPECT_FALSE(Call(Identity(*client_sim_), client_policy_).ok());
  EXPECT_NE(Refusals().find("policy: debug"), std::string::npos) << Refusals();
  quote::Policy allow = client_policy_;
  allow.allow_debug = true;
  EXPECT_TRUE(Call(Identity(*client_sim_), allow).ok()) << "only the debug flag was refused";
}

TEST_F(RaTlsGrpcTest, ClientRefusesPlainServerCertificate) {
  RaTlsIdentity plain;
  PlainCertIdentity(&plain);
  StartServer(plain);
  EXPECT_FALSE(Call(Identity(*client_sim_), client_policy_).ok());
  EXPECT_NE(Refusals().find("no attestation evidence"), std::string::npos) << Refusals();
}

TEST_F(RaTlsGrpcTest, ServerRefusesPlainOrWrongSignerClient) {
  StartServer(Identity(*server_sim_));
  RaTlsIdentity plain;
  PlainCertIdentity(&plain);
  EXPECT_FALSE(Call(plain, client_policy_).ok());
  auto intruder = MakeSim("intruder", false);  // valid evidence, signer not in the policy
  ASSERT_NE(intruder, nullptr);
  EXPECT_FALSE(Call(Identity(*intruder), client_policy_).ok());
  EXPECT_NE(Refusals().find("policy: mrsigner"), std::string::npos) << Refusals();
  EXPECT_TRUE(Call(Identity(*client_sim_), client_policy_).ok());
}

TEST_F(RaTlsGrpcTest, ServerUnderAnotherRootIsRefused) {
  auto other = SimPlatform::New({});  // another simulated machine, another root
  ASSERT_TRUE(other.ok());
  StartServer(Identity(**other));
  EXPECT_FALSE(Call(Identity(*client_sim_), client_policy_).ok());
  EXPECT_NE(Refusals().find("PCK chain"), std::string::npos) << Refusals();
}

}  // namespace
}  // namespace kshield::tee

// RA-TLS on an OpenSSL SSL_CTX through Boost.Asio (ratls_openssl.h): a sim server and a sim client
// complete a mutually attested TLS handshake over a socket pair and exchange a message; a policy
// that does not match, or a peer without evidence, ends the connection.
#include "tee/ratls_openssl.h"

#include <gtest/gtest.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <thread>

#include "common/testing/temp_dir.h"
#include "crypto/sha256.h"
#include "tee/sim_platform.h"

namespace kshield::tee {
namespace {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using Socket = asio::local::stream_protocol::socket;

struct Outcome {
  bool server_ok = false;
  bool client_got_message = false;
};

Outcome Exchange(const RaTlsIdentity& server_id, const RaTlsVerifyOptions& server_peer,
                 const RaTlsIdentity& client_id, const RaTlsVerifyOptions& client_peer) {
  asio::io_context io;
  ssl::context sctx(ssl::context::tls_server), cctx(ssl::context::tls_client);
  EXPECT_TRUE(ConfigureRaTls(sctx.native_handle(), server_id, server_peer, true).ok());
  EXPECT_TRUE(ConfigureRaTls(cctx.native_handle(), client_id, client_peer, false).ok());
  Socket a(io), b(io);
  asio::local::connect_pair(a, b);
  ssl::stream<Socket&> server(a, sctx), client(b, cctx);
  Outcome out;
  std::thread t([&] {
    boost::system::error_code ec;
    server.handshake(ssl::stream_base::server, ec);
    if (!ec) asio::write(server, asio::buffer(std::string("attested")), ec);
    out.server_ok = !ec;
    a.close(ec);  // the client's read ends either way
  });
  boost::system::error_code ec;
  client.handshake(ssl::stream_base::client, ec);
  if (!ec) {
    char buf[8];
    asio::read(client, asio::buffer(buf), ec);
    out.client_got_message = !ec && std::string(buf, 8) == "attested";
  }
  b.close(ec);
  t.join();
  return out;
}

class RaTlsOpensslTest : public ::testing::Test {
 protected:
  void SetUp() override {
    PlatformOptions s{dir_.path()};
    s.sim_identity = "server";
    PlatformOptions c{dir_.path()};
    c.sim_identity = "client";
    server_ = std::move(*SimPlatform::New(s));
    client_ = std::move(*SimPlatform::New(c));
    server_id_ = std::move(*MakeRaTlsIdentity(*server_));
    client_id_ = std::move(*MakeRaTlsIdentity(*client_));
    quote::Policy sp;
    sp.mrsigner = {crypto::HexEncode(crypto::Sha256("kshield-sim-signer:client"))};
    quote::Policy cp;
    cp.mrsigner = {crypto::HexEncode(crypto::Sha256("kshield-sim-signer:server"))};
    server_peer_.root_pem = client_peer_.root_pem = server_->RootCaPem();
    server_peer_.policy = sp;
    client_peer_.policy = cp;
  }
  testing::TempDir dir_;
  std::unique_ptr<SimPlatform> server_, client_;
  RaTlsIdentity server_id_, client_id_;
  RaTlsVerifyOptions server_peer_, client_peer_;
};

TEST_F(RaTlsOpensslTest, MutualHandshakeOverAsio) {
  Outcome o = Exchange(server_id_, server_peer_, client_id_, client_peer_);
  EXPECT_TRUE(o.server_ok);
  EXPECT_TRUE(o.client_got_message);
}

TEST_F(RaTlsOpensslTest, ClientRefusesServerOutsideItsPolicy) {
  RaTlsVerifyOptions strict = client_peer_;
  strict.policy->mrsigner = {std::string(64, 'b')};
  Outcome o = Exchange(server_id_, server_peer_, client_id_, strict);
  EXPECT_FALSE(o.server_ok);
  EXPECT_FALSE(o.client_got_message);
}

TEST_F(RaTlsOpensslTest, ServerRefusesClientOutsideItsPolicy) {
  RaTlsVerifyOptions strict = server_peer_;
  strict.policy->mrsigner = {std::string(64, 'c')};
  Outcome o = Exchange(server_id_, strict, client_id_, client_peer_);
  EXPECT_FALSE(o.server_ok);
  EXPECT_FALSE(o.client_got_message);
}

TEST_F(RaTlsOpensslTest, ServerUnderAnotherRootIsRefused) {
  RaTlsVerifyOptions other = client_peer_;
  auto elsewhere = SimPlatform::New({});
  ASSERT_TRUE(elsewhere.ok());
  other.root_pem = (*elsewhere)->RootCaPem();
  Outcome o = Exchange(server_id_, server_peer_, client_id_, other);
  EXPECT_FALSE(o.client_got_message);
}

}  // namespace
}  // namespace kshield::tee

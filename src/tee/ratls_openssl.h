// RA-TLS for OpenSSL-based TLS stacks — Boost.Asio (`boost::asio::ssl::context::native_handle()`)
// or a raw SSL_CTX: installs our RA-TLS identity and replaces the certificate chain check with
// the RA-TLS check (ratls.h): the peer's leaf certificate must carry evidence bound to its key that
// verifies to the pinned root and meets the policy. No CA is involved.
//
//   boost::asio::ssl::context tls(boost::asio::ssl::context::tls);
//   KSH_RETURN_IF_ERROR(ConfigureRaTls(tls.native_handle(), identity, peer_options,
//                                      /*require_peer_certificate=*/true));
#pragma once

#include <openssl/ssl.h>

#include "absl/status/status.h"
#include "tee/ratls.h"

namespace kshield::tee {

// `ctx` keeps its own copy of `peer` (freed with the SSL_CTX). Servers should require the peer
// certificate (mutual attestation); a client always verifies the server's.
[[nodiscard]] absl::Status ConfigureRaTls(SSL_CTX* ctx, const RaTlsIdentity& identity,
                                          RaTlsVerifyOptions peer, bool require_peer_certificate);

}  // namespace kshield::tee

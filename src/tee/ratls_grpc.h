// RA-TLS for gRPC: TLS credentials whose peer check is "the peer's certificate carries evidence
// bound to its key that verifies to our pinned root and meets our policy" (ratls.h), through
// gRPC's experimental TLS credentials and a custom (external) certificate verifier. Both sides
// present an RA-TLS certificate (mutual attestation); the usual CA chain and host-name checks are
// off because the certificates are self-signed and the quote — not a CA — vouches for the key.
//
//   KSH_ASSIGN_OR_RETURN(RaTlsIdentity me, MakeRaTlsIdentity(*platform));
//   auto server_creds = RaTlsServerCredentials(me, {.root_pem = root, .policy = client_policy});
//   auto channel_creds = RaTlsChannelCredentials(me, {.root_pem = root, .policy = server_policy});
#pragma once

#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>

#include <memory>

#include "tee/ratls.h"

namespace kshield::tee {

// Server side: presents `identity`, requires a client certificate and verifies it as RA-TLS.
std::shared_ptr<grpc::ServerCredentials> RaTlsServerCredentials(const RaTlsIdentity& identity,
                                                                RaTlsVerifyOptions peer);
// Client side: presents `identity` and verifies the server's certificate as RA-TLS.
std::shared_ptr<grpc::ChannelCredentials> RaTlsChannelCredentials(const RaTlsIdentity& identity,
                                                                  RaTlsVerifyOptions peer);

}  // namespace kshield::tee

// The server identity a TLS client checks: one rule for every outbound TLS connection kshield
// makes (KMIP, the kshield-kubectl proxy's upstream, the HTTPS client).
#pragma once

#include <openssl/ssl.h>

#include <string>

#include "absl/status/status.h"

namespace kshield::crypto {

// Makes the handshake on `ssl` verify that the peer certificate names `name`: an IP literal
// (IPv4 or IPv6, no brackets) is matched against the certificate's IP SANs; anything else is a DNS
// name, sent as SNI and matched with no partial wildcards ("a*.example.com" never matches).
// InvalidArgument when OpenSSL refuses the name (the handshake must not go ahead unchecked).
[[nodiscard]] absl::Status ExpectPeerName(SSL* ssl, const std::string& name);

}  // namespace kshield::crypto

#include "crypto/tls_peer.h"

#include <arpa/inet.h>
#include <openssl/x509v3.h>

#include "absl/strings/str_cat.h"

namespace kshield::crypto {
namespace {

bool IsIpLiteral(const std::string& s) {
  unsigned char buf[16];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

}  // namespace

absl::Status ExpectPeerName(SSL* ssl, const std::string& name) {
  if (ssl == nullptr || name.empty()) return absl::InvalidArgumentError("empty TLS server name");
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
  X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  if (IsIpLiteral(name)) {
    if (X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str()) != 1) {
      return absl::InvalidArgumentError(absl::StrCat("bad TLS server address ", name));
    }
  } else if (SSL_set1_host(ssl, name.c_str()) != 1 ||
             SSL_set_tlsext_host_name(ssl, name.c_str()) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("bad TLS server name ", name));
  }
  return absl::OkStatus();
}

}  // namespace kshield::crypto

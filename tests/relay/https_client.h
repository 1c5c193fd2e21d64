// Test-only HTTPS client for the relay: one request per connection, server certificate verified
// against a given CA and 127.0.0.1, optional client certificate.
#pragma once

#include <map>
#include <string>

#include "common/secret.h"

namespace kshield::testing {

struct HttpsRequest {
  std::string method = "GET";
  std::string target = "/";
  std::string body;
  std::map<std::string, std::string> headers;
  const std::string* client_cert_pem = nullptr;
  const SecretBytes* client_key_pem = nullptr;
};

struct HttpsResult {
  int status = -1;  // -1: no HTTP response (error says why)
  std::string body;
  std::map<std::string, std::string> headers;
  std::string error;
};

HttpsResult Https(int port, const std::string& server_ca_pem, const HttpsRequest& request);

}  // namespace kshield::testing

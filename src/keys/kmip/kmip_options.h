// Configuration of the `kmip` key provider.
//
// YAML (a mapping; unknown keys are an error naming the key):
//   endpoint: kms.example.com:5696     # host:port, or [v6addr]:port          (required)
//   ca_file: /etc/kshield/kmip/ca.pem  # CA bundle the server certificate must chain to (required)
//   cert_file: /etc/kshield/kmip/client.pem   # our client certificate chain (required)
//   key_file: /etc/kshield/kmip/client.key    # its private key, PEM, unencrypted (required)
//   server_name: kms.example.com       # name the server certificate must carry; default: host
//   name_prefix: kshield               # KMIP Name of a KEK = <name_prefix>-<keyset_id>-<version>
//   timeout: 3s                        # per KMIP call: "500ms", "3s", "1m", or bare seconds
//
//   KSH_ASSIGN_OR_RETURN(KmipOptions o, ParseKmipOptionsYaml(yaml_text));
//   KSH_ASSIGN_OR_RETURN(auto provider, NewKmipProvider(o));
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace YAML {
class Node;
}

namespace kshield::keys::kmip {

struct KmipOptions {
  std::string endpoint;
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  std::string server_name;
  std::string name_prefix = "kshield";
  std::chrono::milliseconds timeout{3000};
};

// Parses a YAML mapping (the whole document) into options and validates them.
absl::StatusOr<KmipOptions> ParseKmipOptionsYaml(std::string_view yaml);
// The same for a node of a larger document (e.g. the `kmip:` section of kshield's config).
absl::StatusOr<KmipOptions> ParseKmipOptionsNode(const YAML::Node& node);

// Required fields present, endpoint well-formed, name_prefix of [A-Za-z0-9._-] (1..64 chars),
// timeout within 10ms..10min.
absl::Status ValidateKmipOptions(const KmipOptions& options);

struct HostPort {
  std::string host;  // without IPv6 brackets
  uint16_t port = 0;
};
// "host:port" or "[v6]:port"; port 1..65535.
absl::StatusOr<HostPort> ParseEndpoint(std::string_view endpoint);

// "500ms", "3s", "2m", "1h", or a bare number of seconds.
absl::StatusOr<std::chrono::milliseconds> ParseKmipDuration(std::string_view text);

}  // namespace kshield::keys::kmip

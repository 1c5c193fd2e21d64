// Fuzz target: the kshield-kubectl proxy's request rules (src/proxy/http_filter.h) — the
// /clusters/<name>/ route parser, local-token extraction, the WebSocket subprotocol list, request /
// response header hygiene and the verb classifier. All of it runs on bytes a local client sends.
// Input: the first line is a request-target; the remaining lines are "Name: value" headers (the
// first byte also picks the upgrade flag). Invariants:
//  - an accepted route has a valid cluster name, a path starting with '/', no "." / ".." segment,
//    no encoded '/', '\', '.' or NUL, and rebuilds to the original target;
//  - after SanitizeRequestHeaders no credential header (Authorization, Proxy-Authorization,
//    Impersonate-*, X-Remote-*), no hop-by-hop header but Connection: Upgrade / Upgrade (only with
//    the upgrade flag and an allowed protocol), and no subprotocol entry starting with the bearer
//    prefix (any case) remains; sanitizing
//    twice changes nothing more;
//  - ParseWebSocketProtocols never forwards a bearer entry, and its forwarded list re-parses to
//    itself;
//  - token extraction fails only with Unauthenticated, and a token never contains whitespace.
// fuzz-libs: kshield_proxy
// fuzz-sources: src/proxy/http_filter.cc
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "fuzz_check.h"
#include "proxy/http_filter.h"

namespace p = kshield::proxy;
namespace http = boost::beast::http;

namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = absl::ascii_tolower(static_cast<unsigned char>(c));
  return out;
}

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && s.substr(0, prefix.size()) == prefix;
}

// True when an entry of the comma-separated list starts with the bearer prefix (any case): the
// apiserver would read such an entry as a credential.
bool HasBearerEntry(std::string_view list) {
  const std::string lower = Lower(list);
  std::string_view rest = lower;
  while (true) {
    size_t comma = rest.find(',');
    std::string_view item = rest.substr(0, comma);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    if (StartsWith(item, "base64url.bearer.authorization.k8s.io.")) return true;
    if (comma == std::string_view::npos) return false;
    rest.remove_prefix(comma + 1);
  }
}

std::vector<std::pair<std::string, std::string>> Snapshot(const http::fields& f) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& field : f) {
    out.emplace_back(std::string(field.name_string()), std::string(field.value()));
  }
  return out;
}

void CheckRoute(std::string_view target) {
  absl::StatusOr<p::Route> r = p::ParseRoute(target);
  if (!r.ok()) {
    FUZZ_CHECK(r.status().code() == absl::StatusCode::kInvalidArgument);
    return;
  }
  FUZZ_CHECK(target.size() <= p::kMaxTargetBytes);
  FUZZ_CHECK(p::IsValidClusterName(r->cluster));
  FUZZ_CHECK(!r->path.empty() && r->path[0] == '/');
  const std::string lower = Lower(r->path);
  FUZZ_CHECK(lower.find("%2f") == std::string::npos && lower.find("%5c") == std::string::npos &&
             lower.find("%2e") == std::string::npos && lower.find("%00") == std::string::npos);
  const std::string segs = r->path + "/";
  FUZZ_CHECK(segs.find("/../") == std::string::npos && segs.find("/./") == std::string::npos);
  // Rebuild: "/clusters/<name>" + ("" | path) + ("" | "?" query).
  std::string rebuilt = "/clusters/" + r->cluster;
  std::string_view rest = target.substr(rebuilt.size());
  std::string_view rest_path = rest.substr(0, rest.find('?'));
  FUZZ_CHECK(rest_path.empty() ? r->path == "/" : rest_path == r->path);
  rebuilt += rest_path;
  if (rest.find('?') != std::string_view::npos) rebuilt += "?" + r->query;
  FUZZ_CHECK(rebuilt == target);
  (void)p::VerbOf("GET", r->path, r->query, false);
}

void CheckProtocols(std::string_view value) {
  p::WebSocketProtocols w = p::ParseWebSocketProtocols(value);
  if (w.malformed) return;
  FUZZ_CHECK(!HasBearerEntry(w.forwarded));
  p::WebSocketProtocols again = p::ParseWebSocketProtocols(w.forwarded);
  FUZZ_CHECK(!again.malformed);
  FUZZ_CHECK(again.forwarded == w.forwarded);
  FUZZ_CHECK(!again.bearer_token.has_value());
}

void CheckHeaders(http::fields& f, bool upgrade) {
  absl::StatusOr<std::string> token = p::ExtractLocalToken(f);
  if (token.ok()) {
    FUZZ_CHECK(!token->empty());
    for (unsigned char c : *token) FUZZ_CHECK(c > 0x20 && c < 0x7f);
  } else {
    FUZZ_CHECK(token.status().code() == absl::StatusCode::kUnauthenticated);
  }
  p::SanitizeRequestHeaders(f, upgrade);
  for (const auto& field : f) {
    const std::string name =
        Lower(std::string_view(field.name_string().data(), field.name_string().size()));
    const std::string_view value(field.value().data(), field.value().size());
    FUZZ_CHECK(name != "authorization" && name != "proxy-authorization");
    FUZZ_CHECK(!StartsWith(name, "impersonate-") && !StartsWith(name, "x-remote-"));
    FUZZ_CHECK(name != "keep-alive" && name != "proxy-connection" && name != "te" &&
               name != "trailer" && name != "expect");
    if (name == "connection") FUZZ_CHECK(upgrade && value == "Upgrade");
    if (name == "upgrade") FUZZ_CHECK(upgrade && p::IsAllowedUpgrade(value));
    if (name == "sec-websocket-protocol") {
      FUZZ_CHECK(!HasBearerEntry(value));
    }
  }
  auto once = Snapshot(f);
  p::SanitizeRequestHeaders(f, upgrade);
  FUZZ_CHECK(Snapshot(f) == once);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  const bool upgrade = size > 0 && (data[0] & 1);
  size_t nl = in.find('\n');
  std::string_view target = in.substr(0, nl);
  CheckRoute(target);
  CheckProtocols(target);
  (void)p::BearerFromAuthorization(target);
  (void)p::QueryRequestsWatch(target);
  (void)p::PrintableTruncated(target, 64);

  http::fields request;
  http::fields response;
  std::string_view rest = nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);
  size_t count = 0;
  while (!rest.empty() && count < 64) {
    size_t end = rest.find('\n');
    std::string_view line = rest.substr(0, end);
    size_t colon = line.find(':');
    if (colon != std::string_view::npos && colon > 0) {
      std::string_view name = line.substr(0, colon);
      std::string_view value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
      request.insert(boost::beast::string_view(name.data(), name.size()),
                     boost::beast::string_view(value.data(), value.size()));
      response.insert(boost::beast::string_view(name.data(), name.size()),
                      boost::beast::string_view(value.data(), value.size()));
      ++count;
    }
    if (end == std::string_view::npos) break;
    rest.remove_prefix(end + 1);
  }
  CheckHeaders(request, upgrade);
  p::SanitizeResponseHeaders(response, upgrade);
  for (const auto& field : response) {
    const std::string name =
        Lower(std::string_view(field.name_string().data(), field.name_string().size()));
    FUZZ_CHECK(name != "keep-alive" && name != "proxy-authenticate" && name != "te");
    if (name == "connection") FUZZ_CHECK(upgrade);
  }
  (void)p::VerbOf(target.substr(0, 8), target, target, upgrade);
  return 0;
}

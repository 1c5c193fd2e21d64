#include "proxy/http_filter.h"

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "common/log.h"
#include "common/status.h"

namespace kshield::proxy {
namespace {

namespace http = boost::beast::http;

std::string_view S(boost::beast::string_view v) { return {v.data(), v.size()}; }
boost::beast::string_view B(std::string_view v) { return {v.data(), v.size()}; }

bool IEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (absl::ascii_tolower(static_cast<unsigned char>(a[i])) !=
        absl::ascii_tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

bool IStartsWith(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && IEquals(s.substr(0, prefix.size()), prefix);
}

std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// RFC 9110 §5.6.2 tchar.
bool IsTokenChar(unsigned char c) {
  constexpr std::string_view kSymbols = "!#$%&'*+-.^_`|~";
  return absl::ascii_isalnum(c) || (c != 0 && kSymbols.find(static_cast<char>(c)) != kSymbols.npos);
}

bool IsToken(std::string_view s) {
  if (s.empty()) return false;
  for (unsigned char c : s) {
    if (!IsTokenChar(c)) return false;
  }
  return true;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Every instance of header `name`, joined with ','.
std::string JoinedValues(const http::fields& fields, http::field name) {
  std::string out;
  auto range = fields.equal_range(name);
  for (auto it = range.first; it != range.second; ++it) {
    if (!out.empty()) out.push_back(',');
    out.append(S(it->value()));
  }
  return out;
}

bool HasHeader(const http::fields& fields, http::field name) {
  return fields.find(name) != fields.end();
}

// Lower-cased names listed by every Connection header.
std::vector<std::string> ConnectionTokens(const http::fields& fields) {
  std::vector<std::string> out;
  auto range = fields.equal_range(http::field::connection);
  for (auto it = range.first; it != range.second; ++it) {
    std::string_view v = S(it->value());
    while (!v.empty()) {
      size_t comma = v.find(',');
      std::string_view item = TrimOws(v.substr(0, comma));
      if (!item.empty()) out.push_back(absl::AsciiStrToLower(AV(item)));
      if (comma == std::string_view::npos) break;
      v.remove_prefix(comma + 1);
    }
  }
  return out;
}

// Removes the hop-by-hop headers shared by requests and responses.
void RemoveHopByHop(http::fields& fields) {
  // Message framing is never removed on a Connection header's say-so: dropping Content-Length or
  // Transfer-Encoding would change where this message ends for the next hop.
  for (const std::string& token : ConnectionTokens(fields)) {
    if (token == "content-length" || token == "transfer-encoding" || token == "host") continue;
    fields.erase(B(token));
  }
  fields.erase(http::field::connection);
  fields.erase(http::field::keep_alive);
  fields.erase(http::field::proxy_connection);
  fields.erase(http::field::te);
  fields.erase(http::field::trailer);
  fields.erase(http::field::upgrade);
}

}  // namespace

bool IsValidClusterName(std::string_view name) {
  if (name.empty() || name.size() > kMaxClusterNameBytes) return false;
  if (name == "." || name == "..") return false;
  for (unsigned char c : name) {
    if (!absl::ascii_isalnum(c) && c != '.' && c != '_' && c != '-') return false;
  }
  return true;
}

absl::StatusOr<Route> ParseRoute(std::string_view target) {
  constexpr std::string_view kPrefix = "/clusters/";
  if (target.size() > kMaxTargetBytes) {
    return absl::InvalidArgumentError("request target too long");
  }
  for (unsigned char c : target) {
    if (c <= 0x20 || c >= 0x7f || c == '#' || c == '\\') {
      return absl::InvalidArgumentError("request target has a character that must be encoded");
    }
  }
  if (target.substr(0, kPrefix.size()) != kPrefix) {
    return absl::InvalidArgumentError("request target is not /clusters/<name>/...");
  }
  std::string_view path = target;
  std::string_view query;
  if (size_t q = target.find('?'); q != std::string_view::npos) {
    path = target.substr(0, q);
    query = target.substr(q + 1);
  }
  std::string_view after = path.substr(kPrefix.size());
  size_t slash = after.find('/');
  std::string_view name = after.substr(0, slash);
  if (!IsValidClusterName(name)) {
    return absl::InvalidArgumentError("invalid cluster name in request target");
  }
  std::string_view rest =
      slash == std::string_view::npos ? std::string_view() : after.substr(slash);

  for (size_t i = 0; i < rest.size(); ++i) {
    if (rest[i] != '%') continue;
    if (i + 2 >= rest.size()) return absl::InvalidArgumentError("malformed percent-encoding");
    int hi = HexValue(rest[i + 1]);
    int lo = HexValue(rest[i + 2]);
    if (hi < 0 || lo < 0) return absl::InvalidArgumentError("malformed percent-encoding");
    int decoded = hi * 16 + lo;
    if (decoded == '/' || decoded == '\\' || decoded == '.' || decoded == 0) {
      return absl::InvalidArgumentError("encoded '/', '\\', '.' or NUL in request path");
    }
  }
  // Segments of rest (after its leading '/'): no dot segments, no empty segment but a trailing one.
  if (!rest.empty()) {
    std::string_view segs = rest.substr(1);
    while (true) {
      size_t next = segs.find('/');
      std::string_view seg = segs.substr(0, next);
      if (seg == "." || seg == "..") {
        return absl::InvalidArgumentError("'.' or '..' segment in request path");
      }
      if (next == std::string_view::npos) break;
      if (seg.empty()) return absl::InvalidArgumentError("empty segment in request path");
      segs.remove_prefix(next + 1);
    }
  }
  Route route;
  route.cluster = std::string(name);
  route.path = rest.empty() ? std::string("/") : std::string(rest);
  route.query = std::string(query);
  return route;
}

std::optional<std::string_view> BearerFromAuthorization(std::string_view value) {
  value = TrimOws(value);
  constexpr std::string_view kScheme = "bearer";
  if (value.size() <= kScheme.size() || !IEquals(value.substr(0, kScheme.size()), kScheme)) {
    return std::nullopt;
  }
  std::string_view rest = value.substr(kScheme.size());
  if (rest.front() != ' ') return std::nullopt;
  while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  if (rest.empty()) return std::nullopt;
  for (unsigned char c : rest) {
    if (c <= 0x20 || c >= 0x7f) return std::nullopt;
  }
  return rest;
}

WebSocketProtocols ParseWebSocketProtocols(std::string_view value) {
  WebSocketProtocols out;
  if (TrimOws(value).empty()) return out;
  std::string_view v = value;
  while (true) {
    size_t comma = v.find(',');
    std::string_view item = TrimOws(v.substr(0, comma));
    if (!IsToken(item)) {
      out.malformed = true;
    } else if (IStartsWith(item, kWebSocketBearerPrefix)) {
      std::string decoded;
      std::string_view encoded = item.substr(kWebSocketBearerPrefix.size());
      bool ok = !encoded.empty() && absl::WebSafeBase64Unescape(AV(encoded), &decoded) &&
                !decoded.empty();
      for (unsigned char c : decoded) {
        if (c <= 0x20 || c >= 0x7f) ok = false;
      }
      if (!ok || out.bearer_token.has_value()) {
        out.malformed = true;
      } else {
        out.bearer_token = std::move(decoded);
      }
    } else {
      if (!out.forwarded.empty()) out.forwarded.append(", ");
      out.forwarded.append(item);
    }
    if (comma == std::string_view::npos) break;
    v.remove_prefix(comma + 1);
  }
  return out;
}

absl::StatusOr<std::string> ExtractLocalToken(const http::fields& request) {
  std::optional<std::string> from_authorization;
  auto range = request.equal_range(http::field::authorization);
  int count = 0;
  for (auto it = range.first; it != range.second; ++it) ++count;
  if (count > 1) return absl::UnauthenticatedError("more than one Authorization header");
  if (count == 1) {
    std::optional<std::string_view> bearer = BearerFromAuthorization(S(range.first->value()));
    if (!bearer) return absl::UnauthenticatedError("Authorization is not a bearer token");
    from_authorization = std::string(*bearer);
  }
  std::optional<std::string> from_protocol;
  if (HasHeader(request, http::field::sec_websocket_protocol)) {
    WebSocketProtocols p =
        ParseWebSocketProtocols(JoinedValues(request, http::field::sec_websocket_protocol));
    if (p.malformed) return absl::UnauthenticatedError("malformed Sec-WebSocket-Protocol");
    from_protocol = std::move(p.bearer_token);
  }
  if (from_authorization && from_protocol && *from_authorization != *from_protocol) {
    return absl::UnauthenticatedError("conflicting bearer tokens");
  }
  if (from_authorization) return std::move(*from_authorization);
  if (from_protocol) return std::move(*from_protocol);
  return absl::UnauthenticatedError("no bearer token");
}

bool IsAllowedUpgrade(std::string_view upgrade_value) {
  std::string_view v = TrimOws(upgrade_value);
  return IEquals(v, "websocket") || IEquals(v, "SPDY/3.1");
}

void SanitizeRequestHeaders(http::fields& request, bool upgrade) {
  std::string upgrade_value;
  if (upgrade) upgrade_value = JoinedValues(request, http::field::upgrade);
  RemoveHopByHop(request);
  request.erase(http::field::expect);
  request.erase(http::field::authorization);
  request.erase(http::field::proxy_authorization);
  for (auto it = request.begin(); it != request.end();) {
    std::string_view name = S(it->name_string());
    if (IStartsWith(name, "impersonate-") || IStartsWith(name, "x-remote-")) {
      it = request.erase(it);
    } else {
      ++it;
    }
  }
  if (HasHeader(request, http::field::sec_websocket_protocol)) {
    WebSocketProtocols p =
        ParseWebSocketProtocols(JoinedValues(request, http::field::sec_websocket_protocol));
    request.erase(http::field::sec_websocket_protocol);
    // A malformed list is dropped whole: it might hide a credential we failed to recognise.
    if (!p.malformed && !p.forwarded.empty()) {
      request.set(http::field::sec_websocket_protocol, p.forwarded);
    }
  }
  if (upgrade && IsAllowedUpgrade(upgrade_value)) {
    request.set(http::field::connection, "Upgrade");
    request.set(http::field::upgrade, upgrade_value);
  }
}

void SanitizeResponseHeaders(http::fields& response, bool upgrade) {
  std::string upgrade_value;
  if (upgrade) upgrade_value = JoinedValues(response, http::field::upgrade);
  RemoveHopByHop(response);
  response.erase(http::field::proxy_authenticate);
  if (upgrade && !upgrade_value.empty()) {
    response.set(http::field::connection, "Upgrade");
    response.set(http::field::upgrade, upgrade_value);
  }
}

bool QueryRequestsWatch(std::string_view query) {
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view param = query.substr(0, amp);
    size_t eq = param.find('=');
    if (param.substr(0, eq) == "watch") {
      std::string_view value = eq == std::string_view::npos ? "" : param.substr(eq + 1);
      return value == "1" || value == "t" || value == "T" || value == "true" || value == "TRUE" ||
             value == "True";
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return false;
}

std::string VerbOf(std::string_view method, std::string_view path, std::string_view query,
                   bool upgrade) {
  if (upgrade) return "connect";
  const std::string lower = absl::AsciiStrToLower(AV(method));
  std::vector<std::string_view> parts;
  while (!path.empty()) {
    size_t slash = path.find('/');
    std::string_view seg = path.substr(0, slash);
    if (!seg.empty()) parts.push_back(seg);
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  // Mirrors k8s.io/apiserver/pkg/endpoints/request.RequestInfoFactory.
  size_t skip = 0;
  if (!parts.empty() && parts[0] == "api")
    skip = 2;  // api/<version>
  else if (!parts.empty() && parts[0] == "apis")
    skip = 3;                                           // apis/<group>/<version>
  if (skip == 0 || parts.size() <= skip) return lower;  // not a resource request
  std::vector<std::string_view> rest(parts.begin() + skip, parts.end());
  bool watch = QueryRequestsWatch(query);
  if (rest[0] == "watch") {
    watch = true;
    rest.erase(rest.begin());
    if (rest.empty()) return lower;
  }
  if (rest[0] == "namespaces" && rest.size() >= 3) rest.erase(rest.begin(), rest.begin() + 2);
  const bool named = rest.size() >= 2;
  if (lower == "get" || lower == "head") return watch ? "watch" : (named ? "get" : "list");
  if (lower == "post") return "create";
  if (lower == "put") return "update";
  if (lower == "patch") return "patch";
  if (lower == "delete") return named ? "delete" : "deletecollection";
  return lower;
}

std::string StatusJson(int code, std::string_view reason, std::string_view message) {
  std::string out =
      R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":)";
  log::AppendJsonString(&out, message);
  out.append(",\"reason\":");
  log::AppendJsonString(&out, reason);
  out.append(",\"code\":");
  out.append(std::to_string(code));
  out.append("}");
  return out;
}

std::string PrintableTruncated(std::string_view s, size_t max) {
  std::string out(s.substr(0, max));
  for (char& c : out) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7f) c = '?';
  }
  return out;
}

}  // namespace kshield::proxy

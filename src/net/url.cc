#include "net/url.h"

#include <arpa/inet.h>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace kshield::net {
namespace {

constexpr std::string_view kScheme = "https://";
constexpr size_t kMaxHostBytes = 253;  // RFC 1035 §2.3.4, as written without a trailing dot
constexpr size_t kMaxShownBytes = 200;

// What an error message quotes: scheme and authority only (a path or query may carry something
// a log should not), user info masked, bytes escaped.
std::string Shown(std::string_view url) {
  size_t start = url.find("://");
  start = start == std::string_view::npos ? 0 : start + 3;
  const size_t end = url.find_first_of("/?#", start);
  std::string_view head = url.substr(0, end);
  std::string shown;
  const size_t at = head.rfind('@');
  if (at != std::string_view::npos && at >= start) {
    shown = absl::StrCat(AV(head.substr(0, start)), "***", AV(head.substr(at)));
  } else {
    shown = std::string(head);
  }
  const bool cut = shown.size() > kMaxShownBytes;
  if (cut) shown.resize(kMaxShownBytes);
  return absl::StrCat(absl::CHexEscape(shown), cut ? "..." : "");
}

bool IsUnreserved(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_' ||
         c == '~';
}

bool IsSubDelim(char c) {
  switch (c) {
    case '!':
    case '$':
    case '&':
    case '\'':
    case '(':
    case ')':
    case '*':
    case '+':
    case ',':
    case ';':
    case '=':
      return true;
    default:
      return false;
  }
}

// RFC 3986 §3.3 pchar, less the '%' (checked with its two hex digits by the caller).
bool IsPcharNotPct(char c) { return IsUnreserved(c) || IsSubDelim(c) || c == ':' || c == '@'; }

bool IsHex(char c) { return absl::ascii_isxdigit(static_cast<unsigned char>(c)); }

// Checks `s` holds only pchar, %HH and the `extra` characters.
bool ValidChars(std::string_view s, std::string_view extra, std::string* why) {
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '%') {
      if (i + 2 >= s.size() || !IsHex(s[i + 1]) || !IsHex(s[i + 2])) {
        *why = "bad percent-encoding";
        return false;
      }
      i += 2;
      continue;
    }
    if (!IsPcharNotPct(c) && extra.find(c) == std::string_view::npos) {
      *why = absl::StrCat("character '", absl::CHexEscape(std::string(1, c)), "' not allowed");
      return false;
    }
  }
  return true;
}

// "." or ".." once %2e / %2E are read as '.'.
bool IsDotSegment(std::string_view seg) {
  int dots = 0;
  for (size_t i = 0; i < seg.size();) {
    if (seg[i] == '.') {
      ++i;
    } else if (i + 2 < seg.size() && seg[i] == '%' && seg[i + 1] == '2' &&
               (seg[i + 2] == 'e' || seg[i + 2] == 'E')) {
      i += 3;
    } else {
      return false;
    }
    if (++dots > 2) return false;
  }
  return dots == 1 || dots == 2;
}

// A label that WHATWG's URL standard (host parser, "ends in a number") would read as a number.
bool IsNumericLabel(std::string_view label) {
  if (label.empty()) return false;
  if (label.size() >= 2 && label[0] == '0' && (label[1] == 'x' || label[1] == 'X')) {
    for (char c : label.substr(2)) {
      if (!IsHex(c)) return false;
    }
    return true;
  }
  for (char c : label) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

}  // namespace

std::string ParsedHttpsUrl::Target() const {
  std::string out = path.empty() ? "/" : path;
  if (has_query) absl::StrAppend(&out, "?", query);
  return out;
}

std::string ParsedHttpsUrl::PathPrefix() const {
  std::string_view p = path;
  while (!p.empty() && p.back() == '/') p.remove_suffix(1);
  return std::string(p);
}

absl::StatusOr<ParsedHttpsUrl> ParseHttpsUrl(std::string_view url, HttpsUrlRules rules) {
  auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", Shown(url), "\" is not a valid https URL (", AV(why), ")"));
  };
  if (url.size() > kMaxHttpsUrlBytes) {
    return bad(absl::StrCat("longer than ", kMaxHttpsUrlBytes, " bytes"));
  }
  for (char c : url) {
    if (static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7f) {
      return bad("control character, space or non-ASCII");
    }
  }
  const std::string_view scheme = url.substr(0, kScheme.size());
  if (scheme.size() != kScheme.size() ||
      !(rules.any_case_scheme ? absl::EqualsIgnoreCase(AV(scheme), AV(kScheme))
                              : scheme == kScheme)) {
    return bad("must start with https://");
  }
  std::string_view rest = url.substr(kScheme.size());
  if (rest.find('#') != std::string_view::npos) {
    return bad(rules.allow_query ? "no fragment" : "no query or fragment");
  }
  if (!rules.allow_query && rest.find('?') != std::string_view::npos) {
    return bad("no query or fragment");
  }

  // authority
  const size_t authority_end = rest.find_first_of("/?");
  const std::string_view authority = rest.substr(0, authority_end);
  if (authority_end != std::string_view::npos && rest[authority_end] == '?') {
    return bad("a query needs a path: https://host/?query");
  }
  if (authority.find('@') != std::string_view::npos) return bad("no user info");
  ParsedHttpsUrl out;
  std::string_view host;
  std::string_view port_text;
  bool has_port = false;
  if (!authority.empty() && authority.front() == '[') {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) return bad("unclosed [");
    host = authority.substr(1, close - 1);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return bad("junk after ]");
      has_port = true;
      port_text = after.substr(1);
    }
    if (host.empty()) return bad("empty host");
    unsigned char buf[16];
    if (inet_pton(AF_INET6, std::string(host).c_str(), buf) != 1) {
      return bad("[host] is not an IPv6 address");
    }
    out.bracketed = true;
    out.ip_literal = true;
  } else {
    const size_t colon = authority.find(':');
    if (colon != std::string_view::npos &&
        authority.find(':', colon + 1) != std::string_view::npos) {
      return bad("IPv6 hosts need [ ]");
    }
    host = authority.substr(0, colon);
    if (colon != std::string_view::npos) {
      has_port = true;
      port_text = authority.substr(colon + 1);
    }
    if (host.empty()) return bad("empty host");
    if (host.size() > kMaxHostBytes) return bad("host name too long");
    for (char c : host) {
      if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.' && c != '_') {
        return bad(absl::StrCat("character '", absl::CHexEscape(std::string(1, c)),
                                "' not allowed in a host"));
      }
    }
    if (host.front() == '.' || host.back() == '.' || host.find("..") != std::string_view::npos) {
      return bad("empty label in host");
    }
    unsigned char buf[4];
    const bool ipv4 = inet_pton(AF_INET, std::string(host).c_str(), buf) == 1;
    const size_t last_dot = host.rfind('.');
    const std::string_view last_label =
        last_dot == std::string_view::npos ? host : host.substr(last_dot + 1);
    if (!ipv4 && IsNumericLabel(last_label)) {
      return bad("a numeric host must be a dotted-quad IPv4 address");
    }
    out.ip_literal = ipv4;
  }
  if (has_port) {
    int port = 0;
    if (port_text.empty()) return bad("empty port");
    if (port_text.size() > 5 ||
        port_text.find_first_not_of("0123456789") != std::string_view::npos ||
        !absl::SimpleAtoi(AV(port_text), &port) || port < 1 || port > 65535) {
      return bad("bad port");
    }
    out.port = static_cast<uint16_t>(port);
    out.port_text = std::string(port_text);
  }
  out.host = std::string(host);
  out.authority = std::string(authority);

  // path and query
  std::string_view path =
      authority_end == std::string_view::npos ? std::string_view() : rest.substr(authority_end);
  const size_t q = path.find('?');
  std::string_view query;
  if (q != std::string_view::npos) {
    out.has_query = true;
    query = path.substr(q + 1);
    path = path.substr(0, q);
  }
  std::string why;
  if (!ValidChars(path, "/", &why)) return bad(absl::StrCat("path: ", why));
  if (!path.empty()) {
    std::string_view segments = path.substr(1);
    while (true) {
      const size_t slash = segments.find('/');
      const std::string_view seg = segments.substr(0, slash);
      if (IsDotSegment(seg)) return bad("path: \".\" or \"..\" segment");
      if (slash == std::string_view::npos) break;
      if (seg.empty()) return bad("path: empty segment");
      segments = segments.substr(slash + 1);
    }
  }
  if (!ValidChars(query, "/?", &why)) return bad(absl::StrCat("query: ", why));
  out.path = std::string(path);
  out.query = std::string(query);
  return out;
}

}  // namespace kshield::net

#include "proxy/daemon_oidc.h"

#include <openssl/crypto.h>

#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "net/https_client.h"
#include "nlohmann/json.hpp"
#include "proxy/control.h"

namespace kshield::kubectl {
namespace {

absl::StatusOr<std::string> Base64UrlDecode(std::string_view in) {
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    int v;
    if (c >= 'A' && c <= 'Z') {
      v = c - 'A';
    } else if (c >= 'a' && c <= 'z') {
      v = c - 'a' + 26;
    } else if (c >= '0' && c <= '9') {
      v = c - '0' + 52;
    } else if (c == '-') {
      v = 62;
    } else if (c == '_') {
      v = 63;
    } else if (c == '=') {
      break;
    } else {
      return absl::InvalidArgumentError("not base64url");
    }
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return out;
}

absl::Time ClaimTime(const nlohmann::json& claims, const char* name) {
  auto it = claims.find(name);
  if (it == claims.end() || !it->is_number()) return absl::InfinitePast();
  const double v = it->get<double>();
  if (!std::isfinite(v) || v < 0 || v > 1e11) return absl::InfinitePast();
  return absl::FromUnixSeconds(static_cast<int64_t>(v));
}

}  // namespace

absl::StatusOr<JwtTimes> ReadJwtTimes(std::string_view jwt) {
  const size_t a = jwt.find('.');
  const size_t b = a == std::string_view::npos ? a : jwt.find('.', a + 1);
  if (b == std::string_view::npos || jwt.size() > 64 * 1024) {
    return absl::InvalidArgumentError("the ID token is not a JWT");
  }
  KSH_ASSIGN_OR_RETURN(std::string payload, Base64UrlDecode(jwt.substr(a + 1, b - a - 1)));
  nlohmann::json claims = nlohmann::json::parse(payload, nullptr, false);
  if (claims.is_discarded() || !claims.is_object()) {
    return absl::InvalidArgumentError("the ID token's payload is not a JSON object");
  }
  JwtTimes t;
  t.issued_at = ClaimTime(claims, "iat");
  t.expires = ClaimTime(claims, "exp");
  if (t.expires == absl::InfinitePast()) return absl::NotFoundError("the ID token has no exp");
  return t;
}

OidcTokenSource::OidcTokenSource(OidcClientConfig config, SecretBytes refresh_token,
                                 SecretBytes client_secret, std::string token_endpoint_ca_pem,
                                 absl::Duration timeout)
    : config_(std::move(config)),
      client_secret_(std::move(client_secret)),
      ca_pem_(std::move(token_endpoint_ca_pem)),
      timeout_(timeout),
      refresh_token_(std::move(refresh_token)) {}

absl::Status OidcTokenSource::Refresh() {
  absl::MutexLock serial(&refresh_mu_);
  std::string form = "grant_type=refresh_token&refresh_token=";
  {
    absl::MutexLock lock(&mu_);
    form += net::FormEscape(refresh_token_.UnsafeStringView());
  }
  form += "&client_id=" + net::FormEscape(config_.client_id);
  if (!client_secret_.empty()) {
    form += "&client_secret=" + net::FormEscape(client_secret_.UnsafeStringView());
  }
  net::HttpsRequest req;
  req.method = "POST";
  req.url = config_.token_endpoint;
  req.ca_pem = ca_pem_;
  req.content_type = "application/x-www-form-urlencoded";
  req.timeout = timeout_;
  absl::StatusOr<net::HttpsResponse> resp = net::HttpsCall(req, form);
  OPENSSL_cleanse(form.data(), form.size());
  if (!resp.ok()) return Annotate(resp.status(), "OIDC token endpoint");
  nlohmann::json j = nlohmann::json::parse(resp->body, nullptr, false);
  OPENSSL_cleanse(resp->body.data(), resp->body.size());
  struct Scrub {
    nlohmann::json* j;
    ~Scrub() { ScrubJson(j); }
  } scrub{&j};
  if (resp->status != 200) {
    std::string error = "unknown";
    if (j.is_object() && j.contains("error") && j["error"].is_string()) {
      // RFC 6749 §5.2 error codes are fixed words (invalid_grant, ...); keep it short anyway.
      error = j["error"].get<std::string>().substr(0, 64);
    }
    return absl::UnauthenticatedError(absl::StrCat("OIDC token endpoint answered HTTP ",
                                                   resp->status, " (", error, ")"));
  }
  if (!j.is_object() || !j.contains("id_token") || !j["id_token"].is_string()) {
    return absl::DataLossError(
        "OIDC token endpoint returned no id_token (is the openid scope granted?)");
  }
  const std::string& id_token = j["id_token"].get_ref<const std::string&>();
  const absl::Time now = absl::Now();
  JwtTimes times;
  absl::StatusOr<JwtTimes> jt = ReadJwtTimes(id_token);
  if (jt.ok()) {
    times = *jt;
  } else if (j.contains("expires_in") && j["expires_in"].is_number()) {
    const double s = j["expires_in"].get<double>();
    if (!std::isfinite(s) || s <= 0 || s > 86400 * 30) {
      return absl::DataLossError("OIDC token endpoint returned a bad expires_in");
    }
    times.expires = now + absl::Seconds(static_cast<int64_t>(s));
  } else {
    return absl::DataLossError("OIDC ID token has no exp claim and the response no expires_in");
  }
  if (times.issued_at == absl::InfinitePast() || times.issued_at > now) times.issued_at = now;
  if (times.expires <= now) return absl::DataLossError("OIDC token endpoint returned an expired ID token");
  absl::MutexLock lock(&mu_);
  id_token_ = SecretBytes::CopyFrom(id_token);
  if (j.contains("refresh_token") && j["refresh_token"].is_string() &&
      !j["refresh_token"].get_ref<const std::string&>().empty()) {
    refresh_token_ = SecretBytes::CopyFrom(j["refresh_token"].get_ref<const std::string&>());
  }
  issued_at_ = times.issued_at;
  expires_ = times.expires;
  return absl::OkStatus();
}

absl::StatusOr<SecretBytes> OidcTokenSource::Current() const {
  absl::MutexLock lock(&mu_);
  if (id_token_.empty()) return absl::FailedPreconditionError("no OIDC ID token yet");
  if (absl::Now() >= expires_) return absl::FailedPreconditionError("the OIDC ID token expired");
  return id_token_.Clone();
}

absl::Time OidcTokenSource::issued_at() const {
  absl::MutexLock lock(&mu_);
  return issued_at_;
}

absl::Time OidcTokenSource::expires() const {
  absl::MutexLock lock(&mu_);
  return expires_;
}

}  // namespace kshield::kubectl

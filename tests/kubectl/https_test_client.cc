#include "kubectl/https_test_client.h"

#include <openssl/ssl.h>

#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "boost/asio/io_context.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/ssl.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"
#include "boost/beast/ssl.hpp"
#include "common/status.h"

namespace kshield::testing {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;

std::string Str(beast::string_view s) { return std::string(s.data(), s.size()); }

// Runs one asynchronous operation to completion (the stream's expiry bounds it).
template <class Start>
boost::system::error_code RunOne(net::io_context& ioc, Start&& start) {
  boost::system::error_code result = net::error::would_block;
  start([&result](boost::system::error_code ec, auto&&...) { result = ec; });
  ioc.restart();
  ioc.run();
  return result;
}

absl::Status Failure(std::string_view what, const boost::system::error_code& ec) {
  std::string msg = absl::StrCat("https test client: ", AV(what), ": ", ec.message());
  if (ec == beast::error::timeout) return absl::DeadlineExceededError(msg);
  return absl::UnavailableError(msg);
}

}  // namespace

std::string HttpsResponse::Header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (absl::EqualsIgnoreCase(k, AV(name))) return v;
  }
  return "";
}

absl::StatusOr<HttpsResponse> HttpsCall(uint16_t port, const HttpsClientOptions& tls,
                                        const HttpsRequest& request) {
  boost::system::error_code ec;
  ssl::context ctx(ssl::context::tls_client);
  if (!tls.ca_pem.empty()) {
    ctx.add_certificate_authority(net::buffer(tls.ca_pem), ec);
    if (ec) return absl::InvalidArgumentError("https test client: bad CA");
    ctx.set_verify_mode(ssl::verify_peer);
  } else {
    ctx.set_verify_mode(ssl::verify_none);
  }
  if (!tls.client_cert_pem.empty()) {
    if (tls.client_key_pem == nullptr) {
      return absl::InvalidArgumentError("https test client: client cert without key");
    }
    ctx.use_certificate_chain(net::buffer(tls.client_cert_pem), ec);
    if (ec) return absl::InvalidArgumentError("https test client: bad client certificate");
    auto key = tls.client_key_pem->UnsafeView();
    ctx.use_private_key(net::buffer(key.data(), key.size()), ssl::context::pem, ec);
    if (ec) return absl::InvalidArgumentError("https test client: bad client key");
  }

  net::io_context ioc;
  beast::ssl_stream<beast::tcp_stream> stream(ioc, ctx);
  if (!tls.ca_pem.empty()) {
    // Checks the server certificate's SAN against server_name (IP or DNS).
    X509_VERIFY_PARAM* param = SSL_get0_param(stream.native_handle());
    if (X509_VERIFY_PARAM_set1_ip_asc(param, tls.server_name.c_str()) != 1) {
      X509_VERIFY_PARAM_set1_host(param, tls.server_name.c_str(), 0);
    }
  }
  SSL_set_tlsext_host_name(stream.native_handle(), tls.server_name.c_str());
  beast::get_lowest_layer(stream).expires_after(tls.timeout);

  tcp::endpoint ep(net::ip::make_address("127.0.0.1"), port);
  ec = RunOne(ioc, [&](auto h) { beast::get_lowest_layer(stream).async_connect(ep, h); });
  if (ec) return Failure("connect", ec);
  ec = RunOne(ioc, [&](auto h) { stream.async_handshake(ssl::stream_base::client, h); });
  if (ec) return Failure("TLS handshake", ec);

  http::request<http::string_body> req;
  req.method_string(request.method);
  req.target(request.target);
  req.version(11);
  req.set(http::field::host, absl::StrCat("127.0.0.1:", port));
  for (const auto& [k, v] : request.headers) req.insert(k, v);
  req.body() = request.body;
  if (!request.body.empty() || request.method == "POST" || request.method == "PUT") {
    req.prepare_payload();
  }
  req.keep_alive(false);
  ec = RunOne(ioc, [&](auto h) { http::async_write(stream, req, h); });
  if (ec) return Failure("write", ec);

  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(64 * 1024 * 1024);
  ec = RunOne(ioc, [&](auto h) { http::async_read_header(stream, buffer, parser, h); });
  if (ec) return Failure("read header", ec);
  while (!parser.is_done()) {
    if (request.stop_when && request.stop_when(parser.get().body())) break;
    ec = RunOne(ioc, [&](auto h) { http::async_read_some(stream, buffer, parser, h); });
    if (ec == http::error::end_of_stream || ec == net::ssl::error::stream_truncated) break;
    if (ec) return Failure("read body", ec);
  }
  HttpsResponse out;
  out.status = static_cast<int>(parser.get().result_int());
  for (const auto& f : parser.get()) out.headers.emplace_back(Str(f.name_string()), Str(f.value()));
  out.body = parser.get().body();
  beast::get_lowest_layer(stream).close();
  return out;
}

}  // namespace kshield::testing

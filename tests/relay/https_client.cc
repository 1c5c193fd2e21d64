#include "https_client.h"

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <chrono>

namespace kshield::testing {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace ssl = boost::asio::ssl;

HttpsResult Https(int port, const std::string& server_ca_pem, const HttpsRequest& request) {
  HttpsResult out;
  try {
    net::io_context ioc;
    ssl::context ctx(ssl::context::tls_client);
    ctx.add_certificate_authority(net::buffer(server_ca_pem));
    ctx.set_verify_mode(ssl::verify_peer);
    if (request.client_cert_pem != nullptr) {
      ctx.use_certificate_chain(net::buffer(*request.client_cert_pem));
      ctx.use_private_key(
          net::buffer(request.client_key_pem->UnsafeView().data(), request.client_key_pem->size()),
          ssl::context::pem);
    }
    beast::ssl_stream<beast::tcp_stream> stream(ioc, ctx);
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(stream.native_handle()), "127.0.0.1");
    beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(20));
    beast::get_lowest_layer(stream).connect(net::ip::tcp::endpoint(
        net::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)));
    stream.handshake(ssl::stream_base::client);
    http::request<http::string_body> req(http::string_to_verb(request.method), request.target, 11);
    req.set(http::field::host, "127.0.0.1");
    for (const auto& [k, v] : request.headers) req.set(k, v);
    req.body() = request.body;
    req.prepare_payload();
    req.keep_alive(false);
    http::write(stream, req);
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(1 << 20);
    http::read(stream, buffer, parser);
    const auto& res = parser.get();
    out.status = static_cast<int>(res.result_int());
    out.body = res.body();
    for (const auto& field : res) {
      out.headers[std::string(field.name_string())] = std::string(field.value());
    }
    beast::error_code ec;
    stream.shutdown(ec);
  } catch (const std::exception& e) {
    out.error = e.what();
  }
  return out;
}

}  // namespace kshield::testing

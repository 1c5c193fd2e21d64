// UpgradeClient: a raw HTTPS/1.1 client for tests of upgraded (101) connections such as SPDY/3.1
// exec / port-forward: it sends a request head exactly as given, optionally with payload bytes in
// the same TLS record, reads the response, then moves raw bytes both ways. Every call has a
// deadline: a hung peer fails the test instead of stalling it. Test-only, header-only.
//
//   UpgradeClient c(port, {.ca_pem = local_ca_pem});
//   auto r = c.Open(UpgradeRequestHead("POST",
//   "/clusters/east/api/v1/namespaces/default/pods/p/exec",
//                                      {{"Connection", "Upgrade"}, {"Upgrade", "SPDY/3.1"},
//                                       {"X-Stream-Protocol-Version", "v4.channel.k8s.io"}}));
//   ASSERT_EQ(r->status, 101);
//   auto echoed = c.Exchange({"abc", std::string(1, '\0')}, 4);   // writes while reading
//   c.Shutdown();
//
// One thread only (the object owns its io_context); not thread-safe.
#pragma once

#include <openssl/ssl.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "boost/asio/connect.hpp"
#include "boost/asio/io_context.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/ssl.hpp"
#include "boost/asio/write.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"
#include "common/secret.h"
#include "common/status.h"

namespace kshield::testing {

struct UpgradeTlsOptions {
  std::string ca_pem;                           // trust anchor for the server (required)
  std::string client_cert_pem;                  // optional client certificate, with
  const SecretBytes* client_key_pem = nullptr;  //   its key (borrowed)
  std::string server_name = "127.0.0.1";        // checked against the server certificate
};

struct UpgradeResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // in order
  std::string body;  // a non-101 answer's body (a 101 has none)

  std::string Header(std::string_view name) const {  // first value, or ""
    for (const auto& [k, v] : headers) {
      if (absl::EqualsIgnoreCase(k, AV(name))) return v;
    }
    return "";
  }
  std::vector<std::string> Values(std::string_view name) const {
    std::vector<std::string> out;
    for (const auto& [k, v] : headers) {
      if (absl::EqualsIgnoreCase(k, AV(name))) out.push_back(v);
    }
    return out;
  }
};

// "METHOD target HTTP/1.1", Host: 127.0.0.1, then `headers` in order, then the blank line.
inline std::string UpgradeRequestHead(
    std::string_view method, std::string_view target,
    const std::vector<std::pair<std::string, std::string>>& headers) {
  std::string head = absl::StrCat(AV(method), " ", AV(target), " HTTP/1.1\r\nHost: 127.0.0.1\r\n");
  for (const auto& [k, v] : headers) absl::StrAppend(&head, k, ": ", v, "\r\n");
  head.append("\r\n");
  return head;
}

class UpgradeClient {
 public:
  using Clock = std::chrono::steady_clock;

  UpgradeClient(uint16_t port, UpgradeTlsOptions tls)
      : port_(port), tls_(std::move(tls)), ctx_(boost::asio::ssl::context::tls_client) {}
  UpgradeClient(const UpgradeClient&) = delete;
  UpgradeClient& operator=(const UpgradeClient&) = delete;

  // Connects, sends `head` (ending in CRLF CRLF) followed by `early` in one TLS write (one record
  // when together ≤ 16 KiB), and reads the answer: its head and, unless it is 101, its body.
  // After a 101, bytes that came with the head are kept for Exchange().
  absl::StatusOr<UpgradeResponse> Open(std::string_view head, std::string_view early = "",
                                       std::chrono::milliseconds timeout = kDefaultTimeout) {
    namespace net = boost::asio;
    namespace ssl = net::ssl;
    namespace http = boost::beast::http;
    boost::system::error_code ec;
    ctx_.add_certificate_authority(net::buffer(tls_.ca_pem), ec);
    if (ec) return absl::InvalidArgumentError("upgrade client: bad CA");
    ctx_.set_verify_mode(ssl::verify_peer);
    if (!tls_.client_cert_pem.empty() && tls_.client_key_pem != nullptr) {
      ctx_.use_certificate_chain(net::buffer(tls_.client_cert_pem), ec);
      std::string_view key = tls_.client_key_pem->UnsafeStringView();
      if (!ec) ctx_.use_private_key(net::buffer(key.data(), key.size()), ssl::context::pem, ec);
      if (ec) return absl::InvalidArgumentError("upgrade client: bad client certificate / key");
    }
    stream_.emplace(ioc_, ctx_);
    SSL_set1_host(stream_->native_handle(), tls_.server_name.c_str());
    stream_->next_layer().connect(net::ip::tcp::endpoint(net::ip::make_address("127.0.0.1"), port_),
                                  ec);
    if (ec) return absl::UnavailableError("upgrade client: connect: " + ec.message());
    KSH_RETURN_IF_ERROR(Run(
        "TLS handshake", [&](auto h) { stream_->async_handshake(ssl::stream_base::client, h); },
        timeout));
    std::string out = absl::StrCat(AV(head), AV(early));
    KSH_RETURN_IF_ERROR(Run(
        "write request", [&](auto h) { net::async_write(*stream_, net::buffer(out), h); },
        timeout));
    http::response_parser<http::string_body> parser;
    parser.body_limit(64 * 1024 * 1024);
    KSH_RETURN_IF_ERROR(Run(
        "read response", [&](auto h) { http::async_read(*stream_, buf_, parser, h); }, timeout));
    UpgradeResponse r;
    r.status = static_cast<int>(parser.get().result_int());
    for (const auto& f : parser.get()) {
      r.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
    }
    r.body = parser.get().body();
    pending_ = boost::beast::buffers_to_string(buf_.data());
    buf_.consume(buf_.size());
    return r;
  }

  // Writes `pieces` in order (each as its own write) while reading at the same time; returns the
  // first `expect` bytes read (bytes that came with the 101 count first). Fails on a deadline, on
  // a write error, or when the peer closes before `expect` bytes arrived. Reading and writing are
  // truly concurrent: a peer that only answers after it got everything works, and so does one that
  // answers as it goes; a peer that buffers one direction until the other ends times out.
  // `first_echo_before_last_write` (optional) tells whether any byte was read before the last
  // piece was written.
  absl::StatusOr<std::string> Exchange(const std::vector<std::string>& pieces, size_t expect,
                                       std::chrono::milliseconds timeout = kDefaultTimeout,
                                       bool* first_echo_before_last_write = nullptr) {
    namespace net = boost::asio;
    if (!stream_) return absl::FailedPreconditionError("upgrade client: not open");
    std::string got = std::move(pending_);
    pending_.clear();
    size_t next = 0;
    bool write_done = pieces.empty();
    bool read_done = got.size() >= expect;
    bool read_before_write_done = !got.empty();
    boost::system::error_code write_ec;
    boost::system::error_code read_ec;
    std::vector<char> chunk(16 * 1024);
    std::function<void()> write_next = [&] {
      if (next == pieces.size()) {
        write_done = true;
        return;
      }
      net::async_write(*stream_, net::buffer(pieces[next]),
                       [&](boost::system::error_code ec, size_t) {
                         if (ec) {
                           write_ec = ec;
                           write_done = true;
                           return;
                         }
                         ++next;
                         write_next();
                       });
    };
    std::function<void()> read_next = [&] {
      if (got.size() >= expect) {
        read_done = true;
        return;
      }
      stream_->async_read_some(net::buffer(chunk), [&](boost::system::error_code ec, size_t n) {
        got.append(chunk.data(), n);
        if (n > 0 && !write_done) read_before_write_done = true;
        if (ec) {
          read_ec = ec;
          read_done = true;
          return;
        }
        read_next();
      });
    };
    if (!write_done) write_next();
    if (!read_done) read_next();
    ioc_.restart();
    const Clock::time_point deadline = Clock::now() + timeout;
    while (!(write_done && read_done) && Clock::now() < deadline) {
      ioc_.run_one_until(deadline);
    }
    if (!(write_done && read_done)) {
      Abort();  // the pending operations complete with an error; drain them
      ioc_.restart();
      ioc_.run_for(std::chrono::seconds(2));
      return absl::DeadlineExceededError(absl::StrCat("upgrade client: exchange timed out: wrote ",
                                                      next, "/", pieces.size(), " pieces, read ",
                                                      got.size(), "/", expect, " bytes"));
    }
    if (first_echo_before_last_write != nullptr) {
      *first_echo_before_last_write = read_before_write_done;
    }
    if (write_ec) return absl::UnavailableError("upgrade client: write: " + write_ec.message());
    if (got.size() < expect) {
      return absl::UnavailableError(absl::StrCat("upgrade client: read ", got.size(), "/", expect,
                                                 " bytes, then: ", read_ec.message()));
    }
    pending_ = got.substr(expect);
    got.resize(expect);
    return got;
  }

  // Reads until the peer ends the connection (close_notify, EOF or reset) and returns what came
  // (bytes left from earlier calls included); DeadlineExceeded while it stays open.
  absl::StatusOr<std::string> ReadUntilClosed(std::chrono::milliseconds timeout = kDefaultTimeout) {
    namespace net = boost::asio;
    if (!stream_) return absl::FailedPreconditionError("upgrade client: not open");
    std::string got = std::move(pending_);
    pending_.clear();
    std::vector<char> chunk(16 * 1024);
    for (;;) {
      size_t n = 0;
      absl::Status s = Run(
          "read",
          [&](auto h) {
            stream_->async_read_some(net::buffer(chunk),
                                     [&n, h](boost::system::error_code ec, size_t k) mutable {
                                       n = k;
                                       h(ec);
                                     });
          },
          timeout);
      got.append(chunk.data(), n);
      if (absl::IsDeadlineExceeded(s)) return s;
      if (!s.ok()) return got;  // closed, one way or another
    }
  }

  // Sends close_notify and waits (bounded) for the peer's, then closes the socket.
  absl::Status Shutdown(std::chrono::milliseconds timeout = kDefaultTimeout) {
    if (!stream_) return absl::FailedPreconditionError("upgrade client: not open");
    absl::Status s = Run(
        "TLS shutdown", [&](auto h) { stream_->async_shutdown(h); }, timeout);
    Abort();
    return s;
  }

  // Closes the TCP connection at once (no close_notify).
  void Abort() {
    if (!stream_) return;
    boost::system::error_code ec;
    stream_->next_layer().shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
    stream_->next_layer().close(ec);
  }

 private:
  static constexpr std::chrono::milliseconds kDefaultTimeout{10000};

  // Runs one asynchronous operation started by `start(handler)` to completion, for at most
  // `timeout`. A timeout aborts the connection.
  template <class Start>
  absl::Status Run(std::string_view what, Start&& start, std::chrono::milliseconds timeout) {
    boost::system::error_code result;
    bool done = false;
    start([&](boost::system::error_code ec, auto&&...) {
      result = ec;
      done = true;
    });
    ioc_.restart();
    const Clock::time_point deadline = Clock::now() + timeout;
    while (!done && Clock::now() < deadline) ioc_.run_one_until(deadline);
    if (!done) {
      Abort();
      ioc_.restart();
      ioc_.run_for(std::chrono::seconds(2));
      return absl::DeadlineExceededError(absl::StrCat("upgrade client: ", AV(what), " timed out"));
    }
    if (result) {
      return absl::UnavailableError(
          absl::StrCat("upgrade client: ", AV(what), ": ", result.message()));
    }
    return absl::OkStatus();
  }

  uint16_t port_;
  UpgradeTlsOptions tls_;
  boost::asio::io_context ioc_;
  boost::asio::ssl::context ctx_;
  std::optional<boost::asio::ssl::stream<boost::asio::ip::tcp::socket>> stream_;
  boost::beast::flat_buffer buf_;
  std::string pending_;  // bytes read past what the last call returned
};

}  // namespace kshield::testing

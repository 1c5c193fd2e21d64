#include "net/http_response.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace kshield::net {
namespace {

namespace http = boost::beast::http;

// Beast is never handed more than this many bytes at once. It keeps a header, a chunk-size line or
// a trailer section in one buffer until it is complete, so with a fixed window "a unit longer than
// the window" is refused whatever the stream's split into reads: the outcome depends on the bytes
// only, and the buffer stays bounded (Beast itself bounds neither chunk lines nor trailers).
constexpr size_t kWindow = kMaxResponseHeaderBytes;

std::string_view Trimmed(boost::beast::string_view v) {
  std::string_view s(v.data(), v.size());
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

struct HttpResponseReader::Impl {
  size_t max_body;
  std::string peer;
  http::response_parser<http::string_body> parser;
  std::string pending;          // bytes not yet consumed by Beast
  bool header_scanned = false;  // the raw header section passed ScanHeaderSection
  bool header_checked = false;  // Beast's parsed header passed CheckHeader
  bool taken = false;
  absl::Status error;  // sticky

  Impl(size_t max, std::string p) : max_body(max), peer(std::move(p)) {
    // Not eager until the header is checked: the first put() stops after the header, so
    // CheckHeader sees it alone (Beast later adds trailer fields to the same field list).
    parser.eager(false);
    parser.header_limit(static_cast<std::uint32_t>(kWindow));
    parser.body_limit(static_cast<std::uint64_t>(max_body));
  }

  ~Impl() {
    OPENSSL_cleanse(pending.data(), pending.size());
    if (!taken) {
      std::string& body = parser.get().body();
      OPENSSL_cleanse(body.data(), body.size());
    }
  }

  absl::Status Fail(std::string_view why) {
    error = absl::DataLossError(absl::StrCat("malformed HTTP response from ", peer, ": ", AV(why)));
    Wipe();
    return error;
  }
  absl::Status Truncated() {
    error = absl::DataLossError(absl::StrCat("truncated HTTP response from ", peer));
    Wipe();
    return error;
  }
  void Wipe() {
    OPENSSL_cleanse(pending.data(), pending.size());
    pending.clear();
    if (!taken) {
      std::string& body = parser.get().body();
      OPENSSL_cleanse(body.data(), body.size());
      body.clear();
    }
  }
  void Consume(size_t n) {
    OPENSSL_cleanse(pending.data(), n);
    pending.erase(0, n);
  }

  // The raw header section (status line and fields, up to the first empty line), before Beast
  // reads it: Beast joins obs-fold continuation lines silently, and we refuse them (RFC 9112
  // §5.2 lets a recipient reject a message that has them). `scanned` bytes were searched before.
  absl::Status ScanHeaderSection(size_t scanned) {
    const size_t from = scanned >= 3 ? scanned - 3 : 0;
    const size_t end = pending.find("\r\n\r\n", from);
    if (end == std::string::npos || end + 4 > kWindow) {
      if (pending.size() >= kWindow) {
        return Fail(absl::StrCat("header section over ", kWindow, " bytes"));
      }
      return absl::OkStatus();  // not complete yet
    }
    const std::string_view head = std::string_view(pending).substr(0, end + 2);
    size_t line = head.find("\r\n") + 2;  // the status line is Beast's
    while (line < head.size()) {
      if (head[line] == ' ' || head[line] == '\t') return Fail("obs-fold (a folded header line)");
      line = head.find("\r\n", line) + 2;
    }
    header_scanned = true;
    return absl::OkStatus();
  }

  // Beast's parsed header: what it accepts but we do not.
  absl::Status CheckHeader() {
    header_checked = true;
    parser.eager(true);
    const http::response<http::string_body>& msg = parser.get();
    if (msg.version() != 10 && msg.version() != 11) return Fail("unsupported HTTP version");
    const unsigned status = msg.result_int();
    if (status < 100 || status > 599) return Fail(absl::StrCat("status ", status, " out of range"));
    if (status < 200) {
      return Fail(absl::StrCat("interim response ", status, " (1xx is not supported)"));
    }
    return CheckFields();
  }

  // The fields; run on the header, and again on the complete message, where Beast has added the
  // trailer fields of a chunked body: a trailer may not add a Content-Type (nor, Beast sees to
  // it, a Content-Length or Transfer-Encoding).
  absl::Status CheckFields() {
    const http::response<http::string_body>& msg = parser.get();
    int content_lengths = 0;
    int content_types = 0;
    for (const auto& f : msg) {
      if (f.name() == http::field::content_length) {
        ++content_lengths;
        if (f.value().find(',') != boost::beast::string_view::npos) ++content_lengths;
      } else if (f.name() == http::field::content_type) {
        ++content_types;
      } else if (f.name() == http::field::transfer_encoding) {
        // Beast takes any coding list ending in "chunked", and reads any other to the close.
        if (!absl::EqualsIgnoreCase(AV(Trimmed(f.value())), "chunked")) {
          return Fail("unsupported Transfer-Encoding");
        }
      }
    }
    if (content_lengths > 1) return Fail("more than one Content-Length");
    if (content_types > 1) return Fail("more than one Content-Type");
    return absl::OkStatus();
  }

  // Beast 1.74 skips its body_limit check when the header and the first body bytes arrive in one
  // buffer: the bound is enforced here too, on the declared and on the received length.
  absl::Status CheckBodySize() {
    const boost::optional<std::uint64_t> length = parser.content_length();
    if ((length && *length > max_body) || parser.get().body().size() > max_body) {
      return Fail(absl::StrCat("body limit exceeded (", max_body, " bytes)"));
    }
    return absl::OkStatus();
  }

  absl::Status Drive(size_t scanned) {
    if (!header_scanned) {
      KSH_RETURN_IF_ERROR(ScanHeaderSection(scanned));
      if (!header_scanned) return absl::OkStatus();
    }
    while (!parser.is_done() && !pending.empty()) {
      // Beast 1.74 asserts (BOOST_ASSERT, so in builds without NDEBUG) that a final chunk it has
      // already seen comes back with at least 5 bytes, which fails for a first chunk "0\r\n" fed
      // a byte at a time. No complete chunked tail is shorter than "0\r\n\r\n": hold back less.
      if (parser.is_header_done() && parser.chunked() && pending.size() < 5) break;
      const size_t window = std::min(pending.size(), kWindow);
      const bool whole = window == pending.size();
      boost::beast::error_code ec;
      const size_t used = parser.put(boost::asio::buffer(pending.data(), window), ec);
      Consume(used);
      const bool need_more = ec == http::error::need_more;
      if (need_more) ec = {};
      if (ec) return Fail(ec.message());
      if (parser.is_header_done()) {
        if (!header_checked) KSH_RETURN_IF_ERROR(CheckHeader());
        KSH_RETURN_IF_ERROR(CheckBodySize());
        if (parser.is_done()) KSH_RETURN_IF_ERROR(CheckFields());
      }
      // Beast is called again only with bytes it has not seen: after "need more" on everything
      // pending, the next Put brings them.
      if (used == 0 || (need_more && whole)) break;
    }
    if (!parser.is_done() && pending.size() >= kWindow) {
      return Fail(absl::StrCat("a chunk line or trailer section over ", kWindow, " bytes"));
    }
    return absl::OkStatus();
  }
};

HttpResponseReader::HttpResponseReader(size_t max_body_bytes, std::string peer)
    : impl_(std::make_unique<Impl>(max_body_bytes, std::move(peer))) {}

HttpResponseReader::~HttpResponseReader() = default;

absl::Status HttpResponseReader::Put(std::string_view bytes) {
  Impl& m = *impl_;
  if (!m.error.ok()) return m.error;
  if (m.taken || m.parser.is_done()) return absl::OkStatus();  // after the response: ignored
  const size_t scanned = m.pending.size();
  m.pending.append(bytes);
  return m.Drive(scanned);
}

absl::Status HttpResponseReader::PutEof() {
  Impl& m = *impl_;
  if (!m.error.ok()) return m.error;
  if (m.taken || m.parser.is_done()) return absl::OkStatus();
  if (!m.header_scanned || !m.parser.got_some()) return m.Truncated();
  boost::beast::error_code ec;
  m.parser.put_eof(ec);
  if (ec || !m.parser.is_done()) return m.Truncated();
  return m.CheckBodySize();
}

bool HttpResponseReader::done() const {
  return impl_->error.ok() && (impl_->taken || impl_->parser.is_done());
}

HttpsResponse HttpResponseReader::Take() {
  Impl& m = *impl_;
  HttpsResponse out;
  if (m.taken || !m.error.ok() || !m.parser.is_done()) return out;
  m.taken = true;
  http::response<http::string_body> msg = m.parser.release();
  out.status = static_cast<int>(msg.result_int());
  out.content_type = std::string(msg[http::field::content_type]);
  out.body = std::move(msg.body());
  return out;
}

absl::StatusOr<HttpsResponse> ParseHttpResponse(std::string_view bytes, size_t max_body_bytes) {
  HttpResponseReader reader(max_body_bytes);
  KSH_RETURN_IF_ERROR(reader.Put(bytes));
  if (!reader.done()) KSH_RETURN_IF_ERROR(reader.PutEof());
  return reader.Take();
}

}  // namespace kshield::net

// The response side of net::HttpsCall: one HTTP/1.x response read from bytes a remote peer (the
// relay, an OIDC issuer) sent, with no I/O. HttpsCall feeds it what each TLS read returns; the
// fuzz target (fuzz/https_response_fuzz.cc) and the tests feed it the same way.
//
//   HttpResponseReader reader(/*max_body_bytes=*/1 << 20, "https://relay:8443");
//   while (!reader.done()) {
//     ... n = read(buf) ...
//     if (n == 0) { KSH_RETURN_IF_ERROR(reader.PutEof()); break; }
//     KSH_RETURN_IF_ERROR(reader.Put(std::string_view(buf, n)));
//   }
//   HttpsResponse r = reader.Take();
//
// Framing and syntax are Beast's (RFC 9112: status line, fields, Content-Length, chunked,
// close-delimited bodies); on top of it, refused (DataLoss):
//  - a header section over 64 KiB (kMaxResponseHeaderBytes), a chunk-size line or trailer section
//    that does not fit in 64 KiB (Beast bounds neither), a body (declared or received) over
//    `max_body_bytes`;
//  - obs-fold (a field line starting with SP / HTAB), and whatever Beast refuses (NUL or another
//    control character in a field, a bare LF, a bad token, a bad Content-Length, Transfer-Encoding
//    with Content-Length, ...);
//  - more than one Content-Length field, or a list-valued one ("5, 5"), even when the values agree;
//  - a Transfer-Encoding other than exactly "chunked";
//  - an HTTP version other than 1.0 / 1.1, a status outside 200..599 (1xx interim responses too:
//    HttpsCall never sends Expect: 100-continue; HEAD responses are not supported either);
//  - a message cut short by the end of the stream (PutEof before it is complete).
// Bytes after a complete response are ignored (the request said "Connection: close"), so the
// outcome never depends on how the stream was split into Put calls.
//
// Every byte buffered here is cleared (OPENSSL_cleanse) once parsed or on destruction: a response
// may carry a token (the OIDC token endpoint's answer).
//
// Not thread-safe; one reader per response.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace kshield::net {

struct HttpsResponse {
  int status = 0;
  std::string content_type;
  std::string body;
};

inline constexpr size_t kMaxResponseHeaderBytes = 64 * 1024;

class HttpResponseReader {
 public:
  // `peer` only names the sender in error messages ("malformed HTTP response from <peer>: ...").
  explicit HttpResponseReader(size_t max_body_bytes, std::string peer = "the server");
  ~HttpResponseReader();
  HttpResponseReader(const HttpResponseReader&) = delete;
  HttpResponseReader& operator=(const HttpResponseReader&) = delete;

  // Parses `bytes`, which follow those of earlier calls. OK: more is needed, or the response is
  // complete (done()). DataLoss: malformed or over a bound; every later call returns that error.
  [[nodiscard]] absl::Status Put(std::string_view bytes);
  // The stream ended. OK when that completes the response (a body delimited by the close, or one
  // already complete); DataLoss ("truncated ...") otherwise.
  [[nodiscard]] absl::Status PutEof();
  bool done() const;
  // The response; only once, after done().
  HttpsResponse Take();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The whole stream at once: Put(bytes), then PutEof() unless that completed the response.
[[nodiscard]] absl::StatusOr<HttpsResponse> ParseHttpResponse(std::string_view bytes,
                                                              size_t max_body_bytes);

}  // namespace kshield::net

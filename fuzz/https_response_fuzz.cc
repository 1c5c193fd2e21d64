// Fuzz target: the response side of net::HttpsCall (src/net/http_response.h: HttpResponseReader),
// which reads what the relay or an OIDC issuer sends back. The same Put / PutEof sequence as
// HttpsCall's read loop runs here, on the stream cut into reads of pseudo-random sizes.
// Input: byte 0 picks max_body_bytes (0..254 × 17 bytes, 255: 1 MiB), byte 1 seeds the read
// sizes, the rest is the byte stream. Seeds: fuzz/corpus/https_response_fuzz/. Invariants:
//  - the outcome does not depend on the cut: the stream read at once and read in pieces both
//    fail, or both give the same status, Content-Type and body;
//  - success: a status in 200..599, a body of at most max_body_bytes; bytes after the response
//    change nothing;
//  - failure: DataLoss, "malformed ..." or "truncated HTTP response from <peer>", printable and
//    bounded (no byte of the stream is echoed beyond Beast's fixed reasons); and it sticks.
// fuzz-libs: kshield_https_client
// fuzz-sources: src/net/http_response.cc
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "fuzz_check.h"
#include "net/http_response.h"

namespace n = kshield::net;

namespace {

constexpr char kPeer[] = "https://peer.test";

// HttpsCall's loop, with reads of sizes drawn from `seed` (0: the whole stream in one read).
absl::StatusOr<n::HttpsResponse> Read(std::string_view stream, size_t max, uint32_t seed) {
  n::HttpResponseReader reader(max, kPeer);
  uint32_t state = seed * 2654435761u + 1;
  size_t off = 0;
  while (!reader.done()) {
    if (off == stream.size()) {
      absl::Status eof = reader.PutEof();
      if (!eof.ok()) {
        FUZZ_CHECK(reader.PutEof() == eof && reader.Put("x") == eof);
        return eof;
      }
      break;
    }
    size_t n = stream.size() - off;
    if (seed != 0) {
      state = state * 1103515245u + 12345u;
      // Mostly small reads (every boundary), sometimes large ones.
      const uint32_t r = state >> 8;
      n = std::min<size_t>(n, 1 + (r % ((r & 0x10000) != 0 ? 4096 : 8)));
    }
    absl::Status put = reader.Put(stream.substr(off, n));
    off += n;
    if (!put.ok()) {
      FUZZ_CHECK(!reader.done());
      FUZZ_CHECK(reader.Put("x") == put && reader.PutEof() == put);
      return put;
    }
  }
  FUZZ_CHECK(reader.done());
  // What follows the response is ignored.
  FUZZ_CHECK(reader.Put("HTTP/1.1 500 X\r\n\r\n").ok() && reader.PutEof().ok());
  return reader.Take();
}

void CheckError(const absl::Status& s) {
  FUZZ_CHECK(s.code() == absl::StatusCode::kDataLoss);
  const std::string_view msg(s.message().data(), s.message().size());
  const std::string malformed = std::string("malformed HTTP response from ") + kPeer + ": ";
  const std::string truncated = std::string("truncated HTTP response from ") + kPeer;
  FUZZ_CHECK(msg.substr(0, malformed.size()) == malformed || msg == truncated);
  FUZZ_CHECK(msg.size() <= 200);
  for (char c : msg) FUZZ_CHECK(c >= 0x20 && c < 0x7f);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const size_t max = data[0] == 255 ? size_t{1} << 20 : size_t{data[0]} * 17;
  const uint32_t seed = data[1];
  const std::string_view stream(reinterpret_cast<const char*>(data) + 2, size - 2);

  absl::StatusOr<n::HttpsResponse> whole = Read(stream, max, 0);
  absl::StatusOr<n::HttpsResponse> pieces = Read(stream, max, seed + 1);
  FUZZ_CHECK(whole.ok() == pieces.ok());
  if (!whole.ok()) {
    CheckError(whole.status());
    CheckError(pieces.status());
    return 0;
  }
  FUZZ_CHECK(whole->status >= 200 && whole->status <= 599);
  FUZZ_CHECK(whole->body.size() <= max);
  FUZZ_CHECK(whole->status == pieces->status);
  FUZZ_CHECK(whole->content_type == pieces->content_type);
  FUZZ_CHECK(whole->body == pieces->body);
  // The one-call form is the same reader.
  absl::StatusOr<n::HttpsResponse> once = n::ParseHttpResponse(stream, max);
  FUZZ_CHECK(once.ok() && once->status == whole->status && once->body == whole->body);
  return 0;
}

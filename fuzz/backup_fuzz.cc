// Fuzz target: keys::InspectBackup and keys::OpenBackup, the readers of the keyset backup file
// (keys/backup.h) — a file that travels off the cluster and comes back, so its bytes are
// untrusted. A fixed X25519 test identity (below; it protects nothing) opens what it can.
//
// The first input byte picks how the rest is used:
//   0: the rest is a whole file;
//   1: rest[0] is the header's KEK count and the rest a PAYLOAD, sealed here to the test identity
//      under a valid header, so the payload parser (only reachable through authentication) is
//      fuzzed too;
//   2: the rest is an edit script over kValidFile (a real backup sealed to the test identity):
//      triples (offset_hi, offset_lo, byte) XOR the byte in, or truncate when byte = 0, or append
//      when the offset is past the end.
// Invariants:
//  - nothing crashes, asserts or reads out of bounds;
//  - failures are InvalidArgument or PermissionDenied with a short printable message that never
//    holds a KEK of kValidFile or text of the identity key;
//  - a success satisfies the contents rules (count = header kek_count, strictly increasing
//    versions below next_version, one primary, 32-byte KEKs), and the contents seal and open
//    again to the same values;
//  - mode 2: any file that differs from kValidFile is refused; kValidFile itself opens to its
//    known contents.
//
// fuzz-libs: kshield_keys_backup
// fuzz-sources: src/crypto/recipient.cc src/keys/backup.cc
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/strings/escaping.h"
#include "common/secret.h"
#include "crypto/recipient.h"
#include "fuzz_check.h"
#include "keys/backup.h"

namespace {

namespace k = kshield::keys;
using kshield::SecretBytes;
using kshield::keys::v1::KekVersionRecord;

// A test-only X25519 identity (generated with `openssl genpkey -algorithm X25519`).
constexpr std::string_view kIdentityPem =
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VuBCIEIPALvlR76qaM2lbCAK8SijmE+dGXGshw+PMkoC8Cd5VN\n"
    "-----END PRIVATE KEY-----\n";

// SealBackup of keyset "0123456789abcdef", next_version 5, provider "local", created 1712345678,
// KEKs 1 RETIRED (bytes 0x01 * 32), 3 ACTIVE (0x03 * 32), 4 PRIMARY (0x04 * 32), to the public
// key of kIdentityPem.
constexpr std::string_view kValidFileHex =
    "4b534842414b310a00000069000000011030313233343536373839616263646566000000006610524e067832"
    "3535313940633030353064656566633239383931663132373132313234663563353839616338616530336237"
    "643963353365623335313261653136643833346233373938350000000301d30dddc0245c041d9d164ceff34b"
    "f357dc3b5184203f8ef9a46c2a1e72eed06601ff8083617f2b0bf97313410db91e2edac1b0f0cc03e6f757aa"
    "2381eff0d414b6b5f44f8216264b80b2520e89007c8b3898b1e166b5f51853880a044d8d7877344e5bda90db"
    "232463ea69fbca49aa62213f51bca34aea0624aab02a9b7302f88ac86f24f1da18183a3839f2c8dfcd71148a"
    "365cfa1b06846b96a1ae8eb3b22d84746c138d5d1af0db2b517d3801fa7c9ba3eed744856f9aff16244e0254"
    "2ad8dc70486e6038fc3c256c686ef3bd1858170de29d";

struct Fixture {
  SecretBytes identity = SecretBytes::CopyFrom(kIdentityPem);
  std::string public_pem;
  std::string valid_file;
  std::string fingerprint;
  Fixture() {
    auto pub = kshield::crypto::IdentityPublicKey(identity);
    FUZZ_CHECK(pub.ok());
    public_pem = *pub;
    auto fp = kshield::crypto::RecipientFingerprint(public_pem);
    FUZZ_CHECK(fp.ok());
    fingerprint = *fp;
    valid_file =
        absl::HexStringToBytes(absl::string_view(kValidFileHex.data(), kValidFileHex.size()));
  }
};

const Fixture& F() {
  static const Fixture* f = new Fixture();
  return *f;
}

void CheckError(const absl::Status& s) {
  FUZZ_CHECK(s.code() == absl::StatusCode::kInvalidArgument ||
             s.code() == absl::StatusCode::kPermissionDenied);
  const std::string msg(s.message());
  FUZZ_CHECK(!msg.empty() && msg.size() <= 400);
  for (unsigned char c : msg) FUZZ_CHECK(c >= 0x20 && c < 0x7f);
  for (char b : {'\x01', '\x03', '\x04'})
    FUZZ_CHECK(msg.find(std::string(8, b)) == std::string::npos);
  FUZZ_CHECK(msg.find("MC4CAQAwBQYDK2VuBCIE") == std::string::npos);
}

void CheckContents(const k::BackupContents& c, const k::BackupHeader& h) {
  FUZZ_CHECK(c.keyset_id == h.keyset_id && c.created_unix == h.created_unix);
  FUZZ_CHECK(c.keks.size() == h.kek_count && !c.keks.empty());
  FUZZ_CHECK(c.keks.size() <= k::kMaxBackupKeks);
  uint32_t prev = 0;
  int primaries = 0;
  for (const k::BackupKek& kek : c.keks) {
    FUZZ_CHECK(kek.version > prev && kek.version < c.next_version);
    FUZZ_CHECK(kek.kek.size() == k::kBackupKekSize);
    FUZZ_CHECK(kek.state == KekVersionRecord::PRIMARY || kek.state == KekVersionRecord::ACTIVE ||
               kek.state == KekVersionRecord::RETIRED);
    if (kek.state == KekVersionRecord::PRIMARY) ++primaries;
    prev = kek.version;
  }
  FUZZ_CHECK(primaries == 1);
  // Round trip.
  auto again = k::SealBackup(c, F().public_pem);
  FUZZ_CHECK(again.ok());
  auto back = k::OpenBackup(*again, F().identity);
  FUZZ_CHECK(back.ok());
  FUZZ_CHECK(back->keyset_id == c.keyset_id && back->next_version == c.next_version &&
             back->provider == c.provider && back->created_unix == c.created_unix &&
             back->keks.size() == c.keks.size());
  for (size_t i = 0; i < c.keks.size(); ++i) {
    FUZZ_CHECK(back->keks[i].version == c.keks[i].version);
    FUZZ_CHECK(back->keks[i].state == c.keks[i].state);
    FUZZ_CHECK(back->keks[i].created_unix == c.keks[i].created_unix);
    FUZZ_CHECK(back->keks[i].kek.Equals(c.keks[i].kek));
  }
}

// Returns true when the file opened.
bool Run(std::string_view file) {
  auto header = k::InspectBackup(file);
  auto opened = k::OpenBackup(file, F().identity);
  if (!header.ok()) {
    CheckError(header.status());
    FUZZ_CHECK(!opened.ok());
    FUZZ_CHECK(opened.status() == header.status());
    return false;
  }
  FUZZ_CHECK(header->format == k::kBackupFormat);
  FUZZ_CHECK(header->kek_count >= 1 && header->kek_count <= k::kMaxBackupKeks);
  FUZZ_CHECK(header->recipient_fingerprint.size() == 64);
  FUZZ_CHECK(file.substr(0, k::kBackupMagic.size()) == k::kBackupMagic);
  if (!opened.ok()) {
    CheckError(opened.status());
    if (header->recipient_fingerprint != F().fingerprint) {
      FUZZ_CHECK(opened.status().code() == absl::StatusCode::kPermissionDenied);
    }
    return false;
  }
  FUZZ_CHECK(header->recipient_fingerprint == F().fingerprint);
  CheckContents(*opened, *header);
  return true;
}

void AppendU32(std::string& s, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) s.push_back(static_cast<char>(v >> shift));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  if (in.empty()) {
    FUZZ_CHECK(Run(F().valid_file));
    return 0;
  }
  const std::string_view rest = in.substr(1);
  switch (static_cast<uint8_t>(in[0]) % 3) {
    case 0:
      Run(rest);
      break;
    case 1: {
      if (rest.empty()) break;
      std::string header;
      AppendU32(header, 1);
      header += std::string("\x10") + "0123456789abcdef";
      header += std::string("\0\0\0\0\x66\x10\x52\x4e", 8);
      header += std::string("\x06") + "x25519";
      header += std::string("\x40") + F().fingerprint;
      AppendU32(header, static_cast<uint8_t>(rest[0]));
      std::string file(k::kBackupMagic);
      AppendU32(file, static_cast<uint32_t>(header.size()));
      file += header;
      auto sealed = kshield::crypto::SealToRecipient(F().public_pem,
                                                     SecretBytes::CopyFrom(rest.substr(1)), file);
      FUZZ_CHECK(sealed.ok());
      Run(file + *sealed);
      break;
    }
    default: {
      std::string file = F().valid_file;
      for (size_t i = 0; i + 3 <= rest.size(); i += 3) {
        const size_t pos =
            ((static_cast<uint8_t>(rest[i]) << 8) | static_cast<uint8_t>(rest[i + 1])) %
            (file.size() + 1);
        const auto b = static_cast<uint8_t>(rest[i + 2]);
        if (pos == file.size()) {
          file.push_back(static_cast<char>(b));
        } else if (b == 0) {
          file.resize(pos);
        } else {
          file[pos] = static_cast<char>(file[pos] ^ b);
        }
      }
      const bool ok = Run(file);
      FUZZ_CHECK(ok == (file == F().valid_file));
      break;
    }
  }
  return 0;
}

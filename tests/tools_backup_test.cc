// kshieldctl backup / restore / offline `etcd decrypt --backup` / keyset retire (issue 4 §3, §5),
// run as the real build/bin/kshieldctl against a real etcd (EtcdServer) and a real kshield-kms
// (KmsInstance), with recipient key pairs made by the openssl CLI.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include <gtest/gtest.h>
#include <grpcpp/grpcpp.h>

#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/testing/temp_dir.h"
#include "crypto/aead.h"
#include "crypto/hkdf.h"
#include "crypto/sha256.h"
#include "envelope/envelope.h"
#include "etcd_server_fixture.h"
#include "keys/keyset_store.h"
#include "support/kms_instance.h"
#include "tools/apiserver_writer.h"
#include "tools/kms_client.h"

namespace kshield::testing {
namespace {

namespace fs = std::filesystem;
using tools::SimFormat;

// Independent re-implementation of the local provider's unseal (as kms_secret_scan_test does):
// sealing.key -> HKDF -> AES-256-GCM over "L1"-prefixed material. version -> KEK.
std::map<uint32_t, std::string> UnsealKeks(const std::string& data_dir) {
  std::map<uint32_t, std::string> keks;
  std::string sealing = ReadWholeFile(data_dir + "/sealing.key");
  auto wrap_key = crypto::HkdfSha256(SecretBytes::CopyFrom(sealing), "",
                                     "kshield local provider wrap v1", 32);
  if (!wrap_key.ok()) return keks;
  auto aead = crypto::AesGcmAead::New(std::move(*wrap_key));
  auto record = keys::FileKeysetStore::Decode(ReadWholeFile(data_dir + "/keyset.bin"));
  if (!aead.ok() || !record.ok()) return keks;
  for (const auto& v : record->versions()) {
    std::string aad = "kshield/local/kek/v1:" + record->keyset_id() + ":" +
                      std::to_string(v.version());
    auto kek = (*aead)->Decrypt(v.material().substr(2), aad);
    if (kek.ok()) keks[v.version()] = *kek;
  }
  return keks;
}

std::vector<std::string> Encodings(const std::string& secret) {
  std::string hex = crypto::HexEncode(secret);
  return {secret, hex, absl::AsciiStrToUpper(hex), absl::Base64Escape(secret),
          absl::WebSafeBase64Escape(secret)};
}

void ExpectNoSecret(const std::string& haystack, const std::vector<std::string>& secrets,
                    const std::string& where) {
  for (const auto& s : secrets) {
    for (const auto& e : Encodings(s)) {
      EXPECT_EQ(haystack.find(e), std::string::npos)
          << "key material (" << e.size() << "-byte encoding) found in " << where;
    }
  }
}

std::map<std::string, std::string> ReadDir(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.is_regular_file()) out[e.path().filename().string()] = ReadWholeFile(e.path().string());
  }
  return out;
}

int FileMode(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 ? static_cast<int>(st.st_mode & 07777) : -1;
}

nlohmann::json Json(const std::string& s) { return nlohmann::json::parse(s, nullptr, false); }

// A recipient key pair made with the openssl CLI: `kind` is "x25519" or "rsa-3072" /
// "rsa-2048". Private key 0600.
struct KeyPair {
  std::string pub, priv;
};
KeyPair MakeKeyPair(const std::string& dir, const std::string& name, const std::string& kind) {
  KeyPair k{dir + "/" + name + ".pub.pem", dir + "/" + name + ".pem"};
  std::string gen = kind == "x25519" ? "openssl genpkey -algorithm X25519"
                                     : "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:" +
                                           kind.substr(4);
  std::string out;
  int rc = RunCommand(gen + " -out " + k.priv + " && chmod 600 " + k.priv +
                          " && openssl pkey -in " + k.priv + " -pubout -out " + k.pub,
                      &out);
  EXPECT_EQ(rc, 0) << out;
  return k;
}

struct Issued {
  std::string plaintext;
  std::string v2_ciphertext, v2_key_id;
  std::string v1_ciphertext;
};

class BackupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!EtcdServer::Available()) GTEST_SKIP() << EtcdServer::SkipReason();
    std::string out;
    if (RunCommand("openssl version", &out) != 0) GTEST_SKIP() << "needs the openssl CLI";
    fs::create_directories(dir_.path() + "/etcd");
    etcd_server_ = std::make_unique<EtcdServer>(dir_.path() + "/etcd");
    ASSERT_TRUE(etcd_server_->Start().ok());
    ASSERT_TRUE(kms_.Start()) << kms_.log();
    auto e = etcd::Client::Create(etcd_server_->ClientOptions());
    ASSERT_TRUE(e.ok()) << e.status();
    etcd_ = std::move(*e);
    auto k = tools::KmsClient::Create(kms_.socket(), std::chrono::seconds(10));
    ASSERT_TRUE(k.ok()) << k.status();
    kms_client_ = std::move(*k);
    writer_ = std::make_unique<tools::ApiserverWriter>(etcd_.get(), kms_client_.get(),
                                                       tools::ApiserverOptions{});
    ASSERT_TRUE(writer_->PollStatus().ok());
    // kshield-kms' own config, as the operator's restore reads it.
    config_ = dir_.Sub("kms.yaml");
    std::ofstream(config_) << "socket: " << kms_.socket() << "\nadmin_socket: "
                           << kms_.admin_socket() << "\ndata_dir: " << kms_.data_dir()
                           << "\nprovider: local\n";
  }

  // Secrets in `formats` under namespaces "<epoch>-<format>", plus one direct v2 and v1
  // ciphertext of a known plaintext under the current primary.
  void WriteEpoch(const std::string& epoch, int per_format, std::vector<SimFormat> formats) {
    ASSERT_TRUE(writer_->PollStatus().ok());
    tools::WriteSecretsOptions o;
    o.per_format = per_format;
    o.formats = std::move(formats);
    o.namespace_prefix = epoch;
    auto r = tools::WriteSecrets(*writer_, o);
    ASSERT_TRUE(r.ok()) << r.status();
    for (const auto& st : *r) ASSERT_EQ(st.written, per_format) << st.first_error;
    Issued i;
    i.plaintext = "direct-plaintext-of-" + epoch + "-0123456789abcdef";
    auto v2 = kms_client_->EncryptV2(SecretBytes::CopyFrom(i.plaintext));
    auto v1 = kms_client_->EncryptV1(SecretBytes::CopyFrom(i.plaintext));
    ASSERT_TRUE(v2.ok() && v1.ok());
    i.v2_ciphertext = v2->ciphertext;
    i.v2_key_id = v2->key_id;
    i.v1_ciphertext = *v1;
    issued_.push_back(i);
  }

  std::string Rotate() {
    std::string out, err;
    EXPECT_EQ(Ctl("-o json rotate", &out, &err), 0) << out << err;
    auto j = Json(out);
    return j.is_discarded() ? "" : j["key_id"].get<std::string>();
  }

  // The real kshieldctl; stdout and stderr apart. Returns the exit code.
  int Ctl(const std::string& args, std::string* out, std::string* err = nullptr) {
    std::string err_file = dir_.Sub("ctl.stderr");
    std::string cmd = "(" + std::string(KSHIELD_BIN_DIR) + "/kshieldctl --timeout 20 --socket " +
                      kms_.socket() + " --admin-socket " + kms_.admin_socket() + " " + args +
                      " 2>" + err_file + ")";
    int rc = RunCommand(cmd, out);
    std::string e = ReadWholeFile(err_file);
    ctl_output_ += *out + e;
    if (err != nullptr) *err = e;
    return rc;
  }
  std::string Etcd() const { return " --endpoints " + etcd_server_->endpoint(); }

  void StopKms() {
    kms_.Stop(SIGTERM);
    ASSERT_NE(kms_.WaitExit(), -1);
  }

  // Every direct ciphertext still opens through the plugin.
  void ExpectIssuedDecrypt() {
    for (const auto& i : issued_) {
      auto v2 = kms_client_->DecryptV2(i.v2_ciphertext, i.v2_key_id, {});
      ASSERT_TRUE(v2.ok()) << i.v2_key_id << ": " << v2.status();
      EXPECT_EQ(std::string(v2->UnsafeStringView()), i.plaintext);
      auto v1 = kms_client_->DecryptV1(i.v1_ciphertext);
      ASSERT_TRUE(v1.ok()) << v1.status();
      EXPECT_EQ(std::string(v1->UnsafeStringView()), i.plaintext);
    }
  }

  // `etcd scan --verify` through the plugin: every value of ours decrypts to its Secret.
  void ExpectScanVerifyOk(int64_t want_ok) {
    std::string out, err;
    ASSERT_EQ(Ctl("etcd" + Etcd() + " scan --verify -o json", &out, &err), 0) << out << err;
    auto j = Json(out);
    ASSERT_FALSE(j.is_discarded()) << out;
    EXPECT_EQ(j["verify"]["ok"], want_ok) << out;
    EXPECT_EQ(j["verify"]["failed"], 0) << out;
  }

  TempDir dir_;
  std::unique_ptr<EtcdServer> etcd_server_;
  KmsInstance kms_;
  std::unique_ptr<etcd::Client> etcd_;
  std::unique_ptr<tools::KmsClient> kms_client_;
  std::unique_ptr<tools::ApiserverWriter> writer_;
  std::string config_;
  std::vector<Issued> issued_;
  std::string ctl_output_;  // everything kshieldctl printed, for the leak check
};

const std::vector<SimFormat> kAll = {std::begin(tools::kAllSimFormats),
                                     std::end(tools::kAllSimFormats)};
const std::vector<SimFormat> kKms = {SimFormat::kKmsV2Seed, SimFormat::kKmsV2AesGcmKey,
                                     SimFormat::kKmsV1};

TEST_F(BackupTest, X25519BackupWipeRestoreDecryptsEveryEarlierCiphertext) {
  KeyPair id = MakeKeyPair(dir_.path(), "x25519", "x25519");
  KeyPair other = MakeKeyPair(dir_.path(), "other", "x25519");
  // Three key versions, values of every format under each.
  WriteEpoch("e1", 30, kAll);
  Rotate();
  WriteEpoch("e2", 30, kKms);
  const std::string primary = Rotate();
  WriteEpoch("e3", 30, kKms);
  const int64_t ours = 3 * 30 * 3;  // kms values of our provider

  std::map<uint32_t, std::string> keks = UnsealKeks(kms_.data_dir());
  ASSERT_EQ(keks.size(), 3u) << "could not unseal the KEKs to compare them";
  std::vector<std::string> kek_list;
  for (const auto& [v, k] : keks) kek_list.push_back(k);

  // Backup: 0600, header readable without a key, no KEK bytes in it.
  const std::string backup = dir_.Sub("kshield.backup");
  std::string out, err;
  ASSERT_EQ(Ctl("-o json backup --recipient " + id.pub + " --out " + backup, &out, &err), 0)
      << out << err;
  auto b = Json(out);
  ASSERT_FALSE(b.is_discarded()) << out;
  EXPECT_EQ(b["kek_count"], 3);
  EXPECT_EQ(b["primary_key_id"], primary);
  EXPECT_EQ(b["recipient_kind"], "x25519");
  EXPECT_EQ(FileMode(backup), 0600);
  const std::string backup_bytes = ReadWholeFile(backup);
  ExpectNoSecret(backup_bytes, kek_list, "the backup file");
  ASSERT_EQ(Ctl("backup inspect " + backup + " -o json", &out, &err), 0) << out << err;
  auto h = Json(out);
  ASSERT_FALSE(h.is_discarded()) << out;
  EXPECT_EQ(h["kek_count"], 3);
  EXPECT_EQ(h["keyset_id"], b["keyset_id"]);
  EXPECT_EQ(h["recipient_fingerprint"], b["recipient_fingerprint"]);
  EXPECT_EQ(h["mode"], "0600");
  // A second backup to the same file is refused without --force.
  EXPECT_EQ(Ctl("backup --recipient " + id.pub + " --out " + backup, &out, &err), 1);
  EXPECT_EQ(ReadWholeFile(backup), backup_bytes);

  // Online one-click decryption, for comparison with the offline run below.
  const std::string online = dir_.Sub("online");
  ASSERT_EQ(Ctl("etcd" + Etcd() + " decrypt --out " + online, &out, &err), 0) << out << err;

  // Restore refuses while the plugin runs.
  EXPECT_EQ(Ctl("restore --identity " + id.priv + " --in " + backup + " --config " + config_,
                &out, &err),
            1);
  EXPECT_NE(err.find("kshield-kms is running"), std::string::npos) << err;

  // Disaster: the plugin stops and its data directory is lost.
  StopKms();
  const std::string old_log = kms_.log();
  fs::remove_all(kms_.data_dir());

  // Offline one-click decryption from the backup, no plugin: the same files as online.
  const std::string offline = dir_.Sub("offline");
  ASSERT_EQ(Ctl("etcd" + Etcd() + " decrypt --backup " + backup + " --identity " + id.priv +
                    " --out " + offline + " -o json",
                &out, &err),
            0)
      << out << err;
  auto d = Json(out);
  ASSERT_FALSE(d.is_discarded()) << out;
  EXPECT_EQ(d["done"], ours);
  EXPECT_EQ(d["offline"], true);
  auto online_files = ReadDir(online);
  EXPECT_EQ(online_files.size(), static_cast<size_t>(ours));
  EXPECT_EQ(ReadDir(offline), online_files);
  // And offline scan --verify.
  ASSERT_EQ(Ctl("etcd" + Etcd() + " scan --verify --backup " + backup + " --identity " +
                    id.priv + " -o json",
                &out, &err),
            0)
      << out << err;
  EXPECT_EQ(Json(out)["verify"]["ok"], ours) << out;

  // A wrong identity opens nothing and writes nothing.
  EXPECT_EQ(Ctl("restore --identity " + other.priv + " --in " + backup + " --config " + config_,
                &out, &err),
            1);
  EXPECT_FALSE(fs::exists(kms_.data_dir() + "/keyset.bin"));
  EXPECT_EQ(Ctl("etcd" + Etcd() + " decrypt --backup " + backup + " --identity " + other.priv +
                    " --out " + dir_.Sub("nothing"),
                &out, &err),
            1);
  // A readable identity file is refused.
  ASSERT_EQ(chmod(id.priv.c_str(), 0644), 0);
  EXPECT_EQ(Ctl("restore --identity " + id.priv + " --in " + backup + " --config " + config_,
                &out, &err),
            1);
  EXPECT_NE(err.find("chmod 600"), std::string::npos) << err;
  ASSERT_EQ(chmod(id.priv.c_str(), 0600), 0);

  // Restore.
  ASSERT_EQ(Ctl("-o json restore --identity " + id.priv + " --in " + backup + " --config " +
                    config_,
                &out, &err),
            0)
      << out << err;
  auto r = Json(out);
  ASSERT_FALSE(r.is_discarded()) << out;
  EXPECT_EQ(r["keyset_id"], b["keyset_id"]);
  EXPECT_EQ(r["primary_key_id"], primary);
  EXPECT_EQ(r["versions"], 3);
  EXPECT_EQ(r["replaced_path"], "");
  EXPECT_EQ(FileMode(kms_.data_dir() + "/keyset.bin"), 0600);
  // The same KEKs, now sealed under the new data directory's sealing key.
  EXPECT_EQ(UnsealKeks(kms_.data_dir()), keks);

  // Restart: every earlier ciphertext decrypts, the primary is unchanged.
  ASSERT_TRUE(kms_.Start()) << kms_.log();
  ASSERT_EQ(Ctl("-o json status", &out, &err), 0) << out << err;
  EXPECT_EQ(Json(out)["primary_key_id"], primary);
  ExpectIssuedDecrypt();
  ExpectScanVerifyOk(ours);

  // A second restore is refused; --force keeps the old keyset file.
  const std::string keyset_before = ReadWholeFile(kms_.data_dir() + "/keyset.bin");
  StopKms();
  EXPECT_EQ(Ctl("restore --identity " + id.priv + " --in " + backup + " --config " + config_,
                &out, &err),
            1);
  EXPECT_NE(err.find("already holds keyset"), std::string::npos) << err;
  ASSERT_EQ(Ctl("-o json restore --force --identity " + id.priv + " --in " + backup +
                    " --config " + config_,
                &out, &err),
            0)
      << out << err;
  std::string replaced = Json(out)["replaced_path"];
  EXPECT_NE(replaced.find("/keyset.bin.replaced-"), std::string::npos) << replaced;
  EXPECT_EQ(ReadWholeFile(replaced), keyset_before);
  ASSERT_TRUE(kms_.Start()) << kms_.log();
  ExpectIssuedDecrypt();

  // No key bytes in the plugin's logs or anything kshieldctl printed.
  StopKms();
  ExpectNoSecret(old_log + kms_.log(), kek_list, "the plugin log");
  ExpectNoSecret(ctl_output_, kek_list, "kshieldctl output");
  EXPECT_NE(old_log.find("admin.backup"), std::string::npos);  // the audit line is there
  EXPECT_NE(old_log.find(b["recipient_fingerprint"].get<std::string>()), std::string::npos);
}

TEST_F(BackupTest, Rsa3072BackupRestoresAndRejectsWeakOrForeignKeys) {
  KeyPair rsa = MakeKeyPair(dir_.path(), "rsa", "rsa-3072");
  KeyPair x = MakeKeyPair(dir_.path(), "x", "x25519");
  KeyPair weak = MakeKeyPair(dir_.path(), "weak", "rsa-2048");
  WriteEpoch("r1", 20, kKms);
  Rotate();
  WriteEpoch("r2", 20, kKms);
  std::map<uint32_t, std::string> keks = UnsealKeks(kms_.data_dir());
  ASSERT_EQ(keks.size(), 2u);

  std::string out, err;
  const std::string backup = dir_.Sub("rsa.backup");
  // RSA-2048 is not an acceptable recipient: nothing is written.
  EXPECT_EQ(Ctl("backup --recipient " + weak.pub + " --out " + backup, &out, &err), 1);
  EXPECT_FALSE(fs::exists(backup));
  ASSERT_EQ(Ctl("-o yaml backup --recipient " + rsa.pub + " --out " + backup, &out, &err), 0)
      << out << err;
  EXPECT_NE(out.find("recipient_kind: rsa-3072"), std::string::npos) << out;
  EXPECT_EQ(FileMode(backup), 0600);
  std::vector<std::string> kek_list;
  for (const auto& [v, k] : keks) kek_list.push_back(k);
  ExpectNoSecret(ReadWholeFile(backup), kek_list, "the RSA backup file");

  StopKms();
  fs::remove_all(kms_.data_dir());
  // The identity of another recipient (another kind, even) is refused.
  EXPECT_EQ(Ctl("restore --identity " + x.priv + " --in " + backup + " --data-dir " +
                    kms_.data_dir() + " --config " + config_,
                &out, &err),
            1);
  EXPECT_FALSE(fs::exists(kms_.data_dir() + "/keyset.bin"));
  // --data-dir without --config (a plugin started with flags only).
  ASSERT_EQ(Ctl("restore --identity " + rsa.priv + " --in " + backup + " --data-dir " +
                    kms_.data_dir(),
                &out, &err),
            0)
      << out << err;
  EXPECT_NE(out.find("restored keyset"), std::string::npos) << out;
  EXPECT_EQ(UnsealKeks(kms_.data_dir()), keks);
  ASSERT_TRUE(kms_.Start()) << kms_.log();
  ExpectIssuedDecrypt();
  ExpectScanVerifyOk(2 * 20 * 3);
}

TEST_F(BackupTest, BackupUsageAndUnreachablePlugin) {
  KeyPair id = MakeKeyPair(dir_.path(), "id", "x25519");
  std::string out, err;
  EXPECT_EQ(Ctl("backup --out " + dir_.Sub("b"), &out, &err), 2);  // no --recipient
  EXPECT_EQ(Ctl("backup --recipient " + id.pub, &out, &err), 2);    // no --out
  EXPECT_EQ(Ctl("backup --recipient " + id.priv + " --out " + dir_.Sub("b"), &out, &err), 1);
  EXPECT_EQ(Ctl("backup inspect " + id.pub, &out, &err), 1);  // not a backup
  EXPECT_EQ(Ctl("backup --help", &out, &err), 0);
  EXPECT_NE(out.find("inspect"), std::string::npos);
  EXPECT_EQ(Ctl("restore --help", &out, &err), 0);
  EXPECT_EQ(Ctl("restore --in x", &out, &err), 2);
  EXPECT_EQ(RunCommand(std::string(KSHIELD_BIN_DIR) +
                           "/kshieldctl --timeout 1 --admin-socket " + dir_.Sub("none.sock") +
                           " backup --recipient " + id.pub + " --out " + dir_.Sub("b"),
                       &out),
            3)
      << out;
  EXPECT_FALSE(fs::exists(dir_.Sub("b")));
  // A backup to a public key that is not a PEM at all, straight through the admin RPC.
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  kshield::admin::v1::BackupRequest req;
  req.set_recipient_public_key_pem("not a key");
  kshield::admin::v1::BackupResponse resp;
  EXPECT_EQ(kms_.Admin()->Backup(&ctx, req, &resp).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(BackupTest, RetireRefusedWhileInUseAllowedAfterRewrap) {
  WriteEpoch("t1", 40, {SimFormat::kKmsV2Seed, SimFormat::kKmsV2AesGcmKey, SimFormat::kIdentity});
  const Issued old = issued_.back();
  Rotate();
  WriteEpoch("t2", 40, {SimFormat::kKmsV2Seed, SimFormat::kKmsV2AesGcmKey});
  issued_.clear();  // the version-1 ciphertexts are expected to die below

  std::string out, err;
  // Version 1 is used by 80 v2 values (and the v1 one... none: this test writes v2 only).
  EXPECT_EQ(Ctl("keyset retire 1" + Etcd(), &out, &err), 1) << out << err;
  EXPECT_NE(err.find("REFUSED: 80 values"), std::string::npos) << err;
  // The primary, an unknown version, a missing version argument.
  EXPECT_EQ(Ctl("keyset retire 2" + Etcd(), &out, &err), 1);
  EXPECT_NE(err.find("is the primary"), std::string::npos) << err;
  EXPECT_EQ(Ctl("keyset retire 99" + Etcd(), &out, &err), 1);
  EXPECT_NE(err.find("no key version 99"), std::string::npos) << err;
  EXPECT_EQ(Ctl("keyset retire" + Etcd(), &out, &err), 2);
  ASSERT_EQ(Ctl("keyset list -o json", &out, &err), 0);
  EXPECT_EQ(Json(out)[0]["state"], "active");

  ASSERT_EQ(Ctl("etcd" + Etcd() + " rewrap --to-primary --apply -o json", &out, &err), 0)
      << out << err;
  EXPECT_EQ(Json(out)["rewrapped"], 80) << out;
  ASSERT_EQ(Ctl("-o json keyset retire 1" + Etcd(), &out, &err), 0) << out << err;
  auto j = Json(out);
  ASSERT_FALSE(j.is_discarded()) << out;
  EXPECT_EQ(j["checked"]["uses"], 0);
  EXPECT_EQ(j["checked"]["scanned"], 40 * 3 + 40 * 2);
  ASSERT_EQ(Ctl("keyset list -o json", &out, &err), 0);
  EXPECT_EQ(Json(out)[0]["state"], "retired");

  // Values under the retired version no longer decrypt through the plugin ...
  auto v2 = kms_client_->DecryptV2(old.v2_ciphertext, old.v2_key_id, {});
  EXPECT_EQ(v2.status().code(), absl::StatusCode::kFailedPrecondition) << v2.status();
  EXPECT_FALSE(kms_client_->DecryptV1(old.v1_ciphertext).ok());
  // ... everything in etcd still does.
  ExpectScanVerifyOk(40 * 2 + 40 * 2);
  // Retiring it again is a no-op.
  EXPECT_EQ(Ctl("keyset retire 1" + Etcd(), &out, &err), 0) << out << err;
  EXPECT_NE(out.find("already retired"), std::string::npos) << out;
}

TEST_F(BackupTest, RetireFailsClosedWithoutEtcdAndForceSkipsTheCheck) {
  WriteEpoch("f1", 20, {SimFormat::kKmsV1, SimFormat::kKmsV2Seed});
  Rotate();
  WriteEpoch("f2", 20, {SimFormat::kKmsV1, SimFormat::kKmsV2Seed});
  std::string out, err;
  // etcd unreachable: refused (exit 3, unreachable), the version stays active.
  const std::string nowhere =
      " --endpoints 127.0.0.1:" + std::to_string(FreeLoopbackPort()) + " --etcd-timeout 1";
  EXPECT_EQ(Ctl("keyset retire 1" + nowhere, &out, &err), 3) << out << err;
  EXPECT_NE(err.find("REFUSED: cannot check etcd"), std::string::npos) << err;
  ASSERT_EQ(Ctl("keyset list -o json", &out, &err), 0);
  EXPECT_EQ(Json(out)[0]["state"], "active");
  // KMS v1 values count too (rewrap cannot move them), and so do other resources than Secrets
  // (a ConfigMap KMS-encrypted under version 1; its AAD does not matter to the count).
  const std::string v2_value = [&] {
    auto kv = etcd_->Get(tools::SecretEtcdKey(
        "/registry", tools::SimNamespace("f1", SimFormat::kKmsV2Seed), tools::SimName(0)));
    return kv.ok() && kv->has_value() ? (*kv)->value : std::string();
  }();
  ASSERT_FALSE(v2_value.empty());
  ASSERT_TRUE(etcd_->Put("/registry/configmaps/default/cm", v2_value).ok());
  EXPECT_EQ(Ctl("keyset retire 1" + Etcd(), &out, &err), 1);
  EXPECT_NE(err.find("REFUSED: 41 values"), std::string::npos) << err;

  // --force: a loud warning, no etcd needed; the values under version 1 stop decrypting while
  // the others still do.
  ASSERT_EQ(Ctl("keyset retire 1 --force" + nowhere, &out, &err), 0) << out << err;
  EXPECT_NE(err.find("WARNING: --force"), std::string::npos) << err;
  ASSERT_EQ(Ctl("etcd" + Etcd() + " scan --verify -o json", &out, &err), 1) << out << err;
  auto j = Json(out);
  ASSERT_FALSE(j.is_discarded()) << out;
  EXPECT_EQ(j["verify"]["ok"], 40);
  EXPECT_EQ(j["verify"]["failed"], 40);
  // The retired version's error is specific (key ids are public), not an oracle.
  EXPECT_NE(out.find("is retired"), std::string::npos) << out;
}

// Under the simulated TEE the local provider's sealing key is bound to the kshield-kms binary
// (MRENCLAVE = its SHA-256): restore must seal for that identity, not kshieldctl's.
TEST(BackupSimTest, RestoreUnderTheSimPlatformSealsForKshieldKms) {
  std::string out;
  if (RunCommand("openssl version", &out) != 0) GTEST_SKIP() << "needs the openssl CLI";
  TempDir dir;
  KmsInstance kms({"--tee=sim"}, &dir);
  ASSERT_TRUE(kms.Start()) << kms.log();
  KeyPair id = MakeKeyPair(dir.path(), "id", "x25519");
  auto v2 = kms.V2();
  ::v2::EncryptResponse enc;
  ASSERT_TRUE(V2Encrypt(v2.get(), "sim-plaintext-0123456789", &enc).ok());
  const std::string ctl = std::string(KSHIELD_BIN_DIR) + "/kshieldctl --admin-socket " +
                          kms.admin_socket() + " ";
  const std::string backup = dir.Sub("sim.backup");
  ASSERT_EQ(RunCommand(ctl + "backup --recipient " + id.pub + " --out " + backup, &out), 0)
      << out;
  kms.Stop(SIGTERM);
  ASSERT_NE(kms.WaitExit(), -1);
  fs::remove_all(kms.data_dir());
  ASSERT_EQ(RunCommand(ctl + "-o json restore --tee sim --identity " + id.priv + " --in " +
                           backup + " --data-dir " + kms.data_dir(),
                       &out),
            0)
      << out;
  EXPECT_NE(out.find("\"tee_platform\": \"sim\""), std::string::npos) << out;
  ASSERT_TRUE(kms.Start()) << kms.log();
  v2 = kms.V2();
  std::string back;
  ASSERT_TRUE(V2Decrypt(v2.get(), enc.ciphertext(), enc.key_id(), &back).ok());
  EXPECT_EQ(back, "sim-plaintext-0123456789");
}

}  // namespace
}  // namespace kshield::testing

// kshieldctl etcd scan / rewrap / decrypt and the apiserver simulator (issue 4 §3-§5) against a
// real etcd (EtcdServer) and a real kshield-kms (KmsInstance), over Secrets written in every
// format by the simulator's writer.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <grpcpp/grpcpp.h>

#include <nlohmann/json.hpp>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/testing/temp_dir.h"
#include "envelope/envelope.h"
#include "etcd_server_fixture.h"
#include "support/kms_instance.h"
#include "tools/apiserver_writer.h"
#include "tools/etcd_tools.h"
#include "tools/kms_client.h"
#include "tools/progress.h"
#include "tools/value_decryptor.h"

namespace kshield::testing {
namespace {

namespace fs = std::filesystem;
using tools::SimFormat;

std::string ToolsBin(const std::string& name) {
  return std::string(KSHIELD_BIN_DIR) + "/../tests/" + name;
}

std::string Plain(const envelope::SecretInfo& s) {
  absl::StatusOr<std::string> p = envelope::EncodeSecret(s);
  return p.ok() ? *p : "";
}

// A directory's regular files (name -> content), ignoring nothing.
std::map<std::string, std::string> ReadDir(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.is_regular_file()) out[e.path().filename().string()] = ReadWholeFile(e.path().string());
  }
  return out;
}

class ToolsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!EtcdServer::Available()) GTEST_SKIP() << EtcdServer::SkipReason();
    etcd_server_ = std::make_unique<EtcdServer>(dir_.path() + "/etcd");
    fs::create_directories(dir_.path() + "/etcd");
    ASSERT_TRUE(etcd_server_->Start().ok());
    ASSERT_TRUE(kms_.Start()) << kms_.log();
    auto e = etcd::Client::Create(etcd_server_->ClientOptions());
    ASSERT_TRUE(e.ok()) << e.status();
    etcd_ = std::move(*e);
    auto k = tools::KmsClient::Create(kms_.socket());
    ASSERT_TRUE(k.ok()) << k.status();
    kms_client_ = std::move(*k);
    writer_ = std::make_unique<tools::ApiserverWriter>(etcd_.get(), kms_client_.get(),
                                                       tools::ApiserverOptions{});
    ASSERT_TRUE(writer_->PollStatus().ok());
  }

  void Write(int per_format, std::vector<SimFormat> formats = {std::begin(tools::kAllSimFormats),
                                                               std::end(tools::kAllSimFormats)}) {
    tools::WriteSecretsOptions o;
    o.per_format = per_format;
    o.formats = std::move(formats);
    auto r = tools::WriteSecrets(*writer_, o);
    ASSERT_TRUE(r.ok()) << r.status();
    for (const auto& st : *r) {
      ASSERT_EQ(st.written, per_format) << tools::SimFormatName(st.format) << st.first_error;
    }
  }

  std::string Key(SimFormat f, int i) {
    return tools::SecretEtcdKey("/registry", tools::SimNamespace("sim", f), tools::SimName(i));
  }

  std::string Get(const std::string& key) {
    auto kv = etcd_->Get(key);
    return kv.ok() && kv->has_value() ? (*kv)->value : "";
  }

  std::string Rotate() {
    kshield::admin::v1::RotateResponse r;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    grpc::Status s = kms_.Admin()->Rotate(&ctx, {}, &r);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return r.key_id();
  }

  // Runs the CLI driver; returns the exit code and fills stdout / stderr separately.
  int Ctl(const std::string& args, std::string* out, std::string* err = nullptr) {
    std::string err_file = dir_.path() + "/ctl.stderr";
    // RunCommand merges stderr into stdout; keep them apart (stdout is the JSON report).
    std::string cmd = "(" + ToolsBin("tools_kshieldctl") + " --socket " + kms_.socket() +
                      " etcd --endpoints " + etcd_server_->endpoint() + " " + args + " 2>" +
                      err_file + ")";
    int rc = RunCommand(cmd, out);
    if (err != nullptr) *err = ReadWholeFile(err_file);
    return rc;
  }

  // Every DEK and seed behind the values in etcd, decrypted through the plugin (for leak checks).
  std::vector<std::string> AllDeksAndSeeds() {
    std::vector<std::string> out;
    std::set<std::string> seen;
    auto r = etcd_->RangePrefix("/registry/secrets/", 1000, [&](const std::vector<etcd::KeyValue>& kvs) -> absl::Status {
      for (const auto& kv : kvs) {
        if (envelope::ClassifyValue(kv.value) == envelope::ValueKind::kKmsV2) {
          auto v = envelope::ParseKmsV2(kv.value);
          if (!v.ok() || !seen.insert(tools::V2DekSourceId(*v)).second) continue;
          auto seed = kms_client_->DecryptV2(v->encrypted_dek_source, v->key_id, v->annotations);
          if (seed.ok()) out.emplace_back(seed->UnsafeStringView());
        } else if (envelope::ClassifyValue(kv.value) == envelope::ValueKind::kKmsV1) {
          auto v = envelope::ParseKmsV1(kv.value);
          if (!v.ok()) continue;
          auto dek = kms_client_->DecryptV1(v->wrapped_dek);
          if (dek.ok()) out.emplace_back(dek->UnsafeStringView());
        }
      }
      return absl::OkStatus();
    });
    EXPECT_TRUE(r.ok()) << r.status();
    return out;
  }

  static void ExpectNoKeyMaterial(const std::string& haystack, const std::vector<std::string>& keys,
                                  const std::string& where) {
    for (const auto& k : keys) {
      ASSERT_EQ(k.size(), 32u);
      EXPECT_EQ(haystack.find(k), std::string::npos) << "raw DEK/seed in " << where;
      EXPECT_EQ(haystack.find(absl::BytesToHexString(k)), std::string::npos) << "hex in " << where;
      EXPECT_EQ(haystack.find(absl::Base64Escape(k)), std::string::npos) << "b64 in " << where;
    }
  }

  TempDir dir_;
  std::unique_ptr<EtcdServer> etcd_server_;
  KmsInstance kms_;
  std::unique_ptr<etcd::Client> etcd_;
  std::unique_ptr<tools::KmsClient> kms_client_;
  std::unique_ptr<tools::ApiserverWriter> writer_;
};

TEST_F(ToolsTest, ScanCountsEveryFormat) {
  Write(400);  // 2,000 Secrets
  const std::string key_id = writer_->key_id();
  tools::ScanOptions o;
  o.page_size = 128;  // several pages
  int64_t last_done = 0;
  auto r = tools::ScanSecrets(*etcd_, nullptr, o, [&](int64_t done, int64_t total) {
    EXPECT_EQ(total, 2000);
    EXPECT_GT(done, last_done);
    last_done = done;
  });
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(last_done, 2000);
  EXPECT_EQ(r->total, 2000);
  std::map<std::string, int64_t> groups;
  for (const auto& g : r->groups) {
    groups[absl::StrCat(g.kind, "|", g.provider, "|", g.key_id, "|", g.dek_source_type)] = g.count;
  }
  std::map<std::string, int64_t> want = {
      {"kms-v2|kshield|" + key_id + "|hkdf-seed", 400},
      {"kms-v2|kshield|" + key_id + "|aes-gcm-key", 400},
      {"kms-v1|kshield||", 400},
      {"identity|||", 400},
      {"aesgcm|key1||", 400},
  };
  EXPECT_EQ(groups, want);
  EXPECT_EQ(r->unencrypted_count, 400);
  EXPECT_EQ(r->unencrypted.size(), 400u);
  EXPECT_EQ(r->unencrypted.front(), Key(SimFormat::kIdentity, 0));
  EXPECT_EQ(r->unparseable_count, 0);
  std::map<std::string, int64_t> versions = {{key_id, 800}, {"v1:1", 400}};
  EXPECT_EQ(r->key_versions, versions);
  EXPECT_FALSE(r->verified);

  // The CLI: JSON output with the same counts, plain progress lines on a non-terminal stderr.
  std::string out, err;
  ASSERT_EQ(Ctl("scan -o json --page-size 100", &out, &err), 0) << out << err;
  auto j = nlohmann::json::parse(out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << out;
  EXPECT_EQ(j["total"], 2000);
  EXPECT_EQ(j["unencrypted_count"], 400);
  EXPECT_EQ(j["key_versions"][key_id], 800);
  EXPECT_EQ(j["groups"].size(), 5u);
  EXPECT_NE(err.find("scan 2000/2000 100%"), std::string::npos) << err;
  EXPECT_EQ(err.find('\r'), std::string::npos) << "no bar redraws when stderr is not a tty";
  // Table and YAML render too.
  ASSERT_EQ(Ctl("scan", &out), 0) << out;
  EXPECT_NE(out.find("2000 values under /registry/secrets/"), std::string::npos) << out;
  EXPECT_NE(out.find("Unencrypted (identity): 400"), std::string::npos) << out;
  ASSERT_EQ(Ctl("scan -o yaml", &out), 0) << out;
  EXPECT_NE(out.find("unencrypted_count: 400"), std::string::npos) << out;
}

TEST_F(ToolsTest, ScanVerifyReportsCorruptValuesWithoutStopping) {
  Write(200);
  // A v2 value whose data no longer authenticates; a v1 value whose wrapped DEK was altered; a
  // v2 value that is not a valid EncryptedObject; a value in no known format.
  std::string v2 = Get(Key(SimFormat::kKmsV2Seed, 7));
  v2.back() ^= 0x01;
  ASSERT_TRUE(etcd_->Put(Key(SimFormat::kKmsV2Seed, 7), v2).ok());
  auto v1 = envelope::ParseKmsV1(Get(Key(SimFormat::kKmsV1, 9)));
  ASSERT_TRUE(v1.ok());
  v1->wrapped_dek[20] ^= 0x01;
  auto v1_bad = envelope::BuildKmsV1("kshield", v1->wrapped_dek, v1->data);
  ASSERT_TRUE(v1_bad.ok());
  ASSERT_TRUE(etcd_->Put(Key(SimFormat::kKmsV1, 9), *v1_bad).ok());
  ASSERT_TRUE(etcd_->Put(Key(SimFormat::kKmsV2AesGcmKey, 3),
                         std::string("k8s:enc:kms:v2:kshield:\x0a\xff\xff", 26)).ok());
  ASSERT_TRUE(etcd_->Put("/registry/secrets/odd/value", "not a stored object").ok());

  tools::ScanOptions o;
  o.verify = true;
  auto r = tools::ScanSecrets(*etcd_, kms_client_.get(), o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->total, 1001);
  EXPECT_EQ(r->unparseable_count, 2);
  std::set<std::string> unparseable;
  for (const auto& p : r->unparseable) unparseable.insert(p.key);
  EXPECT_EQ(unparseable, (std::set<std::string>{Key(SimFormat::kKmsV2AesGcmKey, 3),
                                                "/registry/secrets/odd/value"}));
  EXPECT_EQ(r->verify_ok, 597);
  EXPECT_EQ(r->verify_failed, 2);
  std::set<std::string> failed;
  for (const auto& p : r->verify_failures) failed.insert(p.key);
  EXPECT_EQ(failed, (std::set<std::string>{Key(SimFormat::kKmsV2Seed, 7),
                                           Key(SimFormat::kKmsV1, 9)}));
  EXPECT_EQ(r->verify_skipped, 200);  // aesgcm: not the plugin's
  // v2: one Decrypt per distinct DEK source (the seed and the AES-GCM key); v1: one per value.
  EXPECT_EQ(r->distinct_dek_sources, 2u);
  EXPECT_EQ(r->plugin_calls.v2_decrypt, 2u);
  EXPECT_EQ(r->plugin_calls.v1_decrypt, 200u);

  std::string out;
  EXPECT_EQ(Ctl("scan --verify", &out), 1) << out;
  EXPECT_NE(out.find("Verify: 597 ok, 2 failed, 200 skipped"), std::string::npos) << out;
  EXPECT_NE(out.find(Key(SimFormat::kKmsV2Seed, 7) + ": authentication failed"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("/registry/secrets/odd/value: unknown value format"), std::string::npos)
      << out;
}

TEST_F(ToolsTest, RewrapMovesV2ValuesToNewKeyWithoutLosingConcurrentWrites) {
  Write(300, {SimFormat::kKmsV2Seed, SimFormat::kKmsV2AesGcmKey, SimFormat::kKmsV1,
              SimFormat::kIdentity});
  const std::string old_id = writer_->key_id();
  // Before: every v2 value's data bytes, and the full v1 / identity values.
  std::map<std::string, std::string> data_before, other_before;
  ASSERT_TRUE(etcd_->RangePrefix("/registry/secrets/", 500, [&](const std::vector<etcd::KeyValue>& kvs) -> absl::Status {
                      for (const auto& kv : kvs) {
                        auto v = envelope::ParseKmsV2(kv.value);
                        if (v.ok()) {
                          data_before[kv.key] = v->encrypted_data;
                        } else {
                          other_before[kv.key] = kv.value;
                        }
                      }
                      return absl::OkStatus();
                    }).ok());
  ASSERT_EQ(data_before.size(), 600u);
  // An apiserver that has not polled Status since the rotation keeps writing under the old key.
  tools::ApiserverOptions slow;
  slow.status_poll_interval = std::chrono::hours(1);
  tools::ApiserverWriter old_writer(etcd_.get(), kms_client_.get(), slow);
  ASSERT_TRUE(old_writer.PollStatus().ok());

  const std::string new_id = Rotate();
  ASSERT_NE(new_id, old_id);

  // Dry run: counts, writes nothing.
  tools::RewrapOptions o;
  auto dry = tools::RewrapToPrimary(*etcd_, *kms_client_, o);
  ASSERT_TRUE(dry.ok()) << dry.status();
  EXPECT_FALSE(dry->applied);
  EXPECT_EQ(dry->primary_key_id, new_id);
  EXPECT_EQ(dry->v2_values, 600);
  EXPECT_EQ(dry->to_rewrap, 600);
  EXPECT_EQ(dry->old_key_ids, (std::map<std::string, int64_t>{{old_id, 600}}));
  EXPECT_EQ(dry->rewrapped, 0);
  auto unchanged = envelope::ParseKmsV2(Get(Key(SimFormat::kKmsV2Seed, 0)));
  ASSERT_TRUE(unchanged.ok());
  EXPECT_EQ(unchanged->key_id, old_id);

  // Apply, while the old-key writer keeps updating Secrets 0..49 of the seed namespace.
  std::atomic<bool> stop{false};
  std::atomic<int> writes{0};
  std::map<std::string, std::string> last_written;  // key -> data bytes of the last write
  std::map<std::string, int> last_index;
  std::thread concurrent([&] {
    for (int gen = 1; !stop.load() || gen < 3; ++gen) {
      for (int i = 0; i < 50; ++i) {
        std::string ns = tools::SimNamespace("sim", SimFormat::kKmsV2Seed);
        int index = gen * 100000 + i;
        std::string key = tools::SecretEtcdKey("/registry", ns, tools::SimName(i));
        envelope::SecretInfo s = tools::SimSecret(ns, tools::SimName(i), index);
        auto value = old_writer.Transform(SimFormat::kKmsV2Seed, key, Plain(s));
        ASSERT_TRUE(value.ok()) << value.status();
        ASSERT_TRUE(etcd_->Put(key, *value).ok());
        last_written[key] = envelope::ParseKmsV2(*value)->encrypted_data;
        last_index[key] = index;
        writes.fetch_add(1);
      }
    }
  });
  o.apply = true;
  o.page_size = 50;
  o.concurrency = 2;
  auto applied = tools::RewrapToPrimary(*etcd_, *kms_client_, o);
  stop = true;
  concurrent.join();
  ASSERT_TRUE(applied.ok()) << applied.status();
  EXPECT_GE(writes.load(), 100);
  RecordProperty("concurrent_writes", writes.load());
  RecordProperty("skipped_concurrent", static_cast<int>(applied->skipped));
  EXPECT_EQ(applied->failed, 0);
  EXPECT_EQ(applied->rewrapped + applied->skipped, applied->to_rewrap);
  EXPECT_GT(applied->rewrapped, 500);
  // Writes that landed after the walk passed their key are still old: a second pass finishes.
  auto second = tools::RewrapToPrimary(*etcd_, *kms_client_, o);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->failed, 0);
  EXPECT_EQ(second->to_rewrap, second->rewrapped);
  auto third = tools::RewrapToPrimary(*etcd_, *kms_client_, o);
  ASSERT_TRUE(third.ok());
  EXPECT_EQ(third->to_rewrap, 0);
  EXPECT_EQ(third->at_primary, 600);

  // Every v2 value is under the new key id; data bytes are the original ones or, for the keys the
  // concurrent writer updated, those of its last write; v1 and identity values are untouched.
  tools::ValueDecryptor reader(kms_client_.get(), "kshield");
  ASSERT_TRUE(etcd_->RangePrefix("/registry/secrets/", 500, [&](const std::vector<etcd::KeyValue>& kvs) -> absl::Status {
                      for (const auto& kv : kvs) {
                        auto v = envelope::ParseKmsV2(kv.value);
                        if (!v.ok()) {
                          EXPECT_EQ(kv.value, other_before[kv.key]) << kv.key;
                          continue;
                        }
                        EXPECT_EQ(v->key_id, new_id) << kv.key;
                        auto lw = last_written.find(kv.key);
                        EXPECT_EQ(v->encrypted_data,
                                  lw != last_written.end() ? lw->second : data_before[kv.key])
                            << kv.key;
                        auto plain = reader.Decrypt(kv.key, kv.value);
                        EXPECT_TRUE(plain.ok()) << kv.key << plain.status();
                        if (!plain.ok()) continue;
                        auto s = envelope::DecodeSecret(*plain);
                        if (!s.ok()) {
                          ADD_FAILURE() << kv.key;
                          continue;
                        }
                        if (lw != last_written.end()) {
                          EXPECT_EQ(s->data.at("index").UnsafeStringView(),
                                    std::to_string(last_index[kv.key]));
                        }
                      }
                      return absl::OkStatus();
                    }).ok());
  // The verify scan agrees, and a dry run of the CLI finds nothing left.
  tools::ScanOptions so;
  so.verify = true;
  auto scan = tools::ScanSecrets(*etcd_, kms_client_.get(), so);
  ASSERT_TRUE(scan.ok());
  EXPECT_EQ(scan->verify_failed, 0);
  EXPECT_EQ(scan->verify_ok, 900);
  std::string out;
  ASSERT_EQ(Ctl("rewrap --to-primary -o json", &out), 0) << out;
  auto j = nlohmann::json::parse(out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << out;
  EXPECT_EQ(j["to_rewrap"], 0);
  EXPECT_EQ(j["at_primary"], 600);
}

TEST_F(ToolsTest, RewrapCliRewrapsAndCachesPerDekSource) {
  Write(100, {SimFormat::kKmsV2Seed, SimFormat::kKmsV2AesGcmKey});
  const std::string new_id = Rotate();
  std::string out;
  ASSERT_EQ(Ctl("rewrap --to-primary", &out), 0) << out;
  EXPECT_NE(out.find("DRY RUN"), std::string::npos) << out;
  EXPECT_NE(out.find("to rewrap 200"), std::string::npos) << out;
  ASSERT_EQ(Ctl("-o json rewrap --to-primary --apply", &out), 0) << out;
  auto j = nlohmann::json::parse(out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << out;
  EXPECT_EQ(j["rewrapped"], 200);
  EXPECT_EQ(j["distinct_dek_sources"], 2);
  EXPECT_EQ(j["plugin_calls"]["v2_decrypt"], 2);
  EXPECT_EQ(j["plugin_calls"]["v2_encrypt"], 2);
  auto v = envelope::ParseKmsV2(Get(Key(SimFormat::kKmsV2AesGcmKey, 42)));
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->key_id, new_id);
  // Usage errors.
  EXPECT_EQ(Ctl("rewrap", &out), 2) << out;                          // --to-primary required
  EXPECT_EQ(Ctl("rewrap --to-primary --apply --dry-run", &out), 2);  // contradictory
}

TEST_F(ToolsTest, DecryptToDirIsCompleteIdempotentAndLeaksNoKeys) {
  Write(200);
  const std::string out_dir = dir_.path() + "/out";
  tools::DecryptOptions o;
  o.out_dir = out_dir;
  auto r = tools::DecryptSecrets(*etcd_, *kms_client_, o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->done, 600);
  EXPECT_EQ(r->skipped, 0);
  EXPECT_EQ(r->failed, 0);
  EXPECT_EQ(r->not_ours, 400);  // identity and aesgcm
  struct stat st;
  ASSERT_EQ(stat(out_dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700);
  auto files = ReadDir(out_dir);
  ASSERT_EQ(files.size(), 600u);
  for (SimFormat f : {SimFormat::kKmsV2Seed, SimFormat::kKmsV2AesGcmKey, SimFormat::kKmsV1}) {
    std::string ns = tools::SimNamespace("sim", f);
    for (int i = 0; i < 200; ++i) {
      std::string name = ns + "_" + tools::SimName(i) + ".yaml";
      ASSERT_EQ(files.count(name), 1u) << name;
      ASSERT_EQ(stat((out_dir + "/" + name).c_str(), &st), 0);
      EXPECT_EQ(st.st_mode & 07777, 0600) << name;
      const std::string& content = files[name];
      // First line: the key and revision; then exactly the manifest of the Secret written.
      size_t nl = content.find('\n');
      ASSERT_NE(nl, std::string::npos);
      EXPECT_EQ(content.substr(0, nl).rfind("# kshieldctl etcd decrypt: key=" + Key(f, i) +
                                                " mod_revision=",
                                            0),
                0u)
          << content.substr(0, nl);
      EXPECT_EQ(content.substr(nl + 1), envelope::SecretToYaml(tools::SimSecret(ns, tools::SimName(i), i)))
          << name;
    }
  }

  // Rerun: everything already complete.
  auto again = tools::DecryptSecrets(*etcd_, *kms_client_, o);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->done, 0);
  EXPECT_EQ(again->skipped, 600);
  EXPECT_EQ(again->plugin_calls.total(), 0u);

  // An interrupted run: half the files missing, a stale temp file, one Secret updated since.
  int removed = 0;
  for (const auto& [name, content] : files) {
    if (removed < 300) {
      fs::remove(out_dir + "/" + name);
      ++removed;
    }
  }
  { std::ofstream(out_dir + "/.kshieldctl-tmp-deadbeef") << "partial"; }
  // (Files sort kms-v1, kms-v2-aes-gcm-key, kms-v2-seed: the seed namespace's files were kept.)
  std::string ns = tools::SimNamespace("sim", SimFormat::kKmsV2Seed);
  ASSERT_TRUE(
      writer_->WriteSecret(SimFormat::kKmsV2Seed, tools::SimSecret(ns, tools::SimName(199), 7777))
          .ok());
  auto rerun = tools::DecryptSecrets(*etcd_, *kms_client_, o);
  ASSERT_TRUE(rerun.ok());
  EXPECT_EQ(rerun->done, 301);
  EXPECT_EQ(rerun->skipped, 299);
  EXPECT_EQ(rerun->failed, 0);
  files = ReadDir(out_dir);
  EXPECT_EQ(files.size(), 600u);  // temp file cleaned up
  EXPECT_EQ(files.count(".kshieldctl-tmp-deadbeef"), 0u);
  std::string updated = files[ns + "_" + tools::SimName(199) + ".yaml"];
  EXPECT_EQ(updated.substr(updated.find('\n') + 1),
            envelope::SecretToYaml(tools::SimSecret(ns, tools::SimName(199), 7777)));

  // No DEK or seed in any output file, in the CLI's output, or in the plugin's log.
  std::vector<std::string> keys = AllDeksAndSeeds();
  ASSERT_EQ(keys.size(), 2u + 200u);  // the seed, the AES-GCM key, one DEK per v1 value
  for (const auto& [name, content] : files) ExpectNoKeyMaterial(content, keys, name);
  std::string cli_out, cli_err;
  ASSERT_EQ(Ctl("decrypt --out " + dir_.path() + "/out2", &cli_out, &cli_err), 0) << cli_out;
  EXPECT_NE(cli_out.find("decrypt: done 600, skipped 0 (already complete), failed 0"),
            std::string::npos)
      << cli_out;
  ExpectNoKeyMaterial(cli_out + cli_err, keys, "kshieldctl output");
  ExpectNoKeyMaterial(kms_.log(), keys, "kshield-kms log");
}

TEST_F(ToolsTest, DecryptKilledMidRunCompletesOnRerun) {
  Write(300, {SimFormat::kKmsV1, SimFormat::kKmsV2Seed});
  const std::string out_dir = dir_.path() + "/out";
  // Slow the walk down (one value at a time, small pages) so the kill lands mid-run.
  ChildProcess child({ToolsBin("tools_kshieldctl"), "--socket", kms_.socket(), "etcd",
                      "--endpoints", etcd_server_->endpoint(), "decrypt", "--out", out_dir,
                      "--concurrency", "1", "--page-size", "5"},
                     dir_.path() + "/killed.log");
  auto count = [&] {
    std::error_code ec;
    if (!fs::exists(out_dir, ec)) return 0;
    int n = 0;
    for (const auto& e : fs::directory_iterator(out_dir, ec)) {
      if (e.path().filename().string()[0] != '.') ++n;
    }
    return n;
  };
  ASSERT_TRUE(WaitFor([&] { return count() >= 30 || !child.running(); }, std::chrono::seconds(30)));
  child.Signal(SIGKILL);
  child.Wait(std::chrono::seconds(10));
  int before = count();
  if (before >= 600) GTEST_SKIP() << "the run finished before it could be interrupted";
  ASSERT_GE(before, 30);

  std::string out;
  ASSERT_EQ(Ctl("-o json decrypt --out " + out_dir, &out), 0) << out;
  auto j = nlohmann::json::parse(out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << out;
  EXPECT_EQ(j["skipped"], before);
  EXPECT_EQ(j["done"], 600 - before);
  EXPECT_EQ(j["failed"], 0);
  EXPECT_EQ(count(), 600);
  auto files = ReadDir(out_dir);
  for (const auto& [name, content] : files) {
    EXPECT_EQ(name[0] != '.', true) << "temp file left: " << name;
    // Complete: exactly the manifest of the Secret (name = <ns>_secret-NNNNN.yaml).
    size_t us = name.find('_');
    ASSERT_NE(us, std::string::npos) << name;
    std::string ns = name.substr(0, us);
    std::string secret = name.substr(us + 1, name.size() - us - 1 - 5);
    int index = std::stoi(secret.substr(7));
    EXPECT_EQ(content.substr(content.find('\n') + 1),
              envelope::SecretToYaml(tools::SimSecret(ns, secret, index)))
        << name;
  }
}

TEST_F(ToolsTest, RewriteIdentityNeedsConfirmAndKeepsConcurrentWrites) {
  Write(100, {SimFormat::kKmsV2Seed, SimFormat::kKmsV1, SimFormat::kIdentity});
  std::string out;
  EXPECT_EQ(Ctl("decrypt --rewrite-identity", &out), 2);
  EXPECT_EQ(Ctl("decrypt", &out), 2);
  EXPECT_EQ(envelope::ClassifyValue(Get(Key(SimFormat::kKmsV1, 0))), envelope::ValueKind::kKmsV1);

  // A concurrent apiserver keeps updating Secrets 0..19 of the v1 namespace (encrypted).
  std::atomic<bool> stop{false};
  std::map<std::string, int> last_index;
  std::thread concurrent([&] {
    std::string ns = tools::SimNamespace("sim", SimFormat::kKmsV1);
    for (int gen = 1; !stop.load() || gen < 3; ++gen) {
      for (int i = 0; i < 20; ++i) {
        ASSERT_TRUE(writer_->WriteSecret(SimFormat::kKmsV1,
                                         tools::SimSecret(ns, tools::SimName(i), gen * 1000 + i))
                        .ok());
        last_index[Key(SimFormat::kKmsV1, i)] = gen * 1000 + i;
      }
    }
  });
  tools::DecryptOptions o;
  o.rewrite_identity = true;
  o.page_size = 10;
  o.concurrency = 1;
  auto r = tools::DecryptSecrets(*etcd_, *kms_client_, o);
  stop = true;
  concurrent.join();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->failed, 0);
  EXPECT_EQ(r->done, 200);
  EXPECT_EQ(r->skipped, 100);  // the identity ones

  // Every Secret reads back as its latest write: identity values are exactly the plain protobuf;
  // keys written after the walk passed them are still encrypted and decrypt to the writer's data.
  tools::ValueDecryptor reader(kms_client_.get(), "kshield");
  int still_encrypted = 0;
  for (SimFormat f : {SimFormat::kKmsV2Seed, SimFormat::kKmsV1}) {
    std::string ns = tools::SimNamespace("sim", f);
    for (int i = 0; i < 100; ++i) {
      std::string key = Key(f, i);
      std::string v = Get(key);
      auto it = last_index.find(key);
      int index = it != last_index.end() ? it->second : i;
      if (envelope::ClassifyValue(v) != envelope::ValueKind::kIdentity) {
        ++still_encrypted;
        EXPECT_NE(it, last_index.end()) << key;
      } else {
        EXPECT_EQ(v, Plain(tools::SimSecret(ns, tools::SimName(i), index))) << key;
      }
      auto plain = reader.Decrypt(key, v);
      ASSERT_TRUE(plain.ok()) << key;
      auto s = envelope::DecodeSecret(*plain);
      ASSERT_TRUE(s.ok());
      EXPECT_EQ(s->data.at("index").UnsafeStringView(), std::to_string(index)) << key;
    }
  }
  // The CLI with --confirm finishes the job; a rerun finds nothing to do.
  ASSERT_EQ(Ctl("-o json decrypt --rewrite-identity --confirm", &out), 0) << out;
  auto j = nlohmann::json::parse(out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << out;
  EXPECT_EQ(j["done"], still_encrypted);
  ASSERT_EQ(Ctl("-o json decrypt --rewrite-identity --confirm", &out), 0) << out;
  j = nlohmann::json::parse(out, nullptr, false);
  EXPECT_EQ(j["done"], 0);
  EXPECT_EQ(j["skipped"], 300);
}

// Upstream's base64 mock KMS v2 plugin: "encrypts" by base64, key id "1".
class Base64KmsV2 final : public ::v2::KeyManagementService::Service {
  grpc::Status Status(grpc::ServerContext*, const ::v2::StatusRequest*,
                      ::v2::StatusResponse* r) override {
    r->set_version("v2");
    r->set_healthz("ok");
    r->set_key_id("1");
    return grpc::Status::OK;
  }
  grpc::Status Encrypt(grpc::ServerContext*, const ::v2::EncryptRequest* req,
                       ::v2::EncryptResponse* r) override {
    r->set_ciphertext(absl::Base64Escape(req->plaintext()));
    r->set_key_id("1");
    return grpc::Status::OK;
  }
  grpc::Status Decrypt(grpc::ServerContext*, const ::v2::DecryptRequest* req,
                       ::v2::DecryptResponse* r) override {
    std::string plain;
    if (req->key_id() != "1" || !absl::Base64Unescape(req->ciphertext(), &plain)) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "bad ciphertext");
    }
    r->set_plaintext(plain);
    return grpc::Status::OK;
  }
};

TEST(ToolsRecordedValuesTest, RecordedApiserverValuesDecryptThroughBase64Plugin) {
  if (!EtcdServer::Available()) GTEST_SKIP() << EtcdServer::SkipReason();
  const std::string dir = std::string(KSHIELD_SHARED_DIR) + "/testdata/k8s-envelope/";
  if (!fs::exists(dir + "README.md")) GTEST_SKIP() << "no recorded values in " << dir;
  TempDir tmp;
  fs::create_directories(tmp.path() + "/etcd");
  EtcdServer server(tmp.path() + "/etcd");
  ASSERT_TRUE(server.Start().ok());
  auto etcd = etcd::Client::Create(server.ClientOptions());
  ASSERT_TRUE(etcd.ok());

  Base64KmsV2 service;
  const std::string socket = tmp.path() + "/b64.sock";
  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix:" + socket, grpc::InsecureServerCredentials());
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> grpc_server = builder.BuildAndStart();
  ASSERT_NE(grpc_server, nullptr);

  const std::string prefix = "/43da1478-5e9c-4ef3-a92a-2b19d540c8a5/registry";
  struct Recorded {
    std::string file, name;
  };
  std::vector<Recorded> recorded = {
      {"aes_gcm_key_v1.27", "dek-source-aes-gcm-key"},
      {"hkdf_seed_v1.28", "dek-source-hkdf-sha256-xnonce-aes-gcm-seed"}};
  std::map<std::string, std::string> plaintexts;
  for (const auto& r : recorded) {
    auto hex = [&](const std::string& f) {
      std::string s = ReadWholeFile(dir + f);
      while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
      return absl::HexStringToBytes(s);
    };
    std::string key = prefix + "/secrets/kms-v2-legacy-data/" + r.name;
    ASSERT_TRUE((*etcd)->Put(key, hex(r.file + ".etcd-value.hex")).ok());
    plaintexts[key] = hex(r.file + ".plaintext.hex");
  }
  auto kms = tools::KmsClient::Create(socket);
  ASSERT_TRUE(kms.ok());

  tools::ScanOptions so;
  so.prefix = prefix;
  so.provider_name = "kms-provider";
  so.verify = true;
  auto scan = tools::ScanSecrets(**etcd, kms->get(), so);
  ASSERT_TRUE(scan.ok()) << scan.status();
  EXPECT_EQ(scan->verify_ok, 2);
  EXPECT_EQ(scan->verify_failed, 0);

  tools::DecryptOptions o;
  o.prefix = prefix;
  o.provider_name = "kms-provider";
  o.out_dir = tmp.path() + "/out";
  auto r = tools::DecryptSecrets(**etcd, **kms, o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->done, 2);
  EXPECT_EQ(r->failed, 0) << (r->failures.empty() ? "" : r->failures[0].reason);
  for (const auto& rec : recorded) {
    std::string key = prefix + "/secrets/kms-v2-legacy-data/" + rec.name;
    std::string content = ReadWholeFile(o.out_dir + "/kms-v2-legacy-data_" + rec.name + ".yaml");
    auto want = envelope::DecodeSecret(plaintexts[key]);
    ASSERT_TRUE(want.ok());
    EXPECT_EQ(content.substr(content.find('\n') + 1), envelope::SecretToYaml(*want));
    // data.api_key = 086a7ffc-0225-11e8-ba89-0ed5f89f718b, base64 in the manifest.
    EXPECT_NE(content.find(absl::Base64Escape("086a7ffc-0225-11e8-ba89-0ed5f89f718b")),
              std::string::npos)
        << content;
  }
  // Written back as identity: exactly the recorded plaintext.
  o.out_dir.clear();
  o.rewrite_identity = true;
  r = tools::DecryptSecrets(**etcd, **kms, o);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->done, 2);
  for (const auto& [key, plain] : plaintexts) {
    auto kv = (*etcd)->Get(key);
    ASSERT_TRUE(kv.ok() && kv->has_value());
    EXPECT_EQ((*kv)->value, plain) << key;
  }
  grpc_server->Shutdown();
}

TEST_F(ToolsTest, ApiserverSimulatorWritesAndColdReadsEveryFormat) {
  std::string out;
  int rc = RunCommand(ToolsBin("tools_bench") + " apiserver --socket " + kms_.socket() +
                          " --endpoints " + etcd_server_->endpoint() + " --count 300 --json",
                      &out);
  ASSERT_EQ(rc, 0) << out;
  std::map<std::string, nlohmann::json> rows;
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.contains("format")) rows[j["format"]] = j;
  }
  ASSERT_EQ(rows.size(), 5u) << out;
  for (const auto& [f, j] : rows) {
    EXPECT_EQ(j["secrets"], 300) << f;
    EXPECT_EQ(j["errors"], 0) << f;
    EXPECT_GT(j["writes_per_s"].get<double>(), 0) << f;
  }
  // v1: one Encrypt per write and one Decrypt per read; v2: one Encrypt for the seed / DEK and
  // one Decrypt per distinct DEK source; baselines: no plugin call.
  EXPECT_EQ(rows["kms-v1"]["plugin_calls_write"], 300);
  EXPECT_EQ(rows["kms-v1"]["plugin_calls_read"], 300);
  EXPECT_EQ(rows["kms-v2-seed"]["plugin_calls_write"], 1);
  EXPECT_EQ(rows["kms-v2-seed"]["plugin_calls_read"], 1);
  EXPECT_EQ(rows["kms-v2-aes-gcm-key"]["plugin_calls_write"], 1);
  EXPECT_EQ(rows["kms-v2-aes-gcm-key"]["plugin_calls_read"], 1);
  EXPECT_EQ(rows["identity"]["plugin_calls_write"], 0);
  EXPECT_EQ(rows["aesgcm"]["plugin_calls_read"], 0);
  // The values are where the apiserver would put them, under the bench prefix, in each format.
  auto v = etcd_->Get("/kshield-bench/registry/secrets/bench-kms-v2-seed/secret-00000");
  ASSERT_TRUE(v.ok() && v->has_value());
  auto parsed = envelope::ParseKmsV2((*v)->value);
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->dek_source_type, envelope::DekSourceType::kHkdfSha256XNonceAesGcmSeed);
  v = etcd_->Get("/kshield-bench/registry/secrets/bench-aesgcm/secret-00299");
  ASSERT_TRUE(v.ok() && v->has_value());
  EXPECT_EQ((*v)->value.rfind("k8s:enc:aesgcm:v1:key1:", 0), 0u);
}

TEST(ToolsUnitTest, ProgressLineAndFileNames) {
  EXPECT_EQ(tools::ProgressPrinter::Line("scan", 500, 1000, 2.0, false),
            "scan 500/1000 50% 250/s ETA 2s");
  EXPECT_EQ(tools::ProgressPrinter::Line("scan", 0, 10, 0, true),
            "scan [........................] 0/10 0% 0/s ETA ?");
  EXPECT_EQ(tools::DecryptFileName("/registry", "/registry/secrets/ns/name"), "ns_name.yaml");
  EXPECT_EQ(tools::DecryptFileName("/registry/", "/registry/secrets/a.b/c-d"), "a.b_c-d.yaml");
  // Odd keys are sanitised and disambiguated; never a path separator or a leading dot.
  std::string odd = tools::DecryptFileName("/registry", "/registry/secrets/../x/y");
  EXPECT_EQ(odd.find('/'), std::string::npos) << odd;
  EXPECT_NE(odd[0], '.') << odd;
  EXPECT_NE(tools::DecryptFileName("/registry", "/registry/secrets/a_b/c"),
            tools::DecryptFileName("/registry", "/registry/secrets/a/b_c"));
}

}  // namespace
}  // namespace kshield::testing

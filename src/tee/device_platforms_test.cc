// gramine / occlum / tsm and `auto` detection, with the devices stood in for by a temp directory
// (RealTeeFileSystem under a root) or by fakes that behave like the kernel / LibOS interfaces.
// The fakes produce their quotes with the sim platform, so the evidence that comes back through
// each platform is checked with the real verifier.
#include <errno.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

#include "common/testing/temp_dir.h"
#include "tee/gramine_platform.h"
#include "tee/occlum_platform.h"
#include "tee/platform.h"
#include "tee/quote/verify.h"
#include "tee/sim_platform.h"
#include "tee/tee_io.h"
#include "tee/tsm_platform.h"

namespace kshield::tee {
namespace {

namespace fs = std::filesystem;

void WriteFile(const std::string& path, const std::string& data) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << data;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::unique_ptr<SimPlatform> Sim() {
  auto s = SimPlatform::New({});
  EXPECT_TRUE(s.ok());
  return std::move(*s);
}

bool VerifiesUnder(const SimPlatform& sim, const std::string& q, const std::string& rd) {
  quote::VerifyOptions opts;
  opts.root_pem = sim.RootCaPem();
  quote::VerifiedQuote v = quote::VerifyQuote(q, opts);
  return v.ok() && v.quote->sgx.report_data ==
                       *reinterpret_cast<const std::array<uint8_t, 64>*>(rd.data());
}

// ---- auto detection ----------------------------------------------------------------------------

TEST(DetectPlatformTest, PicksByDevicePresenceInOrder) {
  testing::TempDir root;
  PlatformOptions o;
  o.root = root.path();
  unsetenv("OCCLUM");
  EXPECT_EQ(DetectPlatform(o), "none");
  fs::create_directories(root.Sub("sys/kernel/config/tsm/report"));
  EXPECT_EQ(DetectPlatform(o), "tsm");
  WriteFile(root.Sub("dev/sgx"), "");
  EXPECT_EQ(DetectPlatform(o), "tsm") << "/dev/sgx alone is not Occlum";
  setenv("OCCLUM", "yes", 1);
  EXPECT_EQ(DetectPlatform(o), "occlum");
  WriteFile(root.Sub("dev/attestation/quote"), "");
  EXPECT_EQ(DetectPlatform(o), "gramine");
  unsetenv("OCCLUM");
  auto p = MakePlatform("auto", o);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ((*p)->name(), "gramine");
}

TEST(MakePlatformTest, ExplicitPlatformWithoutDeviceNamesThePath) {
  testing::TempDir root;
  PlatformOptions o;
  o.root = root.path();
  for (auto [name, path] : {std::pair{"gramine", "/dev/attestation/quote"},
                            std::pair{"occlum", "/dev/sgx"},
                            std::pair{"tsm", "/sys/kernel/config/tsm/report"}}) {
    auto p = MakePlatform(name, o);
    ASSERT_FALSE(p.ok()) << name;
    EXPECT_EQ(p.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_NE(std::string(p.status().message()).find(path), std::string::npos) << p.status();
  }
  auto sim = MakePlatform("sim", o);
  ASSERT_TRUE(sim.ok()) << sim.status();
  EXPECT_EQ((*sim)->name(), "sim");
}

// ---- gramine -----------------------------------------------------------------------------------

TEST(GraminePlatformTest, TempDirLayoutWritesReportDataAndReadsQuote) {
  testing::TempDir root;
  auto sim = Sim();
  const std::string rd(64, 'g');
  WriteFile(root.Sub("dev/attestation/user_report_data"), std::string(64, '\0'));
  WriteFile(root.Sub("dev/attestation/quote"), *sim->Quote(rd));
  WriteFile(root.Sub("dev/attestation/keys/_sgx_mrenclave"), std::string(16, '\x42'));
  PlatformOptions o;
  o.root = root.path();
  auto p = MakePlatform("gramine", o);
  ASSERT_TRUE(p.ok()) << p.status();
  auto q = (*p)->Quote(rd);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(ReadFile(root.Sub("dev/attestation/user_report_data")), rd);
  EXPECT_TRUE(VerifiesUnder(*sim, *q, rd));
  // The file holds a quote over other report data: refused, not passed on.
  auto wrong = (*p)->Quote(std::string(64, 'h'));
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kAborted);

  auto k1 = (*p)->SealingKey();
  auto k2 = (*p)->SealingKey();
  ASSERT_TRUE(k1.ok()) << k1.status();
  EXPECT_EQ(k1->size(), kSealingKeySize);
  EXPECT_TRUE(k1->Equals(*k2));
  WriteFile(root.Sub("dev/attestation/keys/_sgx_mrenclave"), std::string(16, '\x43'));
  auto k3 = (*p)->SealingKey();
  ASSERT_TRUE(k3.ok());
  EXPECT_FALSE(k1->Equals(*k3));
  WriteFile(root.Sub("dev/attestation/keys/_sgx_mrenclave"), std::string(15, '\x43'));
  EXPECT_EQ((*p)->SealingKey().status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ((*p)->Quote("short").status().code(), absl::StatusCode::kInvalidArgument);
}

// Behaves like Gramine's pseudo-files: the quote reflects the last user_report_data written.
class FakeGramineFs final : public TeeFileSystem {
 public:
  explicit FakeGramineFs(SimPlatform* sim) : sim_(sim) {}
  bool Exists(const std::string& path) override { return path == kGramineQuotePath; }
  absl::Status WriteFile(const std::string& path, std::string_view data) override {
    if (path != kGramineReportDataPath || data.size() != 64) {
      return absl::InvalidArgumentError("EINVAL");
    }
    report_data_ = std::string(data);
    return absl::OkStatus();
  }
  absl::StatusOr<std::string> ReadFile(const std::string& path, size_t) override {
    if (path == kGramineQuotePath) return sim_->Quote(report_data_);
    return absl::NotFoundError(path);
  }
  absl::Status MakeDir(const std::string&) override { return absl::UnimplementedError("mkdir"); }
  absl::Status RemoveDir(const std::string&) override {
    return absl::UnimplementedError("rmdir");
  }

 private:
  SimPlatform* sim_;
  std::string report_data_ = std::string(64, '\0');
};

TEST(GraminePlatformTest, FakeDeviceQuotesVerifyAndMissingKeyIsAnError) {
  auto sim = Sim();
  PlatformOptions o;
  o.fs = std::make_shared<FakeGramineFs>(sim.get());
  auto p = MakePlatform("auto", o);
  ASSERT_TRUE(p.ok());
  ASSERT_EQ((*p)->name(), "gramine");
  for (char c : {'1', '2'}) {
    const std::string rd(64, c);
    auto q = (*p)->Quote(rd);
    ASSERT_TRUE(q.ok()) << q.status();
    EXPECT_TRUE(VerifiesUnder(*sim, *q, rd));
  }
  EXPECT_FALSE((*p)->SealingKey().ok());
}

// ---- occlum ------------------------------------------------------------------------------------

class FakeSgxDevice final : public SgxDevice {
 public:
  explicit FakeSgxDevice(SimPlatform* sim) : sim_(sim) {}
  int Ioctl(unsigned long request, void* arg) override {
    calls.push_back(request);
    if (fail_with != 0) return -fail_with;
    switch (request) {
      case kSgxIocGetDcapQuoteSize: {
        *static_cast<uint32_t*>(arg) = quote_size_override ? quote_size_override : 8192;
        return 0;
      }
      case kSgxIocGenDcapQuote: {
        auto* a = static_cast<SgxIocGenDcapQuoteArg*>(arg);
        auto q = sim_->Quote(
            std::string_view(reinterpret_cast<const char*>(a->report_data), 64));
        if (!q.ok() || q->size() > *a->quote_len) return -EINVAL;
        std::memcpy(a->quote_buf, q->data(), q->size());
        *a->quote_len = static_cast<uint32_t>(q->size());
        return 0;
      }
      case kSgxIocGetKey: {
        auto* a = static_cast<SgxIocGetKeyArg*>(arg);
        last_request = *a->key_request;
        // A key that depends on the request, like EGETKEY.
        for (int i = 0; i < 16; ++i) {
          a->key[i] = static_cast<uint8_t>(seed + a->key_request->key_id[i]);
        }
        return 0;
      }
      default:
        return -ENOTTY;
    }
  }
  std::vector<unsigned long> calls;
  int fail_with = 0;
  uint32_t quote_size_override = 0;
  uint8_t seed = 7;
  SgxKeyRequest last_request{};

 private:
  SimPlatform* sim_;
};

TEST(OcclumPlatformTest, QuoteAndSealingKeyThroughIoctls) {
  auto sim = Sim();
  auto dev = std::make_shared<FakeSgxDevice>(sim.get());
  PlatformOptions o;
  o.sgx_device = dev;
  auto p = MakePlatform("occlum", o);
  ASSERT_TRUE(p.ok()) << p.status();
  const std::string rd(64, 'o');
  auto q = (*p)->Quote(rd);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_TRUE(VerifiesUnder(*sim, *q, rd));
  EXPECT_EQ(dev->calls, (std::vector<unsigned long>{0x80047307, 0xc0187308}));

  auto k1 = (*p)->SealingKey();
  ASSERT_TRUE(k1.ok()) << k1.status();
  EXPECT_EQ(k1->size(), kSealingKeySize);
  EXPECT_EQ(dev->calls.back(), 0xc010730bUL);
  EXPECT_EQ(dev->last_request.key_name, 4);    // SGX_KEYSELECT_SEAL
  EXPECT_EQ(dev->last_request.key_policy, 1);  // SGX_KEYPOLICY_MRENCLAVE
  auto k2 = (*p)->SealingKey();
  ASSERT_TRUE(k2.ok());
  EXPECT_TRUE(k1->Equals(*k2));
  dev->seed = 8;  // another enclave's EGETKEY
  auto k3 = (*p)->SealingKey();
  ASSERT_TRUE(k3.ok());
  EXPECT_FALSE(k1->Equals(*k3));
}

TEST(OcclumPlatformTest, DeviceErrorsAndBadSizesAreRefused) {
  auto sim = Sim();
  auto dev = std::make_shared<FakeSgxDevice>(sim.get());
  OcclumPlatform p(dev);
  dev->quote_size_override = 100;  // too small for the quote: GEN fails
  EXPECT_FALSE(p.Quote(std::string(64, 'x')).ok());
  dev->quote_size_override = 10 * 1024 * 1024;  // absurd size
  EXPECT_EQ(p.Quote(std::string(64, 'x')).status().code(), absl::StatusCode::kInternal);
  dev->quote_size_override = 0;
  dev->fail_with = EIO;
  auto q = p.Quote(std::string(64, 'x'));
  ASSERT_FALSE(q.ok());
  EXPECT_NE(std::string(q.status().message()).find("SGXIOC_GET_DCAP_QUOTE_SIZE"),
            std::string::npos);
  auto k = p.SealingKey();
  ASSERT_FALSE(k.ok());
  EXPECT_NE(std::string(k.status().message()).find("SGXIOC_GET_KEY"), std::string::npos);
  EXPECT_EQ(p.Quote("short").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(OcclumPlatformTest, RealDeviceMissingIsUnavailable) {
  testing::TempDir root;
  RealSgxDevice dev(root.Sub("dev/sgx"));
  uint32_t size = 0;
  EXPECT_EQ(dev.Ioctl(kSgxIocGetDcapQuoteSize, &size), -ENOENT);
}

// ---- tsm ---------------------------------------------------------------------------------------

// Behaves like configfs-tsm: a report directory appears on mkdir with generation 0; writing
// inblob bumps generation and produces an outblob.
class FakeTsmFs final : public TeeFileSystem {
 public:
  bool Exists(const std::string& path) override { return path == kTsmReportDir; }
  absl::Status WriteFile(const std::string& path, std::string_view data) override {
    auto [dir, file] = Split(path);
    if (!reports.count(dir) || file != "inblob") return absl::PermissionDeniedError("EACCES");
    Report& r = reports[dir];
    r.generation += 1 + extra_writers;
    r.outblob = "TDX-QUOTE:" + std::string(data);
    return absl::OkStatus();
  }
  absl::StatusOr<std::string> ReadFile(const std::string& path, size_t) override {
    auto [dir, file] = Split(path);
    if (!reports.count(dir)) return absl::NotFoundError(path);
    Report& r = reports[dir];
    if (file == "generation") return std::to_string(r.generation) + "\n";
    if (file == "provider") return std::string("tdx_guest\n");
    if (file == "outblob") return r.outblob;
    return absl::NotFoundError(path);
  }
  absl::Status MakeDir(const std::string& path) override {
    if (reports.count(path)) return absl::AlreadyExistsError(path);
    reports[path] = {};
    made.push_back(path);
    return absl::OkStatus();
  }
  absl::Status RemoveDir(const std::string& path) override {
    reports.erase(path);
    return absl::OkStatus();
  }
  struct Report {
    uint64_t generation = 0;
    std::string outblob;
  };
  std::map<std::string, Report> reports;
  std::vector<std::string> made;
  int extra_writers = 0;

 private:
  static std::pair<std::string, std::string> Split(const std::string& path) {
    const size_t slash = path.rfind('/');
    return {path.substr(0, slash), path.substr(slash + 1)};
  }
};

TEST(TsmPlatformTest, ReportRoundTripAndCleanup) {
  auto fake = std::make_shared<FakeTsmFs>();
  PlatformOptions o;
  o.fs = fake;
  auto p = MakePlatform("auto", o);
  ASSERT_TRUE(p.ok());
  ASSERT_EQ((*p)->name(), "tsm");
  const std::string rd(64, 't');
  auto q = (*p)->Quote(rd);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(*q, "TDX-QUOTE:" + rd);
  ASSERT_EQ(fake->made.size(), 1u);
  EXPECT_EQ(fake->made[0].rfind(std::string(kTsmReportDir) + "/kshield-", 0), 0u);
  EXPECT_TRUE(fake->reports.empty()) << "report directory must be removed";
  ASSERT_TRUE((*p)->Quote(rd).ok());
  EXPECT_NE(fake->made[0], fake->made[1]);
}

TEST(TsmPlatformTest, ConcurrentWriterIsDetected) {
  auto fake = std::make_shared<FakeTsmFs>();
  fake->extra_writers = 1;
  TsmPlatform p(fake);
  auto q = p.Quote(std::string(64, 't'));
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(q.status().code(), absl::StatusCode::kAborted);
  EXPECT_NE(std::string(q.status().message()).find("generation"), std::string::npos);
  EXPECT_TRUE(fake->reports.empty());
}

TEST(TsmPlatformTest, NoSealingKeyPointsToRemoteProvider) {
  TsmPlatform p(std::make_shared<FakeTsmFs>());
  auto k = p.SealingKey();
  ASSERT_FALSE(k.ok());
  EXPECT_EQ(k.status().code(), absl::StatusCode::kFailedPrecondition);
  const std::string msg(k.status().message());
  EXPECT_NE(msg.find("pkcs11"), std::string::npos) << msg;
  EXPECT_NE(msg.find("kmip"), std::string::npos) << msg;
}

TEST(TsmPlatformTest, TempDirLayoutWorksWithRealFileSystem) {
  // A plain directory cannot emulate configfs (mkdir does not create attribute files), so this
  // checks the real file layer's error path: the report dir is created, reading fails cleanly,
  // and the directory is removed again.
  testing::TempDir root;
  fs::create_directories(root.Sub("sys/kernel/config/tsm/report"));
  PlatformOptions o;
  o.root = root.path();
  auto p = MakePlatform("tsm", o);
  ASSERT_TRUE(p.ok()) << p.status();
  auto q = (*p)->Quote(std::string(64, 't'));
  ASSERT_FALSE(q.ok());
  EXPECT_NE(std::string(q.status().message()).find("generation"), std::string::npos);
  EXPECT_TRUE(fs::is_empty(root.Sub("sys/kernel/config/tsm/report")));
}

}  // namespace
}  // namespace kshield::tee

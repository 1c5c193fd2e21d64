#include "kms_load.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "crypto/random.h"
#include "kms_v1beta1.grpc.pb.h"
#include "kms_v2.grpc.pb.h"

namespace kshield::bench {
namespace {

using Clock = std::chrono::steady_clock;

struct Shared {
  std::atomic<bool> measuring{false};
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> ok{0}, errors{0};
  std::mutex mu;
  std::condition_variable cv;
  int outstanding = 0;  // guarded by mu
  std::string first_error;
};

// One closed-loop client: issues a call, and on completion records it and issues the next.
class Client {
 public:
  Client(const KmsLoadOptions& o, std::shared_ptr<grpc::Channel> ch, Shared* s,
         const std::string& ct, const std::string& key_id, const std::string& v1_ct)
      : o_(o), s_(s), v2_(::v2::KeyManagementService::NewStub(ch)),
        v1_(::v1beta1::KeyManagementService::NewStub(ch)) {
    plaintext_ = crypto::RandomString(static_cast<size_t>(o.plaintext_size));
    v2_enc_.set_plaintext(plaintext_);
    v2_enc_.set_uid("bench");
    v2_dec_.set_ciphertext(ct);
    v2_dec_.set_key_id(key_id);
    v2_dec_.set_uid("bench");
    v1_enc_.set_version("v1beta1");
    v1_enc_.set_plain(plaintext_);
    v1_dec_.set_version("v1beta1");
    v1_dec_.set_cipher(v1_ct);
    latencies_.reserve(1 << 16);
  }

  void Start() { Issue(); }
  std::vector<float>& latencies() { return latencies_; }

 private:
  void Issue() {
    if (s_->stop.load(std::memory_order_relaxed)) {
      std::lock_guard<std::mutex> lock(s_->mu);
      if (--s_->outstanding == 0) s_->cv.notify_all();
      return;
    }
    ctx_ = std::make_unique<grpc::ClientContext>();
    ctx_->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    start_ = Clock::now();
    auto done = [this](grpc::Status st) { Done(st); };
    const std::string& op = o_.op;
    if (op == "status") {
      v2_->async()->Status(ctx_.get(), &status_req_, &status_resp_, done);
    } else if (op == "encrypt") {
      v2_->async()->Encrypt(ctx_.get(), &v2_enc_, &v2_enc_resp_, done);
    } else if (op == "decrypt") {
      v2_->async()->Decrypt(ctx_.get(), &v2_dec_, &v2_dec_resp_, done);
    } else if (op == "v1-encrypt") {
      v1_->async()->Encrypt(ctx_.get(), &v1_enc_, &v1_enc_resp_, done);
    } else {
      v1_->async()->Decrypt(ctx_.get(), &v1_dec_, &v1_dec_resp_, done);
    }
  }

  void Done(const grpc::Status& st) {
    if (s_->measuring.load(std::memory_order_relaxed)) {
      float ms = std::chrono::duration<float, std::milli>(Clock::now() - start_).count();
      if (st.ok()) {
        s_->ok.fetch_add(1, std::memory_order_relaxed);
        latencies_.push_back(ms);
      } else {
        s_->errors.fetch_add(1, std::memory_order_relaxed);
        std::lock_guard<std::mutex> lock(s_->mu);
        if (s_->first_error.empty()) s_->first_error = st.error_message();
      }
    }
    Issue();
  }

  const KmsLoadOptions& o_;
  Shared* s_;
  std::unique_ptr<::v2::KeyManagementService::Stub> v2_;
  std::unique_ptr<::v1beta1::KeyManagementService::Stub> v1_;
  std::unique_ptr<grpc::ClientContext> ctx_;
  Clock::time_point start_;
  std::string plaintext_;
  ::v2::StatusRequest status_req_;
  ::v2::StatusResponse status_resp_;
  ::v2::EncryptRequest v2_enc_;
  ::v2::EncryptResponse v2_enc_resp_;
  ::v2::DecryptRequest v2_dec_;
  ::v2::DecryptResponse v2_dec_resp_;
  ::v1beta1::EncryptRequest v1_enc_;
  ::v1beta1::EncryptResponse v1_enc_resp_;
  ::v1beta1::DecryptRequest v1_dec_;
  ::v1beta1::DecryptResponse v1_dec_resp_;
  std::vector<float> latencies_;
};

std::string Target(const std::string& socket) {
  if (!socket.empty() && socket[0] == '@') return "unix-abstract:" + socket.substr(1);
  return "unix:" + socket;
}

}  // namespace

bool RunKmsLoad(const KmsLoadOptions& o, KmsLoadResult* r) {
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int i = 0; i < std::max(1, o.channels); ++i) {
    grpc::ChannelArguments args;
    // Separate connections, not one shared subchannel.
    args.SetInt("kshield.bench.channel", i);
    channels.push_back(
        grpc::CreateCustomChannel(Target(o.socket), grpc::InsecureChannelCredentials(), args));
  }
  // Prepare a ciphertext for the decrypt ops (and prove the plugin answers).
  auto v2 = ::v2::KeyManagementService::NewStub(channels[0]);
  std::string seed = crypto::RandomString(static_cast<size_t>(o.plaintext_size));
  ::v2::EncryptRequest ereq;
  ereq.set_plaintext(seed);
  ::v2::EncryptResponse eresp;
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    grpc::Status st = v2->Encrypt(&ctx, ereq, &eresp);
    if (!st.ok() && o.op != "status") {
      r->first_error = "plugin unreachable or refusing Encrypt: " + st.error_message();
      return false;
    }
  }
  std::string v1_ct;
  if (o.op == "v1-decrypt") {
    auto v1 = ::v1beta1::KeyManagementService::NewStub(channels[0]);
    ::v1beta1::EncryptRequest req;
    req.set_version("v1beta1");
    req.set_plain(seed);
    ::v1beta1::EncryptResponse resp;
    grpc::ClientContext ctx;
    grpc::Status st = v1->Encrypt(&ctx, req, &resp);
    if (!st.ok()) {
      r->first_error = "v1 Encrypt failed: " + st.error_message();
      return false;
    }
    v1_ct = resp.cipher();
  }

  Shared shared;
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < o.clients; ++i) {
    clients.push_back(std::make_unique<Client>(o, channels[i % channels.size()], &shared,
                                               eresp.ciphertext(), eresp.key_id(), v1_ct));
  }
  shared.outstanding = o.clients;
  for (auto& c : clients) c->Start();
  std::this_thread::sleep_for(std::chrono::duration<double>(o.warmup_s));
  shared.measuring = true;
  auto t0 = Clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(o.duration_s));
  shared.measuring = false;
  auto t1 = Clock::now();
  shared.stop = true;
  {
    std::unique_lock<std::mutex> lock(shared.mu);
    shared.cv.wait_for(lock, std::chrono::seconds(10), [&] { return shared.outstanding == 0; });
  }
  std::vector<float> all;
  for (auto& c : clients) all.insert(all.end(), c->latencies().begin(), c->latencies().end());
  std::sort(all.begin(), all.end());
  auto pct = [&](double p) -> double {
    if (all.empty()) return 0;
    size_t i = static_cast<size_t>(p * static_cast<double>(all.size() - 1));
    return all[i];
  };
  r->ok = shared.ok;
  r->errors = shared.errors;
  r->seconds = std::chrono::duration<double>(t1 - t0).count();
  r->ops_per_s = static_cast<double>(r->ok) / r->seconds;
  r->p50_ms = pct(0.50);
  r->p90_ms = pct(0.90);
  r->p99_ms = pct(0.99);
  r->max_ms = all.empty() ? 0 : all.back();
  r->first_error = shared.first_error;
  return true;
}

}  // namespace kshield::bench

#include "kms/server.h"

#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <thread>

#include "absl/strings/str_cat.h"
#include "admin/http_server.h"
#include "common/file_util.h"
#include "common/log.h"
#include "common/status.h"
#include "keys/keyset_manager.h"
#include "kms/provider_factory.h"
#include "kms/health.h"
#include "kms/kms_metrics.h"
#include "kms/services.h"
#include "kms/unix_listener.h"
#include "tee/platform.h"

namespace kshield::kms {
namespace {

// KMS requests are small: a 4 KiB DEK, a 1 KiB ciphertext, 32 KiB of annotations.
constexpr int kMaxMessageBytes = 256 * 1024;

std::string AbsolutePath(const std::string& p) {
  if (p.empty() || p[0] == '/' || p[0] == '@') return p;
  char buf[4096];
  if (getcwd(buf, sizeof(buf)) == nullptr) return p;
  return absl::StrCat(buf, "/", p);
}

class KmsServerImpl final : public KmsServer {
 public:
  ~KmsServerImpl() override { Shutdown(); }

  absl::Status Init(const KmsConfig& config, metrics::Registry& registry) {
    config_ = config;
    KSH_RETURN_IF_ERROR(MakeDirs(config.data_dir, 0700));
    KSH_ASSIGN_OR_RETURN(platform_, tee::MakePlatform(config.tee, {config.data_dir}));
    KSH_ASSIGN_OR_RETURN(ProviderBundle bundle, MakeProvider(config, *platform_, registry));
    auto store = std::make_unique<keys::FileKeysetStore>(config.data_dir + "/keyset.bin");
    if (bundle.seed_record.has_value()) {
      KSH_ASSIGN_OR_RETURN(auto existing, store->Load());
      if (!existing.has_value()) KSH_RETURN_IF_ERROR(store->Save(*bundle.seed_record));
    }
    manager_ = std::make_unique<keys::KeysetManager>(std::move(store), bundle.provider);
    KSH_RETURN_IF_ERROR(manager_->Init());

    metrics_ = std::make_unique<KmsMetrics>(registry);
    metrics_->build_info
        .WithLabels({kKshieldVersion, std::string(platform_->name()), config.provider})
        .Set(1);
    registry.GaugeCallback("kshield_secure_memory_bytes",
                           "Bytes of key material held in locked, non-dumpable memory.", {},
                           [] {
                             return metrics::GaugeSamples{
                                 {{}, static_cast<double>(GetSecureMemoryStats().bytes_in_use)}};
                           });

    // Allow-list: default = this process's uid and root.
    if (config.allow_uid.empty()) {
      std::vector<uid_t> uids = {geteuid()};
      if (geteuid() != 0) uids.push_back(0);
      ctx_.allow = UidAllowList(std::move(uids));
    } else {
      KSH_ASSIGN_OR_RETURN(ctx_.allow, UidAllowList::Parse(config.allow_uid));
    }

    // Sockets.
    UnixSocketOptions kms_opts;
    kms_opts.path = config.socket;
    kms_opts.mode = config.socket_mode;
    kms_opts.max_connections = config.max_connections;
    if (!config.socket_owner.empty()) {
      KSH_ASSIGN_OR_RETURN(uid_t u, ResolveUser(config.socket_owner));
      kms_opts.owner = u;
    }
    if (!config.socket_group.empty()) {
      KSH_ASSIGN_OR_RETURN(gid_t g, ResolveGroup(config.socket_group));
      kms_opts.group = g;
    }
    UnixSocketOptions admin_opts;
    admin_opts.path = config.admin_socket;
    admin_opts.mode = 0600;
    admin_opts.max_connections = 64;
    KSH_ASSIGN_OR_RETURN(kms_listener_, UnixListener::Bind(kms_opts));
    KSH_ASSIGN_OR_RETURN(admin_listener_, UnixListener::Bind(admin_opts));

    // Health: the self-check dials our own KMS socket.
    self_channel_ = grpc::CreateChannel(kms_listener_->grpc_target(),
                                        grpc::InsecureChannelCredentials());
    self_stub_ = ::v2::KeyManagementService::NewStub(self_channel_);
    health_ = std::make_unique<HealthMonitor>(manager_.get(), metrics_.get(),
                                              config.probe_interval, [this] { return SelfCheck(); });
    health_->ProbeNow();

    ctx_.manager = manager_.get();
    ctx_.before_refresh = bundle.before_refresh;
    ctx_.health = health_.get();
    ctx_.metrics = metrics_.get();
    ctx_.tee_platform = std::string(platform_->name());
    ctx_.version = kKshieldVersion;

    v2_ = std::make_unique<KmsV2Service>(&ctx_, kms_listener_.get());
    v1_ = std::make_unique<KmsV1beta1Service>(&ctx_, kms_listener_.get());
    admin_ = std::make_unique<AdminService>(&ctx_, admin_listener_.get());

    kms_server_ = BuildServer({v2_.get(), v1_.get()});
    admin_server_ = BuildServer({admin_.get()});
    if (kms_server_ == nullptr || admin_server_ == nullptr) {
      return absl::InternalError("gRPC server failed to start");
    }
    kms_listener_->Start(kms_server_.get());
    admin_listener_->Start(admin_server_.get());
    health_->Start();

    if (!config.http.empty() && config.http != "off") {
      std::map<std::string, admin::HttpHandler> routes;
      routes["/healthz"] = [this](const std::string&) { return Healthz(); };
      routes["/readyz"] = [this](const std::string&) { return Readyz(); };
      routes["/metrics"] = [&registry](const std::string&) {
        admin::HttpResponse r;
        r.content_type = "text/plain; version=0.0.4; charset=utf-8";
        r.body = registry.Render();
        return r;
      };
      auto http = admin::HttpServer::Start(config.http, std::move(routes));
      if (!http.ok()) return Annotate(http.status(), "starting the HTTP endpoint");
      http_ = std::move(*http);
    }

    log::Info("kms.started",
              {{"version", kKshieldVersion},
               {"socket", AbsolutePath(config.socket)},
               {"admin_socket", AbsolutePath(config.admin_socket)},
               {"http", http_ ? http_->address() : std::string("off")},
               {"provider", config.provider},
               {"tee_platform", std::string(platform_->name())},
               {"keyset_id", manager_->Current()->keyset_id()},
               {"key_id", manager_->Current()->primary().key_id},
               {"allow_uid", ctx_.allow.ToString()},
               {"mlock_ok", GetSecureMemoryStats().mlock_ok},
               {"healthy", health_->Get().healthy}});
    return absl::OkStatus();
  }

  void Shutdown() override {
    if (shut_down_) return;
    shut_down_ = true;
    log::Info("kms.stopping",
              {{"grace_ms", static_cast<int64_t>(config_.shutdown_grace.count())}});
    // 1. Stop accepting new connections and remove the socket files.
    if (kms_listener_) kms_listener_->Stop();
    if (admin_listener_) admin_listener_->Stop();
    // 2. Drain: refuse new calls on existing connections (UNAVAILABLE, the apiserver retries
    //    elsewhere or later) and let the calls already in a handler finish, up to the grace.
    ctx_.draining.store(true, std::memory_order_release);
    auto deadline = std::chrono::steady_clock::now() + config_.shutdown_grace;
    while (ctx_.in_flight.load(std::memory_order_acquire) > 0 &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    // 3. Close the connections; anything still running past the grace is cancelled.
    auto now = std::chrono::system_clock::now();
    if (kms_server_) kms_server_->Shutdown(now + std::chrono::milliseconds(500));
    if (admin_server_) admin_server_->Shutdown(now + std::chrono::milliseconds(500));
    if (health_) health_->Stop();
    if (http_) http_->Stop();
    self_stub_.reset();
    self_channel_.reset();
    log::Info("kms.stopped", {});
  }

  std::string http_address() const override { return http_ ? http_->address() : ""; }
  std::string primary_key_id() const override { return manager_->Current()->primary().key_id; }
  std::string tee_platform() const override { return std::string(platform_->name()); }

 private:
  static std::unique_ptr<grpc::Server> BuildServer(std::initializer_list<grpc::Service*> services) {
    grpc::ServerBuilder builder;
    builder.SetMaxReceiveMessageSize(kMaxMessageBytes);
    builder.SetMaxSendMessageSize(kMaxMessageBytes);
    for (grpc::Service* s : services) builder.RegisterService(s);
    return builder.BuildAndStart();
  }

  bool SelfCheck() {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
    ::v2::StatusRequest req;
    ::v2::StatusResponse resp;
    grpc::Status s = self_stub_->Status(&ctx, req, &resp);
    // Any answer from the service (even PERMISSION_DENIED, UNAVAILABLE-with-reason from an
    // unhealthy provider) proves the serving loop works; transport failures do not.
    return s.ok() || s.error_code() == grpc::StatusCode::PERMISSION_DENIED ||
           (s.error_code() == grpc::StatusCode::UNAVAILABLE &&
            s.error_message().rfind("kshield-kms unhealthy", 0) == 0);
  }

  admin::HttpResponse Healthz() {
    HealthState h = health_->Get();
    auto age = std::chrono::steady_clock::now() - h.heartbeat;
    admin::HttpResponse r;
    if (age > 3 * health_->interval() + std::chrono::seconds(2)) {
      r.status = 503;
      r.body = "health monitor stalled\n";
    } else if (!h.loop_responsive) {
      r.status = 503;
      r.body = "serving loop did not answer the self-check\n";
    } else {
      r.body = "ok\n";
    }
    return r;
  }

  admin::HttpResponse Readyz() {
    HealthState h = health_->Get();
    admin::HttpResponse r;
    if (h.healthy) {
      r.body = absl::StrCat("ok\nkey_id ", manager_->Current()->primary().key_id, "\n");
    } else {
      r.status = 503;
      r.body = absl::StrCat("not ready: ", h.reason, "\n");
    }
    return r;
  }

  KmsConfig config_;
  bool shut_down_ = false;
  std::unique_ptr<tee::Platform> platform_;
  std::unique_ptr<keys::KeysetManager> manager_;
  std::unique_ptr<KmsMetrics> metrics_;
  std::unique_ptr<HealthMonitor> health_;
  ServiceContext ctx_;
  std::unique_ptr<UnixListener> kms_listener_;
  std::unique_ptr<UnixListener> admin_listener_;
  std::unique_ptr<KmsV2Service> v2_;
  std::unique_ptr<KmsV1beta1Service> v1_;
  std::unique_ptr<AdminService> admin_;
  std::unique_ptr<grpc::Server> kms_server_;
  std::unique_ptr<grpc::Server> admin_server_;
  std::shared_ptr<grpc::Channel> self_channel_;
  std::unique_ptr<::v2::KeyManagementService::Stub> self_stub_;
  std::unique_ptr<admin::HttpServer> http_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<KmsServer>> KmsServer::Start(const KmsConfig& config,
                                                            metrics::Registry& registry) {
  KSH_RETURN_IF_ERROR(ValidateConfig(config));
  auto server = std::make_unique<KmsServerImpl>();
  absl::Status s = server->Init(config, registry);
  if (!s.ok()) {
    server->Shutdown();
    return s;
  }
  return std::unique_ptr<KmsServer>(std::move(server));
}

std::string EncryptionConfigSnippet(const std::string& socket) {
  std::string endpoint = socket[0] == '@' ? absl::StrCat("unix:///", socket)
                                          : absl::StrCat("unix://", AbsolutePath(socket));
  return absl::StrCat(
      "apiVersion: apiserver.config.k8s.io/v1\n"
      "kind: EncryptionConfiguration\n"
      "resources:\n"
      "  - resources:\n"
      "      - secrets\n"
      "    providers:\n"
      "      - kms:\n"
      "          apiVersion: v2\n"
      "          name: kshield\n"
      "          endpoint: ",
      endpoint,
      "\n"
      "          timeout: 3s\n"
      "      - identity: {}\n");
}

}  // namespace kshield::kms

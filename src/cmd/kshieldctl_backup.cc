#include "cmd/kshieldctl_backup.h"

#include <grpcpp/grpcpp.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "absl/strings/str_cat.h"
#include "admin.grpc.pb.h"
#include "cmd/output.h"
#include "common/file_util.h"
#include "common/status.h"
#include "crypto/recipient.h"
#include "keys/backup.h"
#include "kms/config.h"
#include "kms/provider_factory.h"
#include "metrics/registry.h"
#include "tee/platform.h"
#include "tee/sim_platform.h"
#include "tools/keyset_restore.h"

namespace kshield::cmd {
namespace {

int Usage(const std::string& what, const std::string& message) {
  std::fprintf(stderr, "kshieldctl: %s: %s\n", what.c_str(), message.c_str());
  return kExitUsage;
}

// ---- backup -----------------------------------------------------------------------------------

struct BackupFlags {
  std::string recipient;
  std::string out;
  bool force = false;
  std::string inspect_file;
};

int RunBackup(const CtlGlobals& g, const BackupFlags& f) {
  if (f.recipient.empty() || f.out.empty()) {
    return Usage("backup", "--recipient PUB.pem and --out FILE are required");
  }
  absl::StatusOr<std::string> pem = ReadFileBounded(f.recipient, crypto::kMaxRecipientPemSize);
  if (!pem.ok()) return Fail("backup: reading --recipient", pem.status());
  absl::StatusOr<std::string> kind = crypto::RecipientKind(*pem);
  if (!kind.ok()) return Fail("backup: --recipient " + f.recipient, kind.status());
  absl::StatusOr<std::string> fingerprint = crypto::RecipientFingerprint(*pem);
  if (!fingerprint.ok()) return Fail("backup: --recipient " + f.recipient, fingerprint.status());
  if (FileExists(f.out) && !f.force) {
    std::fprintf(stderr, "kshieldctl: backup: %s exists; refusing to overwrite it (--force)\n",
                 f.out.c_str());
    return kExitFailed;
  }

  auto admin = kshield::admin::v1::Admin::NewStub(
      grpc::CreateChannel(UnixTarget(*g.admin_socket), grpc::InsecureChannelCredentials()));
  kshield::admin::v1::BackupRequest req;
  req.set_recipient_public_key_pem(*pem);
  kshield::admin::v1::BackupResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() +
                   std::chrono::milliseconds(static_cast<int64_t>(*g.timeout_s * 1000)));
  grpc::Status s = admin->Backup(&ctx, req, &resp);
  if (!s.ok()) {
    return Fail("backup", absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                                       absl::StrCat("admin Backup on ", *g.admin_socket, ": ",
                                                    s.error_message())));
  }
  // The file must be sealed to the key we sent, and say what the plugin says it holds.
  absl::StatusOr<keys::BackupHeader> h = keys::InspectBackup(resp.backup());
  if (!h.ok()) return Fail("backup: the plugin's backup does not parse", h.status());
  if (h->recipient_fingerprint != *fingerprint ||
      resp.recipient_fingerprint() != *fingerprint || h->keyset_id != resp.keyset_id() ||
      h->kek_count != resp.kek_count()) {
    return Fail("backup", absl::InternalError(
                              "the plugin's backup does not match the request (recipient "
                              "fingerprint, keyset or KEK count); nothing written"));
  }
  absl::Status w = WriteFileAtomic(f.out, resp.backup(), 0600);
  if (!w.ok()) return Fail("backup: writing " + f.out, w);

  nlohmann::json j = {{"file", f.out},
                      {"bytes", resp.backup().size()},
                      {"keyset_id", resp.keyset_id()},
                      {"primary_key_id", resp.primary_key_id()},
                      {"kek_count", resp.kek_count()},
                      {"recipient_kind", *kind},
                      {"recipient_fingerprint", *fingerprint},
                      {"created", Rfc3339(resp.created_unix())}};
  Print(*g.format, j, [&] {
    std::printf("backup written: %s (%zu bytes, mode 0600)\n", f.out.c_str(),
                resp.backup().size());
    std::printf("Keyset:      %s (%u KEK versions, primary %s)\n", resp.keyset_id().c_str(),
                resp.kek_count(), resp.primary_key_id().c_str());
    std::printf("Recipient:   %s, SHA-256 %s\n", kind->c_str(), fingerprint->c_str());
    std::printf("Created:     %s\n", Rfc3339(resp.created_unix()).c_str());
  });
  return kExitOk;
}

int RunInspect(const CtlGlobals& g, const std::string& file) {
  absl::StatusOr<std::string> bytes = ReadFileBounded(file, keys::kMaxBackupFileSize);
  if (!bytes.ok()) return Fail("backup inspect", bytes.status());
  absl::StatusOr<keys::BackupHeader> h = keys::InspectBackup(*bytes);
  if (!h.ok()) return Fail("backup inspect: " + file, h.status());
  struct stat st;
  char mode[8] = "?";
  if (stat(file.c_str(), &st) == 0) {
    std::snprintf(mode, sizeof(mode), "%04o", static_cast<unsigned>(st.st_mode & 07777));
  }
  nlohmann::json j = {{"file", file},
                      {"bytes", bytes->size()},
                      {"mode", mode},
                      {"format", h->format},
                      {"keyset_id", h->keyset_id},
                      {"created", Rfc3339(h->created_unix)},
                      {"created_unix", h->created_unix},
                      {"recipient_kind", h->recipient_kind},
                      {"recipient_fingerprint", h->recipient_fingerprint},
                      {"kek_count", h->kek_count},
                      {"authenticated", false}};
  Print(*g.format, j, [&] {
    std::printf("File:        %s (%zu bytes, mode %s)\n", file.c_str(), bytes->size(), mode);
    std::printf("Format:      %u\nKeyset:      %s\nKEK count:   %u\nCreated:     %s\n",
                h->format, h->keyset_id.c_str(), h->kek_count, Rfc3339(h->created_unix).c_str());
    std::printf("Recipient:   %s, SHA-256 %s\n", h->recipient_kind.c_str(),
                h->recipient_fingerprint.c_str());
    std::printf("(header only, not authenticated until the backup is opened with its identity)\n");
  });
  if (std::string(mode) != "0600" && std::string(mode) != "0400") {
    std::fprintf(stderr, "kshieldctl: backup inspect: warning: %s has mode %s; keep backups 0600\n",
                 file.c_str(), mode);
  }
  return kExitOk;
}

// ---- restore ----------------------------------------------------------------------------------

struct RestoreFlags {
  std::string identity;
  std::string in;
  std::string config;
  std::string data_dir;
  std::string provider;
  std::string tee;
  std::string kms_binary;
  bool force = false;
};

// The kshield-kms next to this kshieldctl (the sim platform's MRENCLAVE is its hash).
std::string SiblingKmsBinary() {
  char buf[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return "";
  std::string self(buf, static_cast<size_t>(n));
  size_t slash = self.rfind('/');
  return slash == std::string::npos ? "" : self.substr(0, slash) + "/kshield-kms";
}

// True if kshield-kms answers on its admin socket.
bool PluginRunning(const std::string& admin_socket) {
  auto admin = kshield::admin::v1::Admin::NewStub(
      grpc::CreateChannel(UnixTarget(admin_socket), grpc::InsecureChannelCredentials()));
  kshield::admin::v1::KeysetInfoResponse info;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(1500));
  return admin->KeysetInfo(&ctx, {}, &info).ok();
}

int RunRestore(const CtlGlobals& g, const RestoreFlags& f) {
  if (f.identity.empty() || f.in.empty()) {
    return Usage("restore", "--identity PRIV.pem and --in FILE are required");
  }
  kms::KmsConfig config;
  if (!f.config.empty()) {
    absl::Status s = kms::LoadConfigFile(f.config, &config);
    if (!s.ok()) return Fail("restore: --config " + f.config, s);
  }
  if (!f.data_dir.empty()) config.data_dir = f.data_dir;
  if (!f.provider.empty()) config.provider = f.provider;
  if (!f.tee.empty()) config.tee = f.tee;
  if (absl::Status s = kms::ValidateConfig(config); !s.ok()) return Fail("restore: config", s);

  // 1. The backup opens with this identity (before anything touches the data directory).
  absl::StatusOr<keys::BackupContents> contents = tools::OpenBackupFile(f.in, f.identity);
  if (!contents.ok()) return Fail("restore", contents.status());

  // 2. Offline only: a running plugin would keep serving (and could rotate over) the old keyset.
  //    Checked on the config's admin socket and on --admin-socket.
  for (const std::string* socket :
       std::initializer_list<const std::string*>{&config.admin_socket, g.admin_socket}) {
    if (socket == nullptr || socket->empty() || !PluginRunning(*socket)) continue;
    std::fprintf(stderr,
                 "kshieldctl: restore: kshield-kms is running (it answers on %s); stop it, "
                 "then restore, then start it again\n",
                 socket->c_str());
    return kExitFailed;
  }

  // 3. The provider exactly as kshield-kms builds it from this config.
  if (absl::Status s = MakeDirs(config.data_dir, 0700); !s.ok()) return Fail("restore", s);
  tee::PlatformOptions popts(config.data_dir);
  std::string platform_name = config.tee == "auto" ? tee::DetectPlatform(popts) : config.tee;
  if (config.provider == "local" && (platform_name == "gramine" || platform_name == "occlum")) {
    std::fprintf(stderr,
                 "kshieldctl: restore: the local provider on %s seals KEKs to the kshield-kms "
                 "enclave's identity, which kshieldctl outside that enclave cannot obtain; "
                 "restore into a pkcs11 or kmip provider instead (--config with that provider), "
                 "or run the restore inside the kshield-kms enclave\n",
                 platform_name.c_str());
    return kExitFailed;
  }
  if (platform_name == "sim") {
    // The simulated sealing key is bound to MRENCLAVE = SHA-256 of the kshield-kms executable.
    std::string binary = f.kms_binary.empty() ? SiblingKmsBinary() : f.kms_binary;
    absl::StatusOr<std::string> mrenclave = tee::Sha256File(binary);
    if (!mrenclave.ok()) {
      return Fail("restore: the sim platform needs the kshield-kms binary (--kms-binary)",
                  mrenclave.status());
    }
    popts.sim_mrenclave = *mrenclave;
  }
  absl::StatusOr<std::unique_ptr<tee::Platform>> platform =
      tee::MakePlatform(config.tee, popts);
  if (!platform.ok()) return Fail("restore: TEE platform", platform.status());
  metrics::Registry registry;
  absl::StatusOr<kms::ProviderBundle> bundle = kms::MakeProvider(config, **platform, registry);
  if (!bundle.ok()) return Fail("restore: provider " + config.provider, bundle.status());

  // 4. Write the keyset.
  tools::RestoreOptions ro;
  ro.keyset_path = config.data_dir + "/keyset.bin";
  ro.force = f.force;
  absl::StatusOr<tools::RestoreReport> r = tools::RestoreKeyset(*contents, *bundle->provider, ro);
  if (!r.ok()) return Fail("restore", r.status());

  nlohmann::json j = {{"keyset_path", r->keyset_path},
                      {"keyset_id", r->keyset_id},
                      {"primary_key_id", r->primary_key_id},
                      {"versions", r->versions},
                      {"provider", r->provider},
                      {"backup_provider", r->backup_provider},
                      {"tee_platform", std::string((*platform)->name())},
                      {"replaced_path", r->replaced_path},
                      {"replaced_keyset_id", r->replaced_keyset_id}};
  Print(*g.format, j, [&] {
    std::printf("restored keyset %s (%d versions, primary %s) into %s\n", r->keyset_id.c_str(),
                r->versions, r->primary_key_id.c_str(), r->keyset_path.c_str());
    std::printf("provider %s on platform %s (backup taken from provider %s)\n",
                r->provider.c_str(), std::string((*platform)->name()).c_str(),
                r->backup_provider.c_str());
    if (!r->replaced_path.empty()) {
      std::printf("the previous keyset%s%s is kept as %s\n",
                  r->replaced_keyset_id.empty() ? "" : " ", r->replaced_keyset_id.c_str(),
                  r->replaced_path.c_str());
    }
    std::printf("next: start kshield-kms with this data directory (or `kshieldctl refresh` if it "
                "already runs with keyset %s)\n",
                r->keyset_id.c_str());
  });
  return kExitOk;
}

}  // namespace

void AddBackupCommands(CLI::App& app, const CtlGlobals& globals, int* exit_code) {
  *exit_code = -1;
  auto bf = std::make_shared<BackupFlags>();
  auto* backup = app.add_subcommand(
      "backup",
      "write the keyset's KEK versions, sealed by the plugin to an offline recipient public key "
      "(X25519 or RSA-3072+; make it with openssl genpkey, keep the private key offline), to "
      "--out FILE (mode 0600, written atomically). The plugin never needs the private key.");
  backup->add_option("--recipient", bf->recipient, "recipient public key, PEM (SPKI)");
  backup->add_option("--out", bf->out, "backup file to write");
  backup->add_flag("--force", bf->force, "overwrite --out if it exists");
  auto* inspect = backup->add_subcommand(
      "inspect", "show a backup file's header (keyset, KEK count, recipient); no key needed");
  inspect->add_option("FILE", bf->inspect_file, "backup file")->required();
  inspect->callback([=] { *exit_code = RunInspect(globals, bf->inspect_file); });
  backup->callback([=] {
    if (inspect->parsed()) return;
    *exit_code = RunBackup(globals, *bf);
  });

  auto rf = std::make_shared<RestoreFlags>();
  auto* restore = app.add_subcommand(
      "restore",
      "offline (kshield-kms stopped): open a backup with the recipient's private key and write "
      "its keyset (same keyset id, versions, states) into kshield-kms' data directory under the "
      "provider of its config, re-wrapped by that provider. Refuses to replace an existing "
      "keyset unless --force (the old file is kept as keyset.bin.replaced-<unix time>). Start "
      "kshield-kms afterwards.");
  restore->add_option("--identity", rf->identity,
                      "recipient private key, PEM, mode 0600 (the backup's identity)");
  restore->add_option("--in", rf->in, "backup file");
  restore->add_option("--config", rf->config,
                      "kshield-kms' config file (provider, data_dir, tee; as kshield-kms --config)");
  restore->add_option("--data-dir", rf->data_dir, "overrides the config's data_dir");
  restore->add_option("--provider", rf->provider, "overrides the config's provider");
  restore->add_option("--tee", rf->tee, "overrides the config's tee platform");
  restore->add_option("--kms-binary", rf->kms_binary,
                      "tee sim only: the kshield-kms executable whose identity seals the keys "
                      "[kshield-kms beside kshieldctl]");
  restore->add_flag("--force", rf->force,
                    "replace an existing keyset (kept as keyset.bin.replaced-<unix time>)");
  restore->callback([=] { *exit_code = RunRestore(globals, *rf); });
}

}  // namespace kshield::cmd

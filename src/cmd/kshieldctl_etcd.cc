#include "cmd/kshieldctl_etcd.h"

#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include "cmd/output.h"

#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "admin.grpc.pb.h"
#include "common/status.h"
#include "etcd/client.h"
#include "tools/etcd_tools.h"
#include "tools/keyset_restore.h"
#include "tools/kms_client.h"
#include "tools/offline_decrypter.h"
#include "tools/progress.h"

namespace kshield::cmd {
namespace {

struct EtcdFlags {
  std::string endpoints = "127.0.0.1:2379";
  std::string cacert, cert, key;
  std::string prefix = "/registry";
  std::string provider_name = "kshield";
  int64_t page_size = 500;
  int concurrency = 4;
  double etcd_timeout_s = 10;
  // per command
  bool verify = false;
  bool to_primary = false;
  bool apply = false;
  bool dry_run = false;
  bool rewrite_identity = false;
  bool confirm = false;
  std::string out_dir;
  // offline: KEKs from a backup file instead of the plugin
  std::string backup_file;
  std::string identity_file;
};

// Every nlohmann::json dump may throw on invalid UTF-8 in a key; etcd keys of Secrets are
// ASCII, but a hostile etcd could hold anything. Replace instead of throwing.
nlohmann::json ProblemsJson(const std::vector<tools::KeyProblem>& list) {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& p : list) a.push_back({{"key", p.key}, {"reason", p.reason}});
  return a;
}

nlohmann::json CallsJson(const tools::KmsClient::Counters& c) {
  return {{"status", c.status},         {"v2_encrypt", c.v2_encrypt},
          {"v2_decrypt", c.v2_decrypt}, {"v1_encrypt", c.v1_encrypt},
          {"v1_decrypt", c.v1_decrypt}, {"total", c.total()}};
}

void PrintProblems(const char* title, int64_t count, const std::vector<tools::KeyProblem>& list) {
  if (count == 0) return;
  std::printf("%s: %lld\n", title, static_cast<long long>(count));
  for (const auto& p : list) std::printf("  %s: %s\n", p.key.c_str(), p.reason.c_str());
  if (static_cast<int64_t>(list.size()) < count) {
    std::printf("  ... (%lld more)\n", static_cast<long long>(count - list.size()));
  }
}


std::string SecretsPrefix(std::string prefix) {
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  return prefix + "/secrets/";
}

class Runner {
 public:
  Runner(const CtlGlobals& g, const EtcdFlags& f) : g_(g), f_(f) {}

  // need_kms: a decrypter is needed — the plugin socket, or the backup file when --backup.
  absl::Status Connect(bool need_kms) {
    etcd::ClientOptions o;
    o.endpoints.clear();
    for (absl::string_view e : absl::StrSplit(f_.endpoints, ',', absl::SkipWhitespace())) {
      o.endpoints.emplace_back(e);
    }
    if (o.endpoints.empty()) return absl::InvalidArgumentError("--endpoints is empty");
    o.ca_file = f_.cacert;
    o.cert_file = f_.cert;
    o.key_file = f_.key;
    o.timeout = std::chrono::milliseconds(static_cast<int64_t>(f_.etcd_timeout_s * 1000));
    KSH_ASSIGN_OR_RETURN(etcd_, etcd::Client::Create(o));
    if (need_kms && offline()) {
      KSH_ASSIGN_OR_RETURN(keys::BackupContents contents,
                           tools::OpenBackupFile(f_.backup_file, f_.identity_file));
      KSH_ASSIGN_OR_RETURN(offline_, tools::OfflineDecrypterFromBackup(std::move(contents)));
    } else if (need_kms) {
      KSH_ASSIGN_OR_RETURN(
          kms_, tools::KmsClient::Create(*g_.socket, std::chrono::milliseconds(static_cast<int64_t>(
                                                         *g_.timeout_s * 1000))));
    }
    return absl::OkStatus();
  }

  bool offline() const { return !f_.backup_file.empty(); }
  // The plugin, or the backup's KEKs (--backup); null before Connect(true).
  tools::DekDecrypter* decrypter() {
    return offline_ != nullptr ? static_cast<tools::DekDecrypter*>(offline_.get()) : kms_.get();
  }

  template <typename O>
  void Fill(O* o) const {
    o->prefix = f_.prefix;
    o->provider_name = f_.provider_name;
    o->page_size = f_.page_size;
    o->concurrency = f_.concurrency;
  }

  std::unique_ptr<tools::ProgressPrinter> Progress(const char* label) const {
    return std::make_unique<tools::ProgressPrinter>(label, stderr, isatty(STDERR_FILENO) == 1);
  }

  const std::string& format() const { return *g_.format; }
  etcd::Client& etcd() { return *etcd_; }
  tools::KmsClient* kms() { return kms_.get(); }

 private:
  const CtlGlobals& g_;
  const EtcdFlags& f_;
  std::unique_ptr<etcd::Client> etcd_;
  std::unique_ptr<tools::KmsClient> kms_;
  std::unique_ptr<tools::OfflineDecrypter> offline_;
};

int RunScan(Runner& r, bool verify) {
  if (absl::Status s = r.Connect(verify); !s.ok()) return Fail("connect", s);
  tools::ScanOptions o;
  r.Fill(&o);
  o.verify = verify;
  auto progress = r.Progress("scan");
  absl::StatusOr<tools::ScanReport> rep = tools::ScanSecrets(r.etcd(), r.decrypter(), o,
                                                             progress->Callback());
  if (rep.ok()) progress->Finish();
  if (!rep.ok()) return Fail("etcd scan", rep.status());
  nlohmann::json groups = nlohmann::json::array();
  for (const auto& g : rep->groups) {
    groups.push_back({{"kind", g.kind},
                      {"provider", g.provider},
                      {"key_id", g.key_id},
                      {"dek_source_type", g.dek_source_type},
                      {"count", g.count}});
  }
  nlohmann::json versions = nlohmann::json::object();
  for (const auto& [v, n] : rep->key_versions) versions[v] = n;
  nlohmann::json j = {{"prefix", SecretsPrefix(o.prefix)},
                      {"revision", rep->revision},
                      {"total", rep->total},
                      {"groups", groups},
                      {"key_versions", versions},
                      {"unencrypted_count", rep->unencrypted_count},
                      {"unencrypted", rep->unencrypted},
                      {"unparseable_count", rep->unparseable_count},
                      {"unparseable", ProblemsJson(rep->unparseable)}};
  if (verify) {
    j["verify"] = {{"ok", rep->verify_ok},
                   {"failed", rep->verify_failed},
                   {"skipped", rep->verify_skipped},
                   {"failures", ProblemsJson(rep->verify_failures)},
                   {"distinct_dek_sources", rep->distinct_dek_sources},
                   {"offline", r.offline()},
                   {"plugin_calls", CallsJson(rep->plugin_calls)}};
  }
  if (r.format() == "table") {
    std::printf("%lld values under %s (etcd revision %lld)\n\n",
                static_cast<long long>(rep->total), j["prefix"].get<std::string>().c_str(),
                static_cast<long long>(rep->revision));
    std::printf("%-12s %-16s %-32s %-12s %s\n", "KIND", "PROVIDER", "KEY_ID", "DEK_SOURCE",
                "COUNT");
    for (const auto& g : rep->groups) {
      std::printf("%-12s %-16s %-32s %-12s %lld\n", g.kind.c_str(),
                  g.provider.empty() ? "-" : g.provider.c_str(),
                  g.key_id.empty() ? "-" : g.key_id.c_str(),
                  g.dek_source_type.empty() ? "-" : g.dek_source_type.c_str(),
                  static_cast<long long>(g.count));
    }
    std::printf("\nKey versions in use by provider %s:", o.provider_name.c_str());
    if (rep->key_versions.empty()) std::printf(" none");
    for (const auto& [v, n] : rep->key_versions) {
      std::printf(" %s (%lld)", v.c_str(), static_cast<long long>(n));
    }
    std::printf("\nUnencrypted (identity): %lld\n", static_cast<long long>(rep->unencrypted_count));
    for (size_t i = 0; i < rep->unencrypted.size() && i < 10; ++i) {
      std::printf("  %s\n", rep->unencrypted[i].c_str());
    }
    if (rep->unencrypted_count > 10) std::printf("  ... (-o json lists up to 1000)\n");
    PrintProblems("Unparseable", rep->unparseable_count, rep->unparseable);
    if (verify) {
      std::printf(
          "Verify: %lld ok, %lld failed, %lld skipped (not provider %s); %llu plugin calls, "
          "%zu distinct DEK sources\n",
          static_cast<long long>(rep->verify_ok), static_cast<long long>(rep->verify_failed),
          static_cast<long long>(rep->verify_skipped), o.provider_name.c_str(),
          static_cast<unsigned long long>(rep->plugin_calls.total()), rep->distinct_dek_sources);
      PrintProblems("Verify failures", rep->verify_failed, rep->verify_failures);
    }
  } else {
    Print(r.format(), j, nullptr);
  }
  return rep->unparseable_count > 0 || rep->verify_failed > 0 ? kExitFailed : kExitOk;
}

int RunRewrap(Runner& r, bool apply) {
  if (absl::Status s = r.Connect(true); !s.ok()) return Fail("connect", s);
  tools::RewrapOptions o;
  r.Fill(&o);
  o.apply = apply;
  auto progress = r.Progress(apply ? "rewrap" : "rewrap (dry run)");
  absl::StatusOr<tools::RewrapReport> rep =
      tools::RewrapToPrimary(r.etcd(), *r.kms(), o, progress->Callback());
  if (rep.ok()) progress->Finish();
  if (!rep.ok()) return Fail("etcd rewrap", rep.status());
  nlohmann::json old_ids = nlohmann::json::object();
  for (const auto& [k, n] : rep->old_key_ids) old_ids[k] = n;
  nlohmann::json j = {{"applied", rep->applied},
                      {"primary_key_id", rep->primary_key_id},
                      {"scanned", rep->scanned},
                      {"v2_values", rep->v2_values},
                      {"at_primary", rep->at_primary},
                      {"to_rewrap", rep->to_rewrap},
                      {"old_key_ids", old_ids},
                      {"rewrapped", rep->rewrapped},
                      {"skipped", rep->skipped},
                      {"failed", rep->failed},
                      {"failures", ProblemsJson(rep->failures)},
                      {"distinct_dek_sources", rep->distinct_dek_sources},
                      {"plugin_calls", CallsJson(rep->plugin_calls)}};
  Print(r.format(), j, [&] {
    std::printf("%s: primary key_id %s\n", apply ? "rewrap" : "rewrap DRY RUN (--apply writes)",
                rep->primary_key_id.c_str());
    std::printf("scanned %lld, KMS v2 values of provider %s %lld, at primary %lld, to rewrap %lld\n",
                static_cast<long long>(rep->scanned), o.provider_name.c_str(),
                static_cast<long long>(rep->v2_values), static_cast<long long>(rep->at_primary),
                static_cast<long long>(rep->to_rewrap));
    for (const auto& [k, n] : rep->old_key_ids) {
      std::printf("  %-40s %lld\n", k.c_str(), static_cast<long long>(n));
    }
    if (apply) {
      std::printf("rewrapped %lld, skipped %lld (changed concurrently), failed %lld; %llu plugin "
                  "calls for %zu distinct DEK sources\n",
                  static_cast<long long>(rep->rewrapped), static_cast<long long>(rep->skipped),
                  static_cast<long long>(rep->failed),
                  static_cast<unsigned long long>(rep->plugin_calls.total()),
                  rep->distinct_dek_sources);
    }
    PrintProblems("Failures", rep->failed, rep->failures);
  });
  return rep->failed > 0 ? kExitFailed : kExitOk;
}

int RunDecrypt(Runner& r, const std::string& out_dir, bool rewrite_identity) {
  if (absl::Status s = r.Connect(true); !s.ok()) return Fail("connect", s);
  tools::DecryptOptions o;
  r.Fill(&o);
  o.out_dir = out_dir;
  o.rewrite_identity = rewrite_identity;
  auto progress = r.Progress("decrypt");
  absl::StatusOr<tools::DecryptReport> rep =
      tools::DecryptSecrets(r.etcd(), *r.decrypter(), o, progress->Callback());
  if (rep.ok()) progress->Finish();
  if (!rep.ok()) return Fail("etcd decrypt", rep.status());
  nlohmann::json j = {{"out_dir", out_dir},
                      {"rewrite_identity", rewrite_identity},
                      {"offline", r.offline()},
                      {"scanned", rep->scanned},
                      {"done", rep->done},
                      {"skipped", rep->skipped},
                      {"failed", rep->failed},
                      {"not_ours", rep->not_ours},
                      {"failures", ProblemsJson(rep->failures)},
                      {"plugin_calls", CallsJson(rep->plugin_calls)}};
  Print(r.format(), j, [&] {
    if (r.offline()) std::printf("offline: KEKs from the backup file, no plugin calls\n");
    std::printf("decrypt: done %lld, skipped %lld (already complete), failed %lld; %lld values "
                "not KMS-encrypted by provider %s; scanned %lld\n",
                static_cast<long long>(rep->done), static_cast<long long>(rep->skipped),
                static_cast<long long>(rep->failed), static_cast<long long>(rep->not_ours),
                o.provider_name.c_str(), static_cast<long long>(rep->scanned));
    PrintProblems("Failures", rep->failed, rep->failures);
  });
  return rep->failed > 0 ? kExitFailed : kExitOk;
}

void AddConnectionFlags(CLI::App* cmd, EtcdFlags* flags) {
  cmd->add_option("--endpoints", flags->endpoints,
                  "etcd endpoints, comma separated (host:port, http(s)://host:port) "
                  "[127.0.0.1:2379]");
  cmd->add_option("--etcd-cacert", flags->cacert, "CA bundle for etcd's TLS certificate");
  cmd->add_option("--etcd-cert", flags->cert, "client certificate for etcd");
  cmd->add_option("--etcd-key", flags->key, "client key for etcd");
  cmd->add_option("--prefix", flags->prefix, "kube-apiserver's --etcd-prefix [/registry]");
  cmd->add_option("--provider-name", flags->provider_name,
                  "name of the kshield KMS provider in the EncryptionConfiguration [kshield]");
  cmd->add_option("--page-size", flags->page_size, "keys per etcd Range page [500]")
      ->check(CLI::Range(int64_t{1}, int64_t{100000}));
  cmd->add_option("--etcd-timeout", flags->etcd_timeout_s,
                  "per etcd call and endpoint, seconds [10]");
}

void AddOfflineFlags(CLI::App* cmd, EtcdFlags* flags) {
  auto* backup = cmd->add_option(
      "--backup", flags->backup_file,
      "offline: decrypt with the KEKs of this backup file (kshieldctl backup) instead of the "
      "plugin; needs --identity");
  auto* identity = cmd->add_option(
      "--identity", flags->identity_file,
      "the backup recipient's private key (PEM, mode 0600) that opens --backup");
  backup->needs(identity);
  identity->needs(backup);
}

}  // namespace

void AddEtcdCommands(CLI::App& app, const CtlGlobals& globals, int* exit_code) {
  *exit_code = -1;
  // Shared with the callbacks, which the app keeps for its lifetime.
  auto flags = std::make_shared<EtcdFlags>();
  auto* etcd = app.add_subcommand(
      "etcd", "operate on the Secrets kube-apiserver stored in etcd (scan, rewrap, decrypt)");
  etcd->require_subcommand(1);
  etcd->fallthrough();
  AddConnectionFlags(etcd, flags.get());
  etcd->add_option("--concurrency", flags->concurrency, "plugin calls in flight [4]")
      ->check(CLI::Range(1, 64));

  auto* scan = etcd->add_subcommand(
      "scan",
      "walk <prefix>/secrets/: values per provider and key_id, unencrypted values, key versions "
      "in use, values that cannot be parsed. Exit 1 if any value is unparseable or fails "
      "--verify.");
  scan->add_flag("--verify", flags->verify,
                 "decrypt every value of our provider through the plugin (or, with --backup, "
                 "with the backup's KEKs)");
  AddOfflineFlags(scan, flags.get());
  scan->callback([=] {
    Runner r(globals, *flags);
    *exit_code = RunScan(r, flags->verify);
  });

  auto* rewrap = etcd->add_subcommand(
      "rewrap",
      "re-wrap the encryptedDEKSource of KMS v2 values under older key ids with the primary "
      "KEK (data bytes untouched). Dry run unless --apply; every write is a compare-and-swap on "
      "mod_revision, so a concurrent apiserver write is never overwritten.");
  rewrap->add_flag("--to-primary", flags->to_primary, "re-wrap to the plugin's current key_id")
      ->required();
  auto* apply = rewrap->add_flag("--apply", flags->apply,
                                 "write the re-wrapped values (default: dry run)");
  rewrap->add_flag("--dry-run", flags->dry_run, "count only (the default)")->excludes(apply);
  rewrap->callback([=] {
    Runner r(globals, *flags);
    *exit_code = RunRewrap(r, flags->apply);
  });

  auto* decrypt = etcd->add_subcommand(
      "decrypt",
      "one-click decryption: every Secret KMS-encrypted by our provider either to --out DIR "
      "(one 0600 YAML manifest per Secret, dir 0700, named <namespace>_<name>.yaml) or written "
      "back unencrypted with --rewrite-identity --confirm (compare-and-swap on mod_revision). "
      "Online through the plugin socket, or offline (no plugin) with --backup FILE --identity "
      "PRIV.pem. Idempotent: rerun after an interruption; the report counts done / skipped / "
      "failed.");
  decrypt->add_option("--out", flags->out_dir, "directory for the YAML files");
  decrypt->add_flag(
      "--rewrite-identity", flags->rewrite_identity,
      "write the plain protobuf back to etcd (the identity provider's form)");
  decrypt->add_flag("--confirm", flags->confirm, "required with --rewrite-identity");
  AddOfflineFlags(decrypt, flags.get());
  decrypt->callback([=] {
    if (flags->out_dir.empty() && !flags->rewrite_identity) {
      std::fprintf(stderr, "kshieldctl: etcd decrypt: give --out DIR or --rewrite-identity\n");
      *exit_code = kExitUsage;
      return;
    }
    if (flags->rewrite_identity && !flags->confirm) {
      std::fprintf(stderr,
                   "kshieldctl: etcd decrypt --rewrite-identity stores every Secret UNENCRYPTED "
                   "in etcd; add --confirm to proceed\n");
      *exit_code = kExitUsage;
      return;
    }
    Runner r(globals, *flags);
    *exit_code = RunDecrypt(r, flags->out_dir, flags->rewrite_identity);
  });
}

namespace {

absl::Status FromGrpc(const std::string& what, const grpc::Status& s) {
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      absl::StrCat(what, ": ", s.error_message()));
}

int RunRetire(const CtlGlobals& g, const EtcdFlags& f, uint32_t version, bool force) {
  auto admin = kshield::admin::v1::Admin::NewStub(
      grpc::CreateChannel(UnixTarget(*g.admin_socket), grpc::InsecureChannelCredentials()));
  auto deadline = [&] {
    return std::chrono::system_clock::now() +
           std::chrono::milliseconds(static_cast<int64_t>(*g.timeout_s * 1000));
  };
  kshield::admin::v1::KeysetInfoResponse info;
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(deadline());
    grpc::Status s = admin->KeysetInfo(&ctx, {}, &info);
    if (!s.ok()) return Fail("keyset retire", FromGrpc("admin KeysetInfo on " + *g.admin_socket, s));
  }
  const kshield::admin::v1::KeyVersion* target = nullptr;
  for (const auto& v : info.versions()) {
    if (v.version() == version) target = &v;
  }
  if (target == nullptr) {
    return Fail("keyset retire", absl::NotFoundError(absl::StrCat(
                                     "no key version ", version, " in keyset ", info.keyset_id())));
  }
  if (target->state() == "primary") {
    return Fail("keyset retire",
                absl::FailedPreconditionError(absl::StrCat(
                    target->key_id(), " is the primary; rotate first, then rewrap and retire")));
  }
  const std::string key_id = target->key_id();
  nlohmann::json j = {{"key_id", key_id}, {"version", version}, {"forced", force}};
  if (!force) {
    etcd::ClientOptions o;
    o.endpoints.clear();
    for (absl::string_view e : absl::StrSplit(f.endpoints, ',', absl::SkipWhitespace())) {
      o.endpoints.emplace_back(e);
    }
    o.ca_file = f.cacert;
    o.cert_file = f.cert;
    o.key_file = f.key;
    o.timeout = std::chrono::milliseconds(static_cast<int64_t>(f.etcd_timeout_s * 1000));
    absl::StatusOr<tools::UsageReport> usage = absl::InvalidArgumentError("--endpoints is empty");
    if (!o.endpoints.empty()) {
      absl::StatusOr<std::unique_ptr<etcd::Client>> client = etcd::Client::Create(o);
      if (!client.ok()) {
        usage = client.status();
      } else {
        tools::UsageOptions uo;
        uo.prefix = f.prefix;
        uo.provider_name = f.provider_name;
        uo.page_size = f.page_size;
        tools::ProgressPrinter progress("retire check", stderr, isatty(STDERR_FILENO) == 1);
        usage = tools::KeyVersionUsage(**client, uo, progress.Callback());
        if (usage.ok()) progress.Finish();
      }
    }
    if (!usage.ok()) {
      std::fprintf(stderr,
                   "kshieldctl: keyset retire: REFUSED: cannot check etcd for values that still "
                   "use %s (%s). Retiring a version in use makes those Secrets unreadable; "
                   "fix the etcd connection flags, or pass --force to skip the check.\n",
                   key_id.c_str(), std::string(usage.status().message()).c_str());
      return ExitFor(usage.status());
    }
    const int64_t uses = tools::UsesOfVersion(usage->key_versions, info.keyset_id(), version);
    j["checked"] = {{"prefix", usage->walked_prefix},
                    {"revision", usage->revision},
                    {"scanned", usage->scanned},
                    {"values_of_provider", usage->ours},
                    {"unreadable", usage->unreadable},
                    {"uses", uses}};
    if (usage->unreadable > 0) {
      std::fprintf(stderr,
                   "kshieldctl: keyset retire: warning: %lld values of provider %s name no "
                   "readable key version (corrupt); they cannot be decrypted with any key\n",
                   static_cast<long long>(usage->unreadable), f.provider_name.c_str());
    }
    if (uses > 0) {
      std::fprintf(
          stderr,
          "kshieldctl: keyset retire: REFUSED: %lld values under %s still use %s (KMS v2 "
          "values with that keyID, KMS v1 values wrapped under version %u). Move them first: "
          "`kshieldctl etcd rewrap --to-primary --apply` for KMS v2 values; KMS v1 values are "
          "re-encrypted when the apiserver rewrites them (e.g. kubectl get secrets -A -o json | "
          "kubectl replace -f -). Then run this again.\n",
          static_cast<long long>(uses), usage->walked_prefix.c_str(), key_id.c_str(), version);
      return kExitFailed;
    }
  } else {
    std::fprintf(stderr,
                 "kshieldctl: keyset retire: WARNING: --force: etcd is NOT checked. Every value "
                 "still wrapped under %s becomes UNREADABLE once it is retired.\n",
                 key_id.c_str());
  }
  if (target->state() == "retired") {
    j["already_retired"] = true;
    Print(*g.format, j, [&] { std::printf("%s was already retired\n", key_id.c_str()); });
    return kExitOk;
  }
  kshield::admin::v1::RetireRequest req;
  req.set_version(version);
  kshield::admin::v1::RetireResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(deadline());
  grpc::Status s = admin->Retire(&ctx, req, &resp);
  if (!s.ok()) return Fail("keyset retire", FromGrpc("admin Retire", s));
  j["key_id"] = resp.key_id();
  Print(*g.format, j, [&] {
    if (force) {
      std::printf("retired %s (forced, etcd not checked)\n", resp.key_id().c_str());
    } else {
      std::printf("retired %s: no value under %s uses it (%lld values checked at etcd "
                  "revision %lld)\n",
                  resp.key_id().c_str(), j["checked"]["prefix"].get<std::string>().c_str(),
                  static_cast<long long>(j["checked"]["scanned"].get<int64_t>()),
                  static_cast<long long>(j["checked"]["revision"].get<int64_t>()));
    }
  });
  return kExitOk;
}

}  // namespace

void AddRetireCommand(CLI::App& keyset, const CtlGlobals& globals, int* exit_code) {
  auto flags = std::make_shared<EtcdFlags>();
  auto version = std::make_shared<uint32_t>(0);
  auto force = std::make_shared<bool>(false);
  auto* retire = keyset.add_subcommand(
      "retire",
      "retire a non-primary KEK version: it no longer decrypts anything. Refused (exit 1) while "
      "any value under --prefix in etcd (every resource, not only Secrets) still uses the "
      "version, and refused when etcd cannot be read (exit 3 unreachable, 1 otherwise), unless "
      "--force. Wait at least two minutes after a rotation before rewrap + retire: the "
      "apiserver keeps writing with the old key until its next Status poll.");
  retire->add_option("VERSION", *version, "the key version number (see `keyset list`)")
      ->required()
      ->check(CLI::Range(uint32_t{1}, UINT32_MAX));
  retire->add_flag("--force", *force,
                   "skip the etcd check (values still using the version become unreadable)");
  AddConnectionFlags(retire, flags.get());
  retire->callback([=] {
    if (globals.admin_socket == nullptr) {
      *exit_code = kExitUsage;
      return;
    }
    *exit_code = RunRetire(globals, *flags, *version, *force);
  });
}

}  // namespace kshield::cmd

#include "keys/pkcs11/module.h"

#include <dlfcn.h>

#include <map>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/status.h"

namespace kshield::keys::pkcs11 {
namespace {

// One Module per path per process. The deleter finalises under the registry lock and erases the
// entry, so a Load() racing with the last release waits instead of initialising a module that is
// about to be finalised.
struct Registry {
  std::mutex mu;
  std::condition_variable erased;
  std::map<std::string, std::weak_ptr<Module>> modules;  // guarded by mu
};

Registry& GetRegistry() {
  static Registry* registry = new Registry();  // never destroyed: modules may outlive statics
  return *registry;
}

}  // namespace

bool CallGate::EnterShared(Clock::time_point deadline) {
  std::unique_lock<std::mutex> lock(mu_);
  if (!cv_.wait_until(lock, deadline, [&] { return !writer_ && writers_waiting_ == 0; })) {
    return false;
  }
  ++readers_;
  return true;
}

void CallGate::ExitShared() {
  std::lock_guard<std::mutex> lock(mu_);
  if (--readers_ == 0) cv_.notify_all();
}

bool CallGate::EnterExclusive(Clock::time_point deadline) {
  std::unique_lock<std::mutex> lock(mu_);
  ++writers_waiting_;
  const bool ok = cv_.wait_until(lock, deadline, [&] { return !writer_ && readers_ == 0; });
  --writers_waiting_;
  if (ok) {
    writer_ = true;
  } else {
    cv_.notify_all();  // readers held back by our wait may go on
  }
  return ok;
}

void CallGate::ExitExclusive() {
  std::lock_guard<std::mutex> lock(mu_);
  writer_ = false;
  cv_.notify_all();
}

absl::StatusOr<std::shared_ptr<Module>> Module::Load(const std::string& path) {
  if (path.empty() || path[0] != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("PKCS#11 module path must be absolute, got \"", path, "\""));
  }
  Registry& reg = GetRegistry();
  std::unique_lock<std::mutex> lock(reg.mu);
  for (;;) {
    auto it = reg.modules.find(path);
    if (it == reg.modules.end()) break;
    if (std::shared_ptr<Module> existing = it->second.lock()) return existing;
    reg.erased.wait(lock);  // the last owner is finalising it
  }

  dlerror();
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* err = dlerror();
    return absl::FailedPreconditionError(absl::StrCat("cannot load PKCS#11 module ", path, ": ",
                                                      err != nullptr ? err : "dlopen failed"));
  }
  auto get_list = reinterpret_cast<CK_C_GetFunctionList>(dlsym(handle, "C_GetFunctionList"));
  CK_FUNCTION_LIST* fn = nullptr;
  CK_RV rv = get_list != nullptr ? get_list(&fn) : CKR_FUNCTION_NOT_SUPPORTED;
  if (get_list == nullptr || rv != CKR_OK || fn == nullptr) {
    dlclose(handle);
    return absl::FailedPreconditionError(
        absl::StrCat(path, " is not a PKCS#11 module: C_GetFunctionList ",
                     get_list == nullptr ? "is missing" : "failed: " + RvName(rv)));
  }

  auto* raw = new Module(path, handle, fn);
  absl::Status init = raw->Initialize();
  if (!init.ok()) {
    delete raw;  // nothing registered yet
    return init;
  }
  std::shared_ptr<Module> module(raw, [](Module* m) {
    Registry& r = GetRegistry();
    std::lock_guard<std::mutex> l(r.mu);
    std::string p = m->path();
    delete m;
    r.modules.erase(p);
    r.erased.notify_all();
  });
  reg.modules[path] = module;
  log::Info("pkcs11.module_loaded",
            {{"module", path},
             {"cryptoki_version", absl::StrCat(fn->version.major, ".", fn->version.minor)}});
  return module;
}

absl::Status Module::Initialize() {
  CK_C_INITIALIZE_ARGS args{};
  args.flags = CKF_OS_LOCKING_OK;
  CK_RV rv = fn_->C_Initialize(&args);
  if (rv == CKR_CRYPTOKI_ALREADY_INITIALIZED) {
    // Another component of this process initialised it; it owns C_Finalize.
    initialized_by_us_ = false;
    foreign_init_ = true;
    return absl::OkStatus();
  }
  if (rv != CKR_OK) {
    return absl::FailedPreconditionError(
        absl::StrCat("C_Initialize of PKCS#11 module ", path_, " failed: ", RvName(rv)));
  }
  initialized_by_us_ = true;
  return absl::OkStatus();
}

Module::~Module() {
  if (initialized_by_us_) fn_->C_Finalize(nullptr);
  dlclose(handle_);
}

absl::Status Module::Reinitialize(uint64_t seen_generation, Clock::time_point deadline) {
  if (!gate_.EnterExclusive(deadline)) {
    return absl::UnavailableError(
        absl::StrCat("PKCS#11 module ", path_, ": calls still in flight, cannot re-initialise"));
  }
  struct Exit {
    CallGate& g;
    ~Exit() { g.ExitExclusive(); }
  } exit{gate_};
  if (generation() != seen_generation) return absl::OkStatus();
  if (foreign_init_) {
    return absl::UnavailableError(absl::StrCat(
        "PKCS#11 module ", path_,
        " was initialised by another component of this process; not re-initialising it"));
  }
  CK_RV fin = initialized_by_us_ ? fn_->C_Finalize(nullptr) : CKR_CRYPTOKI_NOT_INITIALIZED;
  initialized_by_us_ = false;
  generation_.fetch_add(1, std::memory_order_acq_rel);
  absl::Status init = Initialize();
  log::Info("pkcs11.module_reinitialized",
            {{"module", path_}, {"finalize", RvName(fin)}, {"ok", init.ok()}});
  return init;
}

}  // namespace kshield::keys::pkcs11

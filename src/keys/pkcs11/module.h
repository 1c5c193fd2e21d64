// Module — one dlopen'ed PKCS#11 library (C_GetFunctionList), initialised once per process.
//
//   KSH_ASSIGN_OR_RETURN(std::shared_ptr<Module> m,
//                        Module::Load("/usr/lib/softhsm/libsofthsm2.so"));
//   {
//     CallGuard g(*m, deadline);            // every Cryptoki call runs under a CallGuard
//     if (!g.ok()) return Unavailable(...);
//     m->fn()->C_GetSlotList(...);
//   }
//
// Cryptoki state is per process (C_Initialize / C_Finalize), so Load() hands out one shared Module
// per library path; the last owner's release calls C_Finalize and dlclose. (A later Load()
// therefore re-reads module configuration such as SOFTHSM2_CONF.)
//
// Some modules (SoftHSM 2) only notice a token that came back after C_Finalize + C_Initialize.
// Reinitialize() does that while no call is in flight (callers hold a CallGuard, which is a shared
// gate; Reinitialize takes it exclusively) and bumps generation(): every session and object handle
// obtained under an older generation is void.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "keys/pkcs11/p11.h"

namespace kshield::keys::pkcs11 {

using Clock = std::chrono::steady_clock;

// A readers-writer gate with deadlines and writer preference: once a writer waits, new readers
// wait too, so re-initialisation is not starved by a busy pool. (Built on a condition variable
// rather than std::shared_timed_mutex, whose pthread_rwlock_clock*lock ThreadSanitizer cannot see.)
class CallGate {
 public:
  [[nodiscard]] bool EnterShared(Clock::time_point deadline);
  void ExitShared();
  [[nodiscard]] bool EnterExclusive(Clock::time_point deadline);
  void ExitExclusive();

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int readers_ = 0;          // guarded by mu_
  int writers_waiting_ = 0;  // guarded by mu_
  bool writer_ = false;      // guarded by mu_
};

class Module {
 public:
  // Loads (or returns the already loaded) module at `path` and initialises it with
  // CKF_OS_LOCKING_OK. `path` must be absolute.
  static absl::StatusOr<std::shared_ptr<Module>> Load(const std::string& path);

  ~Module();
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  const std::string& path() const { return path_; }
  // Never null. Use only under a CallGuard.
  CK_FUNCTION_LIST* fn() const { return fn_; }
  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }

  // C_Finalize + C_Initialize, unless the generation already moved past `seen_generation` (someone
  // else just did it). Waits for in-flight calls until `deadline`.
  [[nodiscard]] absl::Status Reinitialize(uint64_t seen_generation, Clock::time_point deadline);

 private:
  friend class CallGuard;
  Module(std::string path, void* handle, CK_FUNCTION_LIST* fn)
      : path_(std::move(path)), handle_(handle), fn_(fn) {}
  absl::Status Initialize();

  const std::string path_;
  void* const handle_;
  CK_FUNCTION_LIST* const fn_;
  // Written only while calls are excluded (Load, or Reinitialize holding calls_mu_ exclusively).
  bool initialized_by_us_ = false;
  bool foreign_init_ = false;  // C_Initialize said another component of the process did it
  std::atomic<uint64_t> generation_{1};
  // Shared by Cryptoki calls, exclusive for C_Finalize + C_Initialize.
  CallGate gate_;
};

// Holds the module's call gate (shared) for the lifetime of the guard.
class CallGuard {
 public:
  CallGuard(Module& module, Clock::time_point deadline)
      : gate_(module.gate_), ok_(gate_.EnterShared(deadline)) {}
  ~CallGuard() {
    if (ok_) gate_.ExitShared();
  }
  CallGuard(const CallGuard&) = delete;
  CallGuard& operator=(const CallGuard&) = delete;
  bool ok() const { return ok_; }

 private:
  CallGate& gate_;
  const bool ok_;
};

}  // namespace kshield::keys::pkcs11

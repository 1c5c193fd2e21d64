// SessionPool — logged-in R/W user sessions on one token (selected by label), with per-call
// deadlines and recovery when the token goes away and comes back.
//
//   SessionPoolOptions o{.module_path = "/usr/lib/softhsm/libsofthsm2.so",
//                        .token_label = "kshield", .pin = std::move(pin),
//                        .pin_source = "pin_file /etc/kshield/pin"};
//   KSH_ASSIGN_OR_RETURN(std::unique_ptr<SessionPool> pool, SessionPool::New(std::move(o)));
//   auto out = std::make_shared<std::string>();  // owned by the op, not the caller's stack
//   absl::Status s = pool->Run("encrypt", [out](OpContext& c) -> absl::Status {
//     KSH_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE key, c.FindKey({"kshield-master"}));
//     CK_RV rv = c.fn()->C_EncryptInit(c.session(), &mech, key);
//     if (rv != CKR_OK) return c.Fail("C_EncryptInit", rv);
//     ...
//   });
//
// Each session is owned by one worker thread; Run() queues the op and waits at most `timeout`
// (waiting for a free session counts). A call that does not return in time yields UNAVAILABLE and
// the op keeps running on its worker (which is why ops must own everything they touch).
//
// When an op fails, the pool asks whether the session and token are still healthy
// (C_GetSessionInfo, C_GetTokenInfo). If not — or the failure code itself says the session, token
// or device is gone (p11.h IsTokenGoneRv) — it drops its sessions, finds the token by label again
// (C_Finalize + C_Initialize if the module no longer lists it: SoftHSM 2 needs that to see a token
// directory that came back), logs in again and retries the op once. A cached object handle the
// token refuses while healthy (key deleted or re-created) is looked up again and the op retried
// once, without touching the sessions. Recovery attempts are rate
// limited; between attempts calls fail fast with UNAVAILABLE. If the token refuses the PIN the
// pool stops logging in for good (repeated attempts can lock a token) and every call fails with
// FAILED_PRECONDITION.
//
// The PIN lives in SecretBytes and appears in no log line or status message.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/secret.h"
#include "keys/pkcs11/module.h"

namespace kshield::keys::pkcs11 {

// An AES secret key on the token: CKA_LABEL, and CKA_ID when `id` is not empty.
struct KeyRef {
  std::string label;
  std::string id;
};

struct SessionPoolOptions {
  std::string module_path;
  std::string token_label;
  SecretBytes pin;
  std::string pin_source;  // for error messages: "pin_file /path" or "environment variable X"
  size_t sessions = 8;
  std::chrono::milliseconds timeout{2000};
  // Minimum time between two recovery attempts while the token is away.
  std::chrono::milliseconds recovery_interval{500};
};

class SessionPool;
namespace internal {
struct PoolCore;  // session_pool.cc
}  // namespace internal

// What an op sees: one logged-in R/W session. Valid only during the op.
class OpContext {
 public:
  CK_FUNCTION_LIST* fn() const { return fn_; }
  CK_SESSION_HANDLE session() const { return session_; }
  CK_SLOT_ID slot() const { return slot_; }
  const std::string& token_label() const;

  // The single AES secret key matching `ref`; handles are cached until the token is re-found.
  // NotFound when there is none, FailedPrecondition when there are several. `fresh` skips the
  // cache (the answer is cached again).
  absl::StatusOr<CK_OBJECT_HANDLE> FindKey(const KeyRef& ref, bool fresh = false);
  // Drops `ref` from the handle cache (after destroying the object).
  void ForgetKey(const KeyRef& ref);
  // Like FindKey but never cached and returns every match (used to spot leftovers).
  absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> FindAllKeys(const KeyRef& ref);

  // Records a failed Cryptoki call (the pool uses it to decide whether the token is gone) and
  // returns Internal("<function>: <rv name>").
  absl::Status Fail(std::string_view function, CK_RV rv);
  CK_RV last_rv() const { return last_rv_; }

 private:
  friend struct internal::PoolCore;
  using Core = internal::PoolCore;
  OpContext(Core* core, CK_FUNCTION_LIST* fn, CK_SESSION_HANDLE session, CK_SLOT_ID slot,
            uint64_t token_generation)
      : core_(core), fn_(fn), session_(session), slot_(slot), token_generation_(token_generation) {}

  Core* core_;
  CK_FUNCTION_LIST* fn_;
  CK_SESSION_HANDLE session_;
  CK_SLOT_ID slot_;
  uint64_t token_generation_;
  CK_RV last_rv_ = CKR_OK;
};

class SessionPool {
 public:
  using Op = std::function<absl::Status(OpContext&)>;

  // Loads the module, finds the token by label, opens one session and logs in (so a wrong label or
  // PIN is reported here, clearly).
  static absl::StatusOr<std::unique_ptr<SessionPool>> New(SessionPoolOptions options);
  ~SessionPool();
  SessionPool(const SessionPool&) = delete;
  SessionPool& operator=(const SessionPool&) = delete;

  // Runs `op` on a logged-in session before the per-call deadline. Returns op's status while the
  // token is healthy, UNAVAILABLE when it is gone (after one recovery + retry), when no session
  // became free, or when the call did not finish in time. `what` names the call in errors.
  absl::Status Run(std::string_view what, Op op);

  const std::string& token_label() const;
  const std::string& module_path() const;
  std::chrono::milliseconds timeout() const;

 private:
  using Core = internal::PoolCore;
  explicit SessionPool(std::shared_ptr<Core> core) : core_(std::move(core)) {}
  std::shared_ptr<Core> core_;
};

}  // namespace kshield::keys::pkcs11

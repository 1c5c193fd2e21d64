#include "keys/pkcs11/session_pool.h"

#include <condition_variable>
#include <deque>
#include <future>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/log.h"
#include "common/status.h"

namespace kshield::keys::pkcs11 {
namespace {

struct Task {
  SessionPool::Op op;
  Clock::time_point deadline;
  std::promise<absl::Status> done;
};

// Counts running workers; separate from Core so the last worker can drop Core (and with it, maybe,
// the module: C_Finalize) before it reports that it has exited.
struct ExitLatch {
  std::mutex mu;
  std::condition_variable cv;
  size_t running = 0;  // guarded by mu
};

// A worker's session and the generations it was opened under.
struct WorkerSession {
  bool open = false;
  CK_SESSION_HANDLE handle = CK_INVALID_HANDLE;
  uint64_t module_generation = 0;
  uint64_t token_generation = 0;
};

std::string Ms(std::chrono::milliseconds d) { return absl::StrCat(d.count(), "ms"); }

}  // namespace

struct internal::PoolCore {
  std::shared_ptr<Module> module;
  std::string token_label;
  SecretBytes pin;
  std::string pin_source;
  std::chrono::milliseconds timeout;
  std::chrono::milliseconds recovery_interval;
  std::shared_ptr<ExitLatch> latch;

  // Task queue.
  std::mutex queue_mu;
  std::condition_variable queue_cv;
  std::deque<std::shared_ptr<Task>> queue;  // guarded by queue_mu
  bool stop = false;                        // guarded by queue_mu

  // Where the token is. token_generation moves each time it is (re)found; sessions and cached
  // key handles from an older generation are void.
  std::mutex token_mu;
  bool slot_found = false;                            // guarded by token_mu
  CK_SLOT_ID slot = 0;                                // guarded by token_mu
  uint64_t slot_module_generation = 0;                // guarded by token_mu
  uint64_t token_generation = 1;                      // guarded by token_mu
  std::map<std::string, CK_OBJECT_HANDLE> key_cache;  // guarded by token_mu
  std::string pin_rejected;  // guarded by token_mu; non-empty = stop logging in

  // Recovery: one at a time (others wait for its outcome), rate limited.
  std::mutex recover_mu;
  std::condition_variable recover_cv;
  bool recovering = false;  // guarded by recover_mu
  // Owned by the thread that set `recovering`:
  Clock::time_point last_failed_recovery{};
  absl::Status last_recovery_error;
  bool down = false;

  struct Located {
    CK_SLOT_ID slot;
    uint64_t module_generation;
  };
  absl::StatusOr<Located> FindSlot(Clock::time_point deadline);
  bool TokenPresent(CK_SLOT_ID s);
  absl::Status Recover(uint64_t seen_token_generation, Clock::time_point deadline);
  absl::Status RecoverLocked(uint64_t seen_token_generation, Clock::time_point deadline);
  absl::Status Execute(Task& task, WorkerSession* ws);
  // `gone`: the session / token is unusable, recover before retrying. `stale`: a cached object
  // handle was refused while the token is fine, look it up again and retry.
  absl::Status TryOnce(Task& task, WorkerSession* ws, uint64_t* token_generation, bool* gone,
                       bool* stale);
  absl::Status OpenSession(CK_SLOT_ID s, WorkerSession* ws, bool* gone);
  void CloseSession(WorkerSession* ws);
};

namespace {

std::string CacheKey(const KeyRef& ref) {
  return absl::StrCat(ref.label, std::string(1, '\0'), ref.id);
}

void WorkerLoop(std::shared_ptr<internal::PoolCore> core, std::shared_ptr<ExitLatch> latch) {
  WorkerSession ws;
  for (;;) {
    std::shared_ptr<Task> task;
    {
      std::unique_lock<std::mutex> lock(core->queue_mu);
      core->queue_cv.wait(lock, [&] { return core->stop || !core->queue.empty(); });
      if (core->queue.empty()) break;  // stopping
      task = std::move(core->queue.front());
      core->queue.pop_front();
      if (core->stop) {
        lock.unlock();
        task->done.set_value(absl::UnavailableError("PKCS#11 provider is shutting down"));
        continue;
      }
    }
    if (Clock::now() >= task->deadline) {
      // The caller has already given up; nothing to do.
      task->done.set_value(absl::DeadlineExceededError("expired in queue"));
      continue;
    }
    task->done.set_value(core->Execute(*task, &ws));
  }
  {
    CallGuard guard(*core->module, Clock::now() + core->timeout);
    if (guard.ok()) core->CloseSession(&ws);
  }
  core.reset();  // may finalise the module
  std::lock_guard<std::mutex> lock(latch->mu);
  --latch->running;
  latch->cv.notify_all();
}

}  // namespace

const std::string& OpContext::token_label() const { return core_->token_label; }

absl::Status OpContext::Fail(std::string_view function, CK_RV rv) {
  last_rv_ = rv;
  return absl::InternalError(absl::StrCat(AV(function), ": ", RvName(rv)));
}

absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> OpContext::FindAllKeys(const KeyRef& ref) {
  CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
  CK_KEY_TYPE type = CKK_AES;
  std::vector<CK_ATTRIBUTE> tmpl = {
      {CKA_CLASS, &cls, sizeof(cls)},
      {CKA_KEY_TYPE, &type, sizeof(type)},
      {CKA_LABEL, const_cast<char*>(ref.label.data()), ref.label.size()},
  };
  if (!ref.id.empty()) {
    tmpl.push_back({CKA_ID, const_cast<char*>(ref.id.data()), ref.id.size()});
  }
  CK_RV rv = fn_->C_FindObjectsInit(session_, tmpl.data(), tmpl.size());
  if (rv != CKR_OK) return Fail("C_FindObjectsInit", rv);
  std::vector<CK_OBJECT_HANDLE> found;
  for (;;) {
    CK_OBJECT_HANDLE batch[16];
    CK_ULONG n = 0;
    rv = fn_->C_FindObjects(session_, batch, 16, &n);
    if (rv != CKR_OK) {
      fn_->C_FindObjectsFinal(session_);
      return Fail("C_FindObjects", rv);
    }
    found.insert(found.end(), batch, batch + n);
    if (n < 16 || found.size() > 1024) break;
  }
  rv = fn_->C_FindObjectsFinal(session_);
  if (rv != CKR_OK) return Fail("C_FindObjectsFinal", rv);
  return found;
}

void OpContext::ForgetKey(const KeyRef& ref) {
  std::lock_guard<std::mutex> lock(core_->token_mu);
  core_->key_cache.erase(CacheKey(ref));
}

absl::StatusOr<CK_OBJECT_HANDLE> OpContext::FindKey(const KeyRef& ref, bool fresh) {
  const std::string key = CacheKey(ref);
  if (!fresh) {
    std::lock_guard<std::mutex> lock(core_->token_mu);
    if (core_->token_generation == token_generation_) {
      auto it = core_->key_cache.find(key);
      if (it != core_->key_cache.end()) return it->second;
    }
  }
  KSH_ASSIGN_OR_RETURN(std::vector<CK_OBJECT_HANDLE> found, FindAllKeys(ref));
  if (found.size() != 1) ForgetKey(ref);
  if (found.empty()) {
    return absl::NotFoundError(absl::StrCat("no AES secret key labelled '", ref.label, "'",
                                            ref.id.empty() ? "" : " with the expected CKA_ID",
                                            " on token '", core_->token_label, "'"));
  }
  if (found.size() > 1) {
    return absl::FailedPreconditionError(
        absl::StrCat(found.size(), " AES secret keys are labelled '", ref.label, "' on token '",
                     core_->token_label, "'; kshield needs exactly one"));
  }
  std::lock_guard<std::mutex> lock(core_->token_mu);
  if (core_->token_generation == token_generation_) core_->key_cache[key] = found[0];
  return found[0];
}

absl::StatusOr<internal::PoolCore::Located> internal::PoolCore::FindSlot(
    Clock::time_point deadline) {
  CallGuard guard(*module, deadline);
  if (!guard.ok()) return absl::UnavailableError("PKCS#11 module is being re-initialised");
  const uint64_t generation = module->generation();
  CK_FUNCTION_LIST* fn = module->fn();
  std::vector<CK_SLOT_ID> slots;
  CK_RV rv = CKR_OK;
  for (int attempt = 0; attempt < 4; ++attempt) {
    CK_ULONG n = 0;
    rv = fn->C_GetSlotList(CK_TRUE, nullptr, &n);
    if (rv != CKR_OK) break;
    slots.resize(n);
    rv = fn->C_GetSlotList(CK_TRUE, slots.data(), &n);
    if (rv == CKR_BUFFER_TOO_SMALL) continue;  // a token appeared in between
    slots.resize(n);
    break;
  }
  if (rv != CKR_OK) {
    return absl::UnavailableError(
        absl::StrCat("C_GetSlotList on PKCS#11 module ", module->path(), ": ", RvName(rv)));
  }
  std::vector<CK_SLOT_ID> matches;
  std::vector<std::string> labels;
  for (CK_SLOT_ID s : slots) {
    CK_TOKEN_INFO info{};
    if (fn->C_GetTokenInfo(s, &info) != CKR_OK) continue;
    std::string label = PaddedField(info.label, sizeof(info.label));
    if (label == token_label) {
      matches.push_back(s);
    } else if ((info.flags & CKF_TOKEN_INITIALIZED) != 0 && labels.size() < 16) {
      labels.push_back(absl::StrCat("'", label, "'"));
    }
  }
  if (matches.size() > 1) {
    return absl::FailedPreconditionError(
        absl::StrCat(matches.size(), " tokens are labelled '", token_label, "' in PKCS#11 module ",
                     module->path(), "; token labels must be unique"));
  }
  if (matches.empty()) {
    return absl::NotFoundError(absl::StrCat(
        "no token labelled '", token_label, "' in PKCS#11 module ", module->path(),
        " (initialised tokens present: ", labels.empty() ? "none" : absl::StrJoin(labels, ", "),
        ")"));
  }
  return Located{matches[0], generation};
}

bool internal::PoolCore::TokenPresent(CK_SLOT_ID s) {
  CK_TOKEN_INFO info{};
  if (module->fn()->C_GetTokenInfo(s, &info) != CKR_OK) return false;
  return PaddedField(info.label, sizeof(info.label)) == token_label;
}

absl::Status internal::PoolCore::Recover(uint64_t seen_token_generation,
                                         Clock::time_point deadline) {
  {
    std::unique_lock<std::mutex> lock(recover_mu);
    if (!recover_cv.wait_until(lock, deadline, [&] { return !recovering; })) {
      return absl::UnavailableError(
          absl::StrCat("PKCS#11 token '", token_label, "' is being recovered"));
    }
    recovering = true;
  }
  absl::Status s = RecoverLocked(seen_token_generation, deadline);
  {
    std::lock_guard<std::mutex> lock(recover_mu);
    recovering = false;
  }
  recover_cv.notify_all();
  return s;
}

// Runs with `recovering` set by this thread: the recovery state below is ours alone.
absl::Status internal::PoolCore::RecoverLocked(uint64_t seen_token_generation,
                                               Clock::time_point deadline) {
  {
    std::lock_guard<std::mutex> t(token_mu);
    if (token_generation != seen_token_generation) return absl::OkStatus();  // someone else did
  }
  const Clock::time_point now = Clock::now();
  if (!last_recovery_error.ok() && now - last_failed_recovery < recovery_interval) {
    return last_recovery_error;
  }
  const uint64_t module_generation = module->generation();
  absl::StatusOr<Located> found = FindSlot(deadline);
  if (!found.ok() && found.status().code() != absl::StatusCode::kFailedPrecondition) {
    // The module no longer lists the token. Some modules (SoftHSM 2) only see a token that came
    // back after re-initialisation.
    absl::Status reinit = module->Reinitialize(module_generation, deadline);
    found = reinit.ok() ? FindSlot(deadline) : absl::StatusOr<Located>(reinit);
  }
  if (!found.ok()) {
    last_failed_recovery = Clock::now();
    last_recovery_error = absl::UnavailableError(
        absl::StrCat("PKCS#11 token '", token_label, "' unavailable: ", found.status().message()));
    if (!down) {
      down = true;
      log::Warn("pkcs11.token_unavailable", {{"module", module->path()},
                                             {"token_label", token_label},
                                             {"reason", std::string(found.status().message())}});
    }
    return last_recovery_error;
  }
  {
    std::lock_guard<std::mutex> t(token_mu);
    slot = found->slot;
    slot_module_generation = found->module_generation;
    slot_found = true;
    ++token_generation;
    key_cache.clear();
  }
  last_recovery_error = absl::OkStatus();
  if (down) {
    down = false;
    log::Info("pkcs11.token_recovered", {{"module", module->path()}, {"token_label", token_label}});
  }
  return absl::OkStatus();
}

void internal::PoolCore::CloseSession(WorkerSession* ws) {
  if (ws->open && ws->module_generation == module->generation()) {
    module->fn()->C_CloseSession(ws->handle);  // may fail if the token is gone; nothing to do
  }
  *ws = WorkerSession{};
}

absl::Status internal::PoolCore::OpenSession(CK_SLOT_ID s, WorkerSession* ws, bool* gone) {
  CK_FUNCTION_LIST* fn = module->fn();
  CK_SESSION_HANDLE h = CK_INVALID_HANDLE;
  CK_RV rv = fn->C_OpenSession(s, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &h);
  if (rv != CKR_OK) {
    *gone = IsTokenGoneRv(rv) || !TokenPresent(s);
    return absl::UnavailableError(
        absl::StrCat("C_OpenSession on token '", token_label, "': ", RvName(rv)));
  }
  rv = fn->C_Login(h, CKU_USER, const_cast<CK_UTF8CHAR*>(pin.UnsafeView().data()), pin.size());
  if (rv == CKR_OK || rv == CKR_USER_ALREADY_LOGGED_IN) {
    ws->open = true;
    ws->handle = h;
    return absl::OkStatus();
  }
  fn->C_CloseSession(h);
  if (IsPinRejectedRv(rv)) {
    std::string msg =
        absl::StrCat("login to PKCS#11 token '", token_label, "' refused the PIN from ", pin_source,
                     ": ", RvName(rv), "; not trying again (repeated attempts can lock the token)");
    {
      std::lock_guard<std::mutex> t(token_mu);
      pin_rejected = msg;
    }
    log::Error("pkcs11.pin_rejected", {{"module", module->path()},
                                       {"token_label", token_label},
                                       {"pin_source", pin_source},
                                       {"rv", RvName(rv)}});
    return absl::UnavailableError(msg);
  }
  *gone = IsTokenGoneRv(rv) || !TokenPresent(s);
  return absl::UnavailableError(absl::StrCat("C_Login on token '", token_label, "': ", RvName(rv)));
}

absl::Status internal::PoolCore::TryOnce(Task& task, WorkerSession* ws, uint64_t* token_gen,
                                         bool* gone, bool* stale) {
  *gone = false;
  *stale = false;
  CallGuard guard(*module, task.deadline);
  if (!guard.ok()) return absl::UnavailableError("PKCS#11 module is being re-initialised");
  CK_SLOT_ID s;
  bool located;
  uint64_t located_module_generation;
  {
    std::lock_guard<std::mutex> t(token_mu);
    if (!pin_rejected.empty()) return absl::UnavailableError(pin_rejected);
    s = slot;
    located = slot_found;
    located_module_generation = slot_module_generation;
    *token_gen = token_generation;
  }
  if (!located || located_module_generation != module->generation()) {
    *gone = true;  // never found, or the module was re-initialised since: find it again
    return absl::UnavailableError(absl::StrCat("PKCS#11 token '", token_label, "' not located"));
  }
  if (ws->open &&
      (ws->module_generation != module->generation() || ws->token_generation != *token_gen)) {
    CloseSession(ws);
  }
  if (!ws->open) {
    KSH_RETURN_IF_ERROR(OpenSession(s, ws, gone));
    ws->module_generation = module->generation();
    ws->token_generation = *token_gen;
  }
  OpContext ctx(this, module->fn(), ws->handle, s, *token_gen);
  absl::Status st = task.op(ctx);
  if (st.ok()) return st;
  CK_SESSION_INFO info{};
  *gone = IsTokenGoneRv(ctx.last_rv()) ||
          module->fn()->C_GetSessionInfo(ws->handle, &info) != CKR_OK ||
          info.state != CKS_RW_USER_FUNCTIONS || !TokenPresent(s);
  if (*gone) {
    CloseSession(ws);
  } else if (IsStaleHandleRv(ctx.last_rv())) {
    *stale = true;
    std::lock_guard<std::mutex> t(token_mu);
    key_cache.clear();
  }
  return st;
}

absl::Status internal::PoolCore::Execute(Task& task, WorkerSession* ws) {
  uint64_t token_gen = 0;
  bool gone = false, stale = false;
  absl::Status st = TryOnce(task, ws, &token_gen, &gone, &stale);
  if (!gone && !stale) return st;
  if (gone) {
    absl::Status recovered = Recover(token_gen, task.deadline);
    if (!recovered.ok()) return recovered;
  }
  if (Clock::now() >= task.deadline) {
    return absl::UnavailableError(
        absl::StrCat("PKCS#11 token '", token_label, "': no time left to retry after recovery"));
  }
  st = TryOnce(task, ws, &token_gen, &gone, &stale);
  if (gone) {
    return absl::UnavailableError(
        absl::StrCat("PKCS#11 token '", token_label, "' unavailable: ", st.message()));
  }
  return st;
}

absl::StatusOr<std::unique_ptr<SessionPool>> SessionPool::New(SessionPoolOptions options) {
  if (options.sessions == 0) return absl::InvalidArgumentError("sessions must be at least 1");
  if (options.pin.empty()) return absl::InvalidArgumentError("the PKCS#11 PIN is empty");
  KSH_ASSIGN_OR_RETURN(std::shared_ptr<Module> module, Module::Load(options.module_path));
  auto core = std::make_shared<Core>();
  core->module = std::move(module);
  core->token_label = options.token_label;
  core->pin = std::move(options.pin);
  core->pin_source = options.pin_source;
  core->timeout = options.timeout;
  core->recovery_interval = options.recovery_interval;

  KSH_ASSIGN_OR_RETURN(Core::Located found, core->FindSlot(Clock::now() + options.timeout));
  {
    std::lock_guard<std::mutex> t(core->token_mu);
    core->slot = found.slot;
    core->slot_module_generation = found.module_generation;
    core->slot_found = true;
  }

  auto latch = std::make_shared<ExitLatch>();
  latch->running = options.sessions;
  core->latch = latch;
  for (size_t i = 0; i < options.sessions; ++i) {
    std::thread(WorkerLoop, core, latch).detach();
  }
  std::unique_ptr<SessionPool> pool(new SessionPool(std::move(core)));
  // Opens one session and logs in: a wrong PIN or an unusable token is reported now.
  absl::Status login = pool->Run("login", [](OpContext&) { return absl::OkStatus(); });
  if (!login.ok()) {
    std::lock_guard<std::mutex> t(pool->core_->token_mu);
    // A refused PIN is a configuration error at start-up (later it is an outage).
    if (!pool->core_->pin_rejected.empty()) {
      return absl::FailedPreconditionError(pool->core_->pin_rejected);
    }
    return login;
  }
  log::Info("pkcs11.token_ready", {{"module", pool->module_path()},
                                   {"token_label", pool->token_label()},
                                   {"sessions", static_cast<uint64_t>(options.sessions)},
                                   {"timeout", Ms(options.timeout)}});
  return pool;
}

SessionPool::~SessionPool() {
  std::shared_ptr<ExitLatch> latch = core_->latch;
  const auto wait = core_->timeout + std::chrono::seconds(1);
  {
    std::lock_guard<std::mutex> lock(core_->queue_mu);
    core_->stop = true;
  }
  core_->queue_cv.notify_all();
  core_.reset();
  std::unique_lock<std::mutex> lock(latch->mu);
  if (!latch->cv.wait_for(lock, wait, [&] { return latch->running == 0; })) {
    // A worker is stuck inside the module; it keeps the module alive and exits when it returns.
    log::Warn("pkcs11.shutdown_incomplete",
              {{"stuck_workers", static_cast<uint64_t>(latch->running)}});
  }
}

absl::Status SessionPool::Run(std::string_view what, Op op) {
  auto task = std::make_shared<Task>();
  task->op = std::move(op);
  task->deadline = Clock::now() + core_->timeout;
  std::future<absl::Status> done = task->done.get_future();
  {
    std::lock_guard<std::mutex> lock(core_->queue_mu);
    if (core_->stop) return absl::UnavailableError("PKCS#11 provider is shutting down");
    core_->queue.push_back(task);
  }
  core_->queue_cv.notify_one();
  if (done.wait_until(task->deadline) != std::future_status::ready) {
    return absl::UnavailableError(absl::StrCat(
        "PKCS#11 ", AV(what), " on token '", core_->token_label, "' did not complete within ",
        Ms(core_->timeout), " (no session free, or the module did not answer)"));
  }
  return done.get();
}

const std::string& SessionPool::token_label() const { return core_->token_label; }
const std::string& SessionPool::module_path() const { return core_->module->path(); }
std::chrono::milliseconds SessionPool::timeout() const { return core_->timeout; }

}  // namespace kshield::keys::pkcs11

// Test support: start a kshield binary as a child process in a temp dir, capture its output,
// wait for readiness by polling (never by sleeping a fixed time), signal it, and reap it.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace kshield::testing {

class ChildProcess {
 public:
  // argv[0] is the program path. stdout and stderr go to `log_path` (appended).
  // `setup_in_child`, if set, runs in the child between fork and exec (e.g. setuid for tests).
  ChildProcess(std::vector<std::string> argv, std::string log_path);
  ~ChildProcess();  // SIGKILL + reap if still running

  pid_t pid() const { return pid_; }
  bool running();
  void Signal(int sig);
  // Waits for exit; returns the exit status as from waitpid (use WIFEXITED etc), or -1 on timeout.
  int Wait(std::chrono::milliseconds timeout);

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
  int status_ = 0;
};

// Polls `ready` every 10 ms until it returns true or `timeout` passes.
bool WaitFor(const std::function<bool()>& ready, std::chrono::milliseconds timeout);

// Runs a command line (sh -c) and captures stdout+stderr; returns the exit status (WEXITSTATUS)
// or -1 if it could not run.
int RunCommand(const std::string& command, std::string* output);

// A free TCP port on 127.0.0.1 (bind to 0, read it back, close).
int FreeLoopbackPort();

std::string ReadWholeFile(const std::string& path);

// Raw HTTP GET on 127.0.0.1:port; returns the status code (or -1) and fills body.
int HttpGet(int port, const std::string& path, std::string* body);

}  // namespace kshield::testing

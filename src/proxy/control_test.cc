// The control socket: request/response, bounds, timeouts, socket and directory permissions, and
// the SO_PEERCRED checks on both ends (with a real second uid via setpriv when run as root).
#include "proxy/control.h"

#include <gtest/gtest.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/testing/temp_dir.h"
#include "support/process.h"

namespace kshield::kubectl {
namespace {

using nlohmann::json;

ControlHandler EchoHandler(std::atomic<int>* calls = nullptr) {
  return [calls](const json& req) -> absl::StatusOr<json> {
    if (calls) calls->fetch_add(1);
    if (req["op"] == "fail") return absl::NotFoundError("no such thing");
    if (req["op"] == "throw") return json{{"x", req.at("missing").get<std::string>()}};
    return json{{"echo", req["op"]}};
  };
}

// Raw client: sends `data` as is and returns what the server answered (until EOF).
std::string RawExchange(const std::string& path, const std::string& data, bool half_close) {
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  memcpy(addr.sun_path, path.data(), path.size());
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return "connect failed";
  }
  if (!data.empty()) (void)!send(fd, data.data(), data.size(), MSG_NOSIGNAL);
  if (half_close) shutdown(fd, SHUT_WR);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  close(fd);
  return out;
}

TEST(ControlTest, RequestAndReply) {
  testing::TempDir dir;
  const std::string path = dir.Sub("run/ctl.sock");
  std::atomic<int> calls{0};
  absl::StatusOr<std::unique_ptr<ControlServer>> server =
      ControlServer::Start({.path = path}, EchoHandler(&calls));
  ASSERT_TRUE(server.ok()) << server.status();
  absl::StatusOr<json> r = CallControl(path, {{"op", "hello"}});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ((*r)["ok"], true);
  EXPECT_EQ((*r)["echo"], "hello");

  r = CallControl(path, {{"op", "fail"}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(r.status().message(), "no such thing");

  // A handler that trips over a missing field answers an error instead of crashing.
  r = CallControl(path, {{"op", "throw"}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(calls.load(), 3);
  EXPECT_EQ((*server)->counters().served, 1u);
}

TEST(ControlTest, SocketAndDirectoryArePrivate) {
  testing::TempDir dir;
  const std::string path = dir.Sub("made/ctl.sock");
  auto server = ControlServer::Start({.path = path}, EchoHandler());
  ASSERT_TRUE(server.ok()) << server.status();
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(stat(dir.Sub("made").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  (*server)->Stop();
  EXPECT_NE(access(path.c_str(), F_OK), 0) << "socket not removed at Stop()";
}

TEST(ControlTest, DirectoryOthersCanWriteIsRefused) {
  testing::TempDir dir;
  ASSERT_EQ(mkdir(dir.Sub("open").c_str(), 0700), 0);
  ASSERT_EQ(chmod(dir.Sub("open").c_str(), 0777), 0);
  auto server = ControlServer::Start({.path = dir.Sub("open/ctl.sock")}, EchoHandler());
  ASSERT_FALSE(server.ok());
  EXPECT_NE(std::string(server.status().message()).find("chmod 700"), std::string::npos)
      << server.status();
  ASSERT_EQ(chmod(dir.Sub("open").c_str(), 0711), 0);  // others may enter, not write: fine
  EXPECT_TRUE(ControlServer::Start({.path = dir.Sub("open/ctl.sock")}, EchoHandler()).ok());
}

TEST(ControlTest, StaleSocketReplacedLiveOneRefused) {
  testing::TempDir dir;
  const std::string path = dir.Sub("ctl.sock");
  {
    // A stale socket file: bound, then the process "died" (closed without unlink).
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    memcpy(addr.sun_path, path.data(), path.size());
    ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    close(fd);
  }
  auto first = ControlServer::Start({.path = path}, EchoHandler());
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = ControlServer::Start({.path = path}, EchoHandler());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_TRUE(CallControl(path, {{"op", "still-first"}}).ok());
}

TEST(ControlTest, NonSocketAtPathIsNotReplaced) {
  testing::TempDir dir;
  ASSERT_TRUE(WriteFileAtomic(dir.Sub("ctl.sock"), "precious").ok());
  auto server = ControlServer::Start({.path = dir.Sub("ctl.sock")}, EchoHandler());
  ASSERT_FALSE(server.ok());
  EXPECT_NE(std::string(server.status().message()).find("not a socket"), std::string::npos);
  EXPECT_EQ(testing::ReadWholeFile(dir.Sub("ctl.sock")), "precious");
}

TEST(ControlTest, OversizedRequestRefused) {
  testing::TempDir dir;
  const std::string path = dir.Sub("ctl.sock");
  std::atomic<int> calls{0};
  auto server = ControlServer::Start({.path = path, .max_request_bytes = 4096},
                                     EchoHandler(&calls));
  ASSERT_TRUE(server.ok());
  absl::StatusOr<json> r = CallControl(path, {{"op", std::string(5000, 'x')}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(r.status().message()).find("larger than 4096"), std::string::npos)
      << r.status();
  // Also without a newline, streamed: refused once the bound is passed, not buffered forever.
  std::string reply = RawExchange(path, std::string(1 << 20, 'y'), false);
  EXPECT_NE(reply.find("larger than 4096"), std::string::npos) << reply.substr(0, 200);
  EXPECT_EQ(calls.load(), 0);
  EXPECT_EQ((*server)->counters().oversized, 2u);
  // A request just under the bound is served.
  EXPECT_TRUE(CallControl(path, {{"op", std::string(4000, 'x')}}).ok());
}

TEST(ControlTest, DefaultBoundIsOneMebibyte) {
  testing::TempDir dir;
  const std::string path = dir.Sub("ctl.sock");
  auto server = ControlServer::Start({.path = path}, EchoHandler());
  ASSERT_TRUE(server.ok());
  absl::StatusOr<json> r = CallControl(path, {{"op", "import"}, {"x", std::string(1 << 20, 'k')}});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(std::string(r.status().message()).find("larger than 1048576"), std::string::npos)
      << r.status();
}

TEST(ControlTest, MalformedRequests) {
  testing::TempDir dir;
  const std::string path = dir.Sub("ctl.sock");
  auto server = ControlServer::Start({.path = path}, EchoHandler());
  ASSERT_TRUE(server.ok());
  for (const std::string& bad : {std::string("not json\n"), std::string("[1,2]\n"),
                                 std::string("{\"op\": 5}\n"), std::string("{}\n"),
                                 std::string("{\"op\":\"x\"\n")}) {
    std::string reply = RawExchange(path, bad, true);
    json j = json::parse(reply, nullptr, false);
    ASSERT_TRUE(j.is_object()) << bad << " -> " << reply;
    EXPECT_EQ(j["ok"], false) << bad;
    EXPECT_EQ(j["code"], "INVALID_ARGUMENT") << bad;
  }
  EXPECT_EQ((*server)->counters().malformed, 5u);
}

TEST(ControlTest, SlowClientTimesOut) {
  testing::TempDir dir;
  const std::string path = dir.Sub("ctl.sock");
  auto server = ControlServer::Start({.path = path, .io_timeout = absl::Milliseconds(200)},
                                     EchoHandler());
  ASSERT_TRUE(server.ok());
  const absl::Time start = absl::Now();
  std::string reply = RawExchange(path, "{\"op\":", false);  // never finishes the line
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_NE(reply.find("DEADLINE_EXCEEDED"), std::string::npos) << reply;
  EXPECT_EQ((*server)->counters().timed_out, 1u);
}

TEST(ControlTest, NoDaemonIsUnavailableWithAHint) {
  testing::TempDir dir;
  absl::StatusOr<json> r = CallControl(dir.Sub("none.sock"), {{"op", "status"}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(std::string(r.status().message()).find("kshield-kubectl daemon --config"),
            std::string::npos);
}

TEST(ControlTest, StopWithOpenConnectionReturns) {
  testing::TempDir dir;
  const std::string path = dir.Sub("ctl.sock");
  auto server = ControlServer::Start({.path = path, .io_timeout = absl::Seconds(60)},
                                     EchoHandler());
  ASSERT_TRUE(server.ok());
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  memcpy(addr.sun_path, path.data(), path.size());
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  const absl::Time start = absl::Now();
  (*server)->Stop();
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  close(fd);
}

TEST(ControlTest, ScrubJson) {
  json j = {{"token", "abcdef"}, {"nested", {{"k", "secret"}}}, {"list", {"x1", 5}}};
  ScrubJson(&j);
  EXPECT_EQ(j["token"].get<std::string>(), std::string(6, '\0'));
  EXPECT_EQ(j["nested"]["k"].get<std::string>(), std::string(6, '\0'));
  EXPECT_EQ(j["list"][0].get<std::string>(), std::string(2, '\0'));
  EXPECT_EQ(j["list"][1], 5);
}

// --- another uid ---------------------------------------------------------------------------------

class OtherUidTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to run a client as another uid (setpriv)";
    if (access("/usr/bin/setpriv", X_OK) != 0) GTEST_SKIP() << "setpriv (util-linux) missing";
    passwd* pw = getpwnam("nobody");
    if (pw == nullptr) GTEST_SKIP() << "no user 'nobody'";
    nobody_ = pw->pw_uid;
    bin_ = std::string(KSHIELD_BIN_DIR) + "/kshield-kubectl";
    if (access(bin_.c_str(), X_OK) != 0) GTEST_SKIP() << bin_ << " not built";
    // nobody must be able to reach the socket so that the uid check (not the file mode) decides.
    ASSERT_EQ(chmod(dir_.path().c_str(), 0711), 0);
  }
  std::string AsNobody(const std::string& args, int* rc) {
    std::string out;
    *rc = testing::RunCommand("/usr/bin/setpriv --reuid=nobody --regid=nogroup --clear-groups " +
                                  bin_ + " " + args + " 2>&1",
                              &out);
    return out;
  }
  testing::TempDir dir_;
  uid_t nobody_ = 0;
  std::string bin_;
};

TEST_F(OtherUidTest, AnotherUidIsRefusedAndLogged) {
  const std::string path = dir_.Sub("ctl.sock");
  std::atomic<int> calls{0};
  auto server = ControlServer::Start({.path = path}, EchoHandler(&calls));
  ASSERT_TRUE(server.ok());
  ASSERT_EQ(chmod(path.c_str(), 0666), 0);  // open the file mode on purpose
  // The CLI as nobody: no token printed, a non-zero exit (here the client's own peer check
  // already refuses a daemon of another uid; the daemon refused it too).
  int rc = 0;
  std::string out = AsNobody("--socket " + path + " credential --cluster prod", &rc);
  EXPECT_NE(rc, 0) << out;
  EXPECT_EQ(out.find("ExecCredential"), std::string::npos) << out;
  ASSERT_TRUE(testing::WaitFor([&] { return (*server)->counters().refused_uid == 1; },
                               std::chrono::seconds(5)));
  // A raw client as nobody (no client-side check) gets the daemon's refusal line.
  if (access("/usr/bin/python3", X_OK) == 0) {
    rc = testing::RunCommand(
        "/usr/bin/setpriv --reuid=nobody --regid=nogroup --clear-groups /usr/bin/python3 -c "
        "'import socket,sys\ns=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])\n"
        "r=s.recv(4096)\n"
        "try:\n  s.sendall(b\"{\\\"op\\\":\\\"token\\\",\\\"cluster\\\":\\\"prod\\\"}\\n\")\n"
        "except OSError:\n  pass\n"
        "print(r.decode())' " +
            path + " 2>&1",
        &out);
    EXPECT_NE(out.find("permission denied: uid " + std::to_string(nobody_)), std::string::npos)
        << out;
    EXPECT_EQ((*server)->counters().refused_uid, 2u);
  }
  EXPECT_EQ(calls.load(), 0) << "the handler ran for another uid";
  // The daemon's own uid is still served.
  EXPECT_TRUE(CallControl(path, {{"op", "mine"}}).ok());
}

TEST_F(OtherUidTest, DefaultModeKeepsOthersOut) {
  const std::string path = dir_.Sub("ctl.sock");
  auto server = ControlServer::Start({.path = path}, EchoHandler());
  ASSERT_TRUE(server.ok());
  int rc = 0;
  std::string out = AsNobody("--socket " + path + " status", &rc);
  EXPECT_NE(rc, 0) << out;
  EXPECT_NE(out.find("Permission denied"), std::string::npos) << out;
  EXPECT_EQ((*server)->counters().refused_uid, 0u);  // it never got as far as connecting
}

TEST_F(OtherUidTest, ClientRefusesADaemonOfAnotherUid) {
  if (access("/usr/bin/python3", X_OK) != 0) GTEST_SKIP() << "python3 missing";
  const std::string sub = dir_.Sub("planted");
  ASSERT_EQ(mkdir(sub.c_str(), 0777), 0);
  ASSERT_EQ(chmod(sub.c_str(), 0777), 0);
  const std::string path = sub + "/ctl.sock";
  // Someone else listens where the client expects its daemon.
  testing::ChildProcess planted(
      {"/usr/bin/setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
       "/usr/bin/python3", "-c",
       "import socket,sys,os\n"
       "s=socket.socket(socket.AF_UNIX)\n"
       "s.bind(sys.argv[1]); os.chmod(sys.argv[1], 0o666); s.listen(4)\n"
       "while True:\n"
       "  c,_=s.accept(); d=c.recv(65536); open(sys.argv[1]+'.got','ab').write(d); c.close()\n",
       path},
      dir_.Sub("planted.log"));
  ASSERT_TRUE(testing::WaitFor([&] { return access(path.c_str(), F_OK) == 0; },
                               std::chrono::seconds(10)))
      << testing::ReadWholeFile(dir_.Sub("planted.log"));
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        struct stat st;
        return stat(path.c_str(), &st) == 0 && (st.st_mode & 0777) == 0666;
      },
      std::chrono::seconds(10)));
  absl::StatusOr<json> r = CallControl(path, {{"op", "import"}, {"kubeconfig", "SECRET-KEY"}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(std::string(r.status().message()).find("refusing to talk to it"), std::string::npos);
  // Nothing was sent to it.
  EXPECT_EQ(testing::ReadWholeFile(path + ".got").find("SECRET-KEY"), std::string::npos);
}

}  // namespace
}  // namespace kshield::kubectl

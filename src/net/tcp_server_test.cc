#include "net/tcp_server.h"

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <fcntl.h>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "boost/asio/connect.hpp"
#include "boost/asio/post.hpp"
#include "boost/asio/read.hpp"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "support/process.h"

namespace kshield::net {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using ::testing::HasSubstr;

constexpr auto kDeadline = std::chrono::seconds(10);

tcp::endpoint Loopback(uint16_t port) { return {asio::ip::make_address("127.0.0.1"), port}; }

TcpServerOptions Options(int threads = 1, size_t max_connections = 16) {
  TcpServerOptions o;
  o.threads = threads;
  o.max_connections = max_connections;
  o.accept_backoff = std::chrono::milliseconds(20);
  o.log_prefix = "tcp_server_test";
  o.error_prefix = "test: ";
  return o;
}

// A blocking client socket on its own io_context.
struct Client {
  asio::io_context ioc;
  tcp::socket socket{ioc};
  explicit Client(uint16_t port) { socket.connect(Loopback(port)); }
  // True when the server closed the connection (EOF or reset) within the receive timeout.
  bool SeesClose() {
    timeval tv{5, 0};
    setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char c;
    boost::system::error_code ec;
    socket.read_some(asio::buffer(&c, 1), ec);
    return ec == asio::error::eof || ec == asio::error::connection_reset;
  }
};

// A session that waits for bytes that never come: it stays pending until the server stops.
struct PendingSession : std::enable_shared_from_this<PendingSession> {
  PendingSession(tcp::socket s, std::atomic<int>* live) : socket(std::move(s)), live(live) {
    live->fetch_add(1);
  }
  ~PendingSession() { live->fetch_sub(1); }
  void Start() {
    socket.async_read_some(asio::buffer(buf),
                           [self = shared_from_this()](boost::system::error_code, size_t) {});
  }
  tcp::socket socket;
  std::atomic<int>* live;
  std::array<char, 16> buf;
};

struct Counters {
  std::atomic<int> accepted{0};
  std::atomic<int> overloaded{0};
  std::atomic<int> live{0};
};

absl::StatusOr<std::unique_ptr<TcpServer>> PendingServer(const tcp::endpoint& ep,
                                                         TcpServerOptions o, Counters* c) {
  return TcpServer::Listen(
      ep, std::move(o),
      [c](tcp::socket s, asio::io_context&, size_t) {
        c->accepted.fetch_add(1);
        std::make_shared<PendingSession>(std::move(s), &c->live)->Start();
      },
      [c] { return static_cast<size_t>(c->live.load()); }, [c] { c->overloaded.fetch_add(1); });
}

TEST(TcpServerTest, PortZeroGetsAPort) {
  Counters c;
  auto server = PendingServer(Loopback(0), Options(), &c);
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_NE((*server)->port(), 0);
  EXPECT_EQ((*server)->endpoint().port(), (*server)->port());
  ASSERT_TRUE((*server)->Run().ok());
  Client client((*server)->port());
  EXPECT_TRUE(testing::WaitFor([&] { return c.accepted.load() == 1; }, kDeadline));
}

TEST(TcpServerTest, AddressInUseIsUnavailable) {
  Counters c;
  auto first = PendingServer(Loopback(0), Options(), &c);
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = PendingServer(Loopback((*first)->port()), Options(), &c);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  const std::string msg(second.status().message());
  EXPECT_THAT(msg, HasSubstr("test: cannot listen on 127.0.0.1:"));
  EXPECT_THAT(msg, HasSubstr("bind: address already in use"));
}

TEST(TcpServerTest, AddressNotAvailableIsInvalidArgument) {
  Counters c;
  // TEST-NET-1 (RFC 5737): not configured on any interface here.
  auto server = PendingServer({asio::ip::make_address("192.0.2.1"), 0}, Options(), &c);
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument) << server.status();
  EXPECT_THAT(std::string(server.status().message()), HasSubstr("cannot assign requested address"));
}

TEST(TcpServerTest, PrivilegedPortIsPermissionDenied) {
  int start = 1024;
  if (FILE* f = std::fopen("/proc/sys/net/ipv4/ip_unprivileged_port_start", "r")) {
    if (std::fscanf(f, "%d", &start) != 1) start = 1024;
    std::fclose(f);
  }
  if (start <= 1) GTEST_SKIP() << "ip_unprivileged_port_start is " << start;
  // In a child, so that a root test run can drop to "nobody" for the bind.
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0)) _exit(10);
    if (geteuid() == 0) _exit(11);
    Counters c;
    auto server = PendingServer(Loopback(1), Options(), &c);
    if (server.ok()) _exit(12);
    if (server.status().code() != absl::StatusCode::kPermissionDenied) _exit(13);
    if (std::string(server.status().message()).find("bind: permission denied") ==
        std::string::npos) {
      _exit(14);
    }
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  if (WEXITSTATUS(status) == 10) GTEST_SKIP() << "cannot drop root privileges here";
  EXPECT_EQ(WEXITSTATUS(status), 0) << "child failed at step " << WEXITSTATUS(status);
}

TEST(TcpServerTest, BadOptionsAreRejected) {
  Counters c;
  EXPECT_EQ(PendingServer(Loopback(0), Options(0), &c).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PendingServer(Loopback(0), Options(65), &c).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PendingServer(Loopback(0), Options(1, 0), &c).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(TcpServer::Listen(Loopback(0), Options(), nullptr, [] { return size_t{0}; }, [] {})
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(TcpServerTest, ConnectionsAreDealtRoundRobinToOneThreadPerContext) {
  constexpr int kThreads = 3;
  std::mutex mu;
  std::vector<size_t> order;
  std::vector<bool> socket_on_context;
  std::vector<std::set<std::thread::id>> threads_of(kThreads);
  std::atomic<int> done{0};
  std::vector<std::shared_ptr<tcp::socket>> keep;
  auto server = TcpServer::Listen(
      Loopback(0), Options(kThreads),
      [&](tcp::socket s, asio::io_context& ioc, size_t index) {
        std::lock_guard<std::mutex> l(mu);
        order.push_back(index);
        socket_on_context.push_back(&asio::query(s.get_executor(), asio::execution::context) ==
                                    static_cast<asio::execution_context*>(&ioc));
        keep.push_back(std::make_shared<tcp::socket>(std::move(s)));
        asio::post(ioc, [&, index] {
          std::lock_guard<std::mutex> l2(mu);
          threads_of[index].insert(std::this_thread::get_id());
          done.fetch_add(1);
        });
      },
      [] { return size_t{0}; }, [] {});
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_TRUE((*server)->Run().ok());
  EXPECT_EQ((*server)->io_count(), size_t{kThreads});
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < 2 * kThreads; ++i) {
    clients.push_back(std::make_unique<Client>((*server)->port()));
    // One at a time, so the accept order is the connect order.
    ASSERT_TRUE(testing::WaitFor([&] { return done.load() == i + 1; }, kDeadline));
  }
  (*server)->Stop();
  std::lock_guard<std::mutex> l(mu);
  EXPECT_EQ(order, (std::vector<size_t>{0, 1, 2, 0, 1, 2}));
  for (bool on : socket_on_context) EXPECT_TRUE(on);
  std::set<std::thread::id> all;
  for (const auto& ids : threads_of) {
    EXPECT_EQ(ids.size(), 1u);  // each context runs on exactly one thread...
    all.insert(ids.begin(), ids.end());
  }
  EXPECT_EQ(all.size(), size_t{kThreads});  // ...and no two share one
  keep.clear();
}

TEST(TcpServerTest, OverloadClosesTheSocketAndCallsOnOverload) {
  Counters c;
  auto server = PendingServer(Loopback(0), Options(2, /*max_connections=*/1), &c);
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_TRUE((*server)->Run().ok());
  Client first((*server)->port());
  ASSERT_TRUE(testing::WaitFor([&] { return c.live.load() == 1; }, kDeadline));
  Client second((*server)->port());
  EXPECT_TRUE(second.SeesClose());
  EXPECT_EQ(c.overloaded.load(), 1);
  EXPECT_EQ(c.accepted.load(), 1);
  // The first connection is untouched, and once it is gone there is room again.
  (*server)->Stop();
  EXPECT_TRUE(first.SeesClose());
}

TEST(TcpServerTest, StopIsIdempotentJoinsAndDestroysPendingSessions) {
  Counters c;
  auto server = PendingServer(Loopback(0), Options(3), &c);
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_TRUE((*server)->Run().ok());
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < 5; ++i) clients.push_back(std::make_unique<Client>((*server)->port()));
  ASSERT_TRUE(testing::WaitFor([&] { return c.live.load() == 5; }, kDeadline));
  bool after_join_ran = false;
  (*server)->Stop([&] { after_join_ran = true; });
  EXPECT_TRUE(after_join_ran);
  EXPECT_EQ(c.live.load(), 0);  // every pending session was destroyed by the time Stop returned
  for (auto& client : clients) EXPECT_TRUE(client->SeesClose());
  bool ran_again = false;
  (*server)->Stop([&] { ran_again = true; });
  EXPECT_FALSE(ran_again);
  // The listener is closed: a new connection is refused.
  asio::io_context ioc;
  tcp::socket s(ioc);
  boost::system::error_code ec;
  s.connect(Loopback((*server)->port()), ec);
  EXPECT_EQ(ec, asio::error::connection_refused);
  EXPECT_FALSE((*server)->Run().ok());
  server->reset();  // destructor after Stop: nothing left to do
}

TEST(TcpServerTest, DestructorStopsARunningServer) {
  Counters c;
  {
    auto server = PendingServer(Loopback(0), Options(2), &c);
    ASSERT_TRUE(server.ok()) << server.status();
    ASSERT_TRUE((*server)->Run().ok());
    Client client((*server)->port());
    ASSERT_TRUE(testing::WaitFor([&] { return c.live.load() == 1; }, kDeadline));
  }
  EXPECT_EQ(c.live.load(), 0);
}

TEST(TcpServerTest, AnExceptionInAHandlerIsCaughtAndTheThreadGoesOn) {
  std::atomic<int> accepted{0};
  std::atomic<int> after{0};
  auto server = TcpServer::Listen(
      Loopback(0), Options(1),
      [&](tcp::socket, asio::io_context& ioc, size_t) {
        if (accepted.fetch_add(1) == 0) {
          asio::post(ioc, [] { throw std::runtime_error("boom"); });
        }
        asio::post(ioc, [&] { after.fetch_add(1); });
      },
      [] { return size_t{0}; }, [] {});
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_TRUE((*server)->Run().ok());
  Client a((*server)->port());
  ASSERT_TRUE(testing::WaitFor([&] { return after.load() == 1; }, kDeadline));
  Client b((*server)->port());
  EXPECT_TRUE(testing::WaitFor([&] { return after.load() == 2; }, kDeadline));
  EXPECT_EQ(accepted.load(), 2);
}

// EMFILE: in a forked child (so the fd limit stays there), fill the descriptor table, let a
// connection wait in the backlog, check that accept fails, is retried at the backoff pace (not
// spinning), and succeeds once descriptors are free again.
TEST(TcpServerTest, AcceptBacksOffOnEmfileAndRecovers) {
  int port_pipe[2];
  ASSERT_EQ(pipe(port_pipe), 0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(port_pipe[0]);
    std::atomic<int> accepted{0};
    auto server = TcpServer::Listen(
        Loopback(0), Options(1),
        [&](tcp::socket, asio::io_context&, size_t) { accepted.fetch_add(1); },
        [] { return size_t{0}; }, [] {});
    if (!server.ok()) _exit(10);
    rlimit lim{256, 256};
    if (setrlimit(RLIMIT_NOFILE, &lim) != 0) _exit(11);
    std::vector<int> fillers;
    const int null_fd = open("/dev/null", O_RDONLY);
    if (null_fd < 0) _exit(12);
    for (;;) {
      const int fd = dup(null_fd);
      if (fd < 0) break;
      fillers.push_back(fd);
    }
    if (errno != EMFILE) _exit(13);
    if (!(*server)->Run().ok()) _exit(14);  // thread creation needs no descriptor
    const uint16_t port = (*server)->port();
    if (write(port_pipe[1], &port, sizeof(port)) != sizeof(port)) _exit(15);
    // The parent connects now; accept fails with EMFILE and is retried every 20 ms.
    if (!testing::WaitFor([&] { return (*server)->accept_errors() >= 3; }, kDeadline)) _exit(16);
    const uint64_t before = (*server)->accept_errors();
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // measuring a rate, not syncing
    const uint64_t in_200ms = (*server)->accept_errors() - before;
    if (in_200ms > 30) _exit(17);  // 20 ms backoff: about 10; a spin would be thousands
    if (accepted.load() != 0) _exit(18);
    for (int i = 0; i < 4 && !fillers.empty(); ++i) {
      close(fillers.back());
      fillers.pop_back();
    }
    if (!testing::WaitFor([&] { return accepted.load() == 1; }, kDeadline)) _exit(19);
    (*server)->Stop();
    _exit(0);
  }
  close(port_pipe[1]);
  uint16_t port = 0;
  ASSERT_EQ(read(port_pipe[0], &port, sizeof(port)), static_cast<ssize_t>(sizeof(port)));
  close(port_pipe[0]);
  Client client(port);
  int status = 0;
  ASSERT_TRUE(testing::WaitFor(
      [&] { return waitpid(pid, &status, WNOHANG) == pid; }, std::chrono::seconds(30)));
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "child failed at step " << WEXITSTATUS(status);
}

}  // namespace
}  // namespace kshield::net

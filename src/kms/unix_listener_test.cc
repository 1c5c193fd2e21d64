#include "kms/unix_listener.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <fstream>

#include "common/testing/temp_dir.h"

namespace kshield::kms {
namespace {

TEST(UnixListenerTest, CreatesSocketWithModeAndRemovesOnStop) {
  testing::TempDir dir;
  UnixSocketOptions o;
  o.path = dir.Sub("run/kms.sock");
  auto l = UnixListener::Bind(o);
  ASSERT_TRUE(l.ok()) << l.status();
  struct stat st;
  ASSERT_EQ(lstat(o.path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ((*l)->grpc_target(), "unix:" + o.path);
  (*l)->Stop();
  EXPECT_NE(lstat(o.path.c_str(), &st), 0);
}

TEST(UnixListenerTest, ConfigurableMode) {
  testing::TempDir dir;
  UnixSocketOptions o;
  o.path = dir.Sub("kms.sock");
  o.mode = 0660;
  auto l = UnixListener::Bind(o);
  ASSERT_TRUE(l.ok());
  struct stat st;
  ASSERT_EQ(lstat(o.path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0660u);
}

TEST(UnixListenerTest, RemovesStaleSocket) {
  testing::TempDir dir;
  std::string path = dir.Sub("kms.sock");
  // A socket file nobody listens on (a crashed previous run).
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  close(fd);
  UnixSocketOptions o;
  o.path = path;
  auto l = UnixListener::Bind(o);
  ASSERT_TRUE(l.ok()) << l.status();
}

TEST(UnixListenerTest, RefusesToStealALiveSocket) {
  testing::TempDir dir;
  UnixSocketOptions o;
  o.path = dir.Sub("kms.sock");
  auto first = UnixListener::Bind(o);
  ASSERT_TRUE(first.ok());
  auto second = UnixListener::Bind(o);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find("another process"), std::string::npos);
}

TEST(UnixListenerTest, NeverDeletesARegularFile) {
  testing::TempDir dir;
  std::string path = dir.Sub("important.txt");
  {
    std::ofstream out(path);
    out << "data";
  }
  UnixSocketOptions o;
  o.path = path;
  auto l = UnixListener::Bind(o);
  ASSERT_FALSE(l.ok());
  EXPECT_NE(l.status().message().find("not a socket"), std::string::npos);
  std::ifstream in(path);
  std::string s;
  in >> s;
  EXPECT_EQ(s, "data");
}

TEST(UnixListenerTest, AbstractSocket) {
  UnixSocketOptions o;
  o.path = "@kshield-test-" + std::to_string(getpid());
  auto l = UnixListener::Bind(o);
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_EQ((*l)->grpc_target(), "unix-abstract:" + o.path.substr(1));
}

TEST(UnixListenerTest, PathTooLong) {
  UnixSocketOptions o;
  o.path = "/tmp/" + std::string(200, 'x');
  EXPECT_FALSE(UnixListener::Bind(o).ok());
}

TEST(UidAllowListTest, ParseAndAllow) {
  auto a = UidAllowList::Parse("0, 1000,root");
  ASSERT_TRUE(a.ok());
  EXPECT_TRUE(a->Allows(0));
  EXPECT_TRUE(a->Allows(1000));
  EXPECT_FALSE(a->Allows(65534));
  EXPECT_FALSE(UidAllowList::Parse("").ok());
  EXPECT_FALSE(UidAllowList::Parse("no-such-user-xyz").ok());
}

TEST(ParseFdPeerTest, Forms) {
  EXPECT_EQ(ParseFdPeer("fd:7"), 7);
  EXPECT_EQ(ParseFdPeer("fd:x"), std::nullopt);
  EXPECT_EQ(ParseFdPeer("unix:/x"), std::nullopt);
  EXPECT_EQ(ParseFdPeer("fd:-1"), std::nullopt);
}

}  // namespace
}  // namespace kshield::kms

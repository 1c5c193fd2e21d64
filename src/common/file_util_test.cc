#include "common/file_util.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/testing/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kshield {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr std::string_view kSecret = "pin-4711-do-not-print";

std::string Msg(const absl::Status& s) { return std::string(s.message()); }

class PrivateFileTest : public ::testing::Test {
 protected:
  std::string Write(const std::string& name, std::string_view content, mode_t mode) {
    const std::string path = dir_.Sub(name);
    EXPECT_TRUE(WriteFileAtomic(path, content, mode).ok());
    return path;
  }
  void Symlink(const std::string& target, const std::string& name) {
    ASSERT_EQ(symlink(target.c_str(), dir_.Sub(name).c_str()), 0) << name;
  }
  // What a kubelet makes in `volume` (a new directory under the temp dir) for a Secret with key
  // "pin" at `defaultMode`:
  //   pin -> ..data/pin,  ..data -> ..2026_11_28_06_00_00.123,  ..2026_11_28_06_00_00.123/pin
  std::string SecretVolume(const std::string& volume, std::string_view content, mode_t mode) {
    const std::string root = dir_.Sub(volume);
    const std::string stamp = "..2026_11_28_06_00_00.123";
    EXPECT_TRUE(MakeDirs(root + "/" + stamp, 0755).ok());
    EXPECT_TRUE(WriteFileAtomic(root + "/" + stamp + "/pin", content, mode).ok());
    EXPECT_EQ(symlink(stamp.c_str(), (root + "/..data").c_str()), 0);
    EXPECT_EQ(symlink("..data/pin", (root + "/pin").c_str()), 0);
    return root + "/pin";
  }

  testing::TempDir dir_;
};

TEST_F(PrivateFileTest, PlainPrivateFileIsAcceptedAndRead) {
  const std::string path = Write("pin", kSecret, 0600);
  EXPECT_TRUE(CheckPrivateFile(path).ok());
  auto pin = ReadPrivateFile(path, 1024);
  ASSERT_TRUE(pin.ok()) << pin.status();
  EXPECT_EQ(pin->UnsafeStringView(), kSecret);
  auto text = ReadPrivateFileBounded(path, 1024);
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(*text, kSecret);
  // 0400 is stricter, so fine too; an empty file reads as empty.
  EXPECT_TRUE(ReadPrivateFile(Write("ro", kSecret, 0400), 1024).ok());
  auto empty = ReadPrivateFile(Write("empty", "", 0600), 1024);
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
}

TEST_F(PrivateFileTest, GroupOrOtherBitsAreRefusedWithTheMode) {
  for (mode_t mode : {0640, 0604, 0620, 0602, 0644, 0440}) {
    const std::string path = Write("key", kSecret, mode);
    for (const absl::Status& s : {CheckPrivateFile(path), ReadPrivateFile(path, 1024).status(),
                                  ReadPrivateFileBounded(path, 1024).status()}) {
      EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << mode;
      char want[8];
      snprintf(want, sizeof(want), "%04o", mode);
      EXPECT_THAT(Msg(s), HasSubstr(absl::StrCat(path, " has mode ", want)));
      EXPECT_THAT(Msg(s), HasSubstr("chmod 600"));
      EXPECT_THAT(Msg(s), Not(HasSubstr(kSecret)));
    }
  }
}

TEST_F(PrivateFileTest, KubernetesSecretVolumeLayoutIsAccepted) {
  const std::string pin = SecretVolume("secret", kSecret, 0400);
  struct stat st;
  ASSERT_EQ(lstat(pin.c_str(), &st), 0);
  ASSERT_TRUE(S_ISLNK(st.st_mode));  // really through two symlinks
  EXPECT_TRUE(CheckPrivateFile(pin).ok()) << CheckPrivateFile(pin);
  auto read = ReadPrivateFile(pin, 1024);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->UnsafeStringView(), kSecret);

  // A Secret update: the kubelet writes a new timestamped directory and swaps ..data.
  const std::string root = dir_.Sub("secret");
  ASSERT_TRUE(MakeDirs(root + "/..2026_11_29_06_00_00.456", 0755).ok());
  ASSERT_TRUE(WriteFileAtomic(root + "/..2026_11_29_06_00_00.456/pin", "new-pin", 0400).ok());
  ASSERT_EQ(symlink("..2026_11_29_06_00_00.456", (root + "/..data_tmp").c_str()), 0);
  ASSERT_EQ(rename((root + "/..data_tmp").c_str(), (root + "/..data").c_str()), 0);
  read = ReadPrivateFile(pin, 1024);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->UnsafeStringView(), "new-pin");
}

TEST_F(PrivateFileTest, SecretVolumeWithDefaultModeOrFsGroupIsRefused) {
  // The kubelet's default defaultMode (0644), and what fsGroup makes of 0400 (0440).
  for (mode_t mode : {0644, 0440}) {
    const std::string volume = absl::StrCat("v", mode);
    const std::string pin = SecretVolume(volume, kSecret, mode);
    absl::Status s = CheckPrivateFile(pin);
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
    char want[8];
    snprintf(want, sizeof(want), "%04o", mode);
    EXPECT_THAT(Msg(s), HasSubstr(absl::StrCat("has mode ", want)));
    // The message names the opened file behind the links and says what the volume needs.
    EXPECT_THAT(Msg(s), HasSubstr(absl::StrCat(pin, " (a symlink to ", dir_.Sub(volume),
                                               "/..2026_11_28_06_00_00.123/pin)")));
    EXPECT_THAT(Msg(s), HasSubstr("defaultMode 0400 and no fsGroup"));
    EXPECT_THAT(Msg(ReadPrivateFile(pin, 1024).status()), Not(HasSubstr(kSecret)));
  }
}

TEST_F(PrivateFileTest, SymlinkToAGroupReadableFileIsRefused) {
  Write("real", kSecret, 0640);
  Symlink("real", "link");
  absl::Status s = CheckPrivateFile(dir_.Sub("link"));
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Msg(s), HasSubstr(dir_.Sub("link") + " (a symlink to " + dir_.Sub("real") +
                                ") has mode 0640"));
  EXPECT_FALSE(ReadPrivateFile(dir_.Sub("link"), 1024).ok());
}

TEST_F(PrivateFileTest, SymlinkToAnotherUsersFileIsRefused) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to give a file to another uid";
  const std::string real = Write("real", kSecret, 0600);
  ASSERT_EQ(chown(real.c_str(), 4242, 4242), 0);
  Symlink("real", "link");
  for (const std::string& path : {real, dir_.Sub("link")}) {
    absl::Status s = CheckPrivateFile(path);
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << path;
    EXPECT_THAT(Msg(s), HasSubstr("is owned by uid 4242, not by this process (uid 0) or root"));
    EXPECT_FALSE(ReadPrivateFile(path, 1024).ok());
  }
}

TEST_F(PrivateFileTest, DanglingSymlinkIsRefusedNamingItsTarget) {
  Symlink("..data/pin", "pin");
  absl::Status s = CheckPrivateFile(dir_.Sub("pin"));
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Msg(s), HasSubstr(dir_.Sub("pin") +
                                " is a dangling symlink (to ..data/pin, which does not exist)"));
  EXPECT_EQ(ReadPrivateFile(dir_.Sub("pin"), 1024).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(PrivateFileTest, MissingFileIsNotFound) {
  absl::Status s = CheckPrivateFile(dir_.Sub("absent"));
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Msg(s), HasSubstr(dir_.Sub("absent")));
}

TEST_F(PrivateFileTest, SymlinkToADirectoryIsRefused) {
  ASSERT_TRUE(MakeDirs(dir_.Sub("d"), 0700).ok());
  Symlink("d", "link");
  absl::Status s = CheckPrivateFile(dir_.Sub("link"));
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Msg(s), HasSubstr("(a symlink to " + dir_.Sub("d") + ") is a directory"));
  EXPECT_THAT(Msg(CheckPrivateFile(dir_.Sub("d"))), HasSubstr("is a directory"));
}

TEST_F(PrivateFileTest, FifoIsRefusedWithoutBlocking) {
  // A blocking open would wait here for a writer forever.
  ASSERT_EQ(mkfifo(dir_.Sub("fifo").c_str(), 0600), 0);
  Symlink("fifo", "link");
  for (const std::string& path : {dir_.Sub("fifo"), dir_.Sub("link")}) {
    absl::Status s = CheckPrivateFile(path);
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(Msg(s), HasSubstr("is a FIFO; a private file must be a regular file"));
    EXPECT_FALSE(ReadPrivateFile(path, 1024).ok());
  }
}

TEST_F(PrivateFileTest, SocketAndDeviceAreRefused) {
  const std::string sock = dir_.Sub("s");
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  ASSERT_LT(sock.size(), sizeof(addr.sun_path));
  memcpy(addr.sun_path, sock.c_str(), sock.size() + 1);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  chmod(sock.c_str(), 0600);
  EXPECT_THAT(Msg(CheckPrivateFile(sock)), HasSubstr("is a socket"));
  close(fd);
  EXPECT_THAT(Msg(CheckPrivateFile("/dev/null")), HasSubstr("is a character device"));
}

TEST_F(PrivateFileTest, SymlinkLoopIsRefused) {
  Symlink("b", "a");
  Symlink("a", "b");
  absl::Status s = CheckPrivateFile(dir_.Sub("a"));
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(Msg(s), HasSubstr(dir_.Sub("a")));
}

TEST_F(PrivateFileTest, SizeLimit) {
  const std::string path = Write("big", std::string(100, 'x'), 0600);
  EXPECT_TRUE(ReadPrivateFile(path, 100).ok());
  absl::Status s = ReadPrivateFile(path, 99).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(s), HasSubstr("is 100 bytes, more than the 99 allowed"));
  EXPECT_FALSE(ReadPrivateFileBounded(path, 99).ok());
}

}  // namespace
}  // namespace kshield

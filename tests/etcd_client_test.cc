// kshield::etcd::Client against a real etcd 3.4 started on free loopback ports.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/testing/temp_dir.h"
#include "etcd/client.h"
#include "etcd_server_fixture.h"
#include "gtest/gtest.h"

namespace kshield::etcd {
namespace {

using ::kshield::testing::EtcdServer;
using ::kshield::testing::TempDir;
using ::kshield::testing::WaitFor;

std::string Key(const char* fmt, int i) {
  char buf[128];
  std::snprintf(buf, sizeof(buf), fmt, i);
  return buf;
}

// One etcd per test case keeps the cases independent (each starts in well under a second).
class EtcdClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!EtcdServer::Available()) GTEST_SKIP() << EtcdServer::SkipReason();
    server_ = std::make_unique<EtcdServer>(dir_.path());
    absl::Status s = server_->Start();
    ASSERT_TRUE(s.ok()) << s;
    auto c = Client::Create(server_->ClientOptions());
    ASSERT_TRUE(c.ok()) << c.status();
    client_ = std::move(*c);
  }

  TempDir dir_;
  std::unique_ptr<EtcdServer> server_;
  std::unique_ptr<Client> client_;
};

TEST(EtcdClientOptionsTest, RejectsBadOptions) {
  ClientOptions o;
  o.endpoints = {};
  EXPECT_EQ(Client::Create(o).status().code(), absl::StatusCode::kInvalidArgument);
  for (const char* bad : {"unix:///tmp/etcd.sock", "127.0.0.1", "http://127.0.0.1:", "host:abc",
                          "https://:2379", "http://127.0.0.1:2379/path"}) {
    o.endpoints = {bad};
    EXPECT_EQ(Client::Create(o).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  o.endpoints = {"127.0.0.1:2379"};
  o.cert_file = "/nonexistent/client.pem";  // without a key
  EXPECT_EQ(Client::Create(o).status().code(), absl::StatusCode::kInvalidArgument);
  // Plain http with TLS files configured is refused rather than silently unencrypted.
  o = ClientOptions();
  o.endpoints = {"http://127.0.0.1:2379"};
  o.ca_file = "/nonexistent/ca.pem";
  EXPECT_EQ(Client::Create(o).status().code(), absl::StatusCode::kInvalidArgument);
  o = ClientOptions();
  o.max_receive_message_bytes = 1 << 20;
  EXPECT_EQ(Client::Create(o).status().code(), absl::StatusCode::kInvalidArgument);
  // Missing TLS files are reported at Create.
  o = ClientOptions();
  o.endpoints = {"https://127.0.0.1:2379"};
  o.ca_file = "/nonexistent/ca.pem";
  EXPECT_FALSE(Client::Create(o).ok());
}

TEST(EtcdClientOptionsTest, PrefixRangeEnd) {
  EXPECT_EQ(PrefixRangeEnd("/registry/secrets/"), "/registry/secrets0");
  EXPECT_EQ(PrefixRangeEnd("a\xff"), "b");
  EXPECT_EQ(PrefixRangeEnd("\xff\xff"), std::string(1, '\0'));
  EXPECT_EQ(PrefixRangeEnd(""), std::string(1, '\0'));
}

TEST_F(EtcdClientTest, PutGetDelete) {
  auto missing = client_->Get("/t/k");
  ASSERT_TRUE(missing.ok()) << missing.status();
  EXPECT_FALSE(missing->has_value());

  std::string value("binary\0value\xff", 13);
  auto rev = client_->Put("/t/k", value);
  ASSERT_TRUE(rev.ok()) << rev.status();
  auto got = client_->Get("/t/k");
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ((*got)->key, "/t/k");
  EXPECT_EQ((*got)->value, value);
  EXPECT_EQ((*got)->mod_revision, *rev);
  EXPECT_EQ((*got)->create_revision, *rev);
  EXPECT_EQ((*got)->version, 1);

  auto rev2 = client_->Put("/t/k", "second");
  ASSERT_TRUE(rev2.ok());
  EXPECT_GT(*rev2, *rev);
  got = client_->Get("/t/k");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->value, "second");
  EXPECT_EQ((*got)->version, 2);
  EXPECT_EQ((*got)->create_revision, *rev);

  auto deleted = client_->Delete("/t/k");
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  EXPECT_EQ(*deleted, 1);
  got = client_->Get("/t/k");
  ASSERT_TRUE(got.ok());
  EXPECT_FALSE(got->has_value());
  deleted = client_->Delete("/t/k");
  ASSERT_TRUE(deleted.ok());
  EXPECT_EQ(*deleted, 0);

  EXPECT_EQ(client_->Put("", "x").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(EtcdClientTest, LargeValuesAndPagesLargerThanTheMessageLimit) {
  // Secrets go up to 1.5 MiB (etcd's default --max-request-bytes); eight of them exceed an 8 MiB
  // receive limit in one page, so RangePrefix must shrink its pages.
  ClientOptions o = server_->ClientOptions();
  o.max_receive_message_bytes = 8 << 20;
  auto c = Client::Create(o);
  ASSERT_TRUE(c.ok());
  const size_t kSize = 1400 * 1024;
  for (int i = 0; i < 8; ++i) {
    std::string v(kSize, static_cast<char>('a' + i));
    auto r = (*c)->Put(Key("/big/%d", i), v);
    ASSERT_TRUE(r.ok()) << r.status();
  }
  auto one = (*c)->Get("/big/3");
  ASSERT_TRUE(one.ok() && one->has_value()) << one.status();
  EXPECT_EQ((*one)->value, std::string(kSize, 'd'));

  // One Range of everything exceeds the limit...
  auto all = (*c)->Range("/big/", PrefixRangeEnd("/big/"));
  EXPECT_EQ(all.status().code(), absl::StatusCode::kResourceExhausted);
  // ... RangePrefix still reads every value.
  int seen = 0;
  auto rev = (*c)->RangePrefix("/big/", 100, [&](const std::vector<KeyValue>& kvs) {
    for (const KeyValue& kv : kvs) {
      EXPECT_EQ(kv.key, Key("/big/%d", seen));
      EXPECT_EQ(kv.value, std::string(kSize, static_cast<char>('a' + seen)));
      ++seen;
    }
    return absl::OkStatus();
  });
  ASSERT_TRUE(rev.ok()) << rev.status();
  EXPECT_EQ(seen, 8);
}

TEST_F(EtcdClientTest, RangePrefixPaginatesInKeyOrderOverOneSnapshot) {
  constexpr int kKeys = 2500;
  // Neighbours just outside the prefix must not show up.
  ASSERT_TRUE(client_->Put("/reg/secret", "outside").ok());
  ASSERT_TRUE(client_->Put("/reg/secrets0", "outside").ok());
  ASSERT_TRUE(client_->Put("/reg/secretsx", "outside").ok());
  // Writers in parallel: each Put is one raft round trip.
  std::vector<std::thread> writers;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t) {
    writers.emplace_back([&, t] {
      for (int i = t; i < kKeys; i += 4) {
        if (!client_->Put(Key("/reg/secrets/ns/s%05d", i), Key("v%d", i)).ok()) ++failures;
      }
    });
  }
  for (auto& w : writers) w.join();
  ASSERT_EQ(failures.load(), 0);

  int pages = 0;
  int next = 0;
  bool wrote_during_walk = false;
  auto rev = client_->RangePrefix("/reg/secrets/", 100, [&](const std::vector<KeyValue>& kvs) {
    ++pages;
    EXPECT_LE(kvs.size(), 100u);
    for (const KeyValue& kv : kvs) {
      EXPECT_EQ(kv.key, Key("/reg/secrets/ns/s%05d", next));
      EXPECT_EQ(kv.value, Key("v%d", next));
      ++next;
    }
    if (!wrote_during_walk) {
      // Written after the snapshot revision: the walk must not see it.
      wrote_during_walk = true;
      EXPECT_TRUE(client_->Put("/reg/secrets/ns/s99999", "late").ok());
    }
    return absl::OkStatus();
  });
  ASSERT_TRUE(rev.ok()) << rev.status();
  EXPECT_EQ(next, kKeys);
  EXPECT_EQ(pages, kKeys / 100);
  EXPECT_GT(*rev, 0);

  // A callback error stops the walk and is returned.
  int calls = 0;
  auto stopped = client_->RangePrefix("/reg/secrets/", 100, [&](const std::vector<KeyValue>&) {
    ++calls;
    return absl::CancelledError("enough");
  });
  EXPECT_EQ(stopped.status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(calls, 1);

  // Range: limit, more, count.
  auto r = client_->Range("/reg/secrets/", PrefixRangeEnd("/reg/secrets/"), 10);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->kvs.size(), 10u);
  EXPECT_TRUE(r->more);
  EXPECT_EQ(r->count, kKeys + 1);
  // An old revision reads the past.
  auto past = client_->Range("/reg/secrets/ns/s99999", "", 0, *rev);
  ASSERT_TRUE(past.ok()) << past.status();
  EXPECT_TRUE(past->kvs.empty());
}

TEST_F(EtcdClientTest, CompareAndSwapNeverOverwritesAConcurrentWrite) {
  ASSERT_TRUE(client_->Put("/cas/k", "v1").ok());
  auto read = client_->Get("/cas/k");
  ASSERT_TRUE(read.ok() && read->has_value());
  // A concurrent writer (the apiserver) updates the key between our read and our write.
  auto other = client_->Put("/cas/k", "apiserver-write");
  ASSERT_TRUE(other.ok());
  auto stale = client_->CompareAndSwap("/cas/k", (*read)->mod_revision, "rewrapped");
  ASSERT_TRUE(stale.ok()) << stale.status();
  EXPECT_FALSE(stale->succeeded);
  ASSERT_TRUE(stale->current.has_value());
  EXPECT_EQ(stale->current->value, "apiserver-write");
  EXPECT_EQ(stale->current->mod_revision, *other);
  auto now = client_->Get("/cas/k");
  ASSERT_TRUE(now.ok() && now->has_value());
  EXPECT_EQ((*now)->value, "apiserver-write");

  // With the fresh revision it succeeds, and the result names the new mod_revision.
  auto fresh = client_->CompareAndSwap("/cas/k", stale->current->mod_revision, "rewrapped");
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  EXPECT_TRUE(fresh->succeeded);
  EXPECT_FALSE(fresh->current.has_value());
  now = client_->Get("/cas/k");
  ASSERT_TRUE(now.ok() && now->has_value());
  EXPECT_EQ((*now)->value, "rewrapped");
  EXPECT_EQ((*now)->mod_revision, fresh->revision);

  // CAS on a deleted key with an old revision fails and reports the key as absent.
  ASSERT_TRUE(client_->Delete("/cas/k").ok());
  auto gone = client_->CompareAndSwap("/cas/k", fresh->revision, "resurrected");
  ASSERT_TRUE(gone.ok());
  EXPECT_FALSE(gone->succeeded);
  EXPECT_FALSE(gone->current.has_value());
  now = client_->Get("/cas/k");
  ASSERT_TRUE(now.ok());
  EXPECT_FALSE(now->has_value());
}

TEST_F(EtcdClientTest, CompareAndSwapLosesNoUpdateUnderContention) {
  // Four threads each add 25 to a counter by read-modify-CAS; any lost update shows in the sum.
  ASSERT_TRUE(client_->Put("/cas/counter", "0").ok());
  constexpr int kThreads = 4, kIncrements = 25;
  std::atomic<int> conflicts{0}, errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kIncrements; ++i) {
        for (;;) {
          auto kv = client_->Get("/cas/counter");
          if (!kv.ok() || !kv->has_value()) {
            ++errors;
            return;
          }
          int n = std::stoi((*kv)->value);
          auto r =
              client_->CompareAndSwap("/cas/counter", (*kv)->mod_revision, std::to_string(n + 1));
          if (!r.ok()) {
            ++errors;
            return;
          }
          if (r->succeeded) break;
          ++conflicts;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_EQ(errors.load(), 0);
  auto final_kv = client_->Get("/cas/counter");
  ASSERT_TRUE(final_kv.ok() && final_kv->has_value());
  EXPECT_EQ((*final_kv)->value, std::to_string(kThreads * kIncrements));
  RecordProperty("cas_conflicts", conflicts.load());
}

TEST_F(EtcdClientTest, CreateIfAbsent) {
  auto first = client_->CreateIfAbsent("/lock/keyset", "owner-a");
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE(first->succeeded);
  auto second = client_->CreateIfAbsent("/lock/keyset", "owner-b");
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_FALSE(second->succeeded);
  ASSERT_TRUE(second->current.has_value());
  EXPECT_EQ(second->current->value, "owner-a");
  EXPECT_EQ(second->current->create_revision, first->revision);
  auto kv = client_->Get("/lock/keyset");
  ASSERT_TRUE(kv.ok() && kv->has_value());
  EXPECT_EQ((*kv)->value, "owner-a");
  // CAS with revision 0 is the same thing.
  auto cas0 = client_->CompareAndSwap("/lock/other", 0, "x");
  ASSERT_TRUE(cas0.ok());
  EXPECT_TRUE(cas0->succeeded);
}

struct EventLog {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<Event> events;

  WatchCallback Callback() {
    return [this](const std::vector<Event>& batch) {
      std::lock_guard<std::mutex> lock(mu);
      events.insert(events.end(), batch.begin(), batch.end());
      cv.notify_all();
    };
  }
  bool WaitForCount(size_t n, std::chrono::seconds timeout = std::chrono::seconds(10)) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, timeout, [&] { return events.size() >= n; });
  }
  std::vector<Event> Snapshot() {
    std::lock_guard<std::mutex> lock(mu);
    return events;
  }
};

TEST_F(EtcdClientTest, WatchSeesPutsAndDeletesInOrderFromAStartRevision) {
  auto r1 = client_->Put("/w/a", "1");
  ASSERT_TRUE(r1.ok());
  ASSERT_TRUE(client_->Put("/w/b", "2").ok());
  ASSERT_TRUE(client_->Put("/other", "not watched").ok());
  ASSERT_TRUE(client_->Delete("/w/a").ok());

  EventLog log;
  auto watcher = client_->Watch("/w/", *r1, log.Callback());
  ASSERT_TRUE(watcher.ok()) << watcher.status();
  // Live events after Watch() returned.
  auto r5 = client_->Put("/w/c", "3");
  ASSERT_TRUE(r5.ok());
  ASSERT_TRUE(log.WaitForCount(4)) << "got " << log.Snapshot().size() << " events";
  std::vector<Event> ev = log.Snapshot();
  ASSERT_EQ(ev.size(), 4u);
  EXPECT_EQ(ev[0].type, Event::Type::kPut);
  EXPECT_EQ(ev[0].kv.key, "/w/a");
  EXPECT_EQ(ev[0].kv.value, "1");
  EXPECT_EQ(ev[0].kv.mod_revision, *r1);
  EXPECT_EQ(ev[1].type, Event::Type::kPut);
  EXPECT_EQ(ev[1].kv.key, "/w/b");
  EXPECT_EQ(ev[2].type, Event::Type::kDelete);
  EXPECT_EQ(ev[2].kv.key, "/w/a");
  EXPECT_EQ(ev[3].type, Event::Type::kPut);
  EXPECT_EQ(ev[3].kv.key, "/w/c");
  EXPECT_EQ(ev[3].kv.mod_revision, *r5);
  for (size_t i = 1; i < ev.size(); ++i)
    EXPECT_GT(ev[i].kv.mod_revision, ev[i - 1].kv.mod_revision);
  EXPECT_TRUE((*watcher)->status().ok());
  EXPECT_FALSE((*watcher)->done());

  // After Cancel no callback runs.
  (*watcher)->Cancel();
  EXPECT_TRUE((*watcher)->done());
  ASSERT_TRUE(client_->Put("/w/d", "4").ok());
  // Prove the write happened and had time to be delivered to any watcher: a second watch sees it.
  EventLog log2;
  auto w2 = client_->Watch("/w/d", 0, log2.Callback());
  ASSERT_TRUE(w2.ok());
  auto rd = client_->Put("/w/d", "5");
  ASSERT_TRUE(rd.ok());
  ASSERT_TRUE(log2.WaitForCount(1));
  EXPECT_EQ(log.Snapshot().size(), 4u);
}

TEST_F(EtcdClientTest, WatchFromACompactedRevisionIsRefused) {
  // Our client has no Compact call (kshield never compacts); etcdctl from etcd-client does it.
  if (access("/usr/bin/etcdctl", X_OK) != 0) GTEST_SKIP() << "etcdctl (etcd-client) not installed";
  auto r1 = client_->Put("/wc/a", "1");
  ASSERT_TRUE(r1.ok());
  auto r2 = client_->Put("/wc/a", "2");
  ASSERT_TRUE(r2.ok());
  std::string out;
  int rc = ::kshield::testing::RunCommand(
      absl::StrCat("ETCDCTL_API=3 /usr/bin/etcdctl --endpoints=", server_->url(), " compact ", *r2),
      &out);
  ASSERT_EQ(rc, 0) << out;
  // etcd confirms a watch on a compacted revision and cancels it right after: the watch ends
  // with OUT_OF_RANGE, reported through on_end and status(); no event is delivered.
  EventLog log;
  std::mutex mu;
  std::condition_variable cv;
  std::vector<absl::Status> ends;
  auto w = client_->Watch("/wc/", *r1, log.Callback(), [&](const absl::Status& why) {
    std::lock_guard<std::mutex> lock(mu);
    ends.push_back(why);
    cv.notify_all();
  });
  if (w.ok()) {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return !ends.empty(); }));
    EXPECT_EQ(ends.size(), 1u);
    EXPECT_EQ(ends[0].code(), absl::StatusCode::kOutOfRange) << ends[0];
    EXPECT_TRUE((*w)->done());
    EXPECT_EQ((*w)->status().code(), absl::StatusCode::kOutOfRange);
  } else {
    EXPECT_EQ(w.status().code(), absl::StatusCode::kOutOfRange) << w.status();
  }
  EXPECT_TRUE(log.Snapshot().empty());
  // Reading at a compacted revision fails too.
  EXPECT_EQ(client_->Range("/wc/a", "", 0, *r1).status().code(), absl::StatusCode::kOutOfRange);
}

TEST_F(EtcdClientTest, LeaseExpiryDeletesTheKey) {
  auto lease = client_->GrantLease(2);
  ASSERT_TRUE(lease.ok()) << lease.status();
  EXPECT_NE(lease->id, 0);
  EXPECT_GE(lease->ttl_seconds, 2);
  ASSERT_TRUE(client_->Put("/lease/k", "v", lease->id).ok());
  auto kv = client_->Get("/lease/k");
  ASSERT_TRUE(kv.ok() && kv->has_value());
  EXPECT_EQ((*kv)->lease, lease->id);
  auto ttl = client_->KeepAliveOnce(lease->id);
  ASSERT_TRUE(ttl.ok()) << ttl.status();
  EXPECT_GT(*ttl, 0);

  EXPECT_TRUE(WaitFor(
      [&] {
        auto g = client_->Get("/lease/k");
        return g.ok() && !g->has_value();
      },
      std::chrono::seconds(20)));
  EXPECT_EQ(client_->KeepAliveOnce(lease->id).status().code(), absl::StatusCode::kNotFound);

  // Revoke deletes at once.
  auto l2 = client_->GrantLease(60);
  ASSERT_TRUE(l2.ok());
  ASSERT_TRUE(client_->Put("/lease/k2", "v", l2->id).ok());
  ASSERT_TRUE(client_->RevokeLease(l2->id).ok());
  auto g = client_->Get("/lease/k2");
  ASSERT_TRUE(g.ok());
  EXPECT_FALSE(g->has_value());
  EXPECT_EQ(client_->RevokeLease(l2->id).code(), absl::StatusCode::kNotFound);
  // Put with an unknown lease is refused by the server.
  EXPECT_FALSE(client_->Put("/lease/k3", "v", 12345).ok());
  EXPECT_EQ(client_->GrantLease(0).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(EtcdClientTest, TxnWithUnknownOutcomeIsReportedNotRetried) {
  // A frozen etcd accepts the request bytes into its socket but never answers: the Txn's outcome
  // is unknown (once thawed, etcd may still apply it), so it must not be retried elsewhere.
  ClientOptions o = server_->ClientOptions();
  o.endpoints = {server_->url(), server_->url()};
  o.timeout = std::chrono::milliseconds(1000);
  auto c = Client::Create(o);
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE((*c)->Put("/u/k", "v1").ok());  // connects the first channel
  auto kv = (*c)->Get("/u/k");
  ASSERT_TRUE(kv.ok() && kv->has_value());
  ASSERT_EQ(kill(server_->pid(), SIGSTOP), 0);
  auto start = std::chrono::steady_clock::now();
  auto r = (*c)->CompareAndSwap("/u/k", (*kv)->mod_revision, "v2");
  auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_EQ(kill(server_->pid(), SIGCONT), 0);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(IsOutcomeUnknown(r.status())) << r.status();
  EXPECT_NE(std::string(r.status().message()).find("outcome unknown"), std::string::npos);
  EXPECT_NE(std::string(r.status().message()).find(server_->endpoint()), std::string::npos);
  // One attempt only (the second endpoint was not tried): about one timeout, not two.
  EXPECT_LT(elapsed, std::chrono::milliseconds(1900));
  // Either outcome is possible once etcd runs again; the value is one of the two, never torn.
  auto after = (*c)->Get("/u/k");
  ASSERT_TRUE(after.ok() && after->has_value()) << after.status();
  EXPECT_TRUE((*after)->value == "v1" || (*after)->value == "v2");
  EXPECT_FALSE(IsOutcomeUnknown(absl::UnknownError("other")));
}

TEST_F(EtcdClientTest, FailoverToTheSecondEndpointWhenTheFirstIsDead) {
  ClientOptions o = server_->ClientOptions();
  const std::string dead = absl::StrCat("127.0.0.1:", ::kshield::testing::FreeLoopbackPort());
  o.endpoints = {"http://" + dead, server_->url()};
  o.timeout = std::chrono::seconds(2);
  auto c = Client::Create(o);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ((*c)->current_endpoint(), dead);
  auto put = (*c)->Put("/f/k", "v");
  ASSERT_TRUE(put.ok()) << put.status();
  EXPECT_EQ((*c)->current_endpoint(), server_->endpoint());
  auto got = (*c)->Get("/f/k");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->value, "v");

  // A fresh client: a Txn also fails over, because the dead endpoint never connected (so the
  // Txn was provably not sent there).
  auto c2 = Client::Create(o);
  ASSERT_TRUE(c2.ok());
  auto cas = (*c2)->CompareAndSwap("/f/k", (*got)->mod_revision, "v2");
  ASSERT_TRUE(cas.ok()) << cas.status();
  EXPECT_TRUE(cas->succeeded);
  auto c3 = Client::Create(o);
  ASSERT_TRUE(c3.ok());
  EventLog log;
  auto w = (*c3)->Watch("/f/", 0, log.Callback());
  ASSERT_TRUE(w.ok()) << w.status();
  ASSERT_TRUE((*c3)->Put("/f/k", "v3").ok());
  ASSERT_TRUE(log.WaitForCount(1));
  auto l = (*c3)->GrantLease(30);
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_TRUE((*c3)->KeepAliveOnce(l->id).ok());
  EXPECT_TRUE((*c3)->RevokeLease(l->id).ok());
}

TEST_F(EtcdClientTest, RestartedServerIsFoundAgain) {
  ASSERT_TRUE(client_->Put("/r/k", "v").ok());
  std::mutex mu;
  std::condition_variable cv;
  std::optional<absl::Status> ended;
  auto w = client_->Watch(
      "/r/", 0, [](const std::vector<Event>&) {},
      [&](const absl::Status& s) {
        std::lock_guard<std::mutex> lock(mu);
        ended = s;
        cv.notify_all();
      });
  ASSERT_TRUE(w.ok()) << w.status();
  server_->Stop();
  {
    // The watch does not survive its server: it ends with an error, reported once.
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return ended.has_value(); }));
    EXPECT_FALSE(ended->ok());
    EXPECT_TRUE((*w)->done());
  }
  auto down = client_->Get("/r/k");
  EXPECT_EQ(down.status().code(), absl::StatusCode::kUnavailable) << down.status();
  ASSERT_TRUE(server_->Start().ok());
  // Reconnect backoff is capped at 2 s.
  EXPECT_TRUE(WaitFor(
      [&] {
        auto g = client_->Get("/r/k");
        return g.ok() && g->has_value() && (*g)->value == "v";
      },
      std::chrono::seconds(10)));
}

TEST(EtcdClientDeadTest, AllEndpointsDeadIsAClearUnavailableErrorWithinTheTimeout) {
  ClientOptions o;
  const std::string a = absl::StrCat("127.0.0.1:", ::kshield::testing::FreeLoopbackPort());
  const std::string b = absl::StrCat("127.0.0.1:", ::kshield::testing::FreeLoopbackPort());
  o.endpoints = {a, "http://" + b};
  o.timeout = std::chrono::seconds(1);
  auto c = Client::Create(o);
  ASSERT_TRUE(c.ok());
  auto start = std::chrono::steady_clock::now();
  auto got = (*c)->Get("/k");
  auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), absl::StatusCode::kUnavailable);
  std::string msg(got.status().message());
  EXPECT_NE(msg.find("Range"), std::string::npos) << msg;
  EXPECT_NE(msg.find(a), std::string::npos) << msg;
  EXPECT_NE(msg.find(b), std::string::npos) << msg;
  EXPECT_LT(elapsed, std::chrono::seconds(2));
  // The reason from gRPC is kept.
  EXPECT_NE(msg.find("onnect"), std::string::npos) << msg;

  // Every call ends within (endpoints x timeout) = 2 s, also once the channels sit in reconnect
  // backoff. A Txn to nothing was never sent: UNAVAILABLE, not "outcome unknown".
  auto timed = [](auto&& call) {
    auto t0 = std::chrono::steady_clock::now();
    absl::Status s = call();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(2500));
    return s;
  };
  absl::Status cas = timed([&] { return (*c)->CompareAndSwap("/k", 1, "v").status(); });
  EXPECT_EQ(cas.code(), absl::StatusCode::kUnavailable) << cas;
  EXPECT_FALSE(IsOutcomeUnknown(cas));
  EXPECT_EQ(
      timed([&] { return (*c)->Watch("/", 0, [](const std::vector<Event>&) {}).status(); }).code(),
      absl::StatusCode::kUnavailable);
  EXPECT_EQ(timed([&] { return (*c)->GrantLease(5).status(); }).code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(timed([&] { return (*c)->KeepAliveOnce(1).status(); }).code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(timed([&] { return (*c)->Put("/k", "v").status(); }).code(),
            absl::StatusCode::kUnavailable);
}

class EtcdTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!EtcdServer::Available(/*tls=*/true)) GTEST_SKIP() << EtcdServer::SkipReason(true);
    server_ = std::make_unique<EtcdServer>(dir_.path(), /*tls=*/true);
    absl::Status s = server_->Start();
    ASSERT_TRUE(s.ok()) << s;
  }
  TempDir dir_;
  std::unique_ptr<EtcdServer> server_;
};

TEST_F(EtcdTlsTest, ClientCertificateIsRequired) {
  ClientOptions good = server_->ClientOptions();
  ASSERT_EQ(good.endpoints[0].rfind("https://", 0), 0u);
  auto c = Client::Create(good);
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE((*c)->Put("/tls/k", "v").ok());
  auto got = (*c)->Get("/tls/k");
  ASSERT_TRUE(got.ok() && got->has_value()) << got.status();
  EXPECT_EQ((*got)->value, "v");
  // A bare host:port with a CA configured also uses TLS.
  ClientOptions bare = good;
  bare.endpoints = {server_->endpoint()};
  auto cb = Client::Create(bare);
  ASSERT_TRUE(cb.ok());
  EXPECT_TRUE((*cb)->Get("/tls/k").ok());

  auto refused = [&](ClientOptions o, const char* what) {
    o.timeout = std::chrono::seconds(2);
    auto client = Client::Create(o);
    ASSERT_TRUE(client.ok()) << what << ": " << client.status();
    auto r = (*client)->Get("/tls/k");
    EXPECT_FALSE(r.ok()) << what;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << what << ": " << r.status();
    auto p = (*client)->Put("/tls/k", "overwritten");
    EXPECT_FALSE(p.ok()) << what;
  };
  ClientOptions no_cert = good;
  no_cert.cert_file.clear();
  no_cert.key_file.clear();
  refused(no_cert, "no client certificate");
  ClientOptions rogue = good;
  rogue.cert_file = server_->rogue_client_cert();
  rogue.key_file = server_->rogue_client_key();
  refused(rogue, "client certificate from an untrusted CA");
  ClientOptions wrong_ca = good;
  wrong_ca.ca_file = dir_.Sub("rogue-ca.pem");
  refused(wrong_ca, "server certificate not from our CA");
  ClientOptions plain = good;
  plain.endpoints = {"http://" + server_->endpoint()};
  plain.ca_file.clear();
  plain.cert_file.clear();
  plain.key_file.clear();
  refused(plain, "plaintext to a TLS port");

  got = (*c)->Get("/tls/k");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->value, "v");
}

}  // namespace
}  // namespace kshield::etcd

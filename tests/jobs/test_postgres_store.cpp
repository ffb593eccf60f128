// What only the PostgreSQL store does: migrations under an advisory lock when several
// processes open a fresh database at once, refusing a newer schema, hiding the password,
// clear errors for a wrong address, reconnecting after the server drops the connection or
// restarts, and SKIP LOCKED claims from many connections. The shared behaviour is in
// test_store.cpp.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <latch>
#include <map>
#include <thread>

#include "digitflow/jobs/store.hpp"
#include "postgres_server.hpp"
#include "test_support.hpp"

namespace {

using namespace digitflow::jobs;
using digitflow::testing::PostgresServer;
using digitflow::testing::throws_with_message;

// Strings built by appending (GCC 12 warns falsely on "literal" + std::string).
template <typename... Parts>
std::string cat(const Parts&... parts) {
  std::string out;
  (out.append(parts), ...);
  return out;
}

std::string database_of(const std::string& url) { return url.substr(url.rfind('/') + 1); }

// The URL with a password in its user part.
std::string with_password(const std::string& url, const std::string& password) {
  std::string out = url;
  const size_t at = out.find('@');
  out.insert(at, std::string(":").append(password));
  return out;
}

std::string with_option(const std::string& url, const std::string& option) {
  std::string out = url;
  out.append(url.find('?') == std::string::npos ? "?" : "&").append(option);
  return out;
}

int unused_port() {
  const int s = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  getsockname(s, reinterpret_cast<sockaddr*>(&addr), &len);
  close(s);
  return ntohs(addr.sin_port);
}

// Waits until `sql` prints `expected`, for at most ten seconds.
bool eventually(const std::string& sql, const std::string& expected) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    if (PostgresServer::instance().psql("", sql) == expected) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

User named(const std::string& name) {
  User u;
  u.name = name;
  return u;
}

TEST(PostgresStore, ProcessesOpeningAFreshDatabaseAtOnceMigrateItOnce) {
  for (int round = 0; round < 3; ++round) {
    const std::string url = PostgresServer::instance().fresh_database();
    constexpr int kOpeners = 4;
    std::latch start(kOpeners);
    std::vector<std::string> errors(kOpeners);
    std::vector<int> versions(kOpeners, -1);
    std::vector<std::thread> openers;
    for (int i = 0; i < kOpeners; ++i)
      openers.emplace_back([&, i] {
        start.arrive_and_wait();
        try {
          versions[static_cast<size_t>(i)] = open_postgres_store(url)->schema_version();
        } catch (const std::exception& e) {
          errors[static_cast<size_t>(i)] = e.what();
        }
      });
    for (std::thread& t : openers) t.join();
    for (int i = 0; i < kOpeners; ++i) {
      EXPECT_EQ(errors[static_cast<size_t>(i)], "") << "round " << round << ", opener " << i;
      EXPECT_EQ(versions[static_cast<size_t>(i)], kSchemaVersion) << "round " << round << ", opener " << i;
    }
    EXPECT_EQ(PostgresServer::instance().psql(database_of(url), "SELECT count(*), max(version) FROM schema_version"),
              cat("1|", std::to_string(kSchemaVersion)));
  }
}

TEST(PostgresStore, ANewerSchemaIsRefusedWithoutShowingThePassword) {
  const std::string url = PostgresServer::instance().fresh_database();
  open_postgres_store(url);
  PostgresServer::instance().psql(database_of(url),
                                  cat("UPDATE schema_version SET version = ", std::to_string(kSchemaVersion + 1)));
  const std::string secret = with_password(url, "s3cret");
  const std::string shown = with_password(url, "***");
  EXPECT_TRUE(throws_with_message<SchemaTooNew>([&] { open_postgres_store(secret); },
                                                {shown, cat("schema version ", std::to_string(kSchemaVersion + 1)),
                                                 cat("(", std::to_string(kSchemaVersion), ")"), "run a newer digitflow"}));
  try {
    open_postgres_store(secret);
  } catch (const StoreError& e) {
    EXPECT_EQ(std::string(e.what()).find("s3cret"), std::string::npos) << e.what();
  }
  // open_store routes both spellings of the scheme here.
  EXPECT_THROW(open_store(secret), SchemaTooNew);
  std::string long_scheme = secret;
  long_scheme.replace(0, 8, "postgresql");
  EXPECT_THROW(open_store(long_scheme), SchemaTooNew);
}

TEST(PostgresStore, DescribeHidesThePassword) {
  const std::string url = PostgresServer::instance().fresh_database();
  const auto store = open_postgres_store(with_option(with_password(url, "s3cret"), "password=other&sslmode=disable"));
  EXPECT_EQ(store->describe(), with_option(with_password(url, "***"), "password=***&sslmode=disable"));
  EXPECT_EQ(open_postgres_store(url)->describe(), url);
}

TEST(PostgresStore, AWrongAddressIsAClearStoreError) {
  PostgresServer& server = PostgresServer::instance();
  const int port = unused_port();
  const std::string nobody = cat("postgres://postgres:s3cret@127.0.0.1:", std::to_string(port), "/jobs");
  EXPECT_TRUE(throws_with_message<StoreError>(
      [&] { open_postgres_store(nobody); },
      {cat("postgres://postgres:***@127.0.0.1:", std::to_string(port), "/jobs"), "cannot connect to the job store",
       std::to_string(port)}));
  const std::string no_database = cat("postgres://postgres@127.0.0.1:", std::to_string(server.port()), "/no_such_db");
  EXPECT_TRUE(throws_with_message<StoreError>([&] { open_postgres_store(no_database); },
                                              {"cannot connect to the job store", "no_such_db"}));
  EXPECT_TRUE(throws_with_message<StoreError>([&] { open_postgres_store("postgres://127.0.0.1:notaport/jobs"); },
                                              {"cannot connect to the job store", "notaport"}));
}

TEST(PostgresStore, ReconnectsAfterTheServerDropsAnIdleConnection) {
  const std::string url = PostgresServer::instance().fresh_database();
  const std::string app = cat("digitflow_idle_", database_of(url));
  const auto store = open_postgres_store(with_option(url, cat("application_name=", app)));
  store->add_user(named("ada"));
  EXPECT_EQ(PostgresServer::instance().psql(
                "", cat("SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity WHERE application_name = '",
                        app, "'")),
            "1");
  // Nothing was sent on the dead connection before it broke: the call goes through on a new one.
  ASSERT_EQ(store->users().size(), 1u);
  EXPECT_EQ(store->add_user(named("bob")), 2);
  EXPECT_TRUE(eventually(cat("SELECT count(*) FROM pg_stat_activity WHERE application_name = '", app, "'"), "1"));
}

TEST(PostgresStore, AConnectionLostInACallIsTransientAndTheNextCallReconnects) {
  PostgresServer& server = PostgresServer::instance();
  const std::string url = server.fresh_database();
  const std::string db = database_of(url);
  const std::string app = cat("digitflow_victim_", db);
  const std::string locker = cat("digitflow_locker_", db);
  const auto store = open_postgres_store(with_option(url, cat("application_name=", app)));
  store->add_user(named("ada"));

  // Another session locks the users table, so that the store's next call waits on the
  // server, where it is terminated.
  std::thread lock([&] {
    try {
      server.psql(db, cat("SET application_name = '", locker,
                              "'; BEGIN; LOCK TABLE users IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(30); COMMIT"));
    } catch (const std::exception&) {  // terminated below
    }
  });
  ASSERT_TRUE(eventually(cat("SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
                             " WHERE a.application_name = '",
                             locker, "' AND l.mode = 'AccessExclusiveLock' AND l.granted"),
                         "1"));
  std::string thrown;
  std::thread call([&] {
    try {
      store->users();
      thrown = "nothing";
    } catch (const TransientError& e) {
      thrown = std::string("TransientError: ").append(e.what());
    } catch (const std::exception& e) {
      thrown = std::string("another error: ").append(e.what());
    }
  });
  const bool waiting = eventually(
      cat("SELECT count(*) FROM pg_stat_activity WHERE application_name = '", app, "' AND wait_event_type = 'Lock'"), "1");
  server.psql("", cat("SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE application_name = '", app, "'"));
  server.psql("", cat("SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE application_name = '", locker,
                      "'"));
  call.join();
  lock.join();
  ASSERT_TRUE(waiting) << "the store's call never waited on the lock";
  EXPECT_EQ(thrown.rfind("TransientError: ", 0), 0u) << thrown;
  EXPECT_NE(thrown.find(url), std::string::npos) << thrown;

  const auto users = store->users();
  ASSERT_EQ(users.size(), 1u);
  EXPECT_EQ(users[0].name, "ada");
}

// A restarted server does not need a worker restart: the idle connection is replaced on
// the next call, which goes through.
TEST(PostgresStore, KeepsWorkingAcrossAServerRestart) {
  PostgresServer& server = PostgresServer::instance();
  const std::string url = server.fresh_database();
  const auto store = open_postgres_store(url);
  store->add_user(named("ada"));
  server.restart();
  std::vector<User> users;
  ASSERT_NO_THROW(users = store->users());
  ASSERT_EQ(users.size(), 1u);
  EXPECT_EQ(users[0].name, "ada");
  store->add_user(named("bob"));
  EXPECT_EQ(store->users().size(), 2u);
}

TEST(PostgresStore, ClaimsFromManyConnectionsTakeEachJobOnce) {
  const std::string url = PostgresServer::instance().fresh_database();
  const auto setup = open_postgres_store(url);
  const int64_t owner = setup->add_user(named("ada"));
  constexpr int kJobs = 40;
  for (int i = 0; i < kJobs; ++i) {
    NewJob job;
    job.owner = owner;
    job.name = cat("job ", std::to_string(i));
    job.input_dir = cat("/state/inputs/", std::to_string(i));
    setup->create_job(job);
  }
  constexpr int kWorkers = 4;
  std::latch start(kWorkers);
  std::vector<std::vector<int64_t>> claimed(kWorkers);
  std::vector<std::string> errors(kWorkers);
  std::vector<std::thread> workers;
  for (int w = 0; w < kWorkers; ++w)
    workers.emplace_back([&, w] {
      try {
        const auto store = open_postgres_store(url);
        const std::string name = cat("worker-", std::to_string(w));
        start.arrive_and_wait();
        while (const auto job = store->claim_job(name, 60'000)) {
          claimed[static_cast<size_t>(w)].push_back(job->id);
          EXPECT_EQ(job->worker, name);
          EXPECT_EQ(job->owner_name, "ada");
          store->finish_job(job->id, name, JobState::done);
        }
      } catch (const std::exception& e) {
        errors[static_cast<size_t>(w)] = e.what();
      }
    });
  for (std::thread& t : workers) t.join();
  std::map<int64_t, int> times;
  for (int w = 0; w < kWorkers; ++w) {
    EXPECT_EQ(errors[static_cast<size_t>(w)], "") << "worker " << w;
    for (int64_t id : claimed[static_cast<size_t>(w)]) ++times[id];
  }
  EXPECT_EQ(times.size(), static_cast<size_t>(kJobs));
  for (const auto& [id, n] : times) EXPECT_EQ(n, 1) << "job " << id;
  for (const Job& job : setup->jobs()) {
    EXPECT_EQ(job.state, JobState::done) << "job " << job.id;
    EXPECT_EQ(job.attempts, 1) << "job " << job.id;
  }
}

// Leases are on the server's clock, whatever the worker's clock says.
TEST(PostgresStore, LeasesAreOnTheServersClock) {
  const std::string url = PostgresServer::instance().fresh_database();
  const auto store = open_postgres_store(url);
  NewJob job;
  job.owner = store->add_user(named("ada"));
  job.name = "pages";
  job.input_dir = "/state/inputs/pages";
  store->create_job(job);
  const int64_t before = std::stoll(
      PostgresServer::instance().psql("", "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint"));
  const auto claimed = store->claim_job("w", 60'000);
  const int64_t after = std::stoll(
      PostgresServer::instance().psql("", "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint"));
  ASSERT_TRUE(claimed);
  EXPECT_GE(claimed->lease_expires_ms, before + 60'000);
  EXPECT_LE(claimed->lease_expires_ms, after + 60'000);
  EXPECT_GE(claimed->started_ms, before);
  EXPECT_LE(claimed->started_ms, after);
}

}  // namespace

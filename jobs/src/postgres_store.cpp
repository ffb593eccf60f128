// The PostgreSQL job store, for many workers on many machines sharing one queue. It mirrors
// the SQLite store statement by statement; the differences are PostgreSQL's: a claim is
// one UPDATE whose subquery takes the oldest free row FOR UPDATE SKIP LOCKED (workers never
// wait for each other), migrations run under a transaction-scoped advisory lock (two
// processes opening a fresh database do not both migrate), and every time comes from the
// server's clock, not the caller's, because workers on different machines compare leases
// and their clocks may disagree. One connection per store object, used under a mutex (a
// worker's heartbeat thread shares it); a broken connection is reopened on the next call.
#include <pqxx/pqxx>

#include <algorithm>
#include <mutex>
#include <regex>
#include <type_traits>

#include "digitflow/jobs/store.hpp"
#include "schema.hpp"

namespace digitflow::jobs {

namespace {

// Milliseconds since the Unix epoch on the server's clock. clock_timestamp() is volatile,
// so statements read it once through a `clock` CTE (PostgreSQL materialises it).
constexpr const char* kServerNow = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint";
const std::string kClock = std::string("WITH clock AS (SELECT ").append(kServerNow).append(" AS now) ");

// Any key unique to this use of advisory locks in the database ("digitflo" in ASCII).
constexpr const char* kMigrationLock = "7235427978969508975";

const std::string kUserColumns = "id, name, email, password_hash, role, disabled, created_ms";
const std::string kSelectJob =
    std::string("SELECT ").append(detail::kJobColumns).append(" FROM jobs j JOIN users u ON u.id = j.owner");

// The URL as it may be shown: a password in the user part or in the query becomes '***'.
std::string hide_password(const std::string& url) {
  std::string out = url;
  const size_t scheme = out.find("://");
  if (scheme != std::string::npos) {
    const size_t start = scheme + 3;
    const size_t end = std::min(out.find_first_of("/?#", start), out.size());
    const size_t at = out.rfind('@', end == 0 ? 0 : end - 1);
    if (at != std::string::npos && at >= start) {
      const size_t colon = out.find(':', start);
      if (colon != std::string::npos && colon < at) out.replace(colon + 1, at - colon - 1, "***");
    }
  }
  static const std::regex password_option(R"((^|[?&\s])password\s*=\s*('[^']*'|[^&\s]*))");
  return std::regex_replace(out, password_option, "$1password=***");
}

// A server message on one line: "ERROR:  x\nDETAIL:  y\n" -> "ERROR:  x; DETAIL:  y".
std::string one_line(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '\n') {
      out.append("; ");
    } else if (c != '\r' && c != '\t') {
      out.push_back(c);
    }
  }
  while (!out.empty() && (out.back() == ' ' || out.back() == ';')) out.pop_back();
  return out;
}

std::string text(const pqxx::field& f) { return f.is_null() ? std::string() : std::string(f.c_str(), f.size()); }
int64_t integer(const pqxx::field& f) { return f.is_null() ? 0 : f.as<int64_t>(); }

User read_user(const pqxx::row& r) {
  User u;
  u.id = integer(r[0]);
  u.name = text(r[1]);
  u.email = text(r[2]);
  u.password_hash = text(r[3]);
  u.role = text(r[4]);
  u.disabled = integer(r[5]) != 0;
  u.created_ms = integer(r[6]);
  return u;
}

Job read_job(const pqxx::row& r) {
  Job j;
  j.id = integer(r[0]);
  j.owner = integer(r[1]);
  j.owner_name = text(r[2]);
  j.name = text(r[3]);
  j.state = parse_job_state(text(r[4]));
  j.input_dir = text(r[5]);
  j.template_path = text(r[6]);
  j.model = text(r[7]);
  j.source = text(r[8]);
  j.pages_total = integer(r[9]);
  j.pages_done = integer(r[10]);
  j.pages_failed = integer(r[11]);
  j.strings = integer(r[12]);
  j.low_confidence = integer(r[13]);
  j.created_ms = integer(r[14]);
  j.started_ms = integer(r[15]);
  j.finished_ms = integer(r[16]);
  j.error = text(r[17]);
  j.worker = text(r[18]);
  j.lease_expires_ms = integer(r[19]);
  j.cancel_requested = integer(r[20]) != 0;
  j.attempts = static_cast<int>(integer(r[21]));
  return j;
}

// SQLSTATEs that may pass when tried again: the connection (class 08) or the server went
// away (57P01-57P03), serialization failures and deadlocks (40), a lock not available,
// and insufficient resources such as a full disk (class 53).
bool is_transient(const std::string& state) {
  return state.starts_with("08") || state.starts_with("40") || state.starts_with("53") || state == "57P01" ||
         state == "57P02" || state == "57P03" || state == "55P03";
}

// libpq waits for an unreachable host as long as the operating system does (minutes);
// unless the URL says otherwise, a store gives up after 10 seconds and says so.
std::string with_connect_timeout(const std::string& url) {
  if (url.find("connect_timeout=") != std::string::npos) return url;
  return url + (url.find('?') == std::string::npos ? "?" : "&") + "connect_timeout=10";
}

class PostgresStore final : public JobStore {
 public:
  explicit PostgresStore(const std::string& url) : url_(with_connect_timeout(url)), shown_(hide_password(url)) {
    std::lock_guard lock(mutex_);
    try {
      conn_ = std::make_unique<pqxx::connection>(url_);
    } catch (const pqxx::pqxx_exception& e) {
      std::string message = shown_;
      message.append(": cannot connect to the job store: ").append(one_line(e.base().what()));
      throw StoreError(message);
    }
    migrate();
  }

  std::string describe() const override { return shown_; }

  int schema_version() override {
    return transaction("schema_version", [&](pqxx::work& tx) {
      return static_cast<int>(integer(tx.exec1("SELECT COALESCE(MAX(version), 0) FROM schema_version")[0]));
    });
  }

  int64_t add_user(const User& user) override {
    return transaction("add_user", [&](pqxx::work& tx) {
      try {
        const pqxx::row r = tx.exec_params1(
            std::string("INSERT INTO users (name, email, password_hash, role, disabled, created_ms)"
                        " VALUES ($1, $2, $3, $4, $5, COALESCE(NULLIF($6::bigint, 0), ")
                .append(kServerNow)
                .append(")) RETURNING id"),
            user.name, user.email, user.password_hash, user.role, int64_t{user.disabled}, user.created_ms);
        tx.commit();
        return integer(r[0]);
      } catch (const pqxx::unique_violation&) {
        std::string message = "a user named '";
        message.append(user.name).append("' already exists");
        throw Conflict(message);
      }
    });
  }

  std::optional<User> user_by_name(std::string_view name) override {
    return transaction("user_by_name", [&](pqxx::work& tx) -> std::optional<User> {
      const pqxx::result r =
          tx.exec_params(std::string("SELECT ").append(kUserColumns).append(" FROM users WHERE name = $1"),
                         std::string(name));
      if (r.empty()) return std::nullopt;
      return read_user(r[0]);
    });
  }

  std::optional<User> user_by_id(int64_t id) override {
    return transaction("user_by_id", [&](pqxx::work& tx) -> std::optional<User> {
      const pqxx::result r =
          tx.exec_params(std::string("SELECT ").append(kUserColumns).append(" FROM users WHERE id = $1"), id);
      if (r.empty()) return std::nullopt;
      return read_user(r[0]);
    });
  }

  std::vector<User> users() override {
    return transaction("users", [&](pqxx::work& tx) {
      std::vector<User> out;
      for (const pqxx::row& row : tx.exec(std::string("SELECT ").append(kUserColumns).append(" FROM users ORDER BY id")))
        out.push_back(read_user(row));
      return out;
    });
  }

  bool update_user(const User& user) override {
    return transaction("update_user", [&](pqxx::work& tx) {
      const pqxx::result r =
          tx.exec_params("UPDATE users SET email = $1, password_hash = $2, role = $3, disabled = $4 WHERE id = $5",
                         user.email, user.password_hash, user.role, int64_t{user.disabled}, user.id);
      tx.commit();
      return r.affected_rows() > 0;
    });
  }

  int64_t create_job(const NewJob& job) override {
    return transaction("create_job", [&](pqxx::work& tx) {
      try {
        const pqxx::row r = tx.exec_params1(
            std::string("INSERT INTO jobs (owner, name, state, input_dir, template, model, source, created_ms)"
                        " VALUES ($1, $2, 'queued', $3, $4, $5, NULLIF($6, ''), ")
                .append(kServerNow)
                .append(") RETURNING id"),
            job.owner, job.name, job.input_dir.string(), job.template_path, job.model, job.source);
        tx.commit();
        return integer(r[0]);
      } catch (const pqxx::unique_violation&) {
        std::string message = "a job from '";
        message.append(job.source).append("' was submitted before");
        throw Conflict(message);
      } catch (const pqxx::foreign_key_violation&) {
        throw StoreError(std::string("no user with id ").append(std::to_string(job.owner)));
      }
    });
  }

  std::optional<Job> job(int64_t id) override {
    return transaction("job", [&](pqxx::work& tx) -> std::optional<Job> {
      const pqxx::result r = tx.exec_params(std::string(kSelectJob).append(" WHERE j.id = $1"), id);
      if (r.empty()) return std::nullopt;
      return read_job(r[0]);
    });
  }

  std::vector<Job> jobs(int64_t owner) override {
    return transaction("jobs", [&](pqxx::work& tx) {
      const std::string sql = std::string(kSelectJob).append(owner ? " WHERE j.owner = $1" : "").append(" ORDER BY j.id DESC");
      const pqxx::result r = owner ? tx.exec_params(sql, owner) : tx.exec(sql);
      std::vector<Job> out;
      for (const pqxx::row& row : r) out.push_back(read_job(row));
      return out;
    });
  }

  // The sweep, then the claim, in one transaction. Rows another transaction holds are
  // skipped, not waited for, by both. The claim leaves out a running job flagged for
  // cancelling (in SQLite the sweep has just cancelled it; here the flag may have been set
  // by a cancel that committed between the two statements): the next claim sweeps it.
  std::optional<Job> claim_job(const std::string& worker, int64_t lease_ms) override {
    return transaction("claim_job", [&](pqxx::work& tx) -> std::optional<Job> {
      tx.exec(std::string(kClock).append(
          "UPDATE jobs SET state = 'cancelled', finished_ms = clock.now FROM clock WHERE jobs.id IN ("
          "SELECT id FROM jobs WHERE state = 'running' AND cancel_requested = 1"
          " AND lease_expires_ms < (SELECT now FROM clock) FOR UPDATE SKIP LOCKED)"));
      const pqxx::result r = tx.exec_params(
          std::string(kClock)
              .append("UPDATE jobs j SET state = 'running', worker = $1, lease_expires_ms = clock.now + $2,"
                      " attempts = j.attempts + 1,"
                      " started_ms = CASE WHEN j.started_ms = 0 THEN clock.now ELSE j.started_ms END"
                      " FROM users u, clock WHERE u.id = j.owner AND j.id = ("
                      "SELECT id FROM jobs WHERE state = 'queued' OR (state = 'running' AND cancel_requested = 0"
                      " AND lease_expires_ms < (SELECT now FROM clock)) ORDER BY id FOR UPDATE SKIP LOCKED LIMIT 1)"
                      " RETURNING ")
              .append(detail::kJobColumns),
          worker, lease_ms);
      tx.commit();
      if (r.empty()) return std::nullopt;
      return read_job(r[0]);
    });
  }

  Lease heartbeat(int64_t job, const std::string& worker, int64_t lease_ms) override {
    return transaction("heartbeat", [&](pqxx::work& tx) {
      const pqxx::result r = tx.exec_params(
          std::string(kClock).append(
              "UPDATE jobs SET lease_expires_ms = clock.now + $1 FROM clock"
              " WHERE id = $2 AND worker = $3 AND state = 'running' RETURNING cancel_requested"),
          lease_ms, job, worker);
      tx.commit();
      Lease lease;
      if (!r.empty()) {
        lease.held = true;
        lease.cancel_requested = integer(r[0][0]) != 0;
      }
      return lease;
    });
  }

  void set_pages_total(int64_t job, const std::string& worker, int64_t total) override {
    transaction("set_pages_total", [&](pqxx::work& tx) {
      const pqxx::result r = tx.exec_params(
          "UPDATE jobs SET pages_total = $1 WHERE id = $2 AND worker = $3 AND state = 'running'", total, job, worker);
      tx.commit();
      if (r.affected_rows() == 0) throw lease_lost(job, worker);
    });
  }

  // The job row stays locked from the lease check to the commit, so that no other worker
  // can claim the job in between (SQLite's BEGIN IMMEDIATE gives the same).
  bool put_page(int64_t job, const std::string& worker, const PageRecord& page) override {
    return transaction("put_page", [&](pqxx::work& tx) {
      if (tx.exec_params("SELECT 1 FROM jobs WHERE id = $1 AND worker = $2 AND state = 'running' FOR NO KEY UPDATE",
                         job, worker)
              .empty())
        throw lease_lost(job, worker);
      const pqxx::result inserted = tx.exec_params(
          "INSERT INTO pages (job, seq, key, failed, strings, low_confidence, result) VALUES ($1, $2, $3, $4, $5, $6, $7)"
          " ON CONFLICT (job, key) DO NOTHING",
          job, page.seq, page.key, int64_t{page.failed}, page.strings, page.low_confidence, page.result_json);
      const bool added = inserted.affected_rows() > 0;
      if (added)
        tx.exec_params(
            "UPDATE jobs SET pages_done = pages_done + 1, pages_failed = pages_failed + $1,"
            " strings = strings + $2, low_confidence = low_confidence + $3 WHERE id = $4",
            int64_t{page.failed}, page.strings, page.low_confidence, job);
      tx.commit();
      return added;
    });
  }

  std::vector<std::string> page_keys(int64_t job) override {
    return transaction("page_keys", [&](pqxx::work& tx) {
      std::vector<std::string> out;
      for (const pqxx::row& row : tx.exec_params("SELECT key FROM pages WHERE job = $1 ORDER BY seq", job))
        out.push_back(text(row[0]));
      return out;
    });
  }

  std::vector<PageRecord> pages(int64_t job, int64_t from, int64_t limit) override {
    return transaction("pages", [&](pqxx::work& tx) {
      const pqxx::result r = tx.exec_params(
          "SELECT seq, key, failed, strings, low_confidence, result FROM pages"
          " WHERE job = $1 AND seq >= $2 ORDER BY seq LIMIT NULLIF($3::bigint, 0)",
          job, from, limit > 0 ? limit : int64_t{0});
      std::vector<PageRecord> out;
      for (const pqxx::row& row : r) {
        PageRecord p;
        p.seq = integer(row[0]);
        p.key = text(row[1]);
        p.failed = integer(row[2]) != 0;
        p.strings = integer(row[3]);
        p.low_confidence = integer(row[4]);
        p.result_json = text(row[5]);
        out.push_back(std::move(p));
      }
      return out;
    });
  }

  void finish_job(int64_t job, const std::string& worker, JobState state, const std::string& error) override {
    if (!is_final(state)) {
      std::string message = "finish_job: '";
      message.append(to_string(state)).append("' is not a final state");
      throw StoreError(message);
    }
    transaction("finish_job", [&](pqxx::work& tx) {
      const pqxx::result r = tx.exec_params(
          std::string(kClock).append(
              "UPDATE jobs SET state = $1, error = $2, finished_ms = clock.now, lease_expires_ms = 0 FROM clock"
              " WHERE id = $3 AND worker = $4 AND state = 'running'"),
          std::string(to_string(state)), error, job, worker);
      tx.commit();
      if (r.affected_rows() == 0) throw lease_lost(job, worker);
    });
  }

  void release_job(int64_t job, const std::string& worker) override {
    transaction("release_job", [&](pqxx::work& tx) {
      tx.exec_params(std::string(kClock).append(
                         "UPDATE jobs SET state = CASE WHEN cancel_requested = 1 THEN 'cancelled' ELSE 'queued' END,"
                         " finished_ms = CASE WHEN cancel_requested = 1 THEN clock.now ELSE 0 END, lease_expires_ms = 0"
                         " FROM clock WHERE id = $1 AND worker = $2 AND state = 'running'"),
                     job, worker);
      tx.commit();
    });
  }

  std::optional<JobState> cancel_job(int64_t id) override {
    return transaction("cancel_job", [&](pqxx::work& tx) -> std::optional<JobState> {
      tx.exec_params(std::string(kClock).append(
                         "UPDATE jobs SET state = 'cancelled', finished_ms = clock.now FROM clock"
                         " WHERE id = $1 AND state = 'queued'"),
                     id);
      tx.exec_params("UPDATE jobs SET cancel_requested = 1 WHERE id = $1 AND state = 'running'", id);
      const pqxx::result r = tx.exec_params("SELECT state FROM jobs WHERE id = $1", id);
      tx.commit();
      if (r.empty()) return std::nullopt;
      return parse_job_state(text(r[0][0]));
    });
  }

 private:
  LeaseLost lease_lost(int64_t job, const std::string& worker) const {
    std::string message = "job ";
    message.append(std::to_string(job)).append(" is no longer held by worker ").append(worker);
    return LeaseLost(message);
  }

  std::string error_message(const char* what, std::string_view detail) const {
    std::string message = shown_;
    message.append(": ").append(what).append(": ").append(one_line(detail));
    return message;
  }

  // The connection, reopened when the last call found it broken. Call under mutex_.
  pqxx::connection& connection(const char* what) {
    if (!conn_) {
      try {
        conn_ = std::make_unique<pqxx::connection>(url_);
      } catch (const pqxx::pqxx_exception& e) {
        std::string detail = "cannot reconnect: ";
        detail.append(e.base().what());
        throw TransientError(error_message(what, detail));
      }
    }
    return *conn_;
  }

  // Runs body(tx) in a transaction under the mutex and turns libpqxx's exceptions into
  // the store's. A transaction that cannot even begin on a broken connection has done
  // nothing, so it is tried once more on a new one; a failure later in the transaction is
  // a TransientError (the caller decides whether to repeat it) and the connection is
  // reopened on the next call. Errors the body throws itself (Conflict, LeaseLost) pass.
  template <typename Body>
  std::invoke_result_t<Body&, pqxx::work&> transaction(const char* what, Body&& body) {
    std::lock_guard lock(mutex_);
    try {
      std::unique_ptr<pqxx::work> tx;
      try {
        tx = std::make_unique<pqxx::work>(connection(what));
      } catch (const pqxx::broken_connection&) {
        conn_.reset();
        tx = std::make_unique<pqxx::work>(connection(what));
      }
      return body(*tx);
    } catch (const pqxx::broken_connection& e) {
      conn_.reset();
      throw TransientError(error_message(what, e.what()));
    } catch (const pqxx::in_doubt_error& e) {
      drop_if_closed();
      throw TransientError(error_message(what, e.what()));
    } catch (const pqxx::transaction_rollback& e) {  // serialization failure, deadlock
      drop_if_closed();
      throw TransientError(error_message(what, e.what()));
    } catch (const pqxx::unique_violation& e) {
      throw Conflict(error_message(what, e.what()));
    } catch (const pqxx::sql_error& e) {
      const bool closed = drop_if_closed();
      if (closed || is_transient(e.sqlstate())) throw TransientError(error_message(what, e.what()));
      throw StoreError(error_message(what, e.what()));
    } catch (const pqxx::failure& e) {
      if (drop_if_closed()) throw TransientError(error_message(what, e.what()));
      throw StoreError(error_message(what, e.what()));
    } catch (const pqxx::pqxx_exception& e) {
      throw StoreError(error_message(what, e.base().what()));
    }
  }

  // Forgets a connection that is no longer open; says whether it did.
  bool drop_if_closed() {
    if (conn_ && conn_->is_open()) return false;
    conn_.reset();
    return true;
  }

  // Creates or migrates the schema. The advisory lock is held to the end of the
  // transaction: a second process opening the same fresh database waits here, then finds
  // the schema in place.
  void migrate() {
    try {
      pqxx::work tx(*conn_);
      tx.exec(std::string("SELECT pg_advisory_xact_lock(").append(kMigrationLock).append(")"));
      if (tx.exec1("SELECT to_regclass('schema_version') IS NULL")[0].as<bool>())
        tx.exec("CREATE TABLE schema_version (version INTEGER NOT NULL)");
      const int version =
          static_cast<int>(integer(tx.exec1("SELECT COALESCE(MAX(version), 0) FROM schema_version")[0]));
      if (version > kSchemaVersion) {
        std::string message = shown_;
        message.append(": the job store is at schema version ")
            .append(std::to_string(version))
            .append(", newer than this digitflow understands (")
            .append(std::to_string(kSchemaVersion))
            .append("); run a newer digitflow");
        throw SchemaTooNew(message);
      }
      const auto steps = detail::migrations({"BIGSERIAL PRIMARY KEY"});
      for (int v = version; v < kSchemaVersion; ++v)
        for (const std::string& sql : steps[static_cast<size_t>(v)]) tx.exec(sql);
      if (version < kSchemaVersion) {
        tx.exec("DELETE FROM schema_version");
        tx.exec_params("INSERT INTO schema_version (version) VALUES ($1)", kSchemaVersion);
      }
      tx.commit();
    } catch (const pqxx::pqxx_exception& e) {
      std::string message = shown_;
      message.append(": cannot migrate the job store: ").append(one_line(e.base().what()));
      throw StoreError(message);
    }
  }

  const std::string url_;    // as given, for reconnecting
  const std::string shown_;  // without the password, for messages
  std::unique_ptr<pqxx::connection> conn_;
  std::mutex mutex_;
};

}  // namespace

std::unique_ptr<JobStore> open_postgres_store(const std::string& url) { return std::make_unique<PostgresStore>(url); }

}  // namespace digitflow::jobs

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
const std::string kSessionColumns = "token_hash, user_id, csrf, created_ms, expires_ms";
const std::string kApiTokenColumns = "id, user_id, name, token_hash, created_ms, last_used_ms";
const std::string kSampleColumns =
    "id, user_id, job, page_key, string_index, digit_index, guess, confidence, label, image, created_ms";
const std::string kModelVersionColumns = "id, path, status, is_default, note, metrics, created_ms";
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

// A pqxx row as the shared readers of schema.hpp read it.
struct Row {
  const pqxx::row& r;
  int64_t integer(int i) const { return digitflow::jobs::integer(r[i]); }
  std::string text(int i) const { return digitflow::jobs::text(r[i]); }
  double real(int i) const { return r[i].is_null() ? 0.0 : r[i].as<double>(); }
};
User read_user(const pqxx::row& r) { return detail::read_user(Row{r}); }
Job read_job(const pqxx::row& r) { return detail::read_job(Row{r}); }
Session read_session(const pqxx::row& r) { return detail::read_session(Row{r}); }
ApiToken read_api_token(const pqxx::row& r) { return detail::read_api_token(Row{r}); }
Sample read_sample(const pqxx::row& r) { return detail::read_sample(Row{r}); }
ModelVersion read_model_version(const pqxx::row& r) { return detail::read_model_version(Row{r}); }

// Strings built by appending (GCC 12 warns falsely on "literal" + std::string).
template <typename... Parts>
std::string cat(const Parts&... parts) {
  std::string out;
  (out.append(parts), ...);
  return out;
}

// Thrown out of a transaction whose insert named a user or job that does not exist; the
// store then looks up which, in a new transaction (the failed one can run nothing more).
struct MissingReference {};

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

  void add_session(const Session& session) override {
    transaction("add_session", [&](pqxx::work& tx) {
      try {
        tx.exec_params(cat("INSERT INTO sessions (token_hash, user_id, csrf, created_ms, expires_ms)"
                           " VALUES ($1, $2, $3, COALESCE(NULLIF($4::bigint, 0), ",
                           kServerNow, "), $5)"),
                       session.token_hash, session.user, session.csrf, session.created_ms, session.expires_ms);
        tx.commit();
      } catch (const pqxx::unique_violation&) {
        throw Conflict("a session with this token already exists");
      } catch (const pqxx::foreign_key_violation&) {
        throw StoreError(cat("add_session: no user with id ", std::to_string(session.user)));
      }
    });
  }

  std::optional<Session> session(const std::string& token_hash) override {
    return transaction("session", [&](pqxx::work& tx) -> std::optional<Session> {
      const pqxx::result r =
          tx.exec_params(cat("SELECT ", kSessionColumns, " FROM sessions WHERE token_hash = $1"), token_hash);
      if (r.empty()) return std::nullopt;
      return read_session(r[0]);
    });
  }

  void delete_session(const std::string& token_hash) override {
    transaction("delete_session", [&](pqxx::work& tx) {
      tx.exec_params("DELETE FROM sessions WHERE token_hash = $1", token_hash);
      tx.commit();
    });
  }

  void delete_sessions(int64_t user) override {
    transaction("delete_sessions", [&](pqxx::work& tx) {
      tx.exec_params("DELETE FROM sessions WHERE user_id = $1", user);
      tx.commit();
    });
  }

  int64_t add_api_token(const ApiToken& token) override {
    return transaction("add_api_token", [&](pqxx::work& tx) {
      try {
        const pqxx::row r = tx.exec_params1(cat("INSERT INTO api_tokens (user_id, name, token_hash, created_ms)"
                                                " VALUES ($1, $2, $3, COALESCE(NULLIF($4::bigint, 0), ",
                                                kServerNow, ")) RETURNING id"),
                                            token.user, token.name, token.token_hash, token.created_ms);
        tx.commit();
        return integer(r[0]);
      } catch (const pqxx::unique_violation&) {
        throw Conflict("an API token with this hash already exists");
      } catch (const pqxx::foreign_key_violation&) {
        throw StoreError(cat("add_api_token: no user with id ", std::to_string(token.user)));
      }
    });
  }

  std::optional<ApiToken> api_token(const std::string& token_hash) override {
    return transaction("api_token", [&](pqxx::work& tx) -> std::optional<ApiToken> {
      const pqxx::result r = tx.exec_params(
          cat("UPDATE api_tokens SET last_used_ms = ", kServerNow, " WHERE token_hash = $1 RETURNING ", kApiTokenColumns),
          token_hash);
      tx.commit();
      if (r.empty()) return std::nullopt;
      return read_api_token(r[0]);
    });
  }

  std::vector<ApiToken> api_tokens(int64_t user) override {
    return transaction("api_tokens", [&](pqxx::work& tx) {
      std::vector<ApiToken> out;
      for (const pqxx::row& row :
           tx.exec_params(cat("SELECT ", kApiTokenColumns, " FROM api_tokens WHERE user_id = $1 ORDER BY id"), user))
        out.push_back(read_api_token(row));
      return out;
    });
  }

  bool revoke_api_token(int64_t user, int64_t id) override {
    return transaction("revoke_api_token", [&](pqxx::work& tx) {
      const pqxx::result r = tx.exec_params("DELETE FROM api_tokens WHERE id = $1 AND user_id = $2", id, user);
      tx.commit();
      return r.affected_rows() > 0;
    });
  }

  int64_t put_sample(const Sample& sample) override {
    detail::check_sample(sample);
    try {
      return transaction("put_sample", [&](pqxx::work& tx) {
        try {
          const pqxx::row r = tx.exec_params1(
              cat("INSERT INTO samples (user_id, job, page_key, string_index, digit_index, guess, confidence, label,"
                  " image, created_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, COALESCE(NULLIF($10::bigint, 0), ",
                  kServerNow,
                  ")) ON CONFLICT (job, page_key, string_index, digit_index) DO UPDATE SET user_id = excluded.user_id,"
                  " guess = excluded.guess, confidence = excluded.confidence, label = excluded.label,"
                  " image = excluded.image, created_ms = excluded.created_ms RETURNING id"),
              sample.user, sample.job, sample.page_key, sample.string_index, sample.digit_index, sample.guess,
              sample.confidence, sample.label, sample.image, sample.created_ms);
          tx.commit();
          return integer(r[0]);
        } catch (const pqxx::foreign_key_violation&) {
          throw MissingReference{};
        }
      });
    } catch (const MissingReference&) {
      throw StoreError(cat("put_sample: ", missing_user_or_job(sample.user, sample.job)));
    }
  }

  std::vector<Sample> samples(int64_t user, int64_t limit) override {
    return transaction("samples", [&](pqxx::work& tx) {
      const pqxx::result r = tx.exec_params(
          cat("SELECT ", kSampleColumns,
              " FROM samples WHERE ($1::bigint = 0 OR user_id = $1) ORDER BY created_ms DESC, id DESC"
              " LIMIT NULLIF($2::bigint, 0)"),
          user, limit > 0 ? limit : int64_t{0});
      std::vector<Sample> out;
      for (const pqxx::row& row : r) out.push_back(read_sample(row));
      return out;
    });
  }

  std::vector<std::string> reviewed_digits(int64_t job) override {
    return transaction("reviewed_digits", [&](pqxx::work& tx) {
      std::vector<std::string> out;
      for (const pqxx::row& row :
           tx.exec_params("SELECT page_key, string_index, digit_index FROM samples WHERE job = $1"
                          " ORDER BY page_key, string_index, digit_index",
                          job))
        out.push_back(cat(text(row[0]), "/", std::to_string(integer(row[1])), "/", std::to_string(integer(row[2]))));
      return out;
    });
  }

  // A new default takes the table lock first, so that two promotions queue up instead of
  // one of them failing on the one-default index.
  int64_t add_model_version(const ModelVersion& version) override {
    detail::check_model_status(version.status);
    return transaction("add_model_version", [&](pqxx::work& tx) {
      if (version.is_default) {
        tx.exec("LOCK TABLE model_versions IN SHARE ROW EXCLUSIVE MODE");
        tx.exec("UPDATE model_versions SET is_default = 0 WHERE is_default = 1");
      }
      const pqxx::row r = tx.exec_params1(
          cat("INSERT INTO model_versions (path, status, is_default, note, metrics, created_ms, lease_expires_ms)"
              " VALUES ($1, $2, $3, $4, $5, COALESCE(NULLIF($6::bigint, 0), ",
              kServerNow, "), CASE WHEN $2 = 'training' THEN ", kServerNow, " + $7::bigint ELSE 0 END) RETURNING id"),
          version.path, version.status, int64_t{version.is_default}, version.note,
          version.metrics_json.empty() ? std::string("{}") : version.metrics_json, version.created_ms, kTrainingLeaseMs);
      tx.commit();
      return integer(r[0]);
    });
  }

  bool hold_model_version(int64_t id, int64_t lease_ms) override {
    return transaction("hold_model_version", [&](pqxx::work& tx) {
      const pqxx::result r = tx.exec_params(
          cat("UPDATE model_versions SET lease_expires_ms = ", kServerNow,
              " + $1::bigint WHERE id = $2 AND status = 'training'"),
          lease_ms, id);
      tx.commit();
      return r.affected_rows() > 0;
    });
  }

  int64_t fail_abandoned_model_versions(const std::string& note) override {
    return transaction("fail_abandoned_model_versions", [&](pqxx::work& tx) {
      const pqxx::result r = tx.exec_params(
          cat("UPDATE model_versions SET status = 'failed', note = $1 WHERE status = 'training' AND lease_expires_ms <= ",
              kServerNow),
          note);
      tx.commit();
      return static_cast<int64_t>(r.affected_rows());
    });
  }

  std::vector<ModelVersion> model_versions() override {
    return transaction("model_versions", [&](pqxx::work& tx) {
      std::vector<ModelVersion> out;
      for (const pqxx::row& row : tx.exec(cat("SELECT ", kModelVersionColumns, " FROM model_versions ORDER BY id")))
        out.push_back(read_model_version(row));
      return out;
    });
  }

  bool update_model_version(const ModelVersion& version) override {
    detail::check_model_status(version.status);
    return transaction("update_model_version", [&](pqxx::work& tx) {
      if (version.is_default) tx.exec("LOCK TABLE model_versions IN SHARE ROW EXCLUSIVE MODE");
      const pqxx::result r = tx.exec_params("UPDATE model_versions SET status = $1, note = $2, metrics = $3 WHERE id = $4",
                                            version.status, version.note,
                                            version.metrics_json.empty() ? std::string("{}") : version.metrics_json,
                                            version.id);
      if (r.affected_rows() == 0) return false;  // nothing changed: the transaction is rolled back
      if (version.is_default) {
        tx.exec_params("UPDATE model_versions SET is_default = 0 WHERE is_default = 1 AND id <> $1", version.id);
        tx.exec_params("UPDATE model_versions SET is_default = 1 WHERE id = $1", version.id);
      }
      tx.commit();
      return true;
    });
  }

 private:
  // Which of a sample's references is missing, after its foreign key failed.
  std::string missing_user_or_job(int64_t user, int64_t job) {
    return transaction("put_sample", [&](pqxx::work& tx) {
      const pqxx::row r = tx.exec_params1(
          "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)::int, EXISTS (SELECT 1 FROM jobs WHERE id = $2)::int",
          user, job);
      std::string missing;
      if (integer(r[0]) == 0) missing.append("no user with id ").append(std::to_string(user));
      if (integer(r[1]) == 0)
        missing.append(missing.empty() ? "" : ", ").append("no job with id ").append(std::to_string(job));
      return missing.empty() ? std::string("a user or job it names does not exist") : missing;
    });
  }

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

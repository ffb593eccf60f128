// The SQLite job store: one file in WAL mode (readers never wait for the writer), a busy
// timeout so that processes sharing the file queue up instead of failing, and every write
// in a BEGIN IMMEDIATE transaction so that a claim is atomic across processes. One
// connection per store object, used under a mutex (a worker's heartbeat thread shares it).
#include <sqlite3.h>

#include <mutex>

#include "digitflow/jobs/store.hpp"
#include "schema.hpp"

namespace digitflow::jobs {

namespace {

class Statement;

class Database {
 public:
  explicit Database(const std::filesystem::path& file) : file_(file) {
    if (file.has_parent_path()) {
      std::error_code ec;
      std::filesystem::create_directories(file.parent_path(), ec);
    }
    const int rc = sqlite3_open_v2(file.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                                   nullptr);
    if (rc != SQLITE_OK) {
      std::string message = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
      sqlite3_close(db_);
      db_ = nullptr;
      throw StoreError(file.string() + ": cannot open the job store: " + message);
    }
    sqlite3_extended_result_codes(db_, 1);
    sqlite3_busy_timeout(db_, 10'000);
  }
  ~Database() { sqlite3_close_v2(db_); }
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  sqlite3* handle() const { return db_; }
  const std::filesystem::path& file() const { return file_; }

  // Throws the right StoreError for an SQLite result code.
  [[noreturn]] void fail(int rc, const std::string& what) const {
    std::string message = file_.string();
    message.append(": ").append(what).append(": ").append(sqlite3_errmsg(db_));
    const int primary = rc & 0xff;
    if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) throw TransientError(message);
    if (primary == SQLITE_CONSTRAINT && (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY))
      throw Conflict(message);
    if (primary == SQLITE_FULL || primary == SQLITE_IOERR) throw TransientError(message);
    throw StoreError(message);
  }

  void exec(const std::string& sql) {
    const int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) fail(rc, sql.substr(0, sql.find(' ', 12)));
  }

 private:
  std::filesystem::path file_;
  sqlite3* db_ = nullptr;
};

class Statement {
 public:
  Statement(Database& db, const char* sql) : db_(db) {
    const int rc = sqlite3_prepare_v2(db.handle(), sql, -1, &stmt_, nullptr);
    if (rc != SQLITE_OK) db.fail(rc, "prepare");
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  Statement& bind(int i, int64_t v) {
    check(sqlite3_bind_int64(stmt_, i, v));
    return *this;
  }
  Statement& bind(int i, double v) {
    check(sqlite3_bind_double(stmt_, i, v));
    return *this;
  }
  Statement& bind(int i, const std::string& v) {
    check(sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
    return *this;
  }
  Statement& bind_null(int i) {
    check(sqlite3_bind_null(stmt_, i));
    return *this;
  }
  // True while there is a row.
  bool step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    db_.fail(rc, "step");
  }
  void run() {
    while (step()) {
    }
  }
  int64_t integer(int column) const { return sqlite3_column_int64(stmt_, column); }
  double real(int column) const { return sqlite3_column_double(stmt_, column); }
  std::string text(int column) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, column));
    return p ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(stmt_, column))) : std::string();
  }
  int changes() const { return sqlite3_changes(db_.handle()); }

 private:
  void check(int rc) {
    if (rc != SQLITE_OK) db_.fail(rc, "bind");
  }
  Database& db_;
  sqlite3_stmt* stmt_ = nullptr;
};

// BEGIN IMMEDIATE ... COMMIT, rolled back when left by an exception.
class Transaction {
 public:
  explicit Transaction(Database& db) : db_(db) { db_.exec("BEGIN IMMEDIATE"); }
  ~Transaction() {
    if (!done_) sqlite3_exec(db_.handle(), "ROLLBACK", nullptr, nullptr, nullptr);
  }
  void commit() {
    db_.exec("COMMIT");
    done_ = true;
  }

 private:
  Database& db_;
  bool done_ = false;
};

using detail::read_api_token;
using detail::read_job;
using detail::read_model_version;
using detail::read_sample;
using detail::read_session;
using detail::read_user;

// Strings built by appending (GCC 12 warns falsely on "literal" + std::string).
template <typename... Parts>
std::string cat(const Parts&... parts) {
  std::string out;
  (out.append(parts), ...);
  return out;
}

bool is_foreign_key_error(const StoreError& e) { return std::string(e.what()).find("FOREIGN KEY") != std::string::npos; }

const std::string kUserColumns = "id, name, email, password_hash, role, disabled, created_ms";
const std::string kSessionColumns = "token_hash, user_id, csrf, created_ms, expires_ms";
const std::string kApiTokenColumns = "id, user_id, name, token_hash, created_ms, last_used_ms";
const std::string kSampleColumns =
    "id, user_id, job, page_key, string_index, digit_index, guess, confidence, label, image, created_ms";
const std::string kModelVersionColumns = "id, path, status, is_default, note, metrics, created_ms";
const std::string kSelectJob = std::string("SELECT ") + detail::kJobColumns + " FROM jobs j JOIN users u ON u.id = j.owner";

class SqliteStore final : public JobStore {
 public:
  explicit SqliteStore(const std::filesystem::path& file) : db_(file) {
    db_.exec("PRAGMA journal_mode = WAL");
    db_.exec("PRAGMA synchronous = NORMAL");
    db_.exec("PRAGMA foreign_keys = ON");
    migrate();
  }

  std::string describe() const override { return "sqlite:" + db_.file().string(); }

  int schema_version() override {
    std::lock_guard lock(mutex_);
    return read_version();
  }

  int64_t add_user(const User& user) override {
    std::lock_guard lock(mutex_);
    Statement s(db_, "INSERT INTO users (name, email, password_hash, role, disabled, created_ms) VALUES (?, ?, ?, ?, ?, ?)");
    s.bind(1, user.name).bind(2, user.email).bind(3, user.password_hash).bind(4, user.role);
    s.bind(5, int64_t{user.disabled}).bind(6, user.created_ms ? user.created_ms : now_ms());
    try {
      s.run();
    } catch (const Conflict&) {
      throw Conflict("a user named '" + user.name + "' already exists");
    }
    return sqlite3_last_insert_rowid(db_.handle());
  }

  std::optional<User> user_by_name(std::string_view name) override {
    std::lock_guard lock(mutex_);
    Statement s(db_, ("SELECT " + kUserColumns + " FROM users WHERE name = ?").c_str());
    s.bind(1, std::string(name));
    if (!s.step()) return std::nullopt;
    return read_user(s);
  }

  std::optional<User> user_by_id(int64_t id) override {
    std::lock_guard lock(mutex_);
    Statement s(db_, ("SELECT " + kUserColumns + " FROM users WHERE id = ?").c_str());
    s.bind(1, id);
    if (!s.step()) return std::nullopt;
    return read_user(s);
  }

  std::vector<User> users() override {
    std::lock_guard lock(mutex_);
    Statement s(db_, ("SELECT " + kUserColumns + " FROM users ORDER BY id").c_str());
    std::vector<User> out;
    while (s.step()) out.push_back(read_user(s));
    return out;
  }

  bool update_user(const User& user) override {
    std::lock_guard lock(mutex_);
    Statement s(db_, "UPDATE users SET email = ?, password_hash = ?, role = ?, disabled = ? WHERE id = ?");
    s.bind(1, user.email).bind(2, user.password_hash).bind(3, user.role).bind(4, int64_t{user.disabled}).bind(5, user.id);
    s.run();
    return s.changes() > 0;
  }

  int64_t create_job(const NewJob& job) override {
    std::lock_guard lock(mutex_);
    Statement s(db_,
                "INSERT INTO jobs (owner, name, state, input_dir, template, model, source, created_ms)"
                " VALUES (?, ?, 'queued', ?, ?, ?, ?, ?)");
    s.bind(1, job.owner).bind(2, job.name).bind(3, job.input_dir.string()).bind(4, job.template_path).bind(5, job.model);
    if (job.source.empty())
      s.bind_null(6);
    else
      s.bind(6, job.source);
    s.bind(7, now_ms());
    try {
      s.run();
    } catch (const Conflict&) {
      throw Conflict("a job from '" + job.source + "' was submitted before");
    } catch (const StoreError& e) {
      if (is_foreign_key_error(e)) throw StoreError("no user with id " + std::to_string(job.owner));
      throw;
    }
    return sqlite3_last_insert_rowid(db_.handle());
  }

  std::optional<Job> job(int64_t id) override {
    std::lock_guard lock(mutex_);
    return job_locked(id);
  }

  std::vector<Job> jobs(int64_t owner) override {
    std::lock_guard lock(mutex_);
    Statement s(db_, (kSelectJob + (owner ? " WHERE j.owner = ?" : "") + " ORDER BY j.id DESC").c_str());
    if (owner) s.bind(1, owner);
    std::vector<Job> out;
    while (s.step()) out.push_back(read_job(s));
    return out;
  }

  std::optional<Job> claim_job(const std::string& worker, int64_t lease_ms) override {
    std::lock_guard lock(mutex_);
    Transaction tx(db_);
    const int64_t now = now_ms();
    {
      Statement s(db_,
                  "UPDATE jobs SET state = 'cancelled', finished_ms = ?"
                  " WHERE state = 'running' AND cancel_requested = 1 AND lease_expires_ms < ?");
      s.bind(1, now).bind(2, now).run();
    }
    int64_t id = 0;
    {
      Statement s(db_,
                  "SELECT id FROM jobs WHERE state = 'queued' OR (state = 'running' AND lease_expires_ms < ?)"
                  " ORDER BY id LIMIT 1");
      s.bind(1, now);
      if (!s.step()) {
        tx.commit();
        return std::nullopt;
      }
      id = s.integer(0);
    }
    {
      Statement s(db_,
                  "UPDATE jobs SET state = 'running', worker = ?, lease_expires_ms = ?, attempts = attempts + 1,"
                  " started_ms = CASE WHEN started_ms = 0 THEN ? ELSE started_ms END WHERE id = ?");
      s.bind(1, worker).bind(2, now + lease_ms).bind(3, now).bind(4, id).run();
    }
    std::optional<Job> claimed = job_locked(id);
    tx.commit();
    return claimed;
  }

  Lease heartbeat(int64_t job, const std::string& worker, int64_t lease_ms) override {
    std::lock_guard lock(mutex_);
    Statement s(db_,
                "UPDATE jobs SET lease_expires_ms = ? WHERE id = ? AND worker = ? AND state = 'running'"
                " RETURNING cancel_requested");
    s.bind(1, now_ms() + lease_ms).bind(2, job).bind(3, worker);
    Lease lease;
    if (s.step()) {
      lease.held = true;
      lease.cancel_requested = s.integer(0) != 0;
      s.run();
    }
    return lease;
  }

  void set_pages_total(int64_t job, const std::string& worker, int64_t total) override {
    std::lock_guard lock(mutex_);
    Statement s(db_, "UPDATE jobs SET pages_total = ? WHERE id = ? AND worker = ? AND state = 'running'");
    s.bind(1, total).bind(2, job).bind(3, worker).run();
    if (s.changes() == 0) throw lease_lost(job, worker);
  }

  bool put_page(int64_t job, const std::string& worker, const PageRecord& page) override {
    std::lock_guard lock(mutex_);
    Transaction tx(db_);
    {
      Statement s(db_, "SELECT 1 FROM jobs WHERE id = ? AND worker = ? AND state = 'running'");
      s.bind(1, job).bind(2, worker);
      if (!s.step()) throw lease_lost(job, worker);
    }
    Statement s(db_,
                "INSERT INTO pages (job, seq, key, failed, strings, low_confidence, result) VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (job, key) DO NOTHING");
    s.bind(1, job).bind(2, page.seq).bind(3, page.key).bind(4, int64_t{page.failed}).bind(5, page.strings);
    s.bind(6, page.low_confidence).bind(7, page.result_json).run();
    const bool inserted = s.changes() > 0;
    if (inserted) {
      Statement u(db_,
                  "UPDATE jobs SET pages_done = pages_done + 1, pages_failed = pages_failed + ?,"
                  " strings = strings + ?, low_confidence = low_confidence + ? WHERE id = ?");
      u.bind(1, int64_t{page.failed}).bind(2, page.strings).bind(3, page.low_confidence).bind(4, job).run();
    }
    tx.commit();
    return inserted;
  }

  std::vector<std::string> page_keys(int64_t job) override {
    std::lock_guard lock(mutex_);
    Statement s(db_, "SELECT key FROM pages WHERE job = ? ORDER BY seq");
    s.bind(1, job);
    std::vector<std::string> out;
    while (s.step()) out.push_back(s.text(0));
    return out;
  }

  std::vector<PageRecord> pages(int64_t job, int64_t from, int64_t limit) override {
    std::lock_guard lock(mutex_);
    Statement s(db_,
                "SELECT seq, key, failed, strings, low_confidence, result FROM pages"
                " WHERE job = ? AND seq >= ? ORDER BY seq LIMIT ?");
    s.bind(1, job).bind(2, from).bind(3, limit > 0 ? limit : int64_t{-1});
    std::vector<PageRecord> out;
    while (s.step()) {
      PageRecord p;
      p.seq = s.integer(0);
      p.key = s.text(1);
      p.failed = s.integer(2) != 0;
      p.strings = s.integer(3);
      p.low_confidence = s.integer(4);
      p.result_json = s.text(5);
      out.push_back(std::move(p));
    }
    return out;
  }

  void finish_job(int64_t job, const std::string& worker, JobState state, const std::string& error) override {
    if (!is_final(state)) throw StoreError("finish_job: '" + std::string(to_string(state)) + "' is not a final state");
    std::lock_guard lock(mutex_);
    Statement s(db_,
                "UPDATE jobs SET state = ?, error = ?, finished_ms = ?, lease_expires_ms = 0"
                " WHERE id = ? AND worker = ? AND state = 'running'");
    s.bind(1, std::string(to_string(state))).bind(2, error).bind(3, now_ms()).bind(4, job).bind(5, worker).run();
    if (s.changes() == 0) throw lease_lost(job, worker);
  }

  void release_job(int64_t job, const std::string& worker) override {
    std::lock_guard lock(mutex_);
    Statement s(db_,
                "UPDATE jobs SET state = CASE WHEN cancel_requested = 1 THEN 'cancelled' ELSE 'queued' END,"
                " finished_ms = CASE WHEN cancel_requested = 1 THEN ? ELSE 0 END, lease_expires_ms = 0"
                " WHERE id = ? AND worker = ? AND state = 'running'");
    s.bind(1, now_ms()).bind(2, job).bind(3, worker).run();
  }

  std::optional<JobState> cancel_job(int64_t id) override {
    std::lock_guard lock(mutex_);
    Transaction tx(db_);
    {
      Statement s(db_, "UPDATE jobs SET state = 'cancelled', finished_ms = ? WHERE id = ? AND state = 'queued'");
      s.bind(1, now_ms()).bind(2, id).run();
    }
    {
      Statement s(db_, "UPDATE jobs SET cancel_requested = 1 WHERE id = ? AND state = 'running'");
      s.bind(1, id).run();
    }
    std::optional<JobState> state;
    {
      Statement s(db_, "SELECT state FROM jobs WHERE id = ?");
      s.bind(1, id);
      if (s.step()) state = parse_job_state(s.text(0));
    }
    tx.commit();
    return state;
  }

  void add_session(const Session& session) override {
    std::lock_guard lock(mutex_);
    Statement s(db_, "INSERT INTO sessions (token_hash, user_id, csrf, created_ms, expires_ms) VALUES (?, ?, ?, ?, ?)");
    s.bind(1, session.token_hash).bind(2, session.user).bind(3, session.csrf);
    s.bind(4, session.created_ms ? session.created_ms : now_ms()).bind(5, session.expires_ms);
    try {
      s.run();
    } catch (const Conflict&) {
      throw Conflict("a session with this token already exists");
    } catch (const StoreError& e) {
      if (is_foreign_key_error(e)) throw StoreError(cat("add_session: no user with id ", std::to_string(session.user)));
      throw;
    }
  }

  std::optional<Session> session(const std::string& token_hash) override {
    std::lock_guard lock(mutex_);
    Statement s(db_, ("SELECT " + kSessionColumns + " FROM sessions WHERE token_hash = ?").c_str());
    s.bind(1, token_hash);
    if (!s.step()) return std::nullopt;
    return read_session(s);
  }

  void delete_session(const std::string& token_hash) override {
    std::lock_guard lock(mutex_);
    Statement s(db_, "DELETE FROM sessions WHERE token_hash = ?");
    s.bind(1, token_hash).run();
  }

  void delete_sessions(int64_t user) override {
    std::lock_guard lock(mutex_);
    Statement s(db_, "DELETE FROM sessions WHERE user_id = ?");
    s.bind(1, user).run();
  }

  int64_t add_api_token(const ApiToken& token) override {
    std::lock_guard lock(mutex_);
    Statement s(db_, "INSERT INTO api_tokens (user_id, name, token_hash, created_ms) VALUES (?, ?, ?, ?)");
    s.bind(1, token.user).bind(2, token.name).bind(3, token.token_hash);
    s.bind(4, token.created_ms ? token.created_ms : now_ms());
    try {
      s.run();
    } catch (const Conflict&) {
      throw Conflict("an API token with this hash already exists");
    } catch (const StoreError& e) {
      if (is_foreign_key_error(e)) throw StoreError(cat("add_api_token: no user with id ", std::to_string(token.user)));
      throw;
    }
    return sqlite3_last_insert_rowid(db_.handle());
  }

  std::optional<ApiToken> api_token(const std::string& token_hash) override {
    std::lock_guard lock(mutex_);
    Statement s(db_, ("UPDATE api_tokens SET last_used_ms = ? WHERE token_hash = ? RETURNING " + kApiTokenColumns).c_str());
    s.bind(1, now_ms()).bind(2, token_hash);
    if (!s.step()) return std::nullopt;
    ApiToken token = read_api_token(s);
    s.run();
    return token;
  }

  std::vector<ApiToken> api_tokens(int64_t user) override {
    std::lock_guard lock(mutex_);
    Statement s(db_, ("SELECT " + kApiTokenColumns + " FROM api_tokens WHERE user_id = ? ORDER BY id").c_str());
    s.bind(1, user);
    std::vector<ApiToken> out;
    while (s.step()) out.push_back(read_api_token(s));
    return out;
  }

  bool revoke_api_token(int64_t user, int64_t id) override {
    std::lock_guard lock(mutex_);
    Statement s(db_, "DELETE FROM api_tokens WHERE id = ? AND user_id = ?");
    s.bind(1, id).bind(2, user).run();
    return s.changes() > 0;
  }

  int64_t put_sample(const Sample& sample) override {
    detail::check_sample(sample);
    std::lock_guard lock(mutex_);
    Statement s(db_,
                "INSERT INTO samples (user_id, job, page_key, string_index, digit_index, guess, confidence, label, image,"
                " created_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (job, page_key, string_index, digit_index) DO UPDATE SET user_id = excluded.user_id,"
                " guess = excluded.guess, confidence = excluded.confidence, label = excluded.label,"
                " image = excluded.image, created_ms = excluded.created_ms RETURNING id");
    s.bind(1, sample.user).bind(2, sample.job).bind(3, sample.page_key).bind(4, int64_t{sample.string_index});
    s.bind(5, int64_t{sample.digit_index}).bind(6, int64_t{sample.guess}).bind(7, sample.confidence);
    s.bind(8, int64_t{sample.label}).bind(9, sample.image).bind(10, sample.created_ms ? sample.created_ms : now_ms());
    try {
      s.step();
    } catch (const StoreError& e) {
      if (is_foreign_key_error(e)) throw StoreError(cat("put_sample: ", missing_user_or_job(sample.user, sample.job)));
      throw;
    }
    const int64_t id = s.integer(0);
    s.run();
    return id;
  }

  std::vector<Sample> samples(int64_t user, int64_t limit) override {
    std::lock_guard lock(mutex_);
    Statement s(db_, ("SELECT " + kSampleColumns + " FROM samples" + (user ? " WHERE user_id = ?" : "") +
                      " ORDER BY created_ms DESC, id DESC LIMIT ?")
                         .c_str());
    int column = 1;
    if (user) s.bind(column++, user);
    s.bind(column, limit > 0 ? limit : int64_t{-1});
    std::vector<Sample> out;
    while (s.step()) out.push_back(read_sample(s));
    return out;
  }

  std::vector<std::string> reviewed_digits(int64_t job) override {
    std::lock_guard lock(mutex_);
    Statement s(db_,
                "SELECT page_key, string_index, digit_index FROM samples WHERE job = ?"
                " ORDER BY page_key, string_index, digit_index");
    s.bind(1, job);
    std::vector<std::string> out;
    while (s.step()) {
      std::string digit = s.text(0);
      digit.append("/").append(std::to_string(s.integer(1))).append("/").append(std::to_string(s.integer(2)));
      out.push_back(std::move(digit));
    }
    return out;
  }

  int64_t add_model_version(const ModelVersion& version) override {
    detail::check_model_status(version.status);
    std::lock_guard lock(mutex_);
    Transaction tx(db_);
    if (version.is_default) db_.exec("UPDATE model_versions SET is_default = 0 WHERE is_default = 1");
    Statement s(db_,
                "INSERT INTO model_versions (path, status, is_default, note, metrics, created_ms, lease_expires_ms)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)");
    s.bind(1, version.path).bind(2, version.status).bind(3, int64_t{version.is_default}).bind(4, version.note);
    s.bind(5, version.metrics_json.empty() ? std::string("{}") : version.metrics_json);
    s.bind(6, version.created_ms ? version.created_ms : now_ms());
    s.bind(7, version.status == "training" ? now_ms() + kTrainingLeaseMs : int64_t{0});
    s.run();
    const int64_t id = sqlite3_last_insert_rowid(db_.handle());
    tx.commit();
    return id;
  }

  bool hold_model_version(int64_t id, int64_t lease_ms) override {
    std::lock_guard lock(mutex_);
    Statement s(db_, "UPDATE model_versions SET lease_expires_ms = ? WHERE id = ? AND status = 'training'");
    s.bind(1, now_ms() + lease_ms).bind(2, id).run();
    return s.changes() > 0;
  }

  int64_t fail_abandoned_model_versions(const std::string& note) override {
    std::lock_guard lock(mutex_);
    Statement s(db_,
                "UPDATE model_versions SET status = 'failed', note = ? WHERE status = 'training' AND lease_expires_ms <= ?");
    s.bind(1, note).bind(2, now_ms()).run();
    return s.changes();
  }

  std::vector<ModelVersion> model_versions() override {
    std::lock_guard lock(mutex_);
    Statement s(db_, ("SELECT " + kModelVersionColumns + " FROM model_versions ORDER BY id").c_str());
    std::vector<ModelVersion> out;
    while (s.step()) out.push_back(read_model_version(s));
    return out;
  }

  bool update_model_version(const ModelVersion& version) override {
    detail::check_model_status(version.status);
    std::lock_guard lock(mutex_);
    Transaction tx(db_);
    {
      Statement s(db_, "UPDATE model_versions SET status = ?, note = ?, metrics = ? WHERE id = ?");
      s.bind(1, version.status).bind(2, version.note);
      s.bind(3, version.metrics_json.empty() ? std::string("{}") : version.metrics_json).bind(4, version.id);
      s.run();
      if (s.changes() == 0) return false;
    }
    if (version.is_default) {
      Statement clear(db_, "UPDATE model_versions SET is_default = 0 WHERE is_default = 1 AND id <> ?");
      clear.bind(1, version.id).run();
      Statement set(db_, "UPDATE model_versions SET is_default = 1 WHERE id = ?");
      set.bind(1, version.id).run();
    }
    tx.commit();
    return true;
  }

 private:
  // Which of a sample's references is missing, after a foreign key failed. Call under mutex_.
  std::string missing_user_or_job(int64_t user, int64_t job) {
    std::string missing;
    Statement u(db_, "SELECT 1 FROM users WHERE id = ?");
    u.bind(1, user);
    if (!u.step()) missing.append("no user with id ").append(std::to_string(user));
    Statement j(db_, "SELECT 1 FROM jobs WHERE id = ?");
    j.bind(1, job);
    if (!j.step()) missing.append(missing.empty() ? "" : ", ").append("no job with id ").append(std::to_string(job));
    return missing.empty() ? std::string("a user or job it names does not exist") : missing;
  }

  LeaseLost lease_lost(int64_t job, const std::string& worker) const {
    return LeaseLost("job " + std::to_string(job) + " is no longer held by worker " + worker);
  }

  std::optional<Job> job_locked(int64_t id) {
    Statement s(db_, (kSelectJob + " WHERE j.id = ?").c_str());
    s.bind(1, id);
    if (!s.step()) return std::nullopt;
    return read_job(s);
  }

  int read_version() {
    Statement s(db_, "SELECT COALESCE(MAX(version), 0) FROM schema_version");
    s.step();
    return static_cast<int>(s.integer(0));
  }

  void migrate() {
    std::lock_guard lock(mutex_);
    Transaction tx(db_);
    db_.exec("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)");
    const int version = read_version();
    if (version > kSchemaVersion)
      throw SchemaTooNew(db_.file().string() + ": the job store is at schema version " + std::to_string(version) +
                         ", newer than this digitflow understands (" + std::to_string(kSchemaVersion) +
                         "); run a newer digitflow");
    const auto steps = detail::migrations({"INTEGER PRIMARY KEY"});
    for (int v = version; v < kSchemaVersion; ++v)
      for (const std::string& sql : steps[static_cast<size_t>(v)]) db_.exec(sql);
    if (version < kSchemaVersion) {
      db_.exec("DELETE FROM schema_version");
      Statement s(db_, "INSERT INTO schema_version (version) VALUES (?)");
      s.bind(1, int64_t{kSchemaVersion}).run();
    }
    tx.commit();
  }

  Database db_;
  std::mutex mutex_;
};

}  // namespace

std::unique_ptr<JobStore> open_sqlite_store(const std::filesystem::path& file) {
  return std::make_unique<SqliteStore>(file);
}

}  // namespace digitflow::jobs

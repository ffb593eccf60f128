// The job store: users, jobs and per-page results, behind one interface with two
// implementations that pass the same test suite: SQLite (one file, the embedded default)
// and PostgreSQL (many workers on many machines share one queue). Every state change that
// workers race on is one statement or one transaction in the store, never read-then-write
// in the caller.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace digitflow::jobs {

// Any failure of the store; the message names the store and the operation.
class StoreError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
// A failure that may pass if tried again: the database is busy or locked, the connection
// dropped. Workers retry these; anything else fails the job.
class TransientError : public StoreError {
 public:
  using StoreError::StoreError;
};
// The database was written by a newer digitflow (its schema version is above ours).
class SchemaTooNew : public StoreError {
 public:
  using StoreError::StoreError;
};
// A name that must be unique is taken (user name, job source).
class Conflict : public StoreError {
 public:
  using StoreError::StoreError;
};
// The worker no longer holds the job: its lease expired and another worker claimed it,
// or the job was cancelled or finished meanwhile. The worker must stop writing.
class LeaseLost : public StoreError {
 public:
  using StoreError::StoreError;
};

enum class JobState { queued, running, done, failed, cancelled };
std::string_view to_string(JobState state);
JobState parse_job_state(std::string_view text);  // throws StoreError on an unknown name
bool is_final(JobState state);                    // done, failed or cancelled

struct User {
  int64_t id = 0;
  std::string name, email;
  std::string password_hash;  // empty: cannot log in with a password
  std::string role = "user";  // "user" | "admin"
  bool disabled = false;
  int64_t created_ms = 0;
};

struct NewJob {
  int64_t owner = 0;
  std::string name;
  std::filesystem::path input_dir;  // the job's own copy of the pages, under the state dir
  std::string template_path;        // "" = search the whole page
  std::string model;                // "" = the worker's default model
  std::string source;               // "" or a unique origin (a drop folder): submitted once
};

struct Job {
  int64_t id = 0;
  int64_t owner = 0;
  std::string owner_name;
  std::string name;
  JobState state = JobState::queued;
  std::filesystem::path input_dir;
  std::string template_path, model, source;
  int64_t pages_total = -1;  // -1 until a worker has listed the folder
  int64_t pages_done = 0, pages_failed = 0, strings = 0, low_confidence = 0;
  int64_t created_ms = 0, started_ms = 0, finished_ms = 0;  // 0 = not yet
  std::string error;
  std::string worker;          // the worker that holds (or last held) the job
  int64_t lease_expires_ms = 0;
  bool cancel_requested = false;
  int attempts = 0;            // times claimed
};

// One page's result as the pipeline wrote it (a results.jsonl line).
struct PageRecord {
  int64_t seq = 0;             // position of the page in the job's stable page order
  std::string key;             // "<relative path>#<page index>", unique in a job
  bool failed = false;         // the line has an "error"
  int64_t strings = 0, low_confidence = 0;
  std::string result_json;     // the results.jsonl line, without its newline
};

// A logged-in browser: the cookie holds a random token, the store only its hash.
struct Session {
  std::string token_hash;  // hex SHA-256 of the cookie's token
  int64_t user = 0;
  std::string csrf;        // the token state-changing requests must echo
  int64_t created_ms = 0, expires_ms = 0;
};

// A token for API clients (digitflow submit --server); the store keeps only its hash.
struct ApiToken {
  int64_t id = 0;
  int64_t user = 0;
  std::string name;        // what the user called it
  std::string token_hash;  // hex SHA-256 of the token
  int64_t created_ms = 0, last_used_ms = 0;
};

// A digit a person reviewed: the model's guess and the label they confirmed or typed.
struct Sample {
  int64_t id = 0;
  int64_t user = 0;                // who reviewed it
  int64_t job = 0;
  std::string page_key;            // PageRecord::key
  int string_index = 0, digit_index = 0;
  int guess = 0;                   // the model's digit
  double confidence = 0;           // the model's probability of it
  int label = 0;                   // 0..9, or 10: not a digit
  std::string image;               // the 28x28 MNIST-style PNG, relative to the state dir
  int64_t created_ms = 0;
};

// A model the service knows: the shipped one, and each retrained one.
// How long a version in training stays held without a word from its trainer, by default.
inline constexpr int64_t kTrainingLeaseMs = 120000;

struct ModelVersion {
  int64_t id = 0;
  std::string path;                // model file
  std::string status;              // training | ready | rejected | failed
  bool is_default = false;         // the one workers and the pad use
  std::string note;                // why it was or was not promoted, or the error
  std::string metrics_json;        // evaluation figures, as JSON ("{}" when none)
  int64_t created_ms = 0;
};

// What a heartbeat learns.
struct Lease {
  bool held = false;              // false: stop at once and write nothing more
  bool cancel_requested = false;  // the owner asked to stop: finish as cancelled
};

class JobStore {
 public:
  virtual ~JobStore() = default;
  // "sqlite:<path>" or "postgresql://..." (password elided), for messages.
  virtual std::string describe() const = 0;
  // The schema version this store is at (the binary's, after migrations at open).
  virtual int schema_version() = 0;

  // Users. add_user throws Conflict when the name is taken.
  virtual int64_t add_user(const User& user) = 0;
  virtual std::optional<User> user_by_name(std::string_view name) = 0;
  virtual std::optional<User> user_by_id(int64_t id) = 0;
  virtual std::vector<User> users() = 0;  // by id
  // Replaces email, password hash, role and disabled of user.id; false when no such user.
  virtual bool update_user(const User& user) = 0;

  // Jobs. create_job throws Conflict when a non-empty source was submitted before.
  virtual int64_t create_job(const NewJob& job) = 0;
  virtual std::optional<Job> job(int64_t id) = 0;
  // Newest first; owner 0 = every user's.
  virtual std::vector<Job> jobs(int64_t owner = 0) = 0;

  // Takes the oldest job that is queued, or running under an expired lease (its worker
  // died), for `worker` until now + lease_ms; atomically, so two workers never get the
  // same job. A job whose worker died after its owner asked to cancel becomes cancelled
  // here instead. Empty when there is nothing to do.
  virtual std::optional<Job> claim_job(const std::string& worker, int64_t lease_ms) = 0;
  // Extends the lease; says whether the worker still holds the job and whether the owner
  // asked to cancel.
  virtual Lease heartbeat(int64_t job, const std::string& worker, int64_t lease_ms) = 0;
  // Records the number of pages once the worker has listed the folder. Throws LeaseLost.
  virtual void set_pages_total(int64_t job, const std::string& worker, int64_t total) = 0;
  // Stores one page's result and adds it to the job's counts in one transaction; a page
  // stored before (same key) is left as it is and not counted twice. Throws LeaseLost when
  // `worker` no longer holds the job. Returns false for a page that was already stored.
  virtual bool put_page(int64_t job, const std::string& worker, const PageRecord& page) = 0;
  // The keys of the pages stored so far (what a resumed job skips).
  virtual std::vector<std::string> page_keys(int64_t job) = 0;
  // The stored pages in page order, from seq `from` on, at most `limit` (0 = all).
  virtual std::vector<PageRecord> pages(int64_t job, int64_t from = 0, int64_t limit = 0) = 0;
  // Ends a running job held by `worker`: done, failed (with the reason) or cancelled.
  // Throws LeaseLost when the worker no longer holds it.
  virtual void finish_job(int64_t job, const std::string& worker, JobState state,
                          const std::string& error = {}) = 0;
  // Puts a running job held by `worker` back in the queue (a worker that shuts down).
  virtual void release_job(int64_t job, const std::string& worker) = 0;
  // A queued job becomes cancelled at once; a running one is flagged and its worker stops
  // at its next heartbeat. Returns the state after the call; nullopt when no such job.
  virtual std::optional<JobState> cancel_job(int64_t id) = 0;

  // Sessions. session() returns a session whatever its expiry; callers check expires_ms.
  virtual void add_session(const Session& session) = 0;
  virtual std::optional<Session> session(const std::string& token_hash) = 0;
  virtual void delete_session(const std::string& token_hash) = 0;
  // Every session of a user (at a password change, or when an admin disables them).
  virtual void delete_sessions(int64_t user) = 0;

  // API tokens. add_api_token returns the new id.
  virtual int64_t add_api_token(const ApiToken& token) = 0;
  virtual std::optional<ApiToken> api_token(const std::string& token_hash) = 0;  // also marks it used
  virtual std::vector<ApiToken> api_tokens(int64_t user) = 0;                    // by id
  virtual bool revoke_api_token(int64_t user, int64_t id) = 0;  // false: no such token of that user

  // Reviewed digits. A digit reviewed again replaces its sample (same job, page, string,
  // digit) and keeps its id; returns the sample's id. StoreError for a label outside
  // 0..10 or a user or job that does not exist.
  virtual int64_t put_sample(const Sample& sample) = 0;
  // Newest first; user 0 = everyone's; limit 0 = all.
  virtual std::vector<Sample> samples(int64_t user = 0, int64_t limit = 0) = 0;
  // "page_key/string/digit" of a job's reviewed digits (what the review queue leaves out).
  virtual std::vector<std::string> reviewed_digits(int64_t job) = 0;

  // Model versions, by id. A version added with is_default becomes the only default. One
  // added in status "training" is held by its trainer for kTrainingLeaseMs (see below).
  virtual int64_t add_model_version(const ModelVersion& version) = 0;
  // While a version trains, its trainer renews its hold: it lapses lease_ms from now (the
  // database server's clock for PostgreSQL). False when the version is no longer training
  // (or does not exist).
  virtual bool hold_model_version(int64_t id, int64_t lease_ms) = 0;
  // Versions still "training" whose hold has lapsed: their trainer stopped without recording
  // an end (killed, its machine down). They become "failed", `note` saying so; the count.
  virtual int64_t fail_abandoned_model_versions(const std::string& note) = 0;
  virtual std::vector<ModelVersion> model_versions() = 0;
  // Replaces status, note and metrics of version.id; with is_default, it becomes the only
  // default, in one transaction (without, its flag stays as it was: a default is replaced,
  // never unset). False when there is no such version.
  virtual bool update_model_version(const ModelVersion& version) = 0;
};

// Opens (and creates or migrates) a store: a "postgres://" or "postgresql://" URL gives
// PostgreSQL; anything else is the path of an SQLite file. Throws SchemaTooNew when the
// database is newer than this binary, StoreError when it cannot be opened.
std::unique_ptr<JobStore> open_store(const std::string& location);
std::unique_ptr<JobStore> open_sqlite_store(const std::filesystem::path& file);
std::unique_ptr<JobStore> open_postgres_store(const std::string& url);

// The schema version this binary writes and understands.
constexpr int kSchemaVersion = 3;

// Milliseconds since the Unix epoch (the clock stores compare leases with).
int64_t now_ms();

}  // namespace digitflow::jobs

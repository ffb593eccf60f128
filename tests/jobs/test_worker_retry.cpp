// Transient store failures (a busy database, a disk briefly full) are retried and the job
// still ends done with every page once; a failure that persists fails the job with its
// reason. The store here wraps a real SQLite store and fails put_page on demand.
#include <gtest/gtest.h>

#include "digitflow/jobs/worker.hpp"
#include "digitflow/pipeline/synth.hpp"
#include "test_support.hpp"

namespace digitflow::jobs {
namespace {

namespace fs = std::filesystem;
namespace t = digitflow::testing;

// Every call goes to the real store; put_page first throws `failures` times (-1: always).
class FlakyStore final : public JobStore {
 public:
  FlakyStore(JobStore& real, int failures) : real_(real), failures_(failures) {}
  int put_attempts = 0;

  bool put_page(int64_t job, const std::string& worker, const PageRecord& page) override {
    ++put_attempts;
    if (failures_ != 0) {
      if (failures_ > 0) --failures_;
      throw TransientError("sqlite:test: step: database is locked");
    }
    return real_.put_page(job, worker, page);
  }

  std::string describe() const override { return real_.describe(); }
  int schema_version() override { return real_.schema_version(); }
  int64_t add_user(const User& u) override { return real_.add_user(u); }
  std::optional<User> user_by_name(std::string_view n) override { return real_.user_by_name(n); }
  std::optional<User> user_by_id(int64_t id) override { return real_.user_by_id(id); }
  std::vector<User> users() override { return real_.users(); }
  bool update_user(const User& u) override { return real_.update_user(u); }
  int64_t create_job(const NewJob& j) override { return real_.create_job(j); }
  std::optional<Job> job(int64_t id) override { return real_.job(id); }
  std::vector<Job> jobs(int64_t owner) override { return real_.jobs(owner); }
  std::optional<Job> claim_job(const std::string& w, int64_t l) override { return real_.claim_job(w, l); }
  Lease heartbeat(int64_t j, const std::string& w, int64_t l) override { return real_.heartbeat(j, w, l); }
  void set_pages_total(int64_t j, const std::string& w, int64_t n) override { real_.set_pages_total(j, w, n); }
  std::vector<std::string> page_keys(int64_t j) override { return real_.page_keys(j); }
  std::vector<PageRecord> pages(int64_t j, int64_t f, int64_t l) override { return real_.pages(j, f, l); }
  void finish_job(int64_t j, const std::string& w, JobState s, const std::string& e) override {
    real_.finish_job(j, w, s, e);
  }
  void release_job(int64_t j, const std::string& w) override { real_.release_job(j, w); }
  std::optional<JobState> cancel_job(int64_t id) override { return real_.cancel_job(id); }
  void add_session(const Session& s) override { real_.add_session(s); }
  std::optional<Session> session(const std::string& h) override { return real_.session(h); }
  void delete_session(const std::string& h) override { real_.delete_session(h); }
  void delete_sessions(int64_t u) override { real_.delete_sessions(u); }
  int64_t add_api_token(const ApiToken& t) override { return real_.add_api_token(t); }
  std::optional<ApiToken> api_token(const std::string& h) override { return real_.api_token(h); }
  std::vector<ApiToken> api_tokens(int64_t u) override { return real_.api_tokens(u); }
  bool revoke_api_token(int64_t u, int64_t id) override { return real_.revoke_api_token(u, id); }
  int64_t put_sample(const Sample& s) override { return real_.put_sample(s); }
  std::vector<Sample> samples(int64_t u, int64_t l) override { return real_.samples(u, l); }
  std::vector<std::string> reviewed_digits(int64_t j) override { return real_.reviewed_digits(j); }
  int64_t add_model_version(const ModelVersion& v) override { return real_.add_model_version(v); }
  bool hold_model_version(int64_t id, int64_t ms) override { return real_.hold_model_version(id, ms); }
  int64_t fail_abandoned_model_versions(const std::string& n) override { return real_.fail_abandoned_model_versions(n); }
  std::vector<ModelVersion> model_versions() override { return real_.model_versions(); }
  bool update_model_version(const ModelVersion& v) override { return real_.update_model_version(v); }

 private:
  JobStore& real_;
  int failures_;
};

class WorkerRetry : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!t::mnist_available()) GTEST_SKIP() << "MNIST is not fetched (scripts/fetch-mnist.sh): no pages to make";
    state_.root = dir_ / "state";
    store_ = open_sqlite_store(state_.sqlite_file());
    User ana;
    ana.name = "ana";
    store_->add_user(ana);
    pipeline::SynthOptions synth;
    synth.out = dir_ / "pages";
    synth.pages = 3;
    synth.seed = 21;
    synth.kind = "checks";
    synth.mnist_dir = t::mnist_dir();
    pipeline::make_synthetic_job(synth);
    fs::remove(synth.out / "truth.jsonl");
    fs::remove(synth.out / "template.yaml");
    Submission s;
    s.folder = synth.out;
    s.owner = "ana";
    id_ = submit_job(*store_, state_, s);
  }
  WorkerOptions options(int retries) {
    WorkerOptions w;
    w.name = std::string("retry-worker");
    w.state = state_;
    w.default_model = t::source_dir() / "models" / "digits.safetensors";
    w.exit_when_idle = true;
    w.transient_retries = retries;
    w.poll_ms = 20;
    return w;
  }

  t::TempDir dir_;
  StateDir state_;
  std::unique_ptr<JobStore> store_;
  int64_t id_ = 0;
};

TEST_F(WorkerRetry, ABusyDatabaseIsRetriedAndNoPageIsLostOrRepeated) {
  FlakyStore flaky(*store_, 3);
  std::vector<WorkerEvent> retries;
  Worker worker(flaky, options(5), [&](const WorkerEvent& e) {
    if (e.kind == WorkerEvent::retry) retries.push_back(e);
  });
  std::atomic<bool> stop{false};
  EXPECT_EQ(worker.run(stop), 1);
  const Job job = *store_->job(id_);
  EXPECT_EQ(job.state, JobState::done) << job.error;
  EXPECT_EQ(job.pages_done, 3);
  EXPECT_EQ(store_->pages(id_).size(), 3u);
  ASSERT_FALSE(retries.empty());
  EXPECT_NE(retries[0].text.find("database is locked"), std::string::npos) << retries[0].text;
}

TEST_F(WorkerRetry, AFailureThatPersistsFailsTheJobWithItsReason) {
  FlakyStore flaky(*store_, -1);
  Worker worker(flaky, options(2));
  std::atomic<bool> stop{false};
  EXPECT_EQ(worker.run(stop), 1);
  const Job job = *store_->job(id_);
  EXPECT_EQ(job.state, JobState::failed);
  EXPECT_NE(job.error.find("database is locked"), std::string::npos) << job.error;
  EXPECT_EQ(job.pages_done, 0);
  EXPECT_GE(flaky.put_attempts, 2);
}

}  // namespace
}  // namespace digitflow::jobs

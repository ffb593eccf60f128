// The worker on real pages: a job's results equal a plain run of the same folder; a job
// whose worker died resumes without repeating a page; cancel and stop end a running job
// within seconds; and workers racing on one PostgreSQL queue do every job and page once.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>
#include <utility>

#include "digitflow/jobs/worker.hpp"
#include "digitflow/kernels/int8.hpp"
#include "digitflow/kernels/model_file.hpp"
#include "digitflow/pipeline/synth.hpp"
#include "postgres_server.hpp"
#include "test_support.hpp"

namespace digitflow::jobs {
namespace {

namespace fs = std::filesystem;
namespace t = digitflow::testing;
using Clock = std::chrono::steady_clock;

std::string read(const fs::path& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

fs::path shipped_model() { return t::source_dir() / "models" / "digits.safetensors"; }

class WorkerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!t::mnist_available()) GTEST_SKIP() << "MNIST is not fetched (scripts/fetch-mnist.sh): no pages to make";
    state_.root = dir_ / "state";
    store_ = open_sqlite_store(state_.sqlite_file());
    User ana;
    ana.name = "ana";
    store_->add_user(ana);
  }

  // Synthetic check pages (no truth file, so every file is a page).
  fs::path pages(int count, uint64_t seed = 7) {
    pipeline::SynthOptions synth;
    synth.out = dir_ / ("synth-" + std::to_string(seed) + "-" + std::to_string(count));
    synth.pages = count;
    synth.seed = seed;
    synth.kind = "checks";
    synth.mnist_dir = t::mnist_dir();
    pipeline::make_synthetic_job(synth);
    fs::remove(synth.out / "truth.jsonl");
    fs::remove(synth.out / "template.yaml");
    return synth.out;
  }

  int64_t submit(const fs::path& folder, const std::string& model = {}) {
    Submission s;
    s.folder = folder;
    s.owner = "ana";
    s.model = model;
    return submit_job(*store_, state_, s);
  }

  // Two jobs on the same two pages, the first on the configured model, the second on a
  // copy of it under another name (as a retrained model would be), both run by one worker
  // with options `o`: their ids.
  std::pair<int64_t, int64_t> run_on_configured_and_other_model(const WorkerOptions& o) {
    const fs::path folder = pages(2);
    const fs::path other = dir_ / "other.safetensors";
    fs::copy_file(shipped_model(), other);
    const int64_t configured = submit(folder), elsewhere = submit(folder, other.string());
    std::atomic<bool> stop{false};
    Worker worker(*store_, o);
    EXPECT_EQ(worker.run(stop), 2);
    return {configured, elsewhere};
  }

  WorkerOptions options(const std::string& name = "w1") {
    WorkerOptions w;
    w.name = name;
    w.state = state_;
    w.default_model = shipped_model();
    w.run.overlays = true;
    w.lease_ms = 5'000;
    w.heartbeat_ms = 100;
    w.poll_ms = 50;
    w.exit_when_idle = true;
    return w;
  }

  t::TempDir dir_;
  StateDir state_;
  std::unique_ptr<JobStore> store_;
};

TEST_F(WorkerTest, AJobEndsWithTheResultsOfAPlainRun) {
  const fs::path folder = pages(4);
  const int64_t id = submit(folder);
  std::atomic<bool> stop{false};
  std::vector<WorkerEvent> events;
  Worker worker(*store_, options(), [&](const WorkerEvent& e) { events.push_back(e); });
  EXPECT_EQ(worker.run(stop), 1);

  const Job job = *store_->job(id);
  EXPECT_EQ(job.state, JobState::done) << job.error;
  EXPECT_EQ(job.pages_total, 4);
  EXPECT_EQ(job.pages_done, 4);
  EXPECT_GT(job.strings, 0);
  EXPECT_GT(job.finished_ms, 0);

  // The same folder through digitflow run's own function.
  pipeline::RunOptions plain;
  plain.job_dir = job.input_dir;
  plain.out_dir = dir_ / "plain";
  kernels::LoadedModel model = kernels::load_model(shipped_model());
  pipeline::run_job(plain, model.network);
  const fs::path out = state_.job_output(id);
  EXPECT_EQ(read(out / "results.jsonl"), read(plain.out_dir / "results.jsonl"));
  EXPECT_EQ(read(out / "results.csv"), read(plain.out_dir / "results.csv"));
  int overlays = 0;
  for (const auto& e : fs::recursive_directory_iterator(out / "overlays")) overlays += e.is_regular_file();
  EXPECT_EQ(overlays, 4);
  const auto summary = nlohmann::json::parse(read(out / "summary.json"));
  EXPECT_EQ(summary["pages"], 4);
  EXPECT_EQ(summary["job"]["id"], id);
  EXPECT_EQ(summary["strings"], job.strings);
  EXPECT_EQ(std::count_if(events.begin(), events.end(), [](const WorkerEvent& e) { return e.kind == WorkerEvent::progress; }),
            4);
}

TEST_F(WorkerTest, TheScreenReadsOnlyForTheConfiguredModel) {
  // model.screen was trained beside the configured model: a job on another model (a
  // retrained one, or any file the job names) has every image read by that model.
  WorkerOptions o = options();
  o.screen_model = t::source_dir() / "models" / "screen.safetensors";
  const auto [screened, alone] = run_on_configured_and_other_model(o);
  for (int64_t id : {screened, alone}) {
    EXPECT_EQ(store_->job(id)->state, JobState::done) << store_->job(id)->error;
    const auto summary = nlohmann::json::parse(read(state_.job_output(id) / "summary.json"));
    const int64_t all = summary["images_scored"], in_full = summary["images_read_in_full"];
    EXPECT_GT(all, 0) << "job " << id;
    if (id == screened)
      EXPECT_LT(in_full, all);
    else
      EXPECT_EQ(in_full, all);
  }
}

TEST_F(WorkerTest, AJobNamingTheConfiguredModelByAnotherPathIsScreened) {
  // The same file spelled another way ("models/./digits.safetensors") is the configured model.
  WorkerOptions o = options();
  o.screen_model = t::source_dir() / "models" / "screen.safetensors";
  const fs::path spelled = shipped_model().parent_path() / "." / shipped_model().filename();
  ASSERT_NE(spelled, o.default_model);
  const int64_t id = submit(pages(2), spelled.string());
  std::atomic<bool> stop{false};
  Worker worker(*store_, o);
  EXPECT_EQ(worker.run(stop), 1);
  EXPECT_EQ(store_->job(id)->state, JobState::done) << store_->job(id)->error;
  const auto summary = nlohmann::json::parse(read(state_.job_output(id) / "summary.json"));
  const int64_t all = summary["images_scored"], in_full = summary["images_read_in_full"];
  EXPECT_GT(all, 0);
  EXPECT_LT(in_full, all) << "the screen read first";
}

TEST_F(WorkerTest, ADropFolderProblemIsLoggedOnceWhileItLasts) {
  fs::create_directories(state_.inbox() / "mallory" / "night");
  std::ofstream(state_.inbox() / "mallory" / "night" / "READY").close();
  WorkerOptions o = options();
  o.scan_inbox = true;
  o.exit_when_idle = false;
  std::vector<WorkerEvent> events;
  std::mutex lock;
  Worker worker(*store_, o, [&](const WorkerEvent& e) {
    std::lock_guard guard(lock);
    events.push_back(e);
  });
  std::atomic<bool> stop{false};
  std::thread run([&] { worker.run(stop); });
  std::this_thread::sleep_for(std::chrono::milliseconds(600));  // a dozen scans at 50 ms
  stop = true;
  run.join();
  const auto told = std::count_if(events.begin(), events.end(), [](const WorkerEvent& e) {
    return e.kind == WorkerEvent::error && e.text.find("no user named 'mallory'") != std::string::npos;
  });
  EXPECT_EQ(told, 1);
}

TEST_F(WorkerTest, AModelThatCannotReadInInt8IsReadInFp32WithAWarningSayingWhy) {
  kernels::LoadedModel shipped = kernels::load_model(shipped_model());
  shipped.network.set_int8_calibration({});
  const fs::path bare = dir_ / "bare.safetensors";
  kernels::save_model(bare.string(), shipped.network, shipped.train_config, shipped.metrics);
  const int64_t id = submit(pages(1), bare.string());
  WorkerOptions o = options();
  o.run.int8 = true;  // runtime.int8, on by default
  std::vector<WorkerEvent> events;
  Worker worker(*store_, o, [&](const WorkerEvent& e) { events.push_back(e); });
  std::atomic<bool> stop{false};
  EXPECT_EQ(worker.run(stop), 1);
  EXPECT_EQ(store_->job(id)->state, JobState::done) << store_->job(id)->error;
  const auto summary = nlohmann::json::parse(read(state_.job_output(id) / "summary.json"));
  EXPECT_FALSE(summary["int8"].get<bool>());
  const std::string why = summary["int8_fallback"];
  EXPECT_EQ(why, "the model: " + kernels::int8_unsupported(shipped.network));
  const auto warning = std::find_if(events.begin(), events.end(), [](const WorkerEvent& e) { return e.kind == WorkerEvent::warning; });
  ASSERT_NE(warning, events.end());
  EXPECT_EQ(warning->job, id);
  EXPECT_EQ(warning->text, "runtime.int8 is on, but these read in fp32 (slower): " + why);
}

TEST_F(WorkerTest, ThePartnerReadsOnlyForTheConfiguredModel) {
  // model.partner was trained beside the configured model: a job on it reads as digitflow
  // run reads with both; a job on another model reads as that model alone.
  WorkerOptions o = options();
  o.partner_model = t::source_dir() / "models" / "partner.safetensors";
  const auto [paired, alone] = run_on_configured_and_other_model(o);

  kernels::LoadedModel model = kernels::load_model(shipped_model()), partner = kernels::load_model(o.partner_model);
  pipeline::RunOptions with_partner, without;
  with_partner.job_dir = without.job_dir = store_->job(paired)->input_dir;
  with_partner.out_dir = dir_ / "with-partner";
  with_partner.partner = &partner.network;
  without.out_dir = dir_ / "without";
  pipeline::run_job(with_partner, model.network);
  pipeline::run_job(without, model.network);
  const std::string both = read(with_partner.out_dir / "results.jsonl"), one = read(without.out_dir / "results.jsonl");
  EXPECT_NE(both, one);  // the partner's readings move the confidences
  EXPECT_EQ(read(state_.job_output(paired) / "results.jsonl"), both);
  EXPECT_EQ(read(state_.job_output(alone) / "results.jsonl"), one);
}

TEST_F(WorkerTest, AJobWhoseWorkerDiedResumesWithoutRepeatingAPage) {
  const int64_t id = submit(pages(4));
  // A worker claims the job, stores one page, and dies (its lease runs out).
  ASSERT_TRUE(store_->claim_job("dead", 1));
  const std::vector<pipeline::PageRef> listed = pipeline::list_pages(store_->job(id)->input_dir, {});
  ASSERT_EQ(listed.size(), 4u);
  PageRecord stored;
  stored.seq = 0;
  stored.key = listed[0].name + "#0";
  stored.result_json = R"({"page":")" + listed[0].name + R"(","page_index":0,"width":1,"height":1,"strings":[]})";
  ASSERT_TRUE(store_->put_page(id, "dead", stored));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));

  std::atomic<bool> stop{false};
  int processed = 0;
  Worker worker(*store_, options("alive"), [&](const WorkerEvent& e) { processed += e.kind == WorkerEvent::progress; });
  EXPECT_EQ(worker.run(stop), 1);
  const Job job = *store_->job(id);
  EXPECT_EQ(job.state, JobState::done) << job.error;
  EXPECT_EQ(job.attempts, 2);
  EXPECT_EQ(job.pages_done, 4);
  EXPECT_EQ(processed, 3) << "pages stored before the crash were read again";
  const std::vector<PageRecord> all = store_->pages(id);
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all[0].result_json, stored.result_json);
  for (size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i].key, listed[i].name + "#0");
  // results.jsonl has every page once, in page order.
  std::istringstream lines(read(state_.job_output(id) / "results.jsonl"));
  std::string line;
  size_t n = 0;
  while (std::getline(lines, line)) EXPECT_EQ(nlohmann::json::parse(line)["page"], listed[n++].name);
  EXPECT_EQ(n, 4u);
}

TEST_F(WorkerTest, CancelStopsARunningJobWithinSeconds) {
  const int64_t id = submit(pages(12));
  std::atomic<bool> stop{false};
  WorkerOptions few_in_flight = options();
  few_in_flight.run.pages_in_flight = 2;
  Worker worker(*store_, few_in_flight);
  std::thread run([&] { worker.run(stop); });
  auto other = open_sqlite_store(state_.sqlite_file());  // the user's connection
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  while (other->job(id)->pages_done < 1 && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_EQ(other->cancel_job(id), JobState::running);
  const auto asked = Clock::now();
  while (other->job(id)->state == JobState::running && Clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const double seconds = std::chrono::duration<double>(Clock::now() - asked).count();
  run.join();
  const Job job = *other->job(id);
  EXPECT_EQ(job.state, JobState::cancelled);
  EXPECT_LT(job.pages_done, 12);
  EXPECT_LT(seconds, 5.0) << "a cancelled job ran on for " << seconds << " s";
  EXPECT_FALSE(fs::exists(state_.job_output(id) / "results.jsonl"));
}

TEST_F(WorkerTest, AStoppedWorkerPutsItsJobBackAndAnotherFinishesIt) {
  const int64_t id = submit(pages(8));
  std::atomic<bool> stop{false};
  WorkerOptions one_at_a_time = options("first");
  one_at_a_time.run.pages_in_flight = 1;  // else a loaded machine may have every page in flight at the stop
  Worker first(*store_, one_at_a_time, [&](const WorkerEvent& e) {
    if (e.kind == WorkerEvent::progress) stop = true;  // Ctrl-C after the first page
  });
  EXPECT_EQ(first.run(stop), 0);
  Job job = *store_->job(id);
  EXPECT_EQ(job.state, JobState::queued);
  EXPECT_GE(job.pages_done, 1);
  EXPECT_LT(job.pages_done, 8);
  const int64_t kept = job.pages_done;

  std::atomic<bool> never{false};
  int processed = 0;
  Worker second(*store_, options("second"), [&](const WorkerEvent& e) { processed += e.kind == WorkerEvent::progress; });
  EXPECT_EQ(second.run(never), 1);
  job = *store_->job(id);
  EXPECT_EQ(job.state, JobState::done);
  EXPECT_EQ(job.pages_done, 8);
  EXPECT_EQ(processed, 8 - kept);
}

TEST_F(WorkerTest, AJobThatCannotRunFailsWithTheReason) {
  const int64_t id = submit(pages(1), (dir_ / "missing.safetensors").string());
  std::atomic<bool> stop{false};
  Worker worker(*store_, options());
  EXPECT_EQ(worker.run(stop), 1);
  const Job job = *store_->job(id);
  EXPECT_EQ(job.state, JobState::failed);
  EXPECT_NE(job.error.find("missing.safetensors"), std::string::npos) << job.error;
}

TEST_F(WorkerTest, JobsWithoutAModelGetThePromotedVersion) {
  ModelVersion promoted;
  promoted.path = (dir_ / "promoted.safetensors").string();  // not there: the job says which file it wanted
  promoted.status = "ready";
  promoted.is_default = true;
  store_->add_model_version(promoted);
  const int64_t id = submit(pages(1));
  std::atomic<bool> stop{false};
  Worker worker(*store_, options());
  worker.run(stop);
  const Job job = *store_->job(id);
  EXPECT_EQ(job.state, JobState::failed);
  EXPECT_NE(job.error.find("promoted.safetensors"), std::string::npos) << job.error;
}

TEST_F(WorkerTest, ABrokenPageIsAnErrorLineAndTheJobIsDone) {
  const fs::path folder = pages(2);
  std::ofstream(folder / "batch1" / "zz-truncated.png") << "\x89PNG\r\n\x1a\n";
  const int64_t id = submit(folder);
  std::atomic<bool> stop{false};
  Worker worker(*store_, options());
  worker.run(stop);
  const Job job = *store_->job(id);
  EXPECT_EQ(job.state, JobState::done);
  EXPECT_EQ(job.pages_done, 3);
  EXPECT_EQ(job.pages_failed, 1);
}

// Workers with their own connections race on one PostgreSQL queue of 20 one-page jobs.
void race(int workers) {
  t::TempDir dir;
  StateDir state{dir / "state"};
  const std::string url = t::PostgresServer::instance().fresh_database();
  auto store = open_store(url);
  User ana;
  ana.name = "ana";
  store->add_user(ana);
  pipeline::SynthOptions synth;
  synth.out = dir / "synth";
  synth.pages = 2;
  synth.seed = 11;
  synth.kind = "checks";
  synth.mnist_dir = t::mnist_dir();
  pipeline::make_synthetic_job(synth);
  const std::vector<pipeline::PageRef> listed = pipeline::list_pages(synth.out, {});
  ASSERT_FALSE(listed.empty());
  fs::create_directories(dir / "one");
  fs::copy_file(listed[0].file, dir / "one" / listed[0].file.filename());
  constexpr int kJobs = 20;
  for (int i = 0; i < kJobs; ++i) {
    Submission s;
    s.folder = dir / "one";
    s.owner = "ana";
    s.name = "job-" + std::to_string(i);
    submit_job(*store, state, s);
  }

  std::mutex mutex;
  std::map<int64_t, int> pages_read;  // job -> pages its workers read
  std::vector<std::thread> threads;
  for (int w = 0; w < workers; ++w)
    threads.emplace_back([&, w] {
      auto own = open_store(url);
      WorkerOptions o;
      o.name = "w" + std::to_string(w);
      o.state = state;
      o.default_model = shipped_model();
      o.exit_when_idle = true;
      o.poll_ms = 20;
      std::atomic<bool> stop{false};
      Worker worker(*own, o, [&](const WorkerEvent& e) {
        if (e.kind != WorkerEvent::progress) return;
        std::lock_guard lock(mutex);
        ++pages_read[e.job];
      });
      worker.run(stop);
    });
  for (auto& th : threads) th.join();
  const std::vector<Job> jobs = store->jobs();
  ASSERT_EQ(jobs.size(), static_cast<size_t>(kJobs));
  for (const Job& j : jobs) {
    EXPECT_EQ(j.state, JobState::done) << j.name << ": " << j.error;
    EXPECT_EQ(j.attempts, 1) << j.name;
    EXPECT_EQ(j.pages_done, 1) << j.name;
    EXPECT_EQ(pages_read[j.id], 1) << j.name << " had a page read " << pages_read[j.id] << " times";
  }
}

TEST_F(WorkerTest, TwoWorkersOnOnePostgresQueueDoEveryJobOnce) { race(2); }
TEST_F(WorkerTest, FourWorkersOnOnePostgresQueueDoEveryJobOnce) { race(4); }

}  // namespace
}  // namespace digitflow::jobs

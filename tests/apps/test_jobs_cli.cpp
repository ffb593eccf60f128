// The job commands as a user runs them: user add, submit, jobs, job, worker, cancel; and
// crash recovery: a worker killed with SIGKILL in the middle of a 200-page job, a new worker
// finishes it, and every page is in the results exactly once.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "cli_support.hpp"
#include "test_support.hpp"

namespace digitflow::testing {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

class JobsCli : public ::testing::Test {
 protected:
  std::string state() const { return " --state-dir " + quoted(dir_ / "state"); }
  CommandResult jobs_command(const std::string& args) { return run_digitflow(args + state()); }

  nlohmann::json job_json(int id) {
    const CommandResult r = jobs_command("jobs --json");
    std::istringstream lines(r.output);
    std::string line;
    while (std::getline(lines, line))
      if (!line.empty() && line[0] == '{') {
        nlohmann::json j = nlohmann::json::parse(line);
        if (j["id"] == id) return j;
      }
    return nullptr;
  }

  // A job folder of `pages` pages: a few synthetic checks, hard-linked under many names.
  fs::path make_job(int pages) {
    const fs::path synth = dir_ / "synth", job = dir_ / "job";
    const CommandResult r = run_digitflow("synth --out " + quoted(synth) + " --pages 5 --seed 3 --kind checks --jpeg-share 0");
    EXPECT_EQ(r.status, 0) << r.output;
    std::vector<fs::path> files;
    for (const auto& e : fs::recursive_directory_iterator(synth))
      if (e.path().extension() == ".png") files.push_back(e.path());
    std::sort(files.begin(), files.end());
    fs::create_directories(job);
    for (int i = 0; i < pages; ++i) {
      char name[32];
      std::snprintf(name, sizeof name, "scan-%04d.png", i);
      fs::create_hard_link(files[static_cast<size_t>(i) % files.size()], job / name);
    }
    return job;
  }

  TempDir dir_;
};

TEST_F(JobsCli, SubmitListRunAndReadAJob) {
  if (!mnist_available()) GTEST_SKIP() << "MNIST not in " << mnist_dir() << ": run scripts/fetch-mnist.sh";
  CommandResult r = jobs_command("jobs");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "no jobs yet")) << r.output;
  r = jobs_command("user add ana --admin --email ana@example.org");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "user ana added")) << r.output;
  r = jobs_command("user add ana");
  EXPECT_EQ(r.status, 1);
  EXPECT_TRUE(contains(r.output, "a user named 'ana' already exists")) << r.output;
  r = jobs_command("user list");
  EXPECT_TRUE(contains(r.output, "ana")) << r.output;
  EXPECT_TRUE(contains(r.output, "admin")) << r.output;

  const fs::path job = make_job(3);
  r = jobs_command("submit " + quoted(job) + " --user ana --name first-night");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "job 1 queued: first-night (owner ana)")) << r.output;
  fs::remove_all(job);  // the job has its own copy

  r = jobs_command("jobs");
  EXPECT_TRUE(contains(r.output, "first-night")) << r.output;
  EXPECT_TRUE(contains(r.output, "queued")) << r.output;

  r = jobs_command("worker --once --threads 2");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "job 1: done: 3 pages (0 failed)")) << r.output;

  r = jobs_command("job 1");
  EXPECT_TRUE(contains(r.output, "state      done")) << r.output;
  EXPECT_TRUE(contains(r.output, "3/3 (100%)")) << r.output;
  r = jobs_command("job 1 --results");
  ASSERT_EQ(r.status, 0) << r.output;
  std::istringstream lines(r.output);
  std::string line;
  int pages = 0;
  while (std::getline(lines, line)) {
    const auto page = nlohmann::json::parse(line);
    EXPECT_EQ(page["page"], "scan-000" + std::to_string(pages++) + ".png");
  }
  EXPECT_EQ(pages, 3);
  r = jobs_command("job 1 --results --format csv --out " + quoted(dir_ / "r.csv"));
  ASSERT_EQ(r.status, 0) << r.output;
  std::ifstream csv(dir_ / "r.csv");
  std::getline(csv, line);
  EXPECT_TRUE(line.starts_with("page,page_index")) << line;
  EXPECT_TRUE(fs::exists(dir_ / "state" / "jobs" / "1" / "results.jsonl"));
  EXPECT_TRUE(fs::exists(dir_ / "state" / "jobs" / "1" / "overlays" / "scan-0000.png"));

  r = jobs_command("cancel 1");
  EXPECT_TRUE(contains(r.output, "job 1 is already done")) << r.output;
}

TEST_F(JobsCli, CancelAQueuedJob) {
  std::ofstream((dir_ / "page.png").string()) << "not really a page";
  fs::create_directories(dir_ / "job");
  fs::rename(dir_ / "page.png", dir_ / "job" / "page.png");
  ASSERT_EQ(jobs_command("user add bo").status, 0);
  ASSERT_EQ(jobs_command("submit " + quoted(dir_ / "job") + " --user bo --template " +
                         quoted(fs::path(DIGITFLOW_SOURCE_DIR) / "config" / "templates" / "check.yaml"))
                .status,
            0);
  EXPECT_TRUE(contains(jobs_command("job 1").output, "template   US personal check (")) << "the form's name";
  // A folder's own template.yaml, not named, is pointed at.
  fs::copy_file(fs::path(DIGITFLOW_SOURCE_DIR) / "config" / "templates" / "check.yaml", dir_ / "job" / "template.yaml");
  const CommandResult again = jobs_command("submit " + quoted(dir_ / "job") + " --user bo");
  EXPECT_TRUE(contains(again.output, "the folder's template.yaml was not used: to read its fields, --template " +
                                         (dir_ / "job" / "template.yaml").string()))
      << again.output;
  ASSERT_EQ(jobs_command("cancel 2").status, 0);
  CommandResult r = jobs_command("cancel 1");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "job 1 cancelled")) << r.output;
  EXPECT_TRUE(contains(jobs_command("job 1").output, "cancelled"));
  r = jobs_command("worker --once");
  EXPECT_TRUE(contains(r.output, "stopped after 0 jobs")) << r.output;
}

TEST_F(JobsCli, NamesWhatIsWrong) {
  CommandResult r = jobs_command("submit /nonexistent/scans --user ana");
  EXPECT_EQ(r.status, 1);
  EXPECT_TRUE(contains(r.output, "/nonexistent/scans: no such folder")) << r.output;
  fs::create_directories(dir_ / "job");
  std::ofstream(dir_ / "job" / "a.png") << "x";
  r = jobs_command("submit " + quoted(dir_ / "job") + " --user ghost");
  EXPECT_EQ(r.status, 1);
  EXPECT_TRUE(contains(r.output, "no user named 'ghost' (add one with: digitflow user add ghost)")) << r.output;
  r = jobs_command("job abc");
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.output, "'abc' is not a job id")) << r.output;
  r = jobs_command("job 42");
  EXPECT_EQ(r.status, 1);
  EXPECT_TRUE(contains(r.output, "no job 42")) << r.output;
  r = jobs_command("cancel 0");
  EXPECT_EQ(r.status, 2);
  r = jobs_command("jobs --db mysql://x");
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.output, "expects a postgres:// URL")) << r.output;
  r = jobs_command("user add ../evil");
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.output, "is not a user name")) << r.output;
  r = jobs_command("user remove ana");
  EXPECT_EQ(r.status, 2);
  r = jobs_command("jobs --db postgres://nobody@127.0.0.1:1/none");
  EXPECT_EQ(r.status, 1);
  EXPECT_TRUE(contains(r.output, "127.0.0.1")) << r.output;
}

// A worker killed with SIGKILL in the middle of a 200-page job; a new worker finishes it.
TEST_F(JobsCli, AJobSurvivesAKilledWorker) {
  if (!mnist_available()) GTEST_SKIP() << "MNIST not in " << mnist_dir() << ": run scripts/fetch-mnist.sh";
  constexpr int kPages = 200;
  const fs::path job = make_job(kPages);
  ASSERT_EQ(jobs_command("user add ana").status, 0);
  ASSERT_EQ(jobs_command("submit " + quoted(job) + " --user ana").status, 0);

  const std::string settings = " --set jobs.lease_seconds=5 --set jobs.heartbeat_seconds=1 --set jobs.overlays=false";
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (chdir(DIGITFLOW_SOURCE_DIR) != 0) _exit(127);
    const std::string state_dir = (dir_ / "state").string(), log = (dir_ / "worker1.log").string();
    if (!freopen(log.c_str(), "w", stderr)) _exit(126);
    execl(DIGITFLOW_BINARY, DIGITFLOW_BINARY, "worker", "--threads", "2", "--state-dir", state_dir.c_str(), "--set",
          "jobs.lease_seconds=5", "--set", "jobs.heartbeat_seconds=1", "--set", "jobs.overlays=false",
          static_cast<char*>(nullptr));
    _exit(127);
  }
  // Kill it once a quarter of the pages are stored.
  const auto deadline = Clock::now() + std::chrono::seconds(300);
  int64_t done_at_kill = 0;
  while (Clock::now() < deadline) {
    const nlohmann::json j = job_json(1);
    if (!j.is_null() && j["pages_done"].get<int64_t>() >= kPages / 4) {
      done_at_kill = j["pages_done"].get<int64_t>();
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status));
  ASSERT_GT(done_at_kill, 0) << "the first worker stored no page in time";
  const nlohmann::json after_kill = job_json(1);
  EXPECT_EQ(after_kill["state"], "running");
  ASSERT_LT(after_kill["pages_done"].get<int64_t>(), kPages) << "the job finished before the kill";

  // Its lease runs out; the next worker resumes the job.
  std::this_thread::sleep_for(std::chrono::seconds(6));
  const CommandResult second = jobs_command("worker --once --threads 2" + settings);
  ASSERT_EQ(second.status, 0) << second.output;
  EXPECT_TRUE(contains(second.output, "job 1: resumed (attempt 2)")) << second.output;
  EXPECT_TRUE(contains(second.output, "job 1: done")) << second.output;

  const CommandResult results = jobs_command("job 1 --results");
  std::istringstream lines(results.output);
  std::string line;
  std::vector<std::string> pages;
  while (std::getline(lines, line)) pages.push_back(nlohmann::json::parse(line)["page"]);
  ASSERT_EQ(pages.size(), static_cast<size_t>(kPages)) << "pages lost or repeated";
  EXPECT_EQ(std::set<std::string>(pages.begin(), pages.end()).size(), static_cast<size_t>(kPages));
  EXPECT_TRUE(std::is_sorted(pages.begin(), pages.end()));
  const nlohmann::json j = job_json(1);
  EXPECT_EQ(j["state"], "done");
  EXPECT_EQ(j["pages_done"], kPages);
  std::cout << "killed after " << done_at_kill << " of " << kPages << " pages; the second worker read "
            << kPages - after_kill["pages_done"].get<int64_t>() << "\n";
}

}  // namespace
}  // namespace digitflow::testing

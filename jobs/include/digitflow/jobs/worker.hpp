// The worker: claims the oldest job, holds it with a heartbeat, runs the page pipeline on
// the pages not yet stored, stores each page's result as it is written (so a job whose
// worker died resumes where it stopped, and no page is stored twice), then writes the
// job's results.jsonl, results.csv and summary.json into the state directory.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <optional>
#include <string>

#include "digitflow/jobs/store.hpp"
#include "digitflow/jobs/submit.hpp"
#include "digitflow/kernels/model_file.hpp"
#include "digitflow/pipeline/run.hpp"

namespace digitflow::jobs {

struct WorkerOptions {
  std::string name;                      // unique among workers; "" = host:pid:n
  StateDir state;                        // job outputs go to state.job_output(id)
  pipeline::RunOptions run;              // pipeline settings; folder, outputs and template are per job
  std::filesystem::path default_model;   // for jobs that name none, until a retrained version is promoted
  std::filesystem::path screen_model;    // reads first for default_model only (RunOptions::screen); empty = none
  std::filesystem::path partner_model;   // reads beside default_model only (RunOptions::partner); empty = none
  int64_t lease_ms = 30'000;             // a worker silent this long is taken for dead
  int64_t heartbeat_ms = 2'000;          // also how soon a cancel is noticed
  int64_t poll_ms = 1'000;               // idle wait between claims
  int transient_retries = 5;             // a job fails after this many transient errors in a row
  bool exit_when_idle = false;           // stop when no job is left (digitflow worker --once)
  bool scan_inbox = false;               // also turn READY drop folders into jobs
};

// What a worker reports as it goes, for logs and tests. A warning is something to mend that
// did not stop the job (runtime.int8 asked for and a model read in fp32).
struct WorkerEvent {
  enum Kind { claimed, progress, finished, released, lost, retry, inbox, error, warning } kind;
  int64_t job = 0;
  std::string text;
};

class Worker {
 public:
  Worker(JobStore& store, WorkerOptions options, std::function<void(const WorkerEvent&)> log = {});
  const std::string& name() const { return options_.name; }

  // Claims and runs jobs until `stop` is set (a job in progress goes back to the queue,
  // its stored pages kept) or, with exit_when_idle, until the queue is empty. Returns the
  // number of jobs it ended.
  int run(const std::atomic<bool>& stop);

  // Runs one job this worker has claimed, to its end: done, failed, cancelled, or released
  // when `stop` is set. Returns the state it left the job in (running: the lease was lost).
  JobState process(const Job& job, const std::atomic<bool>& stop);

 private:
  JobState attempt(const Job& job, const std::atomic<bool>& stop);
  void export_results(const Job& job, const pipeline::RunSummary& summary);

  JobStore& store_;
  WorkerOptions options_;
  std::function<void(const WorkerEvent&)> log_;
  std::set<std::string> inbox_problems_;  // the drop folder's, logged when they first appear
  std::map<std::string, kernels::LoadedModel> models_;
  std::optional<kernels::LoadedModel> screen_;   // loaded at its first use
  std::optional<kernels::LoadedModel> partner_;  // loaded at its first use
};

// Writes a job's stored pages as results.jsonl and results.csv (page order) into `dir`,
// each through a temporary file and a rename. Returns the number of pages written.
int64_t write_job_results(JobStore& store, int64_t job, const std::filesystem::path& dir);

}  // namespace digitflow::jobs

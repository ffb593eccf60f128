// --state-dir and --db, shared by the commands that open the job store (submit, jobs, job,
// cancel, user, worker, serve).
#pragma once

#include <memory>
#include <string>

#include "cli.hpp"
#include "digitflow/jobs/store.hpp"
#include "digitflow/jobs/submit.hpp"
#include "digitflow/jobs/worker.hpp"

namespace digitflow::cli {

struct StoreOptions {
  std::string state_dir, db;
};

void add_store_options(po::options_description& options, StoreOptions& store);

struct Opened {
  config::Settings settings;
  jobs::StateDir state;
  std::unique_ptr<jobs::JobStore> store;
  std::string location;  // what open_store was given: another connection opens the same store
};

// Loads the settings and opens the store: --db, else jobs.db, else SQLite in the state
// directory (--state-dir, else $DIGITFLOW_STATE, else jobs.state_dir).
Opened open_jobs(const CommonOptions& common, const StoreOptions& options);

// A worker's settings from jobs.* and pipeline.* (the default model resolved, the drop
// folder created and scanned); its name and exit_when_idle are left to the caller. Throws
// UsageError when the heartbeat is over half the lease.
jobs::WorkerOptions worker_options(const Opened& opened);

}  // namespace digitflow::cli

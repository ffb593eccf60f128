// Submitting jobs: a job owns its inputs, so the submitted folder is copied (or, from the
// drop folder, hard-linked) into the state directory before the job is queued, and the
// user may delete theirs afterwards. Symbolic links that lead outside the submitted folder
// are refused, not followed. The drop folder turns inbox/<user>/<job-name>/ into a job once
// a READY file appears in it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "digitflow/jobs/store.hpp"

namespace digitflow::jobs {

// A submission that cannot be accepted; the message names the file and the problem.
class SubmitError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Where a store keeps its files: inputs/<token>/ (the jobs' pages), templates/, jobs/<id>/
// (results, overlays), inbox/ (the drop folder), digitflow.db (the SQLite store).
struct StateDir {
  std::filesystem::path root;
  std::filesystem::path inputs() const { return root / "inputs"; }
  std::filesystem::path templates() const { return root / "templates"; }
  std::filesystem::path job_output(int64_t id) const { return root / "jobs" / std::to_string(id); }
  std::filesystem::path inbox() const { return root / "inbox"; }
  std::filesystem::path sqlite_file() const { return root / "digitflow.db"; }
};

struct Submission {
  std::filesystem::path folder;         // the pages, searched recursively
  std::string owner;                    // user name (must exist and not be disabled)
  std::string name;                     // "" = the folder's name
  std::filesystem::path template_file;  // "" = none; checked and copied
  std::string model;                    // "" = the worker's default
  std::string source;                   // "" or a unique origin: a second submission is refused
  bool link = false;                    // hard-link the files where possible (the folder is ours)
  std::vector<std::string> exclude;     // top-level names not to take (the drop folder's READY)
};

// The files a submission of `folder` takes: (file to read, path relative to the folder), in
// path order; links inside the folder are followed, directories skipped, `exclude` names at
// the top level left out. Throws SubmitError for a link that leads outside the folder or a
// special file, naming it.
std::vector<std::pair<std::filesystem::path, std::filesystem::path>> job_files(
    const std::filesystem::path& folder, const std::vector<std::string>& exclude = {});

// Copies the folder into the state directory and queues a job; returns its id. Throws
// SubmitError for a missing folder or owner, a folder without files, a link leading outside
// it, a special file, or a bad template; Conflict when `source` was submitted before.
// Nothing is left behind in the state directory when it throws.
int64_t submit_job(JobStore& store, const StateDir& state, const Submission& submission);

struct InboxScan {
  std::vector<int64_t> submitted;     // jobs queued by this scan
  std::vector<std::string> problems;  // folders left where they are, and why
};

// One pass over the drop folder `inbox`: every inbox/<user>/<name>/ holding a READY file is
// moved to inbox/.taken/<user>/<name>[-n]/ (an atomic rename: two scanners never both take
// it) and queued as job <name> of <user>, its pages hard-linked into the state directory.
// A folder without READY is still being written and is left alone. Taken folders whose job
// was not recorded (a crash between the move and the queue) are queued on the next pass;
// each taken folder is its job's `source`, so it is never queued twice.
InboxScan scan_inbox(JobStore& store, const StateDir& state, const std::filesystem::path& inbox);

}  // namespace digitflow::jobs

// What both stores share: state names, the clock, and choosing a store by its location.
#include <chrono>

#include "digitflow/jobs/store.hpp"

namespace digitflow::jobs {

std::string_view to_string(JobState state) {
  switch (state) {
    case JobState::queued: return "queued";
    case JobState::running: return "running";
    case JobState::done: return "done";
    case JobState::failed: return "failed";
    case JobState::cancelled: return "cancelled";
  }
  return "unknown";
}

JobState parse_job_state(std::string_view text) {
  for (JobState s : {JobState::queued, JobState::running, JobState::done, JobState::failed, JobState::cancelled})
    if (to_string(s) == text) return s;
  std::string message = "unknown job state '";
  message.append(text).append("'");
  throw StoreError(message);
}

bool is_final(JobState state) {
  return state == JobState::done || state == JobState::failed || state == JobState::cancelled;
}

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::unique_ptr<JobStore> open_store(const std::string& location) {
  if (location.starts_with("postgres://") || location.starts_with("postgresql://")) return open_postgres_store(location);
  std::string path = location;
  if (path.starts_with("sqlite:")) path.erase(0, 7);
  if (path.empty()) throw StoreError("no job store given (an SQLite file or a postgres:// URL)");
  return open_sqlite_store(path);
}

}  // namespace digitflow::jobs

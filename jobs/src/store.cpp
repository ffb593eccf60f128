// What both stores share: state names, the clock, the checks made before writing, and
// choosing a store by its location.
#include <chrono>

#include "digitflow/jobs/store.hpp"
#include "schema.hpp"

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

namespace detail {

void check_sample(const Sample& sample) {
  if (sample.label < 0 || sample.label > 10) {
    std::string message = "put_sample: label ";
    message.append(std::to_string(sample.label)).append(" is out of range (0..9, or 10 for not a digit)");
    throw StoreError(message);
  }
  if (sample.string_index < 0 || sample.digit_index < 0) {
    std::string message = "put_sample: string ";
    message.append(std::to_string(sample.string_index))
        .append(", digit ")
        .append(std::to_string(sample.digit_index))
        .append(": indices must not be negative");
    throw StoreError(message);
  }
}

void check_model_status(const std::string& status) {
  for (const char* known : {"training", "ready", "rejected", "failed"})
    if (status == known) return;
  std::string message = "unknown model version status '";
  message.append(status).append("' (training, ready, rejected or failed)");
  throw StoreError(message);
}

}  // namespace detail

std::unique_ptr<JobStore> open_store(const std::string& location) {
  if (location.starts_with("postgres://") || location.starts_with("postgresql://")) return open_postgres_store(location);
  std::string path = location;
  if (path.starts_with("sqlite:")) path.erase(0, 7);
  if (path.empty()) throw StoreError("no job store given (an SQLite file or a postgres:// URL)");
  return open_sqlite_store(path);
}

}  // namespace digitflow::jobs

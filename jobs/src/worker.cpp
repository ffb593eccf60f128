// A job's pages are stored one by one from the pipeline's serial writer, each with the
// lease check in its own transaction: the store, not the worker, decides who may still
// write. A heartbeat thread keeps the lease, notices a cancel, and turns a stop request
// into the pipeline's cancel flag, so the pages in flight are finished and stored.
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <thread>
#include <unordered_map>

#include "digitflow/config/template.hpp"
#include "digitflow/jobs/retrain.hpp"
#include "digitflow/jobs/worker.hpp"
#include "digitflow/kernels/model_file.hpp"
#include "ticker.hpp"

namespace digitflow::jobs {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

std::string default_worker_name() {
  static std::atomic<int> counter{0};
  char host[256] = "localhost";
  gethostname(host, sizeof host - 1);
  std::string name = host;
  name.append(":").append(std::to_string(getpid())).append(":").append(std::to_string(++counter));
  return name;
}

std::string page_key(const std::string& page, int page_index) {
  return page + "#" + std::to_string(page_index);
}

// Sleeps up to `ms`, waking early when `stop` is set.
void nap(int64_t ms, const std::atomic<bool>& stop) {
  const auto until = Clock::now() + std::chrono::milliseconds(ms);
  while (!stop && Clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(20));
}

void write_file_atomically(const fs::path& path, const std::function<void(std::ostream&)>& fill) {
  const fs::path temp = path.string() + ".tmp";
  {
    std::ofstream out(temp, std::ios::trunc);
    if (!out) throw TransientError(temp.string() + ": cannot write");
    fill(out);
    out.flush();
    if (!out) throw TransientError(temp.string() + ": writing failed (disk full?)");
  }
  fs::rename(temp, path);
}

// Keeps the lease while a job runs; sets `cancel` when the job is cancelled, lost or the
// worker is asked to stop.
class Heartbeat {
 public:
  Heartbeat(JobStore& store, int64_t job, const std::string& worker, const WorkerOptions& options,
            const std::atomic<bool>& stop)
      : ticker_(std::chrono::milliseconds(50), [&store, job, &worker, &options, &stop, this, last = Clock::now()]() mutable {
          if (stop) cancel = true;
          if (Clock::now() - last < std::chrono::milliseconds(options.heartbeat_ms)) return;
          last = Clock::now();
          try {
            const Lease lease = store.heartbeat(job, worker, options.lease_ms);
            if (!lease.held) lost = cancel = true;
            if (lease.cancel_requested) cancelled = cancel = true;
          } catch (const TransientError&) {
            // the lease is several heartbeats long: the next one may pass
          } catch (const std::exception&) {
            lost = cancel = true;
          }
        }) {}

  std::atomic<bool> cancel{false}, cancelled{false}, lost{false};

 private:
  detail::Ticker ticker_;  // after the flags it sets, so that it stops before they go
};

}  // namespace

Worker::Worker(JobStore& store, WorkerOptions options, std::function<void(const WorkerEvent&)> log)
    : store_(store), options_(std::move(options)), log_(std::move(log)) {
  if (options_.name.empty()) options_.name = default_worker_name();
  if (!log_) log_ = [](const WorkerEvent&) {};
}

int Worker::run(const std::atomic<bool>& stop) {
  int ended = 0;
  while (!stop) {
    if (options_.scan_inbox) {
      // Each problem once while it lasts, not at every poll: a folder left with a reason (an
      // unknown user, a broken template), or a drop folder that cannot be read, is found
      // again at each scan.
      std::set<std::string> now;
      try {
        const InboxScan scan = scan_inbox(store_, options_.state, options_.state.inbox());
        for (int64_t id : scan.submitted) log_({WorkerEvent::inbox, id, "queued from the drop folder"});
        now.insert(scan.problems.begin(), scan.problems.end());
      } catch (const std::exception& e) {
        now.insert(std::string("drop folder: ") + e.what());
      }
      for (const std::string& problem : now)
        if (!inbox_problems_.contains(problem)) log_({WorkerEvent::error, 0, problem});
      inbox_problems_ = std::move(now);
    }
    std::optional<Job> job;
    try {
      job = store_.claim_job(options_.name, options_.lease_ms);
    } catch (const TransientError& e) {
      log_({WorkerEvent::retry, 0, e.what()});
      nap(options_.poll_ms, stop);
      continue;
    }
    if (!job) {
      if (options_.exit_when_idle) break;
      nap(options_.poll_ms, stop);
      continue;
    }
    log_({WorkerEvent::claimed, job->id,
          job->attempts > 1 ? "resumed (attempt " + std::to_string(job->attempts) + ")" : std::string("started")});
    if (is_final(process(*job, stop))) ++ended;
  }
  return ended;
}

JobState Worker::process(const Job& job, const std::atomic<bool>& stop) {
  for (int failures = 0;;) {
    try {
      return attempt(job, stop);
    } catch (const LeaseLost& e) {
      log_({WorkerEvent::lost, job.id, e.what()});
      return JobState::running;
    } catch (const TransientError& e) {
      if (++failures < options_.transient_retries && !stop) {
        log_({WorkerEvent::retry, job.id, e.what()});
        nap(int64_t{250} << std::min(failures, 6), stop);
        continue;
      }
      try {
        store_.finish_job(job.id, options_.name, JobState::failed, e.what());
      } catch (const std::exception&) {
      }
      log_({WorkerEvent::finished, job.id, std::string("failed: ") + e.what()});
      return JobState::failed;
    } catch (const std::exception& e) {
      try {
        store_.finish_job(job.id, options_.name, JobState::failed, e.what());
      } catch (const LeaseLost&) {
        return JobState::running;
      }
      log_({WorkerEvent::finished, job.id, std::string("failed: ") + e.what()});
      return JobState::failed;
    }
  }
}

JobState Worker::attempt(const Job& job, const std::atomic<bool>& stop) {
  Heartbeat heartbeat(store_, job.id, options_.name, options_, stop);

  // A job that names no model gets the default at its start: a retrained version once one
  // is promoted, else the configured model.
  const fs::path model_path = job.model.empty() ? default_model(store_, options_.default_model) : fs::path(job.model);
  auto model = models_.find(model_path.string());
  if (model == models_.end()) model = models_.emplace(model_path.string(), kernels::load_model(model_path)).first;
  pipeline::Template form;
  pipeline::RunOptions run = options_.run;
  // The screen was trained beside the configured model, and the partner to read with it; a
  // retrained one reads every image alone (a job that names the configured model by another
  // spelling of its path reads as the configured model).
  const bool configured = is_configured_model(model_path, options_.default_model);
  run.screen = nullptr;
  run.partner = nullptr;
  if (configured && !options_.screen_model.empty()) {
    if (!screen_) screen_ = kernels::load_model(options_.screen_model);
    run.screen = &screen_->network;
  }
  if (configured && !options_.partner_model.empty()) {
    if (!partner_) partner_ = kernels::load_model(options_.partner_model);
    run.partner = &partner_->network;
  }
  run.job_dir = job.input_dir;
  run.out_dir = options_.state.job_output(job.id);
  run.page_template = nullptr;
  if (!job.template_path.empty()) {
    form = config::load_template(job.template_path);
    run.page_template = &form;
  }
  if (!fs::is_directory(job.input_dir))
    throw StoreError(job.input_dir.string() + ": the job's pages are gone (was the state directory moved?)");
  std::error_code ec;
  fs::create_directories(run.out_dir, ec);
  if (ec) throw TransientError(run.out_dir.string() + ": cannot create (" + ec.message() + ")");

  const std::vector<pipeline::PageRef> pages = pipeline::list_pages(job.input_dir, run.limits);
  store_.set_pages_total(job.id, options_.name, static_cast<int64_t>(pages.size()));
  std::unordered_map<std::string, int64_t> seq;
  for (size_t i = 0; i < pages.size(); ++i) seq[page_key(pages[i].name, pages[i].page_index)] = static_cast<int64_t>(i);
  std::vector<pipeline::PageRef> todo;
  {
    const std::vector<std::string> stored = store_.page_keys(job.id);
    std::unordered_map<std::string, bool> done;
    for (const std::string& key : stored) done[key] = true;
    for (const pipeline::PageRef& p : pages)
      if (!done.count(page_key(p.name, p.page_index))) todo.push_back(p);
  }

  auto write = [&](const pipeline::PageResult& r, const cv::Mat* overlay) {
    PageRecord record;
    record.key = page_key(r.page, r.page_index);
    record.seq = seq.at(record.key);
    record.failed = r.error.has_value();
    record.strings = static_cast<int64_t>(r.strings.size());
    for (const pipeline::StringResult& s : r.strings)
      if (s.confidence < run.low_confidence) ++record.low_confidence;
    record.result_json = pipeline::to_json(r).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    if (overlay) {
      const fs::path path = run.out_dir / "overlays" / pipeline::overlay_name(r);
      fs::create_directories(path.parent_path(), ec);
      if (!cv::imwrite(path.string(), *overlay)) throw TransientError(path.string() + ": cannot write the overlay");
    }
    for (int tries = 1;; ++tries) {
      try {
        store_.put_page(job.id, options_.name, record);
        return;
      } catch (const TransientError& e) {
        if (tries >= options_.transient_retries) throw;
        log_({WorkerEvent::retry, job.id, e.what()});
        std::this_thread::sleep_for(std::chrono::milliseconds(100 << tries));
      }
    }
  };
  const int64_t already = static_cast<int64_t>(pages.size() - todo.size());
  auto progress = [&](const pipeline::RunProgress& p) {
    log_({WorkerEvent::progress, job.id,
          std::to_string(already + p.pages_done) + "/" + std::to_string(pages.size()) + " pages"});
  };
  const pipeline::RunSummary summary = pipeline::run_pages(todo, run, model->second.network, write, progress,
                                                           &heartbeat.cancel);
  if (!summary.int8_fallback.empty())
    log_({WorkerEvent::warning, job.id, "runtime.int8 is on, but these read in fp32 (slower): " + summary.int8_fallback});
  if (heartbeat.lost) throw LeaseLost("job " + std::to_string(job.id) + ": the lease was lost while it ran");
  if (heartbeat.cancelled) {
    store_.finish_job(job.id, options_.name, JobState::cancelled);
    log_({WorkerEvent::finished, job.id, "cancelled"});
    return JobState::cancelled;
  }
  if (stop && summary.cancelled) {
    store_.release_job(job.id, options_.name);
    log_({WorkerEvent::released, job.id, "back in the queue"});
    return JobState::queued;
  }
  export_results(job, summary);
  store_.finish_job(job.id, options_.name, JobState::done);
  const Job finished = *store_.job(job.id);
  log_({WorkerEvent::finished, job.id,
        "done: " + std::to_string(finished.pages_done) + " pages (" + std::to_string(finished.pages_failed) +
            " failed), " + std::to_string(finished.strings) + " strings, " + std::to_string(finished.low_confidence) +
            " for review"});
  return JobState::done;
}

void Worker::export_results(const Job& job, const pipeline::RunSummary& summary) {
  const fs::path out = options_.state.job_output(job.id);
  write_job_results(store_, job.id, out);
  const std::optional<Job> now = store_.job(job.id);
  nlohmann::json s = pipeline::to_json(summary);
  // Counts over the whole job, resumed attempts included; timings are the last attempt's.
  s["pages"] = now->pages_done;
  s["failed_pages"] = now->pages_failed;
  s["strings"] = now->strings;
  s["low_confidence_strings"] = now->low_confidence;
  s["job"] = {{"id", job.id}, {"name", job.name}, {"owner", job.owner_name}, {"attempts", now->attempts}};
  write_file_atomically(out / "summary.json", [&](std::ostream& o) {
    o << s.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  });
}

int64_t write_job_results(JobStore& store, int64_t job, const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  int64_t written = 0;
  const fs::path jsonl = dir / "results.jsonl", csv = dir / "results.csv";
  const fs::path jsonl_temp = jsonl.string() + ".tmp", csv_temp = csv.string() + ".tmp";
  {
    std::ofstream j(jsonl_temp, std::ios::trunc), c(csv_temp, std::ios::trunc);
    if (!j || !c) throw TransientError(dir.string() + ": cannot write the results");
    pipeline::write_csv_header(c);
    constexpr int64_t kSlice = 1000;  // pages in memory at once
    for (int64_t from = 0;;) {
      const std::vector<PageRecord> slice = store.pages(job, from, kSlice);
      for (const PageRecord& p : slice) {
        j << p.result_json << '\n';
        pipeline::write_csv_rows(c, pipeline::page_from_json(nlohmann::json::parse(p.result_json)));
        ++written;
      }
      if (static_cast<int64_t>(slice.size()) < kSlice) break;
      from = slice.back().seq + 1;
    }
    j.flush();
    c.flush();
    if (!j || !c) throw TransientError(dir.string() + ": writing the results failed (disk full?)");
  }
  fs::rename(jsonl_temp, jsonl);
  fs::rename(csv_temp, csv);
  return written;
}

}  // namespace digitflow::jobs

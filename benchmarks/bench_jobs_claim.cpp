// Jobs claimed per second: W workers, each with its own connection, claim and finish empty
// jobs until the queue is empty; the store's cost per job with nothing else running.
// Usage: bench_jobs_claim LOCATION [JOBS] [WORKERS]   (an SQLite file or a postgres:// URL)
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "digitflow/jobs/store.hpp"

namespace j = digitflow::jobs;

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: bench_jobs_claim LOCATION [JOBS] [WORKERS]\n");
    return 2;
  }
  const std::string location = argv[1];
  const int jobs = argc > 2 ? std::atoi(argv[2]) : 2000;
  const int workers = argc > 3 ? std::atoi(argv[3]) : 4;
  try {
    auto store = j::open_store(location);
    j::User user;
    user.name = "bench-";
    user.name += std::to_string(j::now_ms());
    const int64_t owner = store->add_user(user);
    for (int i = 0; i < jobs; ++i) {
      j::NewJob job;
      job.owner = owner;
      job.name = "empty-";
      job.name += std::to_string(i);
      job.input_dir = "/nonexistent";
      store->create_job(job);
    }
    std::vector<int> claimed(static_cast<size_t>(workers), 0), retries(static_cast<size_t>(workers), 0);
    const auto start = std::chrono::steady_clock::now();
    std::vector<std::thread> threads;
    for (int w = 0; w < workers; ++w)
      threads.emplace_back([&, w] {
        auto own = j::open_store(location);
        std::string name = "w";
        name += std::to_string(w);
        for (;;) {
          try {
            const auto job = own->claim_job(name, 60'000);
            if (!job) break;
            own->finish_job(job->id, name, j::JobState::done);
            ++claimed[static_cast<size_t>(w)];
          } catch (const j::TransientError&) {
            ++retries[static_cast<size_t>(w)];
          }
        }
      });
    for (auto& t : threads) t.join();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    int total = 0, busy = 0;
    for (int w = 0; w < workers; ++w) total += claimed[static_cast<size_t>(w)], busy += retries[static_cast<size_t>(w)];
    std::printf("%s: %d jobs claimed and finished by %d workers in %.3f s: %.0f jobs/s (%d busy retries)\n",
                store->describe().c_str(), total, workers, seconds, total / seconds, busy);
    return total == jobs ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_jobs_claim: %s\n", e.what());
    return 1;
  }
}

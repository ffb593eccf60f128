// A thread that calls a function at a steady interval until its owner is done: the job
// worker's heartbeat and a retrain's hold on its model version.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

namespace digitflow::jobs::detail {

// Calls `tick` every `period` (the first time one period after construction) on a thread of
// its own, without holding any lock of its own while it runs, until destroyed; the
// destructor waits for a tick in progress. `tick` must not throw.
class Ticker {
 public:
  Ticker(std::chrono::milliseconds period, std::function<void()> tick)
      : thread_([this, period, tick = std::move(tick)] {
          std::unique_lock lock(mutex_);
          while (!wake_.wait_for(lock, period, [this] { return done_; })) {
            lock.unlock();
            tick();
            lock.lock();
          }
        }) {}
  ~Ticker() {
    {
      std::lock_guard lock(mutex_);
      done_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }
  Ticker(const Ticker&) = delete;
  Ticker& operator=(const Ticker&) = delete;

 private:
  std::mutex mutex_;
  std::condition_variable wake_;
  bool done_ = false;
  std::thread thread_;  // last: started once the members it uses exist
};

}  // namespace digitflow::jobs::detail

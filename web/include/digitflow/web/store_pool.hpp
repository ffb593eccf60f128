// Store connections for the server's request threads: a connection is not shared between
// threads at once, so each request borrows one and gives it back; new ones are opened as
// needed and kept for the next request.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "digitflow/jobs/store.hpp"

namespace digitflow::web {

class StorePool {
 public:
  // `location` as jobs::open_store takes it; one connection is opened at once (so a store
  // that cannot be opened fails here).
  explicit StorePool(std::string location);

  class Lease {
   public:
    Lease(StorePool& pool, std::unique_ptr<jobs::JobStore> store)
        : pool_(&pool), store_(std::move(store)) {}
    Lease(Lease&&) = default;
    Lease& operator=(Lease&&) = delete;
    ~Lease();
    jobs::JobStore& operator*() const { return *store_; }
    jobs::JobStore* operator->() const { return store_.get(); }

   private:
    StorePool* pool_;
    std::unique_ptr<jobs::JobStore> store_;
  };
  Lease acquire();
  const std::string& location() const { return location_; }

 private:
  std::string location_;
  std::mutex mutex_;
  std::vector<std::unique_ptr<jobs::JobStore>> idle_;
};

}  // namespace digitflow::web

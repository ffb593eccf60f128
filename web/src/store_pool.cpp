// Store connections lent to request threads, one request at a time each.
#include "digitflow/web/store_pool.hpp"

namespace digitflow::web {

StorePool::StorePool(std::string location) : location_(std::move(location)) {
  idle_.push_back(jobs::open_store(location_));
}

StorePool::Lease StorePool::acquire() {
  {
    std::lock_guard lock(mutex_);
    if (!idle_.empty()) {
      std::unique_ptr<jobs::JobStore> store = std::move(idle_.back());
      idle_.pop_back();
      return Lease(*this, std::move(store));
    }
  }
  return Lease(*this, jobs::open_store(location_));
}

StorePool::Lease::~Lease() {
  if (!store_) return;
  std::lock_guard lock(pool_->mutex_);
  pool_->idle_.push_back(std::move(store_));
}

}  // namespace digitflow::web

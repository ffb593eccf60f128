// Process-wide thread limit for oneTBB, held in a global_control.
#include "digitflow/kernels/parallel.hpp"

#include <tbb/global_control.h>
#include <tbb/info.h>

#include <memory>

namespace digitflow::kernels {

namespace {
std::unique_ptr<tbb::global_control>& control() {
  static std::unique_ptr<tbb::global_control> c;
  return c;
}
}  // namespace

void set_threads(int threads) {
  control().reset();
  if (threads > 0)
    control() = std::make_unique<tbb::global_control>(
        tbb::global_control::max_allowed_parallelism, static_cast<size_t>(threads));
}

int thread_count() {
  return static_cast<int>(
      tbb::global_control::active_value(tbb::global_control::max_allowed_parallelism));
}

}  // namespace digitflow::kernels

// Deterministic parallel loops over oneTBB: work is cut into fixed chunks that do not depend
// on the thread count, and each chunk writes its own outputs, so results are bit-identical
// for a given seed whatever the scheduling. set_threads bounds the whole process.
#pragma once

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/partitioner.h>

#include <algorithm>
#include <cstdint>

namespace digitflow::kernels {

// Calls body(begin, end) for [0, count) cut into chunks of `grain` (the last may be shorter).
template <typename Body>
void parallel_chunks(int64_t count, int64_t grain, Body&& body) {
  if (count <= 0) return;
  grain = std::max<int64_t>(1, grain);
  int64_t chunks = (count + grain - 1) / grain;
  if (chunks == 1) {
    body(int64_t{0}, count);
    return;
  }
  tbb::parallel_for(
      tbb::blocked_range<int64_t>(0, chunks, 1),
      [&](const tbb::blocked_range<int64_t>& r) {
        for (int64_t c = r.begin(); c != r.end(); ++c)
          body(c * grain, std::min(count, (c + 1) * grain));
      },
      tbb::simple_partitioner());
}

// Limits the worker threads of this process (0: every core). Lasts until called again.
void set_threads(int threads);
int thread_count();

}  // namespace digitflow::kernels

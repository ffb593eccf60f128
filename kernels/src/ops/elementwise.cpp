// relu and inverted dropout: plain loops over fixed chunks, vectorised by the compiler.
#include "digitflow/kernels/ops/elementwise.hpp"

#include <algorithm>

#include "digitflow/kernels/parallel.hpp"

namespace digitflow::kernels {

namespace {
constexpr int64_t kElementsPerChunk = 1 << 16;
}

void relu_forward(int64_t count, const float* x, float* y) {
  parallel_chunks(count, kElementsPerChunk, [x, y](int64_t begin, int64_t end) {
    const float* __restrict in = x;
    float* __restrict out = y;
    for (int64_t i = begin; i < end; ++i) out[i] = std::max(in[i], 0.0f);
  });
}

void relu_backward(int64_t count, const float* y, const float* dy, float* dx) {
  parallel_chunks(count, kElementsPerChunk, [y, dy, dx](int64_t begin, int64_t end) {
    const float* __restrict out = y;
    const float* __restrict grad = dy;
    float* __restrict result = dx;
    for (int64_t i = begin; i < end; ++i) {
      const float g = grad[i];  // loaded unconditionally, so the select has no branch
      result[i] = out[i] > 0.0f ? g : 0.0f;
    }
  });
}

float hash_uniform(uint64_t seed, uint64_t index) {
  uint64_t z = seed + 0x9E3779B97F4A7C15ull * (index + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<float>(z >> 40) * (1.0f / 16777216.0f);
}

void dropout_forward(int64_t count, float rate, uint64_t seed, const float* x, float* y,
                     float* mask) {
  const float keep_scale = 1.0f / (1.0f - rate);
  parallel_chunks(count, kElementsPerChunk, [=](int64_t begin, int64_t end) {
    const float* __restrict in = x;
    float* __restrict out = y;
    float* __restrict m = mask;
    for (int64_t i = begin; i < end; ++i) {
      m[i] = hash_uniform(seed, static_cast<uint64_t>(i)) < rate ? 0.0f : keep_scale;
      out[i] = in[i] * m[i];
    }
  });
}

void dropout_backward(int64_t count, const float* mask, const float* dy, float* dx) {
  parallel_chunks(count, kElementsPerChunk, [mask, dy, dx](int64_t begin, int64_t end) {
    const float* __restrict m = mask;
    const float* __restrict grad = dy;
    float* __restrict result = dx;
    for (int64_t i = begin; i < end; ++i) result[i] = grad[i] * m[i];
  });
}

}  // namespace digitflow::kernels

// The seed mixer of the trainer: one image's augmentation seed from (seed, epoch, position),
// and the shuffles' seeds. Shared by the CPU loop and the CUDA kernels, which must agree.
// Also FNV-1a, the hash of bytes that names a page's shard and a training set.
#pragma once

#include <cstddef>
#include <cstdint>

#ifdef __CUDACC__
#define DIGITFLOW_HOST_DEVICE __host__ __device__
#else
#define DIGITFLOW_HOST_DEVICE
#endif

namespace digitflow::kernels {

DIGITFLOW_HOST_DEVICE inline uint64_t mix_seed(uint64_t a, uint64_t b) {
  uint64_t z = a ^ (b + 0x9E3779B97F4A7C15ull + (a << 6) + (a >> 2));
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// hash_uniform of ops/elementwise.hpp: a uniform float in [0, 1) from (seed, index).
DIGITFLOW_HOST_DEVICE inline float hash_uniform_inline(uint64_t seed, uint64_t index) {
  uint64_t z = seed + 0x9E3779B97F4A7C15ull * (index + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<float>(z >> 40) * (1.0f / 16777216.0f);
}

// 64-bit FNV-1a of `size` bytes, going on from `hash` (to hash several runs of bytes as one).
inline constexpr uint64_t kFnv1aStart = 14695981039346656037ull;
inline uint64_t fnv1a64(const void* bytes, size_t size, uint64_t hash = kFnv1aStart) {
  const auto* p = static_cast<const unsigned char*>(bytes);
  for (size_t i = 0; i < size; ++i) hash = (hash ^ p[i]) * 1099511628211ull;
  return hash;
}

}  // namespace digitflow::kernels

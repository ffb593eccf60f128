// One tiled single-precision GEMM, C (M x N) = A (M x K) * B (K x N), for every matrix
// product of the network: the operands are not stored matrices but functors that read
// them where they lie (implicit im2col for convolutions, transposes for free), and a
// functor stores the result (NCHW layout, bias). Each block computes a 64 x 64 tile from
// 16-deep slices of A and B staged in shared memory; each of its 256 threads owns 4 x 4
// outputs spaced 16 apart, so that a warp's stores to C fall on consecutive columns.
// blockIdx.z splits K (split-K) for products with few output tiles and a long reduction
// (weight gradients): each split stores its partial sums, reduced later in a fixed order.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "check.hpp"

namespace digitflow::kernels::cuda {

inline constexpr int kTileM = 64, kTileN = 64, kTileK = 16, kGemmThreads = 256;

// Problem: float a(int m, int k) const; float b(int k, int n) const;
//          void store(int m, int n, float value, int split) const.
template <typename Problem>
__global__ void __launch_bounds__(kGemmThreads)
    tiled_gemm_kernel(Problem p, int M, int N, int K, int k_per_split) {
  __shared__ float a_tile[kTileK][kTileM + 1];  // +1: the transposed stores miss bank conflicts
  __shared__ float b_tile[kTileK][kTileN];
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const int m0 = blockIdx.y * kTileM, n0 = blockIdx.x * kTileN;
  const int k_begin = blockIdx.z * k_per_split;
  const int k_end = min(K, k_begin + k_per_split);
  float acc[4][4] = {};
  for (int k0 = k_begin; k0 < k_end; k0 += kTileK) {
#pragma unroll
    for (int l = 0; l < 4; ++l) {
      const int idx = tid + l * kGemmThreads;
      const int am = idx / kTileK, ak = idx % kTileK;  // consecutive threads: consecutive k
      const int m = m0 + am, k = k0 + ak;
      a_tile[ak][am] = (m < M && k < k_end) ? p.a(m, k) : 0.0f;
      const int bk = idx / kTileN, bn = idx % kTileN;  // consecutive threads: consecutive n
      const int kb = k0 + bk, n = n0 + bn;
      b_tile[bk][bn] = (kb < k_end && n < N) ? p.b(kb, n) : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kTileK; ++kk) {
      float a[4], b[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) a[i] = a_tile[kk][ty + 16 * i];
#pragma unroll
      for (int j = 0; j < 4; ++j) b[j] = b_tile[kk][tx + 16 * j];
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int m = m0 + ty + 16 * i, n = n0 + tx + 16 * j;
      if (m < M && n < N) p.store(m, n, acc[i][j], blockIdx.z);
    }
}

// How many K splits: enough blocks to cover the multiprocessors twice, each split at
// least 256 deep. Returns the splits and sets k_per_split (a multiple of kTileK).
inline int choose_splits(int M, int N, int K, int& k_per_split) {
  static const int multiprocessors = [] {
    int device = 0, count = 0;
    CUDA_CHECK(cudaGetDevice(&device));
    CUDA_CHECK(cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device));
    return count;
  }();
  const int tiles = ((M + kTileM - 1) / kTileM) * ((N + kTileN - 1) / kTileN);
  int splits = std::max(1, std::min((2 * multiprocessors + tiles - 1) / tiles, K / 256));
  k_per_split = std::max(kTileK, ((K + splits - 1) / splits + kTileK - 1) / kTileK * kTileK);
  return std::max(1, (K + k_per_split - 1) / k_per_split);
}

template <typename Problem>
void launch_gemm(const Problem& p, int M, int N, int K, int splits, int k_per_split) {
  if (M <= 0 || N <= 0) return;
  dim3 grid((N + kTileN - 1) / kTileN, (M + kTileM - 1) / kTileM, splits);
  tiled_gemm_kernel<<<grid, kGemmThreads, 0, stream()>>>(p, M, N, K, k_per_split);
  CUDA_CHECK_LAUNCH();
}

// Stores a row-major M x N result, or split `z`'s partial sums at partial + z * M * N.
struct RowMajorStore {
  float* out;
  int N;
  long long split_stride;  // M * N, the distance between splits' partials
  __host__ __device__ void store(int m, int n, float v, int z) const {
    out[z * split_stride + static_cast<long long>(m) * N + n] = v;
  }
};

// out[i] = sum over z of partial[z * count + i], z in order.
void reduce_splits(const float* partial, int splits, long long count, float* out);
// out[c] = sum over (n, j) of x[(n * channels + c) * hw + j] (bias gradients), fixed order.
void channel_sums(const float* x, int n, int channels, int hw, float* out);

// A weight-gradient product with a long K: split-K into the workspace, then reduced.
template <typename Problem>
void gemm_split_k(Problem p, int M, int N, int K, float* out) {
  int k_per_split = K;
  const int splits = choose_splits(M, N, K, k_per_split);
  const long long count = static_cast<long long>(M) * N;
  if (splits == 1) {
    p.sink = {out, N, count};
    launch_gemm(p, M, N, K, 1, k_per_split);
    return;
  }
  float* partial = static_cast<float*>(workspace(0, sizeof(float) * count * splits));
  p.sink = {partial, N, count};
  launch_gemm(p, M, N, K, splits, k_per_split);
  reduce_splits(partial, splits, count, out);
}

}  // namespace digitflow::kernels::cuda

// One tiled single-precision GEMM, C (M x N) = A (M x K) * B (K x N), for every matrix
// product of the network: the operands are not stored matrices but functors that read
// them where they lie (implicit im2col for convolutions, transposes for free), and a
// functor stores the result (NCHW layout, bias). Each block computes a TileM x TileN tile
// (64 x 64, or 32 x 128 when M is at most 32, as for the 32-channel layers, so that no
// half of a tile computes zeros) from 16-deep slices of A and B staged in shared memory;
// each of its 256 threads owns (TileM / 16) x (TileN / 16) outputs spaced 16 apart, so that
// a warp's stores to C fall on consecutive columns.
// blockIdx.z splits K (split-K) for products with few output tiles and a long reduction
// (weight gradients): each split stores its partial sums, reduced later in a fixed order.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "check.hpp"

namespace digitflow::kernels::cuda {

inline constexpr int kTileK = 16, kGemmThreads = 256;

// acc += the 16-deep slice staged in shared memory, for this thread's outputs.
template <int RowsPerThread, int ColsPerThread, int TileM, int TileN>
__device__ __forceinline__ void accumulate_slice(const float (&a_tile)[kTileK][TileM],
                                                 const float (&b_tile)[kTileK][TileN], int tx,
                                                 int ty,
                                                 float (&acc)[RowsPerThread][ColsPerThread]) {
#pragma unroll
  for (int kk = 0; kk < kTileK; ++kk) {
    float a[RowsPerThread], b[ColsPerThread];
#pragma unroll
    for (int i = 0; i < RowsPerThread; ++i) a[i] = a_tile[kk][ty + 16 * i];
#pragma unroll
    for (int j = 0; j < ColsPerThread; ++j) b[j] = b_tile[kk][tx + 16 * j];
#pragma unroll
    for (int i = 0; i < RowsPerThread; ++i)
#pragma unroll
      for (int j = 0; j < ColsPerThread; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
  }
}

// Problem: float a(int m, int k) const; float b(int k, int n) const;
//          void store(int m, int n, float value, int split) const.
// A problem whose indices are costly to take apart (the convolutions: divisions by the
// kernel size and the image size) may instead say how once per reduction index and once per
// column: KInfo k_info(int k), Column column(int n), float a_at(int m, const KInfo&) and
// float b_at(const KInfo&, const Column&). The kernel then decodes each slice's 16 reduction
// indices once into shared memory, and each thread its one column once per block (a thread
// loads the same column of B in every slice, since 256 is a multiple of TileN).
template <typename Problem>
concept DecodedProblem = requires(const Problem& p, int i) {
  p.k_info(i);
  p.column(i);
};

template <int TileM, int TileN, typename Problem>
__global__ void __launch_bounds__(kGemmThreads)
    tiled_gemm_kernel(Problem p, int M, int N, int K, int k_per_split) {
  static_assert(kGemmThreads % TileN == 0 && kGemmThreads % kTileK == 0);
  constexpr int RowsPerThread = TileM / 16, ColsPerThread = TileN / 16;
  __shared__ float a_tile[kTileK][TileM + 1];  // +1: the transposed stores miss bank conflicts
  __shared__ float b_tile[kTileK][TileN];
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const int m0 = blockIdx.y * TileM, n0 = blockIdx.x * TileN;
  const int k_begin = blockIdx.z * k_per_split;
  const int k_end = min(K, k_begin + k_per_split);
  float acc[RowsPerThread][ColsPerThread] = {};
  const int my_ak = tid % kTileK, my_bn = tid % TileN;  // the same in every load of a thread
  if constexpr (DecodedProblem<Problem>) {
    __shared__ decltype(p.k_info(0)) k_infos[kTileK];
    const auto column = p.column(min(n0 + my_bn, N - 1));
    for (int k0 = k_begin; k0 < k_end; k0 += kTileK) {
      if (tid < kTileK) k_infos[tid] = p.k_info(min(k0 + tid, k_end - 1));
      __syncthreads();
#pragma unroll
      for (int l = 0; l < RowsPerThread; ++l) {  // TileM x 16 elements of A
        const int am = (tid + l * kGemmThreads) / kTileK, m = m0 + am;
        a_tile[my_ak][am] = (m < M && k0 + my_ak < k_end) ? p.a_at(m, k_infos[my_ak]) : 0.0f;
      }
#pragma unroll
      for (int l = 0; l < ColsPerThread; ++l) {  // 16 x TileN elements of B
        const int bk = (tid + l * kGemmThreads) / TileN;
        b_tile[bk][my_bn] =
            (k0 + bk < k_end && n0 + my_bn < N) ? p.b_at(k_infos[bk], column) : 0.0f;
      }
      __syncthreads();
      accumulate_slice<RowsPerThread, ColsPerThread>(a_tile, b_tile, tx, ty, acc);
      __syncthreads();
    }
  } else {
    for (int k0 = k_begin; k0 < k_end; k0 += kTileK) {
#pragma unroll
      for (int l = 0; l < RowsPerThread; ++l) {            // TileM x 16 elements of A
        const int am = (tid + l * kGemmThreads) / kTileK;  // consecutive threads: consecutive k
        const int m = m0 + am, k = k0 + my_ak;
        a_tile[my_ak][am] = (m < M && k < k_end) ? p.a(m, k) : 0.0f;
      }
#pragma unroll
      for (int l = 0; l < ColsPerThread; ++l) {           // 16 x TileN elements of B
        const int bk = (tid + l * kGemmThreads) / TileN;  // consecutive threads: consecutive n
        const int k = k0 + bk, n = n0 + my_bn;
        b_tile[bk][my_bn] = (k < k_end && n < N) ? p.b(k, n) : 0.0f;
      }
      __syncthreads();
      accumulate_slice<RowsPerThread, ColsPerThread>(a_tile, b_tile, tx, ty, acc);
      __syncthreads();
    }
  }
#pragma unroll
  for (int i = 0; i < RowsPerThread; ++i)
#pragma unroll
    for (int j = 0; j < ColsPerThread; ++j) {
      const int m = m0 + ty + 16 * i, n = n0 + tx + 16 * j;
      if (m < M && n < N) p.store(m, n, acc[i][j], blockIdx.z);
    }
}

// The tile shape for M rows: 32 x 128 when M <= 32, else 64 x 64.
inline int tile_rows(int M) { return M <= 32 ? 32 : 64; }
inline int tile_cols(int M) { return M <= 32 ? 128 : 64; }

// How many K splits: enough blocks to cover the multiprocessors twice, each split at
// least 256 deep. Returns the splits and sets k_per_split (a multiple of kTileK).
inline int choose_splits(int M, int N, int K, int& k_per_split) {
  static const int multiprocessors = [] {
    int device = 0, count = 0;
    CUDA_CHECK(cudaGetDevice(&device));
    CUDA_CHECK(cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device));
    return count;
  }();
  const int tiles =
      ((M + tile_rows(M) - 1) / tile_rows(M)) * ((N + tile_cols(M) - 1) / tile_cols(M));
  int splits = std::max(1, std::min((2 * multiprocessors + tiles - 1) / tiles, K / 256));
  k_per_split = std::max(kTileK, ((K + splits - 1) / splits + kTileK - 1) / kTileK * kTileK);
  return std::max(1, (K + k_per_split - 1) / k_per_split);
}

template <typename Problem>
void launch_gemm(const Problem& p, int M, int N, int K, int splits, int k_per_split) {
  if (M <= 0 || N <= 0) return;
  if (M <= 32) {
    dim3 grid((N + 127) / 128, (M + 31) / 32, splits);
    tiled_gemm_kernel<32, 128><<<grid, kGemmThreads, 0, stream()>>>(p, M, N, K, k_per_split);
  } else {
    dim3 grid((N + 63) / 64, (M + 63) / 64, splits);
    tiled_gemm_kernel<64, 64><<<grid, kGemmThreads, 0, stream()>>>(p, M, N, K, k_per_split);
  }
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

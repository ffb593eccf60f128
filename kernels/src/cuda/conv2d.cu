// conv2d forward and backward as implicit GEMMs on tiled_gemm.cuh: no column buffer is
// built; each tile load computes which input pixel (or output gradient) a GEMM element is,
// and reads zero for padding. Shapes, with K = c_in * k * k:
//   forward          y (c_out x n*oh*ow)  = W (c_out x K)          * cols(x) (K x n*oh*ow)
//   input gradient   dx (c_in x n*h*w)    = W^T (c_in x c_out*k*k) * spread(dy)
//   weight gradient  dW (c_out x K)       = dy (c_out x n*oh*ow)   * cols(x)^T, split-K
// The reduction index of the input gradient runs over (c_out, ky, kx): an output position
// contributes only where the stride divides the offset, so strided layers read zeros there.
#include "digitflow/kernels/cuda/ops.hpp"
#include "tiled_gemm.cuh"

namespace digitflow::kernels::cuda {

namespace {

struct ConvGeometry {
  int n, c_in, h, w, c_out, k, stride, pad, oh, ow;
  explicit ConvGeometry(const Conv2dShape& s)
      : n(s.n),
        c_in(s.c_in),
        h(s.h),
        w(s.w),
        c_out(s.c_out),
        k(s.kernel),
        stride(s.stride),
        pad(s.padding),
        oh(s.out_h()),
        ow(s.out_w()) {}
  // x at (image, channel, iy, ix), zero outside the image.
  __host__ __device__ float x_at(const float* x, int image, int ci, int iy, int ix) const {
    if (iy < 0 || iy >= h || ix < 0 || ix >= w) return 0.0f;
    return x[((static_cast<long long>(image) * c_in + ci) * h + iy) * w + ix];
  }
};

struct ConvForwardProblem {
  ConvGeometry g;
  const float *x, *weight, *bias;
  float* y;
  __host__ __device__ float a(int co, int kidx) const {
    return weight[co * (g.c_in * g.k * g.k) + kidx];
  }
  __host__ __device__ float b(int kidx,
                              int col) const {  // kidx = (ci, ky, kx), col = (image, oy, ox)
    const int ci = kidx / (g.k * g.k), r = kidx % (g.k * g.k);
    const int image = col / (g.oh * g.ow), p = col % (g.oh * g.ow);
    const int oy = p / g.ow, ox = p % g.ow;
    return g.x_at(x, image, ci, oy * g.stride - g.pad + r / g.k, ox * g.stride - g.pad + r % g.k);
  }
  __host__ __device__ void store(int co, int col, float v, int) const {
    const int image = col / (g.oh * g.ow), p = col % (g.oh * g.ow);
    y[(static_cast<long long>(image) * g.c_out + co) * (g.oh * g.ow) + p] = bias ? v + bias[co] : v;
  }
};

struct ConvInputGradProblem {
  ConvGeometry g;
  const float *weight, *dy;
  float* dx;
  __host__ __device__ float a(int ci, int kidx) const {  // kidx = (co, ky, kx)
    const int co = kidx / (g.k * g.k), r = kidx % (g.k * g.k);
    return weight[(co * g.c_in + ci) * (g.k * g.k) + r];
  }
  __host__ __device__ float b(int kidx, int col) const {  // col = (image, iy, ix)
    const int co = kidx / (g.k * g.k), r = kidx % (g.k * g.k);
    const int image = col / (g.h * g.w), p = col % (g.h * g.w);
    const int ty = p / g.w + g.pad - r / g.k, tx = p % g.w + g.pad - r % g.k;
    if (ty < 0 || tx < 0 || ty % g.stride || tx % g.stride) return 0.0f;
    const int oy = ty / g.stride, ox = tx / g.stride;
    if (oy >= g.oh || ox >= g.ow) return 0.0f;
    return dy[((static_cast<long long>(image) * g.c_out + co) * g.oh + oy) * g.ow + ox];
  }
  __host__ __device__ void store(int ci, int col, float v, int) const {
    const int image = col / (g.h * g.w), p = col % (g.h * g.w);
    dx[(static_cast<long long>(image) * g.c_in + ci) * (g.h * g.w) + p] = v;
  }
};

struct ConvWeightGradProblem {
  ConvGeometry g;
  const float *x, *dy;
  RowMajorStore sink;
  __host__ __device__ float a(int co, int kidx) const {  // kidx = (image, oy, ox)
    const int image = kidx / (g.oh * g.ow), p = kidx % (g.oh * g.ow);
    return dy[(static_cast<long long>(image) * g.c_out + co) * (g.oh * g.ow) + p];
  }
  __host__ __device__ float b(int kidx, int col) const {  // col = (ci, ky, kx)
    const int image = kidx / (g.oh * g.ow), p = kidx % (g.oh * g.ow);
    const int ci = col / (g.k * g.k), r = col % (g.k * g.k);
    return g.x_at(x, image, ci, p / g.ow * g.stride - g.pad + r / g.k,
                  p % g.ow * g.stride - g.pad + r % g.k);
  }
  __host__ __device__ void store(int m, int n, float v, int z) const { sink.store(m, n, v, z); }
};

__global__ void reduce_splits_kernel(const float* partial, int splits, long long count,
                                     float* out) {
  for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<long long>(gridDim.x) * blockDim.x) {
    float sum = 0.0f;
    for (int z = 0; z < splits; ++z) sum += partial[z * count + i];
    out[i] = sum;
  }
}

// One block per channel; each thread sums a strided share, then a tree in shared memory.
__global__ void channel_sums_kernel(const float* x, int n, int channels, int hw, float* out) {
  __shared__ double partial[256];
  const int c = blockIdx.x;
  double sum = 0.0;
  for (long long i = threadIdx.x; i < static_cast<long long>(n) * hw; i += blockDim.x) {
    const long long image = i / hw, j = i % hw;
    sum += x[(image * channels + c) * hw + j];
  }
  partial[threadIdx.x] = sum;
  __syncthreads();
  for (int half = blockDim.x / 2; half > 0; half /= 2) {
    if (static_cast<int>(threadIdx.x) < half) partial[threadIdx.x] += partial[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) out[c] = static_cast<float>(partial[0]);
}

}  // namespace

void reduce_splits(const float* partial, int splits, long long count, float* out) {
  const int blocks = static_cast<int>(std::min<long long>((count + 255) / 256, 4096));
  reduce_splits_kernel<<<blocks, 256, 0, stream()>>>(partial, splits, count, out);
  CUDA_CHECK_LAUNCH();
}

void channel_sums(const float* x, int n, int channels, int hw, float* out) {
  if (channels <= 0) return;
  channel_sums_kernel<<<channels, 256, 0, stream()>>>(x, n, channels, hw, out);
  CUDA_CHECK_LAUNCH();
}

void conv2d_forward(const Conv2dShape& s, const float* x, const float* weight, const float* bias,
                    float* y) {
  ConvGeometry g(s);
  const int K = s.c_in * s.kernel * s.kernel;
  launch_gemm(ConvForwardProblem{g, x, weight, bias, y}, s.c_out, s.n * g.oh * g.ow, K, 1, K);
}

void conv2d_backward(const Conv2dShape& s, const float* x, const float* weight, const float* dy,
                     float* dx, float* dweight, float* dbias) {
  ConvGeometry g(s);
  const int kk = s.kernel * s.kernel;
  if (dx) {
    const int K = s.c_out * kk;
    launch_gemm(ConvInputGradProblem{g, weight, dy, dx}, s.c_in, s.n * s.h * s.w, K, 1, K);
  }
  gemm_split_k(ConvWeightGradProblem{g, x, dy, {}}, s.c_out, s.c_in * kk, s.n * g.oh * g.ow,
               dweight);
  if (dbias) channel_sums(dy, s.n, s.c_out, g.oh * g.ow, dbias);
}

}  // namespace digitflow::kernels::cuda

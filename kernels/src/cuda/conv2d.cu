// conv2d forward and backward as implicit GEMMs on tiled_gemm.cuh: no column buffer is
// built; each tile load computes which input pixel (or output gradient) a GEMM element is,
// and reads zero for padding. Shapes, with K = c_in * k * k:
//   forward          y (c_out x n*oh*ow)  = W (c_out x K)          * cols(x) (K x n*oh*ow)
//   input gradient   dx (c_in x n*h*w)    = W^T (c_in x c_out*k*k) * spread(dy)
//   weight gradient  dW (c_out x K)       = dy (c_out x n*oh*ow)   * cols(x)^T, split-K
// The reduction index of the input gradient runs over (c_out, ky, kx): an output position
// contributes only where the stride divides the offset, so strided layers read zeros there.
// Each problem takes its reduction index and its column apart once (k_info, column) and
// reads the operands from the parts (a_at, b_at; see tiled_gemm.cuh).
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
};

struct ConvForwardProblem {
  ConvGeometry g;
  const float *x, *weight, *bias;
  float* y;
  __host__ __device__ float a(int co, int kidx) const {
    return weight[co * (g.c_in * g.k * g.k) + kidx];
  }
  // kidx = (ci, ky, kx), col = (image, oy, ox)
  struct KInfo {
    int k, offset, ky, kx;  // offset of (ci, ky, kx) in an image: ci*h*w + ky*w + kx
  };
  struct Column {
    long long base;  // (image, iy0, ix0) in x, where the window of this output starts
    int iy0, ix0;
  };
  __host__ __device__ KInfo k_info(int kidx) const {
    const int ci = kidx / (g.k * g.k), r = kidx % (g.k * g.k), ky = r / g.k, kx = r % g.k;
    return {kidx, (ci * g.h + ky) * g.w + kx, ky, kx};
  }
  __host__ __device__ Column column(int col) const {
    const int image = col / (g.oh * g.ow), p = col % (g.oh * g.ow);
    const int iy0 = p / g.ow * g.stride - g.pad, ix0 = p % g.ow * g.stride - g.pad;
    return {static_cast<long long>(image) * g.c_in * g.h * g.w + static_cast<long long>(iy0) * g.w +
                ix0,
            iy0, ix0};
  }
  __host__ __device__ float a_at(int co, const KInfo& ki) const { return a(co, ki.k); }
  __host__ __device__ float b_at(const KInfo& ki, const Column& c) const {
    const int iy = c.iy0 + ki.ky, ix = c.ix0 + ki.kx;
    if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) return 0.0f;
    return x[c.base + ki.offset];
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
  // kidx = (co, ky, kx), col = (image, iy, ix)
  struct KInfo {
    int weight_offset;  // (co, ky, kx) in the weights less the input channel: co*c_in*k*k + r
    int dy_offset;      // co*oh*ow
    int ky, kx;
  };
  struct Column {
    long long dy_base;   // image*c_out*oh*ow
    int iy_pad, ix_pad;  // iy + pad, ix + pad
  };
  __host__ __device__ KInfo k_info(int kidx) const {
    const int co = kidx / (g.k * g.k), r = kidx % (g.k * g.k);
    return {co * g.c_in * g.k * g.k + r, co * g.oh * g.ow, r / g.k, r % g.k};
  }
  __host__ __device__ Column column(int col) const {
    const int image = col / (g.h * g.w), p = col % (g.h * g.w);
    return {static_cast<long long>(image) * g.c_out * g.oh * g.ow, p / g.w + g.pad,
            p % g.w + g.pad};
  }
  __host__ __device__ float a_at(int ci, const KInfo& ki) const {
    return weight[ki.weight_offset + ci * g.k * g.k];
  }
  __host__ __device__ float b_at(const KInfo& ki, const Column& c) const {
    int oy = c.iy_pad - ki.ky, ox = c.ix_pad - ki.kx;
    if (oy < 0 || ox < 0) return 0.0f;
    if (g.stride != 1) {
      if (oy % g.stride || ox % g.stride) return 0.0f;
      oy /= g.stride;
      ox /= g.stride;
    }
    if (oy >= g.oh || ox >= g.ow) return 0.0f;
    return dy[c.dy_base + ki.dy_offset + oy * g.ow + ox];
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
  // kidx = (image, oy, ox), col = (ci, ky, kx)
  struct KInfo {
    long long x_base;   // (image, iy0, ix0) in x: where this output's window starts
    long long dy_base;  // (image, 0, p) in dy, less the output channel
    int iy0, ix0;
  };
  struct Column {
    int offset, ky, kx;  // (ci, ky, kx) in an image: ci*h*w + ky*w + kx
  };
  __host__ __device__ KInfo k_info(int kidx) const {
    const int image = kidx / (g.oh * g.ow), p = kidx % (g.oh * g.ow);
    const int iy0 = p / g.ow * g.stride - g.pad, ix0 = p % g.ow * g.stride - g.pad;
    return {static_cast<long long>(image) * g.c_in * g.h * g.w + static_cast<long long>(iy0) * g.w +
                ix0,
            static_cast<long long>(image) * g.c_out * g.oh * g.ow + p, iy0, ix0};
  }
  __host__ __device__ Column column(int col) const {
    const int ci = col / (g.k * g.k), r = col % (g.k * g.k), ky = r / g.k, kx = r % g.k;
    return {(ci * g.h + ky) * g.w + kx, ky, kx};
  }
  __host__ __device__ float a_at(int co, const KInfo& ki) const {
    return dy[ki.dy_base + static_cast<long long>(co) * g.oh * g.ow];
  }
  __host__ __device__ float b_at(const KInfo& ki, const Column& c) const {
    const int iy = ki.iy0 + c.ky, ix = ki.ix0 + c.kx;
    if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) return 0.0f;
    return x[ki.x_base + c.offset];
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

}  // namespace

void reduce_splits(const float* partial, int splits, long long count, float* out) {
  const int blocks = static_cast<int>(std::min<long long>((count + 255) / 256, 4096));
  reduce_splits_kernel<<<blocks, 256, 0, stream()>>>(partial, splits, count, out);
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

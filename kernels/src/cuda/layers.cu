// The memory-bound ops: relu, dropout, maxpool, batchnorm and softmax cross-entropy, each
// forward next to its backward. Element-wise kernels run a grid-stride loop; reductions
// (batchnorm statistics) use one block per channel with a fixed-order tree in shared memory,
// accumulating in double as the CPU op does, so results do not change run to run.
#include <cfloat>

#include "check.hpp"
#include "digitflow/kernels/cuda/ops.hpp"
#include "digitflow/kernels/seed_mix.hpp"
#include "tiled_gemm.cuh"  // channel_sums

namespace digitflow::kernels::cuda {

namespace {

constexpr int kThreads = 256;

int blocks_for(int64_t count) {
  return static_cast<int>(
      std::max<int64_t>(1, std::min<int64_t>((count + kThreads - 1) / kThreads, 65535)));
}

#define GRID_STRIDE(i, count)                                                                \
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < (count); \
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)

__global__ void relu_forward_kernel(int64_t count, const float* x, float* y) {
  GRID_STRIDE(i, count) y[i] = fmaxf(x[i], 0.0f);
}

__global__ void relu_backward_kernel(int64_t count, const float* y, const float* dy, float* dx) {
  GRID_STRIDE(i, count) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

__global__ void dropout_forward_kernel(int64_t count, float rate, uint64_t seed, const float* x,
                                       float* y, float* mask) {
  const float keep_scale = 1.0f / (1.0f - rate);
  GRID_STRIDE(i, count) {
    const float m = hash_uniform_inline(seed, static_cast<uint64_t>(i)) < rate ? 0.0f : keep_scale;
    mask[i] = m;
    y[i] = x[i] * m;
  }
}

__global__ void multiply_kernel(int64_t count, const float* a, const float* b, float* out) {
  GRID_STRIDE(i, count) out[i] = a[i] * b[i];
}

// One thread per output; ties go to the first index of the window, as in ref::maxpool.
__global__ void maxpool_forward_kernel(MaxPoolShape s, int oh, int ow, const float* x, float* y,
                                       int32_t* argmax) {
  const int64_t count = int64_t{s.n} * s.c * oh * ow;
  GRID_STRIDE(o, count) {
    const int64_t plane = o / (oh * ow);
    const int p = static_cast<int>(o % (oh * ow)), oy = p / ow, ox = p % ow;
    const float* xp = x + plane * s.h * s.w;
    float best = 0.0f;
    int32_t best_at = -1;
    for (int ky = 0; ky < s.kernel; ++ky)
      for (int kx = 0; kx < s.kernel; ++kx) {
        const int32_t at = (oy * s.stride + ky) * s.w + ox * s.stride + kx;
        const float v = xp[at];
        if (best_at < 0 || v > best) best = v, best_at = at;
      }
    y[o] = best;
    argmax[o] = best_at;
  }
}

// A gather, one thread per input: the sum over the outputs whose window won at this input,
// in increasing output order (the order in which ref::maxpool_backward scatters).
__host__ __device__ float maxpool_input_grad(const MaxPoolShape& s, int oh, int ow, const float* dy,
                                             const int32_t* argmax, int64_t i) {
  const int64_t plane = i / (s.h * s.w);
  const int at = static_cast<int>(i % (s.h * s.w)), iy = at / s.w, ix = at % s.w;
  const int oy_first = iy >= s.kernel ? (iy - s.kernel) / s.stride + 1 : 0;
  const int ox_first = ix >= s.kernel ? (ix - s.kernel) / s.stride + 1 : 0;
  const int oy_last = iy / s.stride < oh - 1 ? iy / s.stride : oh - 1;
  const int ox_last = ix / s.stride < ow - 1 ? ix / s.stride : ow - 1;
  float sum = 0.0f;
  for (int oy = oy_first; oy <= oy_last; ++oy)
    for (int ox = ox_first; ox <= ox_last; ++ox) {
      const int64_t o = (plane * oh + oy) * ow + ox;
      if (argmax[o] == at) sum += dy[o];
    }
  return sum;
}

__global__ void maxpool_backward_kernel(MaxPoolShape s, int oh, int ow, const float* dy,
                                        const int32_t* argmax, float* dx) {
  const int64_t count = int64_t{s.n} * s.c * s.h * s.w;
  GRID_STRIDE(i, count) dx[i] = maxpool_input_grad(s, oh, ow, dy, argmax, i);
}

// Block-wide sums of two doubles (blockDim.x == kThreads); every thread gets the totals.
__device__ void block_sum2(double& a, double& b) {
  __shared__ double sa[kThreads], sb[kThreads];
  sa[threadIdx.x] = a;
  sb[threadIdx.x] = b;
  __syncthreads();
  for (int half = kThreads / 2; half > 0; half /= 2) {
    if (static_cast<int>(threadIdx.x) < half) {
      sa[threadIdx.x] += sa[threadIdx.x + half];
      sb[threadIdx.x] += sb[threadIdx.x + half];
    }
    __syncthreads();
  }
  a = sa[0];
  b = sb[0];
  __syncthreads();
}

// Calls body(image, j) for the elements i = threadIdx.x, threadIdx.x + kThreads, ... below
// n * hw of one channel (image = i / hw, j = i % hw) in that order, without a division per
// element. Needs blockDim.x == kThreads.
template <typename Body>
__device__ void for_each_in_channel(int n, int hw, Body&& body) {
  int image = static_cast<int>(threadIdx.x) / hw, j = static_cast<int>(threadIdx.x) % hw;
  const int step_images = kThreads / hw, step_j = kThreads % hw;
  while (image < n) {
    body(image, j);
    j += step_j;
    image += step_images;
    if (j >= hw) {
      j -= hw;
      ++image;
    }
  }
}

__global__ void batchnorm_stats_kernel(BatchNormShape s, const float* x, float eps, float* mean,
                                       float* invstd, float* variance) {
  const int c = blockIdx.x;
  const int64_t count = int64_t{s.n} * s.hw;
  double sum = 0.0, sum_sq = 0.0;
  for_each_in_channel(s.n, s.hw, [&](int image, int j) {
    const float v = x[(int64_t{image} * s.c + c) * s.hw + j];
    sum += v;
    sum_sq += double{v} * v;
  });
  block_sum2(sum, sum_sq);
  if (threadIdx.x == 0) {
    const double m = sum / static_cast<double>(count);
    const double var = fmax(0.0, sum_sq / static_cast<double>(count) - m * m);
    mean[c] = static_cast<float>(m);
    invstd[c] = static_cast<float>(1.0 / sqrt(var + eps));
    variance[c] = static_cast<float>(var);
  }
}

__global__ void batchnorm_train_apply_kernel(BatchNormShape s, const float* x, const float* gamma,
                                             const float* beta, const float* mean,
                                             const float* invstd, float* y) {
  const int64_t count = int64_t{s.n} * s.c * s.hw;
  GRID_STRIDE(i, count) {
    const int c = static_cast<int>(i / s.hw % s.c);
    const float scale = gamma[c] * invstd[c], shift = beta[c] - mean[c] * scale;
    y[i] = x[i] * scale + shift;
  }
}

__global__ void batchnorm_running_kernel(BatchNormShape s, float momentum, const float* mean,
                                         const float* variance, float* running_mean,
                                         float* running_var) {
  const double count = static_cast<double>(s.n) * s.hw;
  for (int c = threadIdx.x; c < s.c; c += blockDim.x) {
    const double var = variance[c];
    const double unbiased = count > 1 ? var * count / (count - 1) : var;
    running_mean[c] = (1 - momentum) * running_mean[c] + momentum * mean[c];
    running_var[c] = (1 - momentum) * running_var[c] + momentum * static_cast<float>(unbiased);
  }
}

__global__ void batchnorm_infer_kernel(BatchNormShape s, const float* x, const float* gamma,
                                       const float* beta, const float* running_mean,
                                       const float* running_var, float eps, float* y) {
  const int64_t count = int64_t{s.n} * s.c * s.hw;
  GRID_STRIDE(i, count) {
    const int c = static_cast<int>(i / s.hw % s.c);
    const float scale = gamma[c] / sqrtf(running_var[c] + eps);
    const float shift = beta[c] - running_mean[c] * scale;
    y[i] = x[i] * scale + shift;
  }
}

// dgamma = sum(dy * xhat), dbeta = sum(dy); coef = (mean(dy), mean(dy * xhat)) for the apply.
__global__ void batchnorm_backward_reduce_kernel(BatchNormShape s, const float* x,
                                                 const float* mean, const float* invstd,
                                                 const float* dy, float* dgamma, float* dbeta,
                                                 float* coef) {
  const int c = blockIdx.x;
  const int64_t count = int64_t{s.n} * s.hw;
  const float m = mean[c], is = invstd[c];
  double sum_dy = 0.0, sum_dy_xhat = 0.0;
  for_each_in_channel(s.n, s.hw, [&](int image, int j) {
    const int64_t at = (int64_t{image} * s.c + c) * s.hw + j;
    sum_dy += dy[at];
    sum_dy_xhat += double{dy[at]} * ((x[at] - m) * is);
  });
  block_sum2(sum_dy, sum_dy_xhat);
  if (threadIdx.x == 0) {
    dgamma[c] = static_cast<float>(sum_dy_xhat);
    dbeta[c] = static_cast<float>(sum_dy);
    coef[2 * c] = static_cast<float>(sum_dy / static_cast<double>(count));
    coef[2 * c + 1] = static_cast<float>(sum_dy_xhat / static_cast<double>(count));
  }
}

__global__ void batchnorm_backward_apply_kernel(BatchNormShape s, const float* x,
                                                const float* gamma, const float* mean,
                                                const float* invstd, const float* dy,
                                                const float* coef, float* dx) {
  const int64_t count = int64_t{s.n} * s.c * s.hw;
  GRID_STRIDE(i, count) {
    const int c = static_cast<int>(i / s.hw % s.c);
    const float is = invstd[c], k = gamma[c] * is;
    dx[i] = k * (dy[i] - coef[2 * c] - (x[i] - mean[c]) * is * coef[2 * c + 1]);
  }
}

// One row per thread (classes are few), in double like the CPU op.
__global__ void softmax_xent_kernel(int n, int classes, const float* logits, const uint8_t* labels,
                                    float smoothing, float* probs, float* dlogits, float* row_loss,
                                    int32_t* predicted) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const float* z = logits + static_cast<int64_t>(i) * classes;
  float* p = probs + static_cast<int64_t>(i) * classes;
  float zmax = z[0];
  for (int c = 1; c < classes; ++c) zmax = fmaxf(zmax, z[c]);
  double sum = 0.0;
  for (int c = 0; c < classes; ++c) sum += exp(double{z[c]} - zmax);
  const double log_sum = log(sum);
  double loss = 0.0;
  int best = 0;
  const int label = labels ? labels[i] : -1;
  const float inv_n = 1.0f / static_cast<float>(n);
  for (int c = 0; c < classes; ++c) {
    const double log_p = z[c] - zmax - log_sum;
    p[c] = static_cast<float>(exp(log_p));
    if (p[c] > p[best]) best = c;
    if (label >= 0) {
      loss -= (smoothing / classes + (c == label ? 1.0 - smoothing : 0.0)) * log_p;
      if (dlogits) {
        const float target = smoothing / classes + (c == label ? 1.0f - smoothing : 0.0f);
        dlogits[static_cast<int64_t>(i) * classes + c] = (p[c] - target) * inv_n;
      }
    }
  }
  if (row_loss) row_loss[i] = static_cast<float>(loss);
  if (predicted) predicted[i] = best;
}

// Bias gradients: one block per channel, fixed-order tree.
__global__ void channel_sums_kernel(const float* x, int n, int channels, int hw, float* out) {
  const int c = blockIdx.x;
  double sum = 0.0, unused = 0.0;
  for_each_in_channel(
      n, hw, [&](int image, int j) { sum += x[(int64_t{image} * channels + c) * hw + j]; });
  block_sum2(sum, unused);
  if (threadIdx.x == 0) out[c] = static_cast<float>(sum);
}

__global__ void accumulate_totals_kernel(int n, const float* row_loss, const int32_t* predicted,
                                         const uint8_t* labels, double* totals) {
  double loss = 0.0, correct = 0.0;
  for (int i = threadIdx.x; i < n; i += kThreads) {
    loss += row_loss[i];
    correct += predicted[i] == labels[i] ? 1.0 : 0.0;
  }
  block_sum2(loss, correct);
  if (threadIdx.x == 0) {
    totals[0] += loss;
    totals[1] += correct;
  }
}

}  // namespace

void relu_forward(int64_t count, const float* x, float* y) {
  relu_forward_kernel<<<blocks_for(count), kThreads, 0, stream()>>>(count, x, y);
  CUDA_CHECK_LAUNCH();
}

void relu_backward(int64_t count, const float* y, const float* dy, float* dx) {
  relu_backward_kernel<<<blocks_for(count), kThreads, 0, stream()>>>(count, y, dy, dx);
  CUDA_CHECK_LAUNCH();
}

void dropout_forward(int64_t count, float rate, uint64_t seed, const float* x, float* y,
                     float* mask) {
  dropout_forward_kernel<<<blocks_for(count), kThreads, 0, stream()>>>(count, rate, seed, x, y,
                                                                       mask);
  CUDA_CHECK_LAUNCH();
}

void dropout_backward(int64_t count, const float* mask, const float* dy, float* dx) {
  multiply_kernel<<<blocks_for(count), kThreads, 0, stream()>>>(count, dy, mask, dx);
  CUDA_CHECK_LAUNCH();
}

void maxpool_forward(const MaxPoolShape& s, const float* x, float* y, int32_t* argmax) {
  const int64_t count = int64_t{s.n} * s.c * s.out_h() * s.out_w();
  maxpool_forward_kernel<<<blocks_for(count), kThreads, 0, stream()>>>(s, s.out_h(), s.out_w(), x,
                                                                       y, argmax);
  CUDA_CHECK_LAUNCH();
}

void maxpool_backward(const MaxPoolShape& s, const float* dy, const int32_t* argmax, float* dx) {
  const int64_t count = int64_t{s.n} * s.c * s.h * s.w;
  maxpool_backward_kernel<<<blocks_for(count), kThreads, 0, stream()>>>(s, s.out_h(), s.out_w(), dy,
                                                                        argmax, dx);
  CUDA_CHECK_LAUNCH();
}

void batchnorm2d_forward_train(const BatchNormShape& s, const float* x, const float* gamma,
                               const float* beta, float eps, float* y, float* mean, float* invstd,
                               float* variance) {
  batchnorm_stats_kernel<<<s.c, kThreads, 0, stream()>>>(s, x, eps, mean, invstd, variance);
  CUDA_CHECK_LAUNCH();
  const int64_t count = int64_t{s.n} * s.c * s.hw;
  batchnorm_train_apply_kernel<<<blocks_for(count), kThreads, 0, stream()>>>(s, x, gamma, beta,
                                                                             mean, invstd, y);
  CUDA_CHECK_LAUNCH();
}

void batchnorm2d_update_running(const BatchNormShape& s, float momentum, const float* mean,
                                const float* variance, float* running_mean, float* running_var) {
  batchnorm_running_kernel<<<1, kThreads, 0, stream()>>>(s, momentum, mean, variance, running_mean,
                                                         running_var);
  CUDA_CHECK_LAUNCH();
}

void batchnorm2d_forward_infer(const BatchNormShape& s, const float* x, const float* gamma,
                               const float* beta, const float* running_mean,
                               const float* running_var, float eps, float* y) {
  const int64_t count = int64_t{s.n} * s.c * s.hw;
  batchnorm_infer_kernel<<<blocks_for(count), kThreads, 0, stream()>>>(
      s, x, gamma, beta, running_mean, running_var, eps, y);
  CUDA_CHECK_LAUNCH();
}

void batchnorm2d_backward(const BatchNormShape& s, const float* x, const float* gamma,
                          const float* mean, const float* invstd, const float* dy, float* dx,
                          float* dgamma, float* dbeta) {
  float* coef = static_cast<float*>(workspace(1, sizeof(float) * 2 * static_cast<size_t>(s.c)));
  batchnorm_backward_reduce_kernel<<<s.c, kThreads, 0, stream()>>>(s, x, mean, invstd, dy, dgamma,
                                                                   dbeta, coef);
  CUDA_CHECK_LAUNCH();
  if (!dx) return;
  const int64_t count = int64_t{s.n} * s.c * s.hw;
  batchnorm_backward_apply_kernel<<<blocks_for(count), kThreads, 0, stream()>>>(
      s, x, gamma, mean, invstd, dy, coef, dx);
  CUDA_CHECK_LAUNCH();
}

void softmax_xent(int n, int classes, const float* logits, const uint8_t* labels,
                  float label_smoothing, float* probs, float* dlogits, float* row_loss,
                  int32_t* predicted) {
  if (n <= 0) return;
  softmax_xent_kernel<<<(n + 127) / 128, 128, 0, stream()>>>(
      n, classes, logits, labels, label_smoothing, probs, dlogits, row_loss, predicted);
  CUDA_CHECK_LAUNCH();
}

void channel_sums(const float* x, int n, int channels, int hw, float* out) {
  if (channels <= 0) return;
  channel_sums_kernel<<<channels, kThreads, 0, stream()>>>(x, n, channels, hw, out);
  CUDA_CHECK_LAUNCH();
}

void accumulate_batch_totals(int n, const float* row_loss, const int32_t* predicted,
                             const uint8_t* labels, double* totals) {
  accumulate_totals_kernel<<<1, kThreads, 0, stream()>>>(n, row_loss, predicted, labels, totals);
  CUDA_CHECK_LAUNCH();
}

}  // namespace digitflow::kernels::cuda

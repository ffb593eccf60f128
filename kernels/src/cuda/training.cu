// What a training step needs besides the layers: the fused optimiser updates (one read and
// one write of each parameter, moment and gradient) and the batch builder, which warps the
// resident training images with the CPU's random affine transform (the same seeds, the same
// double-precision arithmetic) and normalises them straight into the input tensor, so an
// epoch never waits on the host.
#include "check.hpp"
#include "digitflow/kernels/cuda/ops.hpp"
#include "digitflow/kernels/seed_mix.hpp"

namespace digitflow::kernels::cuda {

namespace {

constexpr int kThreads = 256;

int blocks_for(int64_t count) {
  return static_cast<int>(
      std::max<int64_t>(1, std::min<int64_t>((count + kThreads - 1) / kThreads, 65535)));
}

__global__ void adamw_kernel(int64_t count, float* w, const float* g, float* m, float* v, float b1,
                             float b2, float decay, float step_size, float inv_sqrt_c2, float eps) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float gi = g[i];
    const float mi = b1 * m[i] + (1.0f - b1) * gi;
    const float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    w[i] = w[i] * decay - step_size * mi / (sqrtf(vi) * inv_sqrt_c2 + eps);
  }
}

__global__ void sgd_kernel(int64_t count, float* w, const float* g, float* buf, float lr,
                           float momentum, float decay, bool nesterov) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float gi = g[i] + decay * w[i];
    const float b = momentum * buf[i] + gi;
    buf[i] = b;
    w[i] -= lr * (nesterov ? gi + momentum * b : b);
  }
}

struct AffineParams {
  double i00, i01, i10, i11, cx, cy, tx, ty;
};

// The inverse map of random_affine (trainer.cpp) for one seed.
__host__ __device__ AffineParams affine_params(const AugmentConfig& a, uint64_t seed, int rows,
                                               int cols) {
  const double deg = 3.14159265358979323846 / 180.0;
  auto uniform = [&](uint64_t i, double range) {
    return (2.0 * hash_uniform_inline(seed, i) - 1.0) * range;
  };
  const double angle = uniform(0, a.rotation_deg) * deg;
  const double shear = uniform(1, a.shear_deg) * deg;
  const double scale = 1.0 + uniform(2, a.scale);
  AffineParams p;
  p.tx = uniform(3, a.shift);
  p.ty = uniform(4, a.shift);
  const double c = cos(angle), s = sin(angle), sh = tan(shear);
  const double m00 = c * scale, m01 = (c * sh - s) * scale;
  const double m10 = s * scale, m11 = (s * sh + c) * scale;
  const double det = m00 * m11 - m01 * m10;
  p.i00 = m11 / det;
  p.i01 = -m01 / det;
  p.i10 = -m10 / det;
  p.i11 = m00 / det;
  p.cx = (cols - 1) / 2.0;
  p.cy = (rows - 1) / 2.0;
  return p;
}

// Pixel `at` of the warped image: bilinear, zero outside, rounded to a grey level.
__host__ __device__ uint8_t warped_pixel(const uint8_t* src, int rows, int cols,
                                         const AffineParams& params, int at) {
  const int y = at / cols, xx = at % cols;
  const double dx = xx - params.cx - params.tx, dy = y - params.cy - params.ty;
  const double sx = params.i00 * dx + params.i01 * dy + params.cx;
  const double sy = params.i10 * dx + params.i11 * dy + params.cy;
  const int x0 = static_cast<int>(floor(sx)), y0 = static_cast<int>(floor(sy));
  const double fx = sx - x0, fy = sy - y0;
  auto value = [&](int yy, int xi) -> double {
    return (yy >= 0 && yy < rows && xi >= 0 && xi < cols) ? src[yy * cols + xi] : 0.0;
  };
  const double v = (1 - fy) * ((1 - fx) * value(y0, x0) + fx * value(y0, x0 + 1)) +
                   fy * ((1 - fx) * value(y0 + 1, x0) + fx * value(y0 + 1, x0 + 1));
  const long long level = llround(v);
  return static_cast<uint8_t>(level < 0 ? 0 : level > 255 ? 255 : level);
}

// One block per image of the batch.
__global__ void gather_batch_kernel(BatchSource source, const int32_t* indices, bool warp,
                                    AugmentConfig augment, uint64_t seed_base, uint64_t position,
                                    float scale, float shift, float* x, uint8_t* batch_labels) {
  __shared__ AffineParams params;
  const int rows = source.rows, cols = source.cols, i = blockIdx.x;
  const int64_t image_size = int64_t{rows} * cols;
  const uint8_t* src = source.images + indices[i] * image_size;
  if (warp && threadIdx.x == 0)
    params = affine_params(augment, mix_seed(seed_base, position + i), rows, cols);
  if (threadIdx.x == 0 && batch_labels) batch_labels[i] = source.labels[indices[i]];
  __syncthreads();
  float* out = x + i * image_size;
  for (int at = threadIdx.x; at < image_size; at += blockDim.x) {
    const uint8_t pixel = warp ? warped_pixel(src, rows, cols, params, at) : src[at];
    out[at] = static_cast<float>(pixel) * scale + shift;
  }
}

__global__ void normalize_kernel(int64_t count, const uint8_t* pixels, float scale, float shift,
                                 float* x) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    x[i] = static_cast<float>(pixels[i]) * scale + shift;
}

}  // namespace

void adamw_step(int64_t count, float* w, const float* g, float* m, float* v, float b1, float b2,
                float decay, float step_size, float inv_sqrt_c2, float eps) {
  adamw_kernel<<<blocks_for(count), kThreads, 0, stream()>>>(count, w, g, m, v, b1, b2, decay,
                                                             step_size, inv_sqrt_c2, eps);
  CUDA_CHECK_LAUNCH();
}

void sgd_step(int64_t count, float* w, const float* g, float* buf, float lr, float momentum,
              float decay, bool nesterov) {
  sgd_kernel<<<blocks_for(count), kThreads, 0, stream()>>>(count, w, g, buf, lr, momentum, decay,
                                                           nesterov);
  CUDA_CHECK_LAUNCH();
}

void gather_batch(const BatchSource& source, const int32_t* indices, int count, bool warp,
                  const AugmentConfig& augment, uint64_t seed_base, uint64_t position, float mean,
                  float std, float* x, uint8_t* batch_labels) {
  if (count <= 0) return;
  // The same scale and shift as Network::prepare_input.
  const float scale = 1.0f / (255.0f * std), shift = -mean / std;
  gather_batch_kernel<<<count, kThreads, 0, stream()>>>(source, indices, warp, augment, seed_base,
                                                        position, scale, shift, x, batch_labels);
  CUDA_CHECK_LAUNCH();
}

void normalize_pixels(int64_t count, const uint8_t* pixels, float mean, float std, float* x) {
  const float scale = 1.0f / (255.0f * std), shift = -mean / std;
  normalize_kernel<<<blocks_for(count), kThreads, 0, stream()>>>(count, pixels, scale, shift, x);
  CUDA_CHECK_LAUNCH();
}

}  // namespace digitflow::kernels::cuda

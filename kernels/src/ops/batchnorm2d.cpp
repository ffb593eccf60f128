// Batch normalisation, one plain implementation parallel over channels; statistics are
// accumulated in double so that large batches do not lose precision.
#include "digitflow/kernels/ops/batchnorm2d.hpp"

#include <cmath>
#include <cstdint>

#include "digitflow/kernels/parallel.hpp"

namespace digitflow::kernels {

namespace {
template <typename Body>
void for_each_channel(const BatchNormShape& s, Body&& body) {
  parallel_chunks(s.c, 1, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) body(static_cast<int>(c));
  });
}
}  // namespace

void batchnorm2d_forward_train(const BatchNormShape& s, const float* x, const float* gamma,
                               const float* beta, float eps, float* y, float* mean,
                               float* invstd, float* variance) {
  const int64_t plane = s.hw, stride = int64_t{s.c} * s.hw;
  const double count = static_cast<double>(s.n) * s.hw;
  for_each_channel(s, [&](int c) {
    double sum = 0.0, sum_sq = 0.0;
    for (int n = 0; n < s.n; ++n) {
      const float* xp = x + n * stride + c * plane;
      for (int64_t j = 0; j < plane; ++j) {
        sum += xp[j];
        sum_sq += double{xp[j]} * xp[j];
      }
    }
    double m = sum / count;
    double var = std::max(0.0, sum_sq / count - m * m);
    float is = static_cast<float>(1.0 / std::sqrt(var + eps));
    mean[c] = static_cast<float>(m);
    invstd[c] = is;
    variance[c] = static_cast<float>(var);
    float scale = gamma[c] * is, shift = beta[c] - static_cast<float>(m) * scale;
    for (int n = 0; n < s.n; ++n) {
      const float* xp = x + n * stride + c * plane;
      float* yp = y + n * stride + c * plane;
      for (int64_t j = 0; j < plane; ++j) yp[j] = xp[j] * scale + shift;
    }
  });
}

void batchnorm2d_forward_infer(const BatchNormShape& s, const float* x, const float* gamma,
                               const float* beta, const float* running_mean,
                               const float* running_var, float eps, float* y) {
  const int64_t plane = s.hw, stride = int64_t{s.c} * s.hw;
  parallel_chunks(s.n, 16, [&](int64_t begin, int64_t end) {
    for (int64_t n = begin; n < end; ++n)
      for (int c = 0; c < s.c; ++c) {
        float scale = gamma[c] / std::sqrt(running_var[c] + eps);
        float shift = beta[c] - running_mean[c] * scale;
        const float* xp = x + n * stride + c * plane;
        float* yp = y + n * stride + c * plane;
        for (int64_t j = 0; j < plane; ++j) yp[j] = xp[j] * scale + shift;
      }
  });
}

void batchnorm2d_backward(const BatchNormShape& s, const float* x, const float* gamma,
                          const float* mean, const float* invstd, const float* dy, float* dx,
                          float* dgamma, float* dbeta) {
  const int64_t plane = s.hw, stride = int64_t{s.c} * s.hw;
  const double count = static_cast<double>(s.n) * s.hw;
  for_each_channel(s, [&](int c) {
    double sum_dy = 0.0, sum_dy_xhat = 0.0;
    const float m = mean[c], is = invstd[c];
    for (int n = 0; n < s.n; ++n) {
      const float* xp = x + n * stride + c * plane;
      const float* dyp = dy + n * stride + c * plane;
      for (int64_t j = 0; j < plane; ++j) {
        sum_dy += dyp[j];
        sum_dy_xhat += double{dyp[j]} * ((xp[j] - m) * is);
      }
    }
    dgamma[c] = static_cast<float>(sum_dy_xhat);
    dbeta[c] = static_cast<float>(sum_dy);
    // dx = gamma * invstd * (dy - mean(dy) - xhat * mean(dy * xhat))
    const float k = gamma[c] * is;
    const float mean_dy = static_cast<float>(sum_dy / count);
    const float mean_dy_xhat = static_cast<float>(sum_dy_xhat / count);
    for (int n = 0; n < s.n; ++n) {
      const float* xp = x + n * stride + c * plane;
      const float* dyp = dy + n * stride + c * plane;
      float* dxp = dx + n * stride + c * plane;
      for (int64_t j = 0; j < plane; ++j)
        dxp[j] = k * (dyp[j] - mean_dy - (xp[j] - m) * is * mean_dy_xhat);
    }
  });
}

}  // namespace digitflow::kernels

// The plain fully connected layer, in double accumulators: the test reference.
#include <algorithm>

#include "digitflow/kernels/ops/dense.hpp"

namespace digitflow::kernels::ref {

void dense_forward(const DenseShape& s, const float* x, const float* weight, const float* bias,
                   float* y) {
  for (int n = 0; n < s.n; ++n)
    for (int o = 0; o < s.out; ++o) {
      double sum = bias ? bias[o] : 0.0;
      for (int i = 0; i < s.in; ++i) sum += double{x[n * s.in + i]} * weight[o * s.in + i];
      y[n * s.out + o] = static_cast<float>(sum);
    }
}

void dense_backward(const DenseShape& s, const float* x, const float* weight, const float* dy,
                    float* dx, float* dweight, float* dbias) {
  for (int o = 0; o < s.out; ++o) {
    for (int i = 0; i < s.in; ++i) {
      double sum = 0.0;
      for (int n = 0; n < s.n; ++n) sum += double{dy[n * s.out + o]} * x[n * s.in + i];
      dweight[o * s.in + i] = static_cast<float>(sum);
    }
    if (dbias) {
      double sum = 0.0;
      for (int n = 0; n < s.n; ++n) sum += dy[n * s.out + o];
      dbias[o] = static_cast<float>(sum);
    }
  }
  if (dx)
    for (int n = 0; n < s.n; ++n)
      for (int i = 0; i < s.in; ++i) {
        double sum = 0.0;
        for (int o = 0; o < s.out; ++o) sum += double{dy[n * s.out + o]} * weight[o * s.in + i];
        dx[n * s.in + i] = static_cast<float>(sum);
      }
}

}  // namespace digitflow::kernels::ref

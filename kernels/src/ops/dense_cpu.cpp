// Fully connected layer on the CPU: our GEMM over fixed chunks of batch rows (forward, dx)
// or of input features (dweight), so every chunk writes its own outputs.
#include "digitflow/kernels/gemm.hpp"
#include "digitflow/kernels/ops/dense.hpp"
#include "digitflow/kernels/parallel.hpp"

namespace digitflow::kernels {

namespace {
constexpr int64_t kRowsPerChunk = 32;
constexpr int64_t kFeaturesPerChunk = 512;
}  // namespace

void dense_forward(const DenseShape& s, const float* x, const float* weight, const float* bias,
                   float* y) {
  parallel_chunks(s.n, kRowsPerChunk, [&](int64_t begin, int64_t end) {
    const int rows = static_cast<int>(end - begin);
    float* yc = y + begin * s.out;
    gemm(false, true, rows, s.out, s.in, 1.0f, x + begin * s.in, s.in, weight, s.in, 0.0f, yc,
         s.out);
    if (bias)
      for (int r = 0; r < rows; ++r)
        for (int o = 0; o < s.out; ++o) yc[r * s.out + o] += bias[o];
  });
}

void dense_backward(const DenseShape& s, const float* x, const float* weight, const float* dy,
                    float* dx, float* dweight, float* dbias) {
  // dW (out, in) = dy^T (out, n) * x (n, in), cut along the input features.
  parallel_chunks(s.in, kFeaturesPerChunk, [&](int64_t begin, int64_t end) {
    gemm(true, false, s.out, static_cast<int>(end - begin), s.n, 1.0f, dy, s.out, x + begin, s.in,
         0.0f, dweight + begin, s.in);
  });
  if (dbias)
    for (int o = 0; o < s.out; ++o) {
      float sum = 0.0f;
      for (int n = 0; n < s.n; ++n) sum += dy[n * s.out + o];
      dbias[o] = sum;
    }
  if (dx)
    parallel_chunks(s.n, kRowsPerChunk, [&](int64_t begin, int64_t end) {
      gemm(false, false, static_cast<int>(end - begin), s.in, s.out, 1.0f, dy + begin * s.out,
           s.out, weight, s.in, 0.0f, dx + begin * s.in, s.in);
    });
}

}  // namespace digitflow::kernels

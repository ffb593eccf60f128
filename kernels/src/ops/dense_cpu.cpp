// Fully connected layer on the CPU: our GEMM over fixed chunks of batch rows (forward, dx)
// or of input features (dweight), so every chunk writes its own outputs; dot products for
// batches of a few rows.
#include "digitflow/kernels/gemm.hpp"
#include "digitflow/kernels/ops/dense.hpp"
#include "digitflow/kernels/parallel.hpp"

namespace digitflow::kernels {

namespace {
constexpr int64_t kRowsPerChunk = 32;
constexpr int64_t kFeaturesPerChunk = 512;
}  // namespace

namespace {
constexpr int kGemvRows = 4;

// y[o] = weight[o] . x + bias[o] for outputs [begin, end) of a few rows: at batch 1 packing
// the whole weight matrix for a GEMM costs more than the products themselves (which are
// bound by reading the weights from memory). Eight partial sums per dot product.
void dot_products(
    const DenseShape& s, const float* x, const float* weight, const float* bias, float* y,
    int64_t begin, int64_t end) {
  for (int r = 0; r < s.n; ++r) {
    const float* __restrict xr = x + int64_t{r} * s.in;
    for (int64_t o = begin; o < end; ++o) {
      const float* __restrict w = weight + o * s.in;
      float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      int i = 0;
      for (; i + 8 <= s.in; i += 8)
        for (int j = 0; j < 8; ++j) acc[j] += w[i + j] * xr[i + j];
      float sum = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
      for (; i < s.in; ++i) sum += w[i] * xr[i];
      y[int64_t{r} * s.out + o] = sum + (bias ? bias[o] : 0.0f);
    }
  }
}

void dense_forward_few_rows(const DenseShape& s, const float* x, const float* weight,
                            const float* bias, float* y) {
  parallel_chunks(s.out, 8, [&](int64_t begin, int64_t end) {
    dot_products(s, x, weight, bias, y, begin, end);
  });
}
}  // namespace

void dense_forward(const DenseShape& s, const float* x, const float* weight, const float* bias,
                   float* y) {
  if (s.n <= kGemvRows) {
    dense_forward_few_rows(s, x, weight, bias, y);
    return;
  }
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

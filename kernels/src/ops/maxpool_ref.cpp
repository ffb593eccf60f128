// The plain max pooling: the test reference. Ties go to the first index in the window.
#include <algorithm>
#include <limits>

#include "digitflow/kernels/ops/maxpool.hpp"

namespace digitflow::kernels::ref {

void maxpool_forward(const MaxPoolShape& s, const float* x, float* y, int32_t* argmax) {
  const int oh = s.out_h(), ow = s.out_w();
  for (int64_t plane = 0; plane < int64_t{s.n} * s.c; ++plane)
    for (int oy = 0; oy < oh; ++oy)
      for (int ox = 0; ox < ow; ++ox) {
        float best = -std::numeric_limits<float>::infinity();
        int32_t best_at = -1;
        for (int ky = 0; ky < s.kernel; ++ky)
          for (int kx = 0; kx < s.kernel; ++kx) {
            int32_t at = (oy * s.stride + ky) * s.w + ox * s.stride + kx;
            float v = x[plane * s.h * s.w + at];
            if (best_at < 0 || v > best) best = v, best_at = at;
          }
        int64_t o = (plane * oh + oy) * ow + ox;
        y[o] = best;
        argmax[o] = best_at;
      }
}

void maxpool_backward(const MaxPoolShape& s, const float* dy, const int32_t* argmax, float* dx) {
  const int64_t out_plane = int64_t{s.out_h()} * s.out_w();
  std::fill_n(dx, int64_t{s.n} * s.c * s.h * s.w, 0.0f);
  for (int64_t plane = 0; plane < int64_t{s.n} * s.c; ++plane)
    for (int64_t o = 0; o < out_plane; ++o)
      dx[plane * s.h * s.w + argmax[plane * out_plane + o]] += dy[plane * out_plane + o];
}

}  // namespace digitflow::kernels::ref

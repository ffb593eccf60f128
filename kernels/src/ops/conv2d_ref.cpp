// The plain convolution: seven nested loops, no lowering. It is the specification that
// the fast path and the CUDA kernels are tested against.
#include "digitflow/kernels/ops/conv2d.hpp"

#include <algorithm>

namespace digitflow::kernels::ref {

void conv2d_forward(const Conv2dShape& s, const float* x, const float* weight, const float* bias,
                    float* y) {
  const int oh = s.out_h(), ow = s.out_w(), k = s.kernel;
  for (int n = 0; n < s.n; ++n)
    for (int co = 0; co < s.c_out; ++co)
      for (int oy = 0; oy < oh; ++oy)
        for (int ox = 0; ox < ow; ++ox) {
          double sum = bias ? bias[co] : 0.0;
          for (int ci = 0; ci < s.c_in; ++ci)
            for (int ky = 0; ky < k; ++ky)
              for (int kx = 0; kx < k; ++kx) {
                int iy = oy * s.stride - s.padding + ky, ix = ox * s.stride - s.padding + kx;
                if (iy < 0 || iy >= s.h || ix < 0 || ix >= s.w) continue;
                sum += double{x[((int64_t{n} * s.c_in + ci) * s.h + iy) * s.w + ix]} *
                       weight[((int64_t{co} * s.c_in + ci) * k + ky) * k + kx];
              }
          y[((int64_t{n} * s.c_out + co) * oh + oy) * ow + ox] = static_cast<float>(sum);
        }
}

void conv2d_backward(const Conv2dShape& s, const float* x, const float* weight, const float* dy,
                     float* dx, float* dweight, float* dbias) {
  const int oh = s.out_h(), ow = s.out_w(), k = s.kernel;
  if (dx) std::fill_n(dx, int64_t{s.n} * s.c_in * s.h * s.w, 0.0f);
  std::fill_n(dweight, int64_t{s.c_out} * s.col_rows(), 0.0f);
  if (dbias) std::fill_n(dbias, s.c_out, 0.0f);
  for (int n = 0; n < s.n; ++n)
    for (int co = 0; co < s.c_out; ++co)
      for (int oy = 0; oy < oh; ++oy)
        for (int ox = 0; ox < ow; ++ox) {
          float g = dy[((int64_t{n} * s.c_out + co) * oh + oy) * ow + ox];
          if (dbias) dbias[co] += g;
          for (int ci = 0; ci < s.c_in; ++ci)
            for (int ky = 0; ky < k; ++ky)
              for (int kx = 0; kx < k; ++kx) {
                int iy = oy * s.stride - s.padding + ky, ix = ox * s.stride - s.padding + kx;
                if (iy < 0 || iy >= s.h || ix < 0 || ix >= s.w) continue;
                int64_t xi = ((int64_t{n} * s.c_in + ci) * s.h + iy) * s.w + ix;
                int64_t wi = ((int64_t{co} * s.c_in + ci) * k + ky) * k + kx;
                dweight[wi] += g * x[xi];
                if (dx) dx[xi] += g * weight[wi];
              }
        }
}

}  // namespace digitflow::kernels::ref

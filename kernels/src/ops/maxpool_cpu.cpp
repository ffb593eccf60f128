// Max pooling on the CPU, parallel over fixed chunks of (image, channel) planes.
#include <algorithm>

#include "digitflow/kernels/ops/maxpool.hpp"
#include "digitflow/kernels/parallel.hpp"

namespace digitflow::kernels {

namespace {
constexpr int64_t kPlanesPerChunk = 16;
}

void maxpool_forward(const MaxPoolShape& s, const float* x, float* y, int32_t* argmax) {
  const int oh = s.out_h(), ow = s.out_w();
  const int64_t in_plane = int64_t{s.h} * s.w, out_plane = int64_t{oh} * ow;
  // 2x2 windows with stride 2 (every model here) are unrolled, the window read in the same
  // order as the general loop so that ties go the same way; without `argmax` (inference)
  // the row is a plain max the compiler can vectorise.
  const bool two_by_two = s.kernel == 2 && s.stride == 2;
  parallel_chunks(int64_t{s.n} * s.c, kPlanesPerChunk, [&](int64_t begin, int64_t end) {
    for (int64_t plane = begin; plane < end; ++plane) {
      const float* xp = x + plane * in_plane;
      float* yp = y + plane * out_plane;
      int32_t* ap = argmax ? argmax + plane * out_plane : nullptr;
      if (two_by_two) {
        for (int oy = 0; oy < oh; ++oy) {
          const float* r0 = xp + int64_t{2 * oy} * s.w;
          const float* r1 = r0 + s.w;
          float* yr = yp + int64_t{oy} * ow;
          if (!ap) {
            for (int ox = 0; ox < ow; ++ox) {
              float best = r0[2 * ox];
              best = r0[2 * ox + 1] > best ? r0[2 * ox + 1] : best;
              best = r1[2 * ox] > best ? r1[2 * ox] : best;
              yr[ox] = r1[2 * ox + 1] > best ? r1[2 * ox + 1] : best;
            }
            continue;
          }
          int32_t* ar = ap + int64_t{oy} * ow;
          const int32_t row0 = 2 * oy * s.w, row1 = row0 + s.w;
          for (int ox = 0; ox < ow; ++ox) {
            float best = r0[2 * ox];
            int32_t at = row0 + 2 * ox;
            if (r0[2 * ox + 1] > best) best = r0[2 * ox + 1], at = row0 + 2 * ox + 1;
            if (r1[2 * ox] > best) best = r1[2 * ox], at = row1 + 2 * ox;
            if (r1[2 * ox + 1] > best) best = r1[2 * ox + 1], at = row1 + 2 * ox + 1;
            yr[ox] = best;
            ar[ox] = at;
          }
        }
        continue;
      }
      for (int oy = 0; oy < oh; ++oy)
        for (int ox = 0; ox < ow; ++ox) {
          int32_t best_at = (oy * s.stride) * s.w + ox * s.stride;
          float best = xp[best_at];
          for (int ky = 0; ky < s.kernel; ++ky) {
            const int32_t row = (oy * s.stride + ky) * s.w + ox * s.stride;
            for (int kx = 0; kx < s.kernel; ++kx)
              if (xp[row + kx] > best) best = xp[row + kx], best_at = row + kx;
          }
          yp[oy * ow + ox] = best;
          if (ap) ap[oy * ow + ox] = best_at;
        }
    }
  });
}

void maxpool_backward(const MaxPoolShape& s, const float* dy, const int32_t* argmax, float* dx) {
  const int64_t in_plane = int64_t{s.h} * s.w, out_plane = int64_t{s.out_h()} * s.out_w();
  parallel_chunks(int64_t{s.n} * s.c, kPlanesPerChunk, [&](int64_t begin, int64_t end) {
    for (int64_t plane = begin; plane < end; ++plane) {
      float* dxp = dx + plane * in_plane;
      std::fill_n(dxp, in_plane, 0.0f);
      const float* dyp = dy + plane * out_plane;
      const int32_t* ap = argmax + plane * out_plane;
      for (int64_t o = 0; o < out_plane; ++o) dxp[ap[o]] += dyp[o];
    }
  });
}

}  // namespace digitflow::kernels

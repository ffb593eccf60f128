// Convolution on the CPU. conv2d_forward/backward run oneDNN's primitives where the build
// found oneDNN (conv2d_onednn.cpp), else the path here: each image is lowered to a (c_in*k*k, oh*ow) column matrix and
// multiplied by the weights with our GEMM; images run in parallel. Weight gradients are
// summed per fixed chunk of images and then in chunk order, so results do not depend on
// the thread count.
#include <algorithm>
#include <cstring>
#include <vector>

#include "digitflow/kernels/gemm.hpp"
#include "digitflow/kernels/ops/conv2d.hpp"
#include "digitflow/kernels/ops/elementwise.hpp"
#include "digitflow/kernels/parallel.hpp"

namespace digitflow::kernels {

namespace {

constexpr int64_t kImagesPerChunk = 8;

bool is_pointwise(const Conv2dShape& s) {
  return s.kernel == 1 && s.stride == 1 && s.padding == 0;
}

// col (c_in*k*k, oh*ow) from one image x (c_in, h, w).
void im2col(const Conv2dShape& s, const float* x, float* col) {
  const int oh = s.out_h(), ow = s.out_w(), k = s.kernel;
  for (int ci = 0; ci < s.c_in; ++ci)
    for (int ky = 0; ky < k; ++ky)
      for (int kx = 0; kx < k; ++kx) {
        float* row = col + ((int64_t{ci} * k + ky) * k + kx) * oh * ow;
        const float* plane = x + int64_t{ci} * s.h * s.w;
        for (int oy = 0; oy < oh; ++oy) {
          int iy = oy * s.stride - s.padding + ky;
          float* out = row + int64_t{oy} * ow;
          if (iy < 0 || iy >= s.h) {
            std::fill_n(out, ow, 0.0f);
            continue;
          }
          const float* in = plane + int64_t{iy} * s.w;
          if (s.stride == 1) {
            int ix0 = kx - s.padding;
            int lo = std::clamp(-ix0, 0, ow);
            int hi = std::clamp(s.w - ix0, lo, ow);
            std::fill_n(out, lo, 0.0f);
            if (hi > lo) std::memcpy(out + lo, in + ix0 + lo, sizeof(float) * (hi - lo));
            std::fill_n(out + hi, ow - hi, 0.0f);
          } else {
            for (int ox = 0; ox < ow; ++ox) {
              int ix = ox * s.stride - s.padding + kx;
              out[ox] = (ix >= 0 && ix < s.w) ? in[ix] : 0.0f;
            }
          }
        }
      }
}

// colT (oh*ow, c_in*k*k): the transpose of im2col, built directly, so that the weight
// gradient dy (c_out, p) * colT (p, ck) is a plain GEMM without a transposed operand.
void im2col_transposed(const Conv2dShape& s, const float* x, float* col_t) {
  const int oh = s.out_h(), ow = s.out_w(), k = s.kernel;
  const int64_t ck = s.col_rows();
  for (int oy = 0; oy < oh; ++oy)
    for (int ox = 0; ox < ow; ++ox) {
      float* __restrict row = col_t + (int64_t{oy} * ow + ox) * ck;
      const int iy0 = oy * s.stride - s.padding, ix0 = ox * s.stride - s.padding;
      if (iy0 >= 0 && ix0 >= 0 && iy0 + k <= s.h && ix0 + k <= s.w) {  // interior: no checks
        for (int ci = 0; ci < s.c_in; ++ci) {
          const float* __restrict in = x + (int64_t{ci} * s.h + iy0) * s.w + ix0;
          for (int ky = 0; ky < k; ++ky, row += k, in += s.w)
            for (int kx = 0; kx < k; ++kx) row[kx] = in[kx];
        }
        continue;
      }
      for (int ci = 0; ci < s.c_in; ++ci) {
        const float* plane = x + int64_t{ci} * s.h * s.w;
        for (int ky = 0; ky < k; ++ky) {
          float* __restrict out = row + (int64_t{ci} * k + ky) * k;
          const int iy = iy0 + ky;
          if (iy < 0 || iy >= s.h) {
            for (int kx = 0; kx < k; ++kx) out[kx] = 0.0f;
            continue;
          }
          const float* __restrict in = plane + int64_t{iy} * s.w;
          for (int kx = 0; kx < k; ++kx) {
            const int ix = ix0 + kx;
            out[kx] = (ix >= 0 && ix < s.w) ? in[ix] : 0.0f;
          }
        }
      }
    }
}

// dx (c_in, h, w) = sum of the column matrix scattered back; dx must start at zero.
void col2im(const Conv2dShape& s, const float* col, float* dx) {
  const int oh = s.out_h(), ow = s.out_w(), k = s.kernel;
  for (int ci = 0; ci < s.c_in; ++ci)
    for (int ky = 0; ky < k; ++ky)
      for (int kx = 0; kx < k; ++kx) {
        const float* row = col + ((int64_t{ci} * k + ky) * k + kx) * oh * ow;
        float* plane = dx + int64_t{ci} * s.h * s.w;
        for (int oy = 0; oy < oh; ++oy) {
          int iy = oy * s.stride - s.padding + ky;
          if (iy < 0 || iy >= s.h) continue;
          const float* __restrict in = row + int64_t{oy} * ow;
          float* __restrict out = plane + int64_t{iy} * s.w;
          if (s.stride == 1) {
            const int ix0 = kx - s.padding;
            const int lo = std::clamp(-ix0, 0, ow), hi = std::clamp(s.w - ix0, lo, ow);
            float* __restrict shifted = out + ix0 + lo;  // stays inside the row
            const float* __restrict from = in + lo;
            for (int j = 0; j < hi - lo; ++j) shifted[j] += from[j];
          } else {
            for (int ox = 0; ox < ow; ++ox) {
              int ix = ox * s.stride - s.padding + kx;
              if (ix >= 0 && ix < s.w) out[ix] += in[ox];
            }
          }
        }
      }
}

std::vector<float>& scratch(size_t count) {
  thread_local std::vector<float> buffer;
  if (buffer.size() < count) buffer.resize(count);
  return buffer;
}

}  // namespace

namespace im2col_path {

void conv2d_forward(const Conv2dShape& s, const float* x, const float* weight, const float* bias,
                    float* y) {
  const int64_t p = int64_t{s.out_h()} * s.out_w(), ck = s.col_rows();
  const int64_t x_stride = int64_t{s.c_in} * s.h * s.w, y_stride = s.c_out * p;
  parallel_chunks(s.n, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float* col = x + i * x_stride;
      if (!is_pointwise(s)) {
        float* buffer = scratch(static_cast<size_t>(ck * p)).data();
        im2col(s, x + i * x_stride, buffer);
        col = buffer;
      }
      float* yi = y + i * y_stride;
      gemm(false, false, s.c_out, static_cast<int>(p), static_cast<int>(ck), 1.0f, weight,
           static_cast<int>(ck), col, static_cast<int>(p), 0.0f, yi, static_cast<int>(p));
      if (bias)
        for (int co = 0; co < s.c_out; ++co) {
          float b = bias[co];
          float* row = yi + co * p;
          for (int64_t j = 0; j < p; ++j) row[j] += b;
        }
    }
  });
}

void conv2d_backward(const Conv2dShape& s, const float* x, const float* weight, const float* dy,
                     float* dx, float* dweight, float* dbias) {
  const int64_t p = int64_t{s.out_h()} * s.out_w(), ck = s.col_rows();
  const int64_t x_stride = int64_t{s.c_in} * s.h * s.w, y_stride = s.c_out * p;
  const int64_t chunks = (s.n + kImagesPerChunk - 1) / kImagesPerChunk;
  const int64_t w_count = s.c_out * ck;
  std::vector<float> partial_w(static_cast<size_t>(chunks * w_count));
  std::vector<float> partial_b(static_cast<size_t>(chunks * s.c_out), 0.0f);
  const int ip = static_cast<int>(p), ick = static_cast<int>(ck);

  parallel_chunks(s.n, kImagesPerChunk, [&](int64_t begin, int64_t end) {
    const int64_t chunk = begin / kImagesPerChunk;
    float* pw = partial_w.data() + chunk * w_count;
    float* pb = partial_b.data() + chunk * s.c_out;
    std::vector<float>& buffer = scratch(static_cast<size_t>(2 * ck * p));
    float* col_t = buffer.data();
    float* dcol = buffer.data() + ck * p;
    for (int64_t i = begin; i < end; ++i) {
      const float* dyi = dy + i * y_stride;
      const float beta = i == begin ? 0.0f : 1.0f;
      if (is_pointwise(s)) {
        // dW (c_out, c_in) += dy_i (c_out, p) * x_i^T (p, c_in)
        gemm(false, true, s.c_out, ick, ip, 1.0f, dyi, ip, x + i * x_stride, ip, beta, pw, ick);
      } else {
        // dW (c_out, ck) += dy_i (c_out, p) * colT (p, ck)
        im2col_transposed(s, x + i * x_stride, col_t);
        gemm(false, false, s.c_out, ick, ip, 1.0f, dyi, ip, col_t, ick, beta, pw, ick);
      }
      if (dbias)
        for (int co = 0; co < s.c_out; ++co) {
          const float* __restrict row = dyi + co * p;
          float sum = 0.0f;
          for (int64_t j = 0; j < p; ++j) sum += row[j];
          pb[co] += sum;
        }
      if (dx) {
        float* dxi = dx + i * x_stride;
        if (is_pointwise(s)) {
          gemm(true, false, ick, ip, s.c_out, 1.0f, weight, ick, dyi, ip, 0.0f, dxi, ip);
        } else {
          // dcol (ck, p) = W^T (ck, c_out) * dy_i (c_out, p), then scatter.
          gemm(true, false, ick, ip, s.c_out, 1.0f, weight, ick, dyi, ip, 0.0f, dcol, ip);
          std::fill_n(dxi, x_stride, 0.0f);
          col2im(s, dcol, dxi);
        }
      }
    }
  });

  std::copy_n(partial_w.data(), w_count, dweight);
  for (int64_t c = 1; c < chunks; ++c) {
    const float* pw = partial_w.data() + c * w_count;
    for (int64_t j = 0; j < w_count; ++j) dweight[j] += pw[j];
  }
  if (dbias) {
    std::fill_n(dbias, s.c_out, 0.0f);
    for (int64_t c = 0; c < chunks; ++c)
      for (int co = 0; co < s.c_out; ++co) dbias[co] += partial_b[c * s.c_out + co];
  }
}

}  // namespace im2col_path

void conv2d_forward(const Conv2dShape& s, const float* x, const float* weight, const float* bias,
                    float* y) {
#if DIGITFLOW_HAVE_ONEDNN
  onednn_path::conv2d_forward(s, x, weight, bias, y);
#else
  im2col_path::conv2d_forward(s, x, weight, bias, y);
#endif
}

void conv2d_forward_inference(const Conv2dShape& s, const float* x, const float* weight,
                              const float* bias, bool relu, float* y) {
#if DIGITFLOW_HAVE_ONEDNN
  onednn_path::conv2d_forward_inference(s, x, weight, bias, relu, y);
#else
  im2col_path::conv2d_forward(s, x, weight, bias, y);
  if (relu) relu_forward(int64_t{s.n} * s.c_out * s.out_h() * s.out_w(), y, y);
#endif
}

void conv2d_backward(const Conv2dShape& s, const float* x, const float* weight, const float* dy,
                     float* dx, float* dweight, float* dbias) {
#if DIGITFLOW_HAVE_ONEDNN
  // With one or two input channels (a first layer) oneDNN's weight gradient measured 1.5-2x
  // slower than ours (bench_conv_peers, seed_conv1).
  if (s.c_in <= 2)
    im2col_path::conv2d_backward(s, x, weight, dy, dx, dweight, dbias);
  else
    onednn_path::conv2d_backward(s, x, weight, dy, dx, dweight, dbias);
#else
  im2col_path::conv2d_backward(s, x, weight, dy, dx, dweight, dbias);
#endif
}

const char* conv2d_path_name() { return DIGITFLOW_HAVE_ONEDNN ? "onednn" : "im2col+gemm"; }

}  // namespace digitflow::kernels

// 2-D convolution (cross-correlation, as in every framework), NCHW, square kernel, any
// stride and zero padding. The CPU path is oneDNN's direct convolution where the build found
// oneDNN (it measured fastest), else each image lowered to columns (im2col) times our GEMM;
// both are exposed for tests and benchmarks. ref:: is the plain seven-loop version tests trust.
#pragma once

#include <cstdint>

namespace digitflow::kernels {

struct Conv2dShape {
  int n = 1, c_in = 1, h = 28, w = 28;
  int c_out = 1, kernel = 3, stride = 1, padding = 0;
  int out_h() const { return (h + 2 * padding - kernel) / stride + 1; }
  int out_w() const { return (w + 2 * padding - kernel) / stride + 1; }
  int64_t col_rows() const { return int64_t{c_in} * kernel * kernel; }
};

// x (n, c_in, h, w), weight (c_out, c_in, k, k), bias (c_out) or null -> y (n, c_out, oh, ow).
void conv2d_forward(const Conv2dShape& s, const float* x, const float* weight, const float* bias,
                    float* y);
// Overwrites dweight and dbias (if not null) with the batch sums, and dx (if not null).
void conv2d_backward(const Conv2dShape& s, const float* x, const float* weight, const float* dy,
                     float* dx, float* dweight, float* dbias);

// Inference only: conv2d_forward with a bias (required), then max(y, 0) when `relu`. On the
// oneDNN path one inference primitive does both, the ReLU as a post-op, without the
// training primitive's extras; elsewhere the two run one after the other.
void conv2d_forward_inference(const Conv2dShape& s, const float* x, const float* weight,
                              const float* bias, bool relu, float* y);

// Which path conv2d_forward/backward take: "onednn" or "im2col+gemm".
const char* conv2d_path_name();

namespace im2col_path {
void conv2d_forward(const Conv2dShape& s, const float* x, const float* weight, const float* bias,
                    float* y);
void conv2d_backward(const Conv2dShape& s, const float* x, const float* weight, const float* dy,
                     float* dx, float* dweight, float* dbias);
}  // namespace im2col_path

#if DIGITFLOW_HAVE_ONEDNN
namespace onednn_path {
void conv2d_forward(const Conv2dShape& s, const float* x, const float* weight, const float* bias,
                    float* y);
void conv2d_forward_inference(const Conv2dShape& s, const float* x, const float* weight,
                              const float* bias, bool relu, float* y);
void conv2d_backward(const Conv2dShape& s, const float* x, const float* weight, const float* dy,
                     float* dx, float* dweight, float* dbias);
}  // namespace onednn_path
#endif

namespace ref {
void conv2d_forward(const Conv2dShape& s, const float* x, const float* weight, const float* bias,
                    float* y);
void conv2d_backward(const Conv2dShape& s, const float* x, const float* weight, const float* dy,
                     float* dx, float* dweight, float* dbias);
}  // namespace ref

}  // namespace digitflow::kernels

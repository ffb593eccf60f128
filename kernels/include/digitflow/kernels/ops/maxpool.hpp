// Max pooling over k x k windows with a stride, no padding (floor mode). The forward pass
// records the winning input index of every output so that backward is a scatter.
#pragma once

#include <cstdint>

namespace digitflow::kernels {

struct MaxPoolShape {
  int n = 1, c = 1, h = 1, w = 1, kernel = 2, stride = 2;
  int out_h() const { return (h - kernel) / stride + 1; }
  int out_w() const { return (w - kernel) / stride + 1; }
};

// argmax (same count as y) holds, per output, the index of its max within its (h*w) plane;
// the CPU forward takes nullptr when no backward follows (inference). Ties go to the first
// element of the window in row-major order.
void maxpool_forward(const MaxPoolShape& s, const float* x, float* y, int32_t* argmax);
void maxpool_backward(const MaxPoolShape& s, const float* dy, const int32_t* argmax, float* dx);

namespace ref {
void maxpool_forward(const MaxPoolShape& s, const float* x, float* y, int32_t* argmax);
void maxpool_backward(const MaxPoolShape& s, const float* dy, const int32_t* argmax, float* dx);
}  // namespace ref

}  // namespace digitflow::kernels

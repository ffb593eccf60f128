// Fully connected layer: y (n, out) = x (n, in) * weight (out, in)^T + bias (out).
// The fast path cuts the batch (forward, dx) or the input features (dweight) into chunks
// and calls our GEMM on each; ref:: is the plain loop version.
#pragma once

namespace digitflow::kernels {

struct DenseShape {
  int n = 1, in = 1, out = 1;
};

void dense_forward(const DenseShape& s, const float* x, const float* weight, const float* bias,
                   float* y);
// Overwrites dweight, dbias (if not null) and dx (if not null).
void dense_backward(const DenseShape& s, const float* x, const float* weight, const float* dy,
                    float* dx, float* dweight, float* dbias);

namespace ref {
void dense_forward(const DenseShape& s, const float* x, const float* weight, const float* bias,
                   float* y);
void dense_backward(const DenseShape& s, const float* x, const float* weight, const float* dy,
                    float* dx, float* dweight, float* dbias);
}  // namespace ref

}  // namespace digitflow::kernels

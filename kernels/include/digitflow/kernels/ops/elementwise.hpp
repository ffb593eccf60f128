// The small element-wise ops: relu and inverted dropout. Dropout masks come from a
// counter-based hash of (seed, index), so they do not depend on threads or order.
#pragma once

#include <cstdint>

namespace digitflow::kernels {

void relu_forward(int64_t count, const float* x, float* y);
// Uses the forward output: dx = dy where y > 0, else 0.
void relu_backward(int64_t count, const float* y, const float* dy, float* dx);

// mask[i] = 0 with probability rate, else 1/(1-rate); y = x * mask.
void dropout_forward(int64_t count, float rate, uint64_t seed, const float* x, float* y,
                     float* mask);
void dropout_backward(int64_t count, const float* mask, const float* dy, float* dx);

// A uniform float in [0, 1) from (seed, index): splitmix64.
float hash_uniform(uint64_t seed, uint64_t index);

}  // namespace digitflow::kernels

// Our CUDA kernels, one launcher per op, with the CPU op's signature and shape structs: the
// same arguments, but every pointer is device memory and the work is queued on the current
// stream (device.hpp). Each op's CPU function is its reference (tests/kernels/test_cuda_ops.cpp).
// Reductions run in a fixed order, so results are identical run to run.
#pragma once

#include <cstdint>

#include "digitflow/kernels/ops/batchnorm2d.hpp"
#include "digitflow/kernels/ops/conv2d.hpp"
#include "digitflow/kernels/ops/dense.hpp"
#include "digitflow/kernels/ops/maxpool.hpp"
#include "digitflow/kernels/train_config.hpp"

namespace digitflow::kernels::cuda {

// Convolution as an implicit GEMM (no im2col buffer): shared-memory tiles of 64 x 64
// outputs, 16 of the reduction at a time; weight gradients split the reduction over blocks.
void conv2d_forward(const Conv2dShape& s, const float* x, const float* weight, const float* bias,
                    float* y);
void conv2d_backward(const Conv2dShape& s, const float* x, const float* weight, const float* dy,
                     float* dx, float* dweight, float* dbias);

#if DIGITFLOW_HAVE_CUDNN
// The same convolution through cuDNN 9 (the cudnn backend).
namespace cudnn_path {
void conv2d_forward(const Conv2dShape& s, const float* x, const float* weight, const float* bias,
                    float* y);
void conv2d_backward(const Conv2dShape& s, const float* x, const float* weight, const float* dy,
                     float* dx, float* dweight, float* dbias);
}  // namespace cudnn_path
#endif

// Fully connected, on the same tiled GEMM.
void dense_forward(const DenseShape& s, const float* x, const float* weight, const float* bias,
                   float* y);
void dense_backward(const DenseShape& s, const float* x, const float* weight, const float* dy,
                    float* dx, float* dweight, float* dbias);

void relu_forward(int64_t count, const float* x, float* y);
void relu_backward(int64_t count, const float* y, const float* dy, float* dx);
// The CPU's masks bit for bit (the same counter-based hash of seed and index).
void dropout_forward(int64_t count, float rate, uint64_t seed, const float* x, float* y,
                     float* mask);
void dropout_backward(int64_t count, const float* mask, const float* dy, float* dx);

void maxpool_forward(const MaxPoolShape& s, const float* x, float* y, int32_t* argmax);
void maxpool_backward(const MaxPoolShape& s, const float* dy, const int32_t* argmax, float* dx);

void batchnorm2d_forward_train(const BatchNormShape& s, const float* x, const float* gamma,
                               const float* beta, float eps, float* y, float* mean, float* invstd,
                               float* variance);
// running = (1 - momentum) * running + momentum * batch (variance unbiased), as the CPU layer.
void batchnorm2d_update_running(const BatchNormShape& s, float momentum, const float* mean,
                                const float* variance, float* running_mean, float* running_var);
void batchnorm2d_forward_infer(const BatchNormShape& s, const float* x, const float* gamma,
                               const float* beta, const float* running_mean,
                               const float* running_var, float eps, float* y);
void batchnorm2d_backward(const BatchNormShape& s, const float* x, const float* gamma,
                          const float* mean, const float* invstd, const float* dy, float* dx,
                          float* dgamma, float* dbeta);

// Softmax cross-entropy forward and backward in one pass, one row per thread: probs (n,
// classes); dlogits (or null) = d(mean loss)/dlogits; row_loss[i] and predicted[i] (argmax,
// first on ties) per row, either may be null. labels may be null for inference (no loss).
void softmax_xent(int n, int classes, const float* logits, const uint8_t* labels,
                  float label_smoothing, float* probs, float* dlogits, float* row_loss,
                  int32_t* predicted);
// Adds sum(row_loss) to totals[0] and the rows whose prediction equals the label to
// totals[1] (one block, fixed order), so that an epoch's figures need no copy per batch.
void accumulate_batch_totals(int n, const float* row_loss, const int32_t* predicted,
                             const uint8_t* labels, double* totals);

// The optimiser steps of Optimizer::step, one fused pass per parameter tensor.
// AdamW: m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; w = w decay - step_size m / (sqrt(v) /
// sqrt(c2) + eps).
void adamw_step(int64_t count, float* w, const float* g, float* m, float* v, float b1, float b2,
                float decay, float step_size, float inv_sqrt_c2, float eps);
// SGD: g' = g + decay w; buf = momentum buf + g'; w -= lr (nesterov ? g' + momentum buf : buf).
void sgd_step(int64_t count, float* w, const float* g, float* buf, float lr, float momentum,
              float decay, bool nesterov);

// Builds a batch on the device from images resident there: image i of the batch is
// images[indices[i]] (each rows x cols bytes), warped by random_affine with the seed
// mix(seed_base, position + i) when `warp` (else copied), then normalised
// ((p / 255 - mean) / std) into x (count, 1, rows, cols); labels[indices[i]] into batch_labels.
struct BatchSource {
  const uint8_t* images = nullptr;  // (total, rows, cols)
  const uint8_t* labels = nullptr;  // (total) or null
  int rows = 28, cols = 28;
};
void gather_batch(const BatchSource& source, const int32_t* indices, int count, bool warp,
                  const AugmentConfig& augment, uint64_t seed_base, uint64_t position, float mean,
                  float std, float* x, uint8_t* batch_labels);
// Normalises count images of raw bytes already on the device (the inference path).
void normalize_pixels(int64_t count, const uint8_t* pixels, float mean, float std, float* x);

}  // namespace digitflow::kernels::cuda

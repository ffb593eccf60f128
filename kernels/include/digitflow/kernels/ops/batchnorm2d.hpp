// Batch normalisation over (n, h, w) for each channel. Training uses the batch statistics
// and returns them (mean, 1/sqrt(var+eps)) for backward and for the running averages;
// inference uses the running statistics. One plain implementation, parallel over channels.
#pragma once

namespace digitflow::kernels {

struct BatchNormShape {
  int n = 1, c = 1, hw = 1;  // hw = h * w (1 after a dense layer)
};

// variance (biased, as computed in double) feeds the running average without re-deriving it
// from invstd, which loses it for channels whose variance is near eps.
void batchnorm2d_forward_train(const BatchNormShape& s, const float* x, const float* gamma,
                               const float* beta, float eps, float* y, float* mean,
                               float* invstd, float* variance);
void batchnorm2d_forward_infer(const BatchNormShape& s, const float* x, const float* gamma,
                               const float* beta, const float* running_mean,
                               const float* running_var, float eps, float* y);
// Overwrites dx, dgamma, dbeta.
void batchnorm2d_backward(const BatchNormShape& s, const float* x, const float* gamma,
                          const float* mean, const float* invstd, const float* dy, float* dx,
                          float* dgamma, float* dbeta);

}  // namespace digitflow::kernels

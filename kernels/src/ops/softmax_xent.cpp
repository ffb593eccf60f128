// Softmax cross-entropy, max-subtracted for stability. With label smoothing e the target
// is (1 - e) on the label and e / classes everywhere.
#include "digitflow/kernels/ops/softmax_xent.hpp"

#include <algorithm>
#include <cmath>

namespace digitflow::kernels {

void softmax(int n, int classes, const float* logits, float* probs) {
  for (int i = 0; i < n; ++i) {
    const float* z = logits + i * classes;
    float* p = probs + i * classes;
    float zmax = *std::max_element(z, z + classes);
    double sum = 0.0;
    for (int c = 0; c < classes; ++c) sum += p[c] = std::exp(z[c] - zmax);
    for (int c = 0; c < classes; ++c) p[c] = static_cast<float>(p[c] / sum);
  }
}

float softmax_xent_forward(int n, int classes, const float* logits, const uint8_t* labels,
                           float label_smoothing, float* probs) {
  double total = 0.0;
  for (int i = 0; i < n; ++i) {
    const float* z = logits + i * classes;
    float* p = probs + i * classes;
    float zmax = *std::max_element(z, z + classes);
    double sum = 0.0;
    for (int c = 0; c < classes; ++c) sum += std::exp(double{z[c]} - zmax);
    double log_sum = std::log(sum);
    double loss = 0.0;
    for (int c = 0; c < classes; ++c) {
      double log_p = z[c] - zmax - log_sum;
      p[c] = static_cast<float>(std::exp(log_p));
      double target = label_smoothing / classes + (c == labels[i] ? 1.0 - label_smoothing : 0.0);
      loss -= target * log_p;
    }
    total += loss;
  }
  return static_cast<float>(total / n);
}

void softmax_xent_backward(int n, int classes, const float* probs, const uint8_t* labels,
                           float label_smoothing, float* dlogits) {
  const float inv_n = 1.0f / static_cast<float>(n);
  for (int i = 0; i < n; ++i)
    for (int c = 0; c < classes; ++c) {
      float target = label_smoothing / classes + (c == labels[i] ? 1.0f - label_smoothing : 0.0f);
      dlogits[i * classes + c] = (probs[i * classes + c] - target) * inv_n;
    }
}

}  // namespace digitflow::kernels

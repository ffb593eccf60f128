// Softmax cross-entropy on logits (n, classes) with optional label smoothing. Returns the
// mean loss over the batch and writes the probabilities; backward gives d(mean loss)/dlogits.
#pragma once

#include <cstdint>

namespace digitflow::kernels {

float softmax_xent_forward(int n, int classes, const float* logits, const uint8_t* labels,
                           float label_smoothing, float* probs);
void softmax_xent_backward(int n, int classes, const float* probs, const uint8_t* labels,
                           float label_smoothing, float* dlogits);
// Probabilities only (inference).
void softmax(int n, int classes, const float* logits, float* probs);

}  // namespace digitflow::kernels

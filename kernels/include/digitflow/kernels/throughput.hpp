// Timing loops for `digitflow bench`: training steps (Adam, no augmentation) and inference
// at a fixed batch, each after a warm-up, on random inputs (speed does not depend on the
// weights or the pixels).
#pragma once

#include <cstdint>

#include "digitflow/kernels/network.hpp"

namespace digitflow::kernels {

struct TrainingThroughput {
  double images_per_s = 0;
  int64_t images = 0;
  double seconds = 0;
};
TrainingThroughput measure_training(Network& net, int64_t images, int batch_size = 128,
                                    int warmup_batches = 3);

struct InferenceThroughput {
  double digits_per_s = 0;
  double median_latency_us = 0;  // per batch
  int64_t batches = 0;
};
// Runs batches for about `seconds` (at least 5 batches) after a warm-up.
// With `int8`, through Int8Network (int8.hpp), from raw pixels to probabilities; throws
// std::invalid_argument when the model cannot run in int8 here.
InferenceThroughput measure_inference(Network& net, int batch_size, double seconds = 3.0, bool int8 = false);

}  // namespace digitflow::kernels

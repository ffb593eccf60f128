// Int8 inference on the CPU. The convolutions after the first run on 8-bit integers through
// oneDNN's int8 primitives: weights quantized per output channel to 7 bits (processors
// without VNNI saturate sums of two 8-bit products), activations to unsigned 8 bits on the
// range calibration recorded for each convolution's output (Int8Calibration, kept in the
// model file). The first dense layer after them, where a ReLU and more layers follow it,
// runs in int8 on those u8 activations, with an fp32 output. The first convolution (one
// input channel: int8 gains nothing there) and the rest of the dense head stay in fp32.
//
// Rounding makes the probabilities differ slightly from the fp32 forward's; each image's
// result depends on that image alone, never on the rest of its batch.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "digitflow/kernels/idx.hpp"
#include "digitflow/kernels/network.hpp"
#include "digitflow/kernels/tensor.hpp"

namespace digitflow::kernels {

// Records, for each convolution of `net`, the largest value its output takes over the
// images (fp32 inference forward, batches of 256). Throws std::invalid_argument when
// `pixels` is not `count` images of the model's input size or count is 0.
Int8Calibration calibrate_int8(Network& net, std::span<const uint8_t> pixels, int64_t count);

// Why `net` cannot run in int8 here; empty when it can. (No oneDNN in this build; no
// calibration; fewer than two convolutions at the start of the model, each followed by a ReLU.)
std::string int8_unsupported(const Network& net);
// The same over at most `max_images` of a labelled set, evenly spaced through it.
Int8Calibration calibrate_int8(Network& net, const LabelledImages& images, int64_t max_images = 10000);

class Int8Network {
 public:
  // Throws std::invalid_argument with int8_unsupported's reason. Reads `net`'s weights and
  // calibration now; `net` must outlive this object (it runs the fp32 head).
  explicit Int8Network(Network& net);
  Int8Network(Int8Network&&) noexcept;
  Int8Network& operator=(Int8Network&&) noexcept;
  ~Int8Network();

  // Class probabilities (count, classes), in passes of at most `batch_size` images, each
  // pass on `threads` threads (0: kernels::thread_count()).
  Tensor probabilities(std::span<const uint8_t> pixels, int64_t count, int batch_size, int threads = 0);
  // Layers run in int8 (the convolutions after the first, the poolings between them and the
  // first dense layer where it runs in int8).
  int int8_layers() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace digitflow::kernels

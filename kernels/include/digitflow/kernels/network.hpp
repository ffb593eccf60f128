// Network: the layers of a ModelSpec with their parameters, activations and gradients.
// forward() keeps every activation so that backward() can run; buffers are reused across
// batches. Each layer pairs its forward and backward; parameters are named tensors
// ("layers.3.weight") that the model file stores as they are.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "digitflow/kernels/model_spec.hpp"
#include "digitflow/kernels/tensor.hpp"

namespace digitflow::kernels {

struct Parameter {
  std::string name;
  Tensor value;
  Tensor grad;
  bool decay = true;  // weight decay applies (weights yes; biases and batchnorm no)
};

struct ForwardContext {
  bool training = false;
  uint64_t seed = 0;  // dropout masks: a function of (seed, step, layer, element)
  uint64_t step = 0;
};

class Layer {
 public:
  virtual ~Layer() = default;
  virtual LayerKind kind() const = 0;
  // Shape of the output for an input shape (N first).
  virtual Shape output_shape(const Shape& input) const = 0;
  virtual void forward(const Tensor& x, Tensor& y, const ForwardContext& ctx) = 0;
  // dx is null for the first layer (no input gradient needed). Overwrites parameter grads.
  virtual void backward(const Tensor& x, const Tensor& y, const Tensor& dy, Tensor* dx) = 0;
  virtual std::vector<Parameter*> parameters() { return {}; }
  // Non-trained state saved with the model (batchnorm running statistics).
  virtual std::vector<std::pair<std::string, Tensor*>> buffers() { return {}; }
  virtual void initialize(uint64_t /*seed*/) {}
  // Inference: the per-channel map y = x * scale + shift this layer applies, when it is one
  // (batchnorm, with its running statistics); false otherwise.
  virtual bool channel_affine(std::vector<float>& /*scale*/, std::vector<float>& /*shift*/) const { return false; }
  // Inference: this layer's weights (c_out, ...) then its bias (c_out), with such a map
  // folded in (none when `scale` is empty), when the layer can fold one (a convolution; a
  // dense layer gives its own with no map).
  virtual bool folded_parameters(const std::vector<float>& /*scale*/, const std::vector<float>& /*shift*/,
                                 std::vector<float>& /*weights_then_bias*/) const {
    return false;
  }
  // Inference: this layer's forward followed by such a map (none when `scale` is empty)
  // and, when `relu`, max(y, 0), in one pass, when the layer can fold them in (a
  // convolution); false otherwise.
  virtual bool forward_folded(const Tensor& /*x*/, const std::vector<float>& /*scale*/,
                              const std::vector<float>& /*shift*/, bool /*relu*/, Tensor& /*y*/) {
    return false;
  }
  // Multiply-adds per sample of the forward pass, for throughput figures.
  virtual int64_t forward_macs(const Shape& /*input*/) const { return 0; }
};

std::unique_ptr<Layer> make_layer(const LayerSpec& spec, const Shape& input, int index);

// How raw 0..255 pixels become the network's input: (p / 255 - mean) / std.
struct InputNormalization {
  float mean = 0.1307f;
  float std = 0.3081f;
};

// The ranges int8 inference quantizes to (see int8.hpp): for each convolution (by layer
// index) the largest value its output took, after the batchnorm and ReLU folded into it,
// over `images` calibration images. Empty when the model was never calibrated.
struct Int8Calibration {
  int64_t images = 0;
  std::map<int, float> output_max;
  bool empty() const { return output_max.empty(); }
};

// An inference step: a convolution with the batchnorm and ReLU after it folded in (layers
// first..last), or a single other layer (first == last).
struct InferenceStep {
  size_t first = 0, last = 0;
  LayerKind kind = LayerKind::relu;
  bool affine = false, relu = false;  // convolutions: a batchnorm, a ReLU folded in
};

class Network {
 public:
  // Builds the layers and initialises weights (He-normal, seeded).
  explicit Network(ModelSpec spec, uint64_t init_seed = 1);
  Network(Network&&) noexcept;
  Network& operator=(Network&&) noexcept;
  ~Network();

  const ModelSpec& spec() const { return spec_; }
  const InputNormalization& normalization() const { return normalization_; }
  void set_normalization(InputNormalization n) { normalization_ = n; }

  // x: (N, C, H, W). Returns the logits (N, classes), valid until the next call. Outside
  // training, a convolution and the batchnorm and ReLU after it run as one convolution.
  const Tensor& forward(const Tensor& x, const ForwardContext& ctx);
  // Inference from layer `first` on, which must start an inference step; x is what layer
  // `first` takes (throws std::invalid_argument otherwise). Returns the logits, valid until
  // the next call.
  const Tensor& forward_from(size_t first, const Tensor& x);
  // How an inference forward groups the layers, in order.
  std::vector<InferenceStep> inference_steps() const;
  // The output of the inference step ending at layer `last` in the latest forward.
  const Tensor& step_output(size_t last) const { return activations_.at(last); }
  // The weights then the bias of the step's first layer, with the step's batchnorm folded in
  // (a convolution's); throws std::invalid_argument when the step is not a convolution or a
  // dense layer.
  std::vector<float> folded_parameters(const InferenceStep& step) const;
  // The shape layer i takes for a batch (i == layer count: the output's shape).
  Shape layer_input_shape(size_t i, int64_t batch) const;
  const Int8Calibration& int8_calibration() const { return int8_calibration_; }
  void set_int8_calibration(Int8Calibration c) { int8_calibration_ = std::move(c); }
  // From d(loss)/d(logits); fills every parameter's grad. Needs a training forward just
  // before, on an input that still exists (throws std::logic_error otherwise).
  void backward(const Tensor& dlogits);

  std::vector<Parameter*> parameters();
  int64_t parameter_count();
  int64_t forward_macs() const;  // per sample
  // Every tensor of the model in a stable order: parameters and buffers, by name.
  std::vector<std::pair<std::string, const Tensor*>> state();
  // Replaces the values of the named tensors; throws std::invalid_argument on a missing
  // name or a shape mismatch.
  void load_state(const std::vector<std::pair<std::string, Tensor>>& tensors);
  // The checks of load_state, changing nothing.
  void check_state(const std::vector<std::pair<std::string, Tensor>>& tensors);
  std::vector<std::pair<std::string, Tensor>> copy_state();

  // Pixels (N, C, H, W) of 0..255 -> normalised input tensor; throws std::invalid_argument
  // when `pixels` does not hold exactly `count` images of the model's input size.
  void prepare_input(std::span<const uint8_t> pixels, int64_t count, Tensor& x) const;
  Shape input_shape(int64_t batch) const;

 private:
  // Each of the model's tensors with the one of `tensors` of its name (load_state's checks).
  std::vector<std::pair<Tensor*, const Tensor*>> match_state(const std::vector<std::pair<std::string, Tensor>>& tensors);
  const Tensor& run_inference(size_t first, const Tensor& x);

  ModelSpec spec_;
  InputNormalization normalization_;
  Int8Calibration int8_calibration_;
  std::vector<InferenceStep> steps_;  // inference_steps(), fixed once the layers are built
  std::vector<std::unique_ptr<Layer>> layers_;
  std::vector<Tensor> activations_;  // activations_[0] is a copy-free view slot for input
  std::vector<Tensor> grads_;
  const Tensor* input_ = nullptr;
};

}  // namespace digitflow::kernels

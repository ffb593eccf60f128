// A Network's twin on the GPU: the same ModelSpec, the same named tensors, forward and
// backward over device activations, with our kernels (Backend::cuda) or cuDNN for the
// convolutions (Backend::cudnn). It is built from a host Network and writes its state back
// into one, so model files, the CPU reference and the apps keep working on Network alone.
// Also here: the device optimiser, training with the data resident on the device, and batch
// inference with pinned host buffers and copies that overlap the compute.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "digitflow/kernels/backend.hpp"
#include "digitflow/kernels/cuda/device.hpp"
#include "digitflow/kernels/network.hpp"
#include "digitflow/kernels/trainer.hpp"

namespace digitflow::kernels::cuda {

struct DeviceParameter {
  std::string name;
  DeviceTensor value;
  DeviceTensor grad;
  bool decay = true;
};

class DeviceNetwork {
 public:
  // Copies net's spec, normalisation and every tensor to the device. backend: cuda or cudnn.
  DeviceNetwork(Network& net, Backend backend);
  DeviceNetwork(DeviceNetwork&&) noexcept;
  DeviceNetwork& operator=(DeviceNetwork&&) noexcept;
  ~DeviceNetwork();

  const ModelSpec& spec() const { return spec_; }
  Backend backend() const { return backend_; }
  const InputNormalization& normalization() const { return normalization_; }

  // x: (N, C, H, W) on the device. Returns the logits (N, classes), valid until the next call.
  const DeviceTensor& forward(const DeviceTensor& x, const ForwardContext& ctx);
  // From d(loss)/d(logits); fills every parameter's grad (needs a training forward first).
  void backward(const DeviceTensor& dlogits);

  std::vector<DeviceParameter*> parameters();
  // Host -> device and device -> host, every parameter and buffer (by name and shape).
  void upload(Network& net);
  void download(Network& net);

 private:
  struct LayerState;
  ModelSpec spec_;
  Backend backend_;
  InputNormalization normalization_;
  std::vector<std::unique_ptr<LayerState>> layers_;
  std::vector<DeviceTensor> activations_, grads_;
  const DeviceTensor* input_ = nullptr;
};

// Optimizer::step on the device: the same update, one fused kernel per parameter tensor.
class DeviceOptimizer {
 public:
  DeviceOptimizer(const TrainConfig& config, std::vector<DeviceParameter*> parameters);
  void step(float lr);

 private:
  TrainConfig config_;
  std::vector<DeviceParameter*> parameters_;
  std::vector<DeviceTensor> first_, second_;
  int64_t steps_ = 0;
};

// train() on the GPU: the same plan (validation split, shuffles, augmentation seeds, best
// epoch kept) with the images, labels, augmentation and every step on the device; the host
// only draws each epoch's order. `net` receives the weights at every epoch end (for
// on_epoch) and the best epoch's at the end. `repeats` as train()'s. on_batch is called
// every `progress_every` batches (each call waits for the device).
TrainResult train_on_device(Network& net, const LabelledImages& data, const TrainConfig& config,
                            const TrainCallbacks& callbacks, Backend backend,
                            std::span<const uint8_t> repeats = {}, int progress_every = 50);

// evaluate() on the GPU.
EvalResult evaluate_on_device(Network& net, const LabelledImages& data, Backend backend,
                              int batch_size = 8192);

// Class probabilities for raw 0..255 pixels, in batches of up to `batch_size`: each batch is
// copied into pinned memory, sent on a copy stream while the previous batch computes, and
// its probabilities come back the same way.
class DeviceInference {
 public:
  DeviceInference(Network& net, Backend backend, int batch_size = 8192);
  DeviceInference(DeviceInference&&) noexcept;
  DeviceInference& operator=(DeviceInference&&) noexcept;
  ~DeviceInference();

  // (count, classes); throws std::invalid_argument when pixels is not count images.
  Tensor probabilities(std::span<const uint8_t> pixels, int64_t count);
  void probabilities(std::span<const uint8_t> pixels, int64_t count, float* out);
  DeviceNetwork& network();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace digitflow::kernels::cuda

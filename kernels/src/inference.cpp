// Inference on the backend that runs: the CPU path or, in CUDA builds, DeviceInference.
#include "digitflow/kernels/inference.hpp"

#include <algorithm>

#include "digitflow/kernels/trainer.hpp"
#if DIGITFLOW_HAVE_CUDA
#include "digitflow/kernels/cuda/network.hpp"
#endif

namespace digitflow::kernels {

#if DIGITFLOW_HAVE_CUDA
struct Inference::Device {
  cuda::DeviceInference inference;
};
#else
struct Inference::Device {};
#endif

Inference::Inference(Network& net, Backend backend, int batch_size)
    : net_(&net), backend_(start_backend(backend)), batch_size_(std::max(batch_size, 1)) {
#if DIGITFLOW_HAVE_CUDA
  if (backend_ != Backend::cpu)
    device_ = std::make_unique<Device>(Device{cuda::DeviceInference(net, backend_, batch_size_)});
#endif
}

Inference::Inference(Inference&&) noexcept = default;
Inference& Inference::operator=(Inference&&) noexcept = default;
Inference::~Inference() = default;

Tensor Inference::probabilities(std::span<const uint8_t> pixels, int64_t count) {
#if DIGITFLOW_HAVE_CUDA
  if (device_) return device_->inference.probabilities(pixels, count);
#endif
  return infer_probabilities(*net_, pixels, count, batch_size_);
}

}  // namespace digitflow::kernels

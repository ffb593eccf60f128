// Backend selection. In a CUDA build, cuda and cudnn start only when the driver reports a
// usable device (and, for cudnn, cuDNN creates a handle); otherwise they say why in one
// line. auto takes cudnn, then cuda, then the CPU.
#include "digitflow/kernels/backend.hpp"

#if DIGITFLOW_HAVE_CUDA
#include "digitflow/kernels/cuda/device.hpp"
#endif

namespace digitflow::kernels {

Backend parse_backend(const std::string& name) {
  if (name == "cpu") return Backend::cpu;
  if (name == "cuda") return Backend::cuda;
  if (name == "cudnn") return Backend::cudnn;
  if (name == "auto") return Backend::automatic;
  throw std::invalid_argument("unknown backend '" + name + "' (known: cpu, cuda, cudnn, auto)");
}

std::string to_string(Backend backend) {
  switch (backend) {
    case Backend::cpu:
      return "cpu";
    case Backend::cuda:
      return "cuda";
    case Backend::cudnn:
      return "cudnn";
    case Backend::automatic:
      return "auto";
  }
  return "?";
}

namespace {
std::string unavailable(Backend backend, const std::string& why) {
  std::string message = "backend ";
  message += to_string(backend);
  message += " is not available: ";
  message += why;
  message += " (use --set runtime.backend=cpu or auto)";
  return message;
}
}  // namespace

std::string gpu_unavailable_reason(Backend backend) {
  if (backend == Backend::cpu) return {};
#if DIGITFLOW_HAVE_CUDA
  cuda::DeviceProbe probe = cuda::probe_device();
  if (!probe.usable) return probe.reason;
  if (backend == Backend::cudnn) {
    try {
      cuda::start_cudnn();
    } catch (const std::exception& e) {
      return e.what();
    }
  }
  return {};
#else
  return "this build of digitflow has no GPU backends (no CUDA toolkit was found when it was "
         "configured)";
#endif
}

Backend start_backend(Backend requested) {
  if (requested == Backend::cpu) return Backend::cpu;
  if (requested == Backend::automatic) {
    for (Backend candidate : {Backend::cudnn, Backend::cuda})
      if (gpu_unavailable_reason(candidate).empty()) return candidate;
    return Backend::cpu;
  }
  std::string why = gpu_unavailable_reason(requested);
  if (!why.empty()) throw BackendUnavailable(unavailable(requested, why));
  return requested;
}

}  // namespace digitflow::kernels

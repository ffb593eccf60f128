// Backend selection. CUDA builds set DIGITFLOW_HAVE_CUDA; the device probe comes with the
// CUDA sources.
#include "digitflow/kernels/backend.hpp"

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
    case Backend::cpu: return "cpu";
    case Backend::cuda: return "cuda";
    case Backend::cudnn: return "cudnn";
    case Backend::automatic: return "auto";
  }
  return "?";
}

Backend start_backend(Backend requested) {
  if (requested == Backend::cpu || requested == Backend::automatic) return Backend::cpu;
  throw BackendUnavailable("backend " + to_string(requested) +
                           " is not available: this build of digitflow has no GPU backends yet "
                           "(use --set runtime.backend=cpu or auto)");
}

}  // namespace digitflow::kernels

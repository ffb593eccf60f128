// Which engine runs the ops: the CPU (reference and default), our CUDA kernels, or cuDNN
// for convolution (ours for the rest). The GPU backends exist in builds that found the CUDA
// toolkit (DIGITFLOW_HAVE_CUDA) and start where a device and a recent enough driver are;
// asking for one that cannot start says why in one line. The GPU code is in cuda/*.hpp.
#pragma once

#include <stdexcept>
#include <string>

namespace digitflow::kernels {

enum class Backend { cpu, cuda, cudnn, automatic };

class BackendUnavailable : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// "cpu" | "cuda" | "cudnn" | "auto"; throws std::invalid_argument on anything else.
Backend parse_backend(const std::string& name);
std::string to_string(Backend backend);

// The backend that will run: `automatic` picks the fastest that starts (cudnn, cuda), else
// the CPU. Throws BackendUnavailable (one line: which backend and why) for one that cannot.
Backend start_backend(Backend requested);
// Why `backend` cannot start here, in one line; empty when it can (always for cpu).
std::string gpu_unavailable_reason(Backend backend);

}  // namespace digitflow::kernels

// Which engine runs the ops: the CPU (reference and default), our CUDA kernels, or cuDNN
// for convolution. This is the seam the CUDA backends fill; until then only the CPU
// starts, and asking for another says why in one line.
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

// The backend that will run: `automatic` picks the fastest that starts, else the CPU.
// Throws BackendUnavailable (one line: which backend and why) for one that cannot start.
Backend start_backend(Backend requested);

}  // namespace digitflow::kernels

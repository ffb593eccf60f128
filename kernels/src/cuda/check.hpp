// CUDA_CHECK and CUDA_CHECK_LAUNCH: every runtime call and every launch is checked, and a
// failure throws CudaError with the file, the line, the call and CUDA's own words for it.
#pragma once

#include <cuda_runtime.h>

#include "digitflow/kernels/cuda/device.hpp"

namespace digitflow::kernels::cuda {

[[noreturn]] void throw_cuda_error(const char* file, int line, const char* call,
                                   const std::string& what);

inline void check_cuda(cudaError_t status, const char* call, const char* file, int line) {
  if (status == cudaSuccess) return;
  // A failed call also leaves its error for cudaGetLastError: take it, or the next launch
  // check would report this failure again (a sticky error, a fault, stays regardless).
  cudaGetLastError();
  std::string what = cudaGetErrorName(status);
  what += ": ";
  what += cudaGetErrorString(status);
  throw_cuda_error(file, line, call, what);
}

inline cudaStream_t stream() { return static_cast<cudaStream_t>(current_stream()); }

}  // namespace digitflow::kernels::cuda

#define CUDA_CHECK(call) ::digitflow::kernels::cuda::check_cuda((call), #call, __FILE__, __LINE__)
// After every kernel launch: a bad configuration shows here, a fault in the kernel at the
// next synchronising call (also checked).
#define CUDA_CHECK_LAUNCH() \
  ::digitflow::kernels::cuda::check_cuda(cudaGetLastError(), "kernel launch", __FILE__, __LINE__)

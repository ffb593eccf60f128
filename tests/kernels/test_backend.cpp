// Backend names and selection: auto falls back to the CPU; an unavailable backend says why.
#include <gtest/gtest.h>

#include "digitflow/kernels/backend.hpp"

namespace digitflow::kernels {
namespace {

TEST(Backend, NamesRoundTrip) {
  for (const char* name : {"cpu", "cuda", "cudnn", "auto"})
    EXPECT_EQ(to_string(parse_backend(name)), name);
  EXPECT_THROW(parse_backend("tpu"), std::invalid_argument);
}

TEST(Backend, AutoAndCpuStartHere) {
  EXPECT_EQ(start_backend(Backend::cpu), Backend::cpu);
  const bool gpu = gpu_unavailable_reason(Backend::cuda).empty();
  EXPECT_EQ(start_backend(Backend::automatic) == Backend::cpu, !gpu);
}

TEST(Backend, GpuBackendsSayWhyTheyCannotStart) {
  if (gpu_unavailable_reason(Backend::cuda).empty())
    GTEST_SKIP() << "a CUDA device is usable here (test_cuda_ops.cpp covers it)";
  try {
    start_backend(Backend::cuda);
    FAIL() << "cuda started in a build without GPU backends";
  } catch (const BackendUnavailable& e) {
    EXPECT_NE(std::string(e.what()).find("cuda"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace digitflow::kernels

// Backend names and selection: auto falls back to the CPU; an unavailable backend says why.
#include <gtest/gtest.h>

#include "digitflow/kernels/backend.hpp"
#include "digitflow/kernels/inference.hpp"
#include "digitflow/kernels/trainer.hpp"
#include "test_support.hpp"

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

// Inference on the CPU is infer_probabilities; auto scores wherever it starts, the same.
TEST(Backend, InferenceOnTheCpuIsInferProbabilities) {
  ModelSpec spec;
  spec.name = "tiny";
  LayerSpec conv, relu, flatten, dense;
  conv.kind = LayerKind::conv2d;
  conv.out = 4;
  relu.kind = LayerKind::relu;
  flatten.kind = LayerKind::flatten;
  dense.kind = LayerKind::dense;
  dense.out = 10;
  spec.layers = {conv, relu, flatten, dense};
  Network net(spec, 3);
  std::vector<uint8_t> pixels(37 * 784);
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<uint8_t>(i * 7919 % 256);
  Tensor expected = infer_probabilities(net, pixels, 37, 16);
  Inference cpu(net, Backend::cpu, 16);
  EXPECT_EQ(cpu.backend(), Backend::cpu);
  EXPECT_TRUE(testing::all_close(cpu.probabilities(pixels, 37), expected, 0.0f, 0.0f));
  Inference automatic(net, Backend::automatic, 16);
  EXPECT_TRUE(testing::all_close(automatic.probabilities(pixels, 37), expected, 1e-5f, 1e-3f))
      << "on " << to_string(automatic.backend());
  EXPECT_THROW(cpu.probabilities(pixels, 36), std::invalid_argument);
}

}  // namespace
}  // namespace digitflow::kernels

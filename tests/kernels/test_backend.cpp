// Backend names and selection: auto falls back to the CPU; an unavailable backend says why.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>

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

ModelSpec tiny_spec(int classes) {
  ModelSpec spec;
  spec.name = "tiny";
  spec.classes = classes;
  LayerSpec conv, relu, flatten, dense;
  conv.kind = LayerKind::conv2d;
  conv.out = 4;
  relu.kind = LayerKind::relu;
  flatten.kind = LayerKind::flatten;
  dense.kind = LayerKind::dense;
  dense.out = classes;
  spec.layers = {conv, relu, flatten, dense};
  return spec;
}

// Inference on the CPU is infer_probabilities; auto scores wherever it starts, the same.
TEST(Backend, InferenceOnTheCpuIsInferProbabilities) {
  Network net(tiny_spec(10), 3);
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

// With a screen, the images it is sure of keep its probabilities; the full model reads
// only the rest, and the counts say how many that was.
TEST(Backend, AScreenPassesOnlyWhatItIsUnsureOfToTheFullModel) {
  Network full(tiny_spec(11), 3), screen(tiny_spec(11), 5);
  const int64_t n = 41;
  std::vector<uint8_t> pixels(static_cast<size_t>(n) * 784);
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<uint8_t>(i * 7919 % 251);
  const Tensor by_full = infer_probabilities(full, pixels, n, 16);
  const Tensor by_screen = infer_probabilities(screen, pixels, n, 16);
  std::vector<float> top(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    top[static_cast<size_t>(i)] = *std::max_element(by_screen.data() + i * 11, by_screen.data() + (i + 1) * 11);
  std::vector<float> sorted = top;
  std::sort(sorted.begin(), sorted.end());
  const float confidence = sorted[static_cast<size_t>(n) / 2];  // about half each way

  Inference cascade(full, Backend::cpu, 16);
  cascade.set_screen(screen, confidence);
  const Tensor p = cascade.probabilities(pixels, n);
  int64_t in_full = 0;
  for (int64_t i = 0; i < n; ++i) {
    const bool sure = top[static_cast<size_t>(i)] >= confidence;
    in_full += sure ? 0 : 1;
    const Tensor& want = sure ? by_screen : by_full;
    for (int c = 0; c < 11; ++c)
      ASSERT_NEAR(p.data()[i * 11 + c], want.data()[i * 11 + c], 1e-5f)  // batches differ: rounding
          << "image " << i << (sure ? " (screen)" : " (full)");
  }
  EXPECT_GT(in_full, 0);
  EXPECT_LT(in_full, n);
  EXPECT_EQ(cascade.images_read(), n);
  EXPECT_EQ(cascade.images_read_in_full(), in_full);

  Inference plain(full, Backend::cpu, 16);  // without a screen, every image is read in full
  EXPECT_TRUE(testing::all_close(plain.probabilities(pixels, n), by_full, 0.0f, 0.0f));
  EXPECT_EQ(plain.images_read_in_full(), n);
  EXPECT_EQ(cascade.probabilities({}, 0).numel(), 0);
}

// A partner reads every image the full model reads, and the two readings are averaged; what
// the screen keeps, it does not read.
TEST(Backend, APartnerReadsWhatTheFullModelReadsAndTheTwoAreAveraged) {
  Network full(tiny_spec(11), 3), partner(tiny_spec(11), 7), screen(tiny_spec(11), 5);
  const int64_t n = 41;
  std::vector<uint8_t> pixels(static_cast<size_t>(n) * 784);
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<uint8_t>(i * 7919 % 251);
  const Tensor by_full = infer_probabilities(full, pixels, n, 16);
  const Tensor by_partner = infer_probabilities(partner, pixels, n, 16);
  const Tensor by_screen = infer_probabilities(screen, pixels, n, 16);

  Inference pair(full, Backend::cpu, 16);
  pair.set_partner(partner);
  const Tensor p = pair.probabilities(pixels, n);
  double apart = 0;  // the two models must differ, or an average proves nothing
  for (int64_t i = 0; i < n * 11; ++i) {
    ASSERT_NEAR(p.data()[i], 0.5f * (by_full.data()[i] + by_partner.data()[i]), 1e-6f) << "value " << i;
    apart = std::max(apart, static_cast<double>(std::abs(by_full.data()[i] - by_partner.data()[i])));
  }
  EXPECT_GT(apart, 0.01);
  EXPECT_EQ(pair.images_read_in_full(), n);

  std::vector<float> top(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    top[static_cast<size_t>(i)] = *std::max_element(by_screen.data() + i * 11, by_screen.data() + (i + 1) * 11);
  std::vector<float> sorted = top;
  std::sort(sorted.begin(), sorted.end());
  const float confidence = sorted[static_cast<size_t>(n) / 2];
  Inference three(full, Backend::cpu, 16);
  three.set_screen(screen, confidence);
  three.set_partner(partner);
  const Tensor q = three.probabilities(pixels, n);
  int64_t in_full = 0;
  for (int64_t i = 0; i < n; ++i) {
    const bool sure = top[static_cast<size_t>(i)] >= confidence;
    in_full += sure ? 0 : 1;
    for (int c = 0; c < 11; ++c) {
      const int64_t at = i * 11 + c;
      const float want = sure ? by_screen.data()[at] : 0.5f * (by_full.data()[at] + by_partner.data()[at]);
      ASSERT_NEAR(q.data()[at], want, 1e-5f) << "image " << i << (sure ? " (screen)" : " (full and partner)");
    }
  }
  EXPECT_GT(in_full, 0);
  EXPECT_LT(in_full, n);
  EXPECT_EQ(three.images_read_in_full(), in_full);
}

TEST(Backend, APartnerMustReadTheSameClasses) {
  Network full(tiny_spec(11), 3), ten(tiny_spec(10), 5);
  Inference pair(full, Backend::cpu, 16);
  try {
    pair.set_partner(ten);
    FAIL() << "a 10-class partner was taken for an 11-class model";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("the partner model takes"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("10 classes"), std::string::npos) << e.what();
  }
}

TEST(Backend, AScreenMustReadTheSameClasses) {
  Network full(tiny_spec(11), 3), ten(tiny_spec(10), 5), screen(tiny_spec(11), 5);
  Inference cascade(full, Backend::cpu, 16);
  try {
    cascade.set_screen(ten, 0.9f);
    FAIL() << "a 10-class screen was taken for an 11-class model";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("10 classes"), std::string::npos) << e.what();
  }
  EXPECT_THROW(cascade.set_screen(screen, 0.0f), std::invalid_argument);
  EXPECT_THROW(cascade.set_screen(screen, 1.5f), std::invalid_argument);
}

}  // namespace
}  // namespace digitflow::kernels

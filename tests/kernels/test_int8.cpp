// Int8 inference: calibration (recorded, saved with the model, refused when malformed), the
// reasons a model cannot run in int8, and its readings against fp32's: on the shipped model
// over MNIST test digits, and on a small random network image by image, in any batch.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <span>
#include <vector>

#if DIGITFLOW_HAVE_ONEDNN
#include <omp.h>  // the threads a pass ran on
#endif

#include "digitflow/kernels/inference.hpp"
#include "digitflow/kernels/int8.hpp"
#include "digitflow/kernels/model_file.hpp"
#include "digitflow/kernels/parallel.hpp"
#include "digitflow/kernels/ops/softmax_xent.hpp"
#include "digitflow/kernels/safetensors.hpp"
#include "digitflow/kernels/trainer.hpp"
#include "test_support.hpp"

namespace digitflow::kernels {
namespace {

LayerSpec conv(int out) {
  LayerSpec s{LayerKind::conv2d};
  s.out = out, s.kernel = 3, s.padding = 1, s.bias = false;
  return s;
}
LayerSpec pool() {
  LayerSpec s{LayerKind::maxpool};
  s.kernel = 2, s.stride = 2;
  return s;
}
LayerSpec dense(int out) {
  LayerSpec s{LayerKind::dense};
  s.out = out;
  return s;
}
LayerSpec plain(LayerKind kind) { return LayerSpec{kind}; }

// conv-bn-relu, pool, conv-bn-relu, conv-relu (with bias), pool, dense head.
ModelSpec int8_spec() {
  ModelSpec spec;
  spec.name = "int8-test";
  spec.classes = 11;
  LayerSpec biased = conv(16);
  biased.bias = true;
  spec.layers = {conv(8),  plain(LayerKind::batchnorm2d), plain(LayerKind::relu), pool(),
                 conv(16), plain(LayerKind::batchnorm2d), plain(LayerKind::relu),
                 biased,   plain(LayerKind::relu),        pool(),
                 plain(LayerKind::flatten), dense(32), plain(LayerKind::relu), dense(11)};
  return spec;
}

// Images with strokes: a few random bright bars on black, as digits are.
std::vector<uint8_t> stroke_images(int64_t count, uint64_t seed) {
  std::vector<uint8_t> pixels(static_cast<size_t>(count * 784), 0);
  uint64_t state = seed * 0x9E3779B97F4A7C15ull + 1;
  auto next = [&](int below) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<int>((state >> 33) % static_cast<uint64_t>(below));
  };
  for (int64_t i = 0; i < count; ++i)
    for (int bar = 0; bar < 3; ++bar) {
      const int x0 = 4 + next(16), y0 = 4 + next(16), w = 2 + next(8), h = 2 + next(8), v = 128 + next(128);
      for (int y = y0; y < std::min(28, y0 + h); ++y)
        for (int x = x0; x < std::min(28, x0 + w); ++x) pixels[static_cast<size_t>(i * 784 + y * 28 + x)] = static_cast<uint8_t>(v);
    }
  return pixels;
}

// Batchnorm statistics, scales and shifts and convolution biases away from their initial
// 0 and 1, so that folding and the bias's scaling are tested too.
void perturb(Network& net, uint64_t seed) {
  std::vector<std::pair<std::string, Tensor>> state = net.copy_state();
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 7;
  auto uniform = [&](float lo, float hi) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    return lo + (hi - lo) * static_cast<float>((x >> 40) & 0xFFFFFF) / 16777216.0f;
  };
  for (auto& [name, t] : state) {
    const bool batchnorm = name.rfind("layers.1.", 0) == 0 || name.rfind("layers.5.", 0) == 0;
    for (int64_t i = 0; i < t.numel(); ++i) {
      if (name.find("running_var") != std::string::npos) t[i] = uniform(0.3f, 3.0f);
      else if (name.find("running_mean") != std::string::npos) t[i] = uniform(-0.5f, 0.5f);
      else if (batchnorm && name.ends_with(".weight")) t[i] = uniform(0.5f, 2.0f);
      else if (name.ends_with(".bias")) t[i] = uniform(-0.3f, 0.3f);
    }
  }
  net.load_state(state);
}

Tensor fp32_probabilities(Network& net, std::span<const uint8_t> pixels, int64_t count) {
  return infer_probabilities(net, pixels, count, 64);
}

bool int8_here(std::string& why) {
  Network net(int8_spec(), 3);
  net.set_int8_calibration(calibrate_int8(net, stroke_images(8, 1), 8));
  why = int8_unsupported(net);
  return why.empty();
}

TEST(Int8, CalibrationRecordsEachConvolutionsLargestOutput) {
  Network net(int8_spec(), 3);
  const std::vector<uint8_t> pixels = stroke_images(40, 2);
  const Int8Calibration c = calibrate_int8(net, pixels, 40);
  EXPECT_EQ(c.images, 40);
  ASSERT_EQ(c.output_max.size(), 3u);  // layers 0, 4 and 7
  Tensor x;
  net.prepare_input(pixels, 40, x);
  net.forward(x, {});
  for (const auto& [layer, last] : std::vector<std::pair<int, size_t>>{{0, 2}, {4, 6}, {7, 8}}) {
    const Tensor& y = net.step_output(last);
    EXPECT_FLOAT_EQ(c.output_max.at(layer), *std::max_element(y.data(), y.data() + y.numel())) << "layer " << layer;
    EXPECT_GT(c.output_max.at(layer), 0.0f);
  }
  EXPECT_THROW(calibrate_int8(net, std::span<const uint8_t>(pixels).first(783), 1), std::invalid_argument);
  EXPECT_THROW(calibrate_int8(net, std::span<const uint8_t>(), 0), std::invalid_argument);
}

TEST(Int8, SaysWhyAModelCannotRunInInt8) {
  Network uncalibrated(int8_spec(), 3);
  const std::string why = int8_unsupported(uncalibrated);
  ASSERT_FALSE(why.empty());
#if DIGITFLOW_HAVE_ONEDNN
  EXPECT_NE(why.find("calibration"), std::string::npos) << why;
#else
  EXPECT_NE(why.find("oneDNN"), std::string::npos) << why;
#endif
  EXPECT_THROW(Int8Network{uncalibrated}, std::invalid_argument);
  Inference inference(uncalibrated);
  EXPECT_FALSE(inference.set_int8(true));  // fp32 then, and int8_fallback says why
  EXPECT_FALSE(inference.int8());
  EXPECT_EQ(inference.int8_fallback(), "the model: " + why);
  EXPECT_FALSE(inference.set_int8(false));  // not asked for: nothing to explain
  EXPECT_EQ(inference.int8_fallback(), "");

#if DIGITFLOW_HAVE_ONEDNN
  ModelSpec one_conv;
  one_conv.name = "one-conv";
  one_conv.classes = 10;
  one_conv.layers = {conv(4), plain(LayerKind::relu), plain(LayerKind::flatten), dense(10)};
  Network single(one_conv, 1);
  single.set_int8_calibration(calibrate_int8(single, stroke_images(4, 1), 4));
  EXPECT_NE(int8_unsupported(single).find("has none"), std::string::npos) << int8_unsupported(single);

  ModelSpec no_relu = int8_spec();
  no_relu.layers.erase(no_relu.layers.begin() + 2);  // the first convolution's ReLU
  Network first_without_relu(no_relu, 1);
  first_without_relu.set_int8_calibration(calibrate_int8(first_without_relu, stroke_images(4, 1), 4));
  EXPECT_NE(int8_unsupported(first_without_relu).find("ReLU"), std::string::npos);

  Network zero_range(int8_spec(), 3);
  Int8Calibration c = calibrate_int8(zero_range, stroke_images(4, 1), 4);
  c.output_max[4] = 0.0f;
  zero_range.set_int8_calibration(c);
  EXPECT_NE(int8_unsupported(zero_range).find("layer 4"), std::string::npos) << int8_unsupported(zero_range);
#endif
}

TEST(Int8, AnInferenceNamesTheModelsThatReadInFp32) {
  std::string why;
  if (!int8_here(why)) GTEST_SKIP() << "int8 inference cannot run here: " << why;
  Network calibrated(int8_spec(), 3), bare_partner(int8_spec(), 4), bare_screen(int8_spec(), 5);
  calibrated.set_int8_calibration(calibrate_int8(calibrated, stroke_images(8, 1), 8));
  const std::string bare = int8_unsupported(bare_partner);
  ASSERT_FALSE(bare.empty());

  Inference alone(calibrated, Backend::cpu, 16);
  EXPECT_TRUE(alone.set_int8(true));
  EXPECT_EQ(alone.int8_fallback(), "");

  Inference paired(calibrated, Backend::cpu, 16);
  paired.set_partner(bare_partner);
  EXPECT_FALSE(paired.set_int8(true));  // the pair reads in int8 only where both can
  EXPECT_EQ(paired.int8_fallback(), "the partner model: " + bare);

  Inference screened(calibrated, Backend::cpu, 16);
  screened.set_screen(bare_screen, 0.9f);
  screened.set_partner(bare_partner);
  screened.set_int8(true);
  EXPECT_EQ(screened.int8_fallback(), "the partner model: " + bare + "; the screening model: " + bare);
  // Once they are calibrated too, nothing is left to explain.
  bare_partner.set_int8_calibration(calibrate_int8(bare_partner, stroke_images(8, 1), 8));
  bare_screen.set_int8_calibration(calibrate_int8(bare_screen, stroke_images(8, 1), 8));
  EXPECT_TRUE(screened.set_int8(true));
  EXPECT_EQ(screened.int8_fallback(), "");
}

TEST(Int8, APartnerReadsInInt8TooAndTheTwoReadingsAreAveraged) {
  std::string why;
  if (!int8_here(why)) GTEST_SKIP() << "int8 inference cannot run here: " << why;
  Network model(int8_spec(), 3), partner(int8_spec(), 4);
  perturb(model, 21);
  perturb(partner, 22);
  const std::vector<uint8_t> calibration = stroke_images(100, 5);
  model.set_int8_calibration(calibrate_int8(model, calibration, 100));
  partner.set_int8_calibration(calibrate_int8(partner, calibration, 100));
  const int64_t count = 21;
  const std::vector<uint8_t> pixels = stroke_images(count, 8);
  Int8Network model_int8(model), partner_int8(partner);
  const Tensor a = model_int8.probabilities(pixels, count, 16), b = partner_int8.probabilities(pixels, count, 16);
  const Tensor a32 = fp32_probabilities(model, pixels, count), b32 = fp32_probabilities(partner, pixels, count);

  Inference pair(model, Backend::cpu, 16);
  pair.set_partner(partner);
  ASSERT_TRUE(pair.set_int8(true));
  const Tensor got = pair.probabilities(pixels, count);
  ASSERT_EQ(got.shape(), a.shape());
  double from_int8 = 0, from_fp32 = 0;  // the largest differences from the two means
  for (int64_t i = 0; i < got.numel(); ++i) {
    from_int8 = std::max(from_int8, std::fabs(double{got[i]} - 0.5 * (a[i] + b[i])));
    from_fp32 = std::max(from_fp32, std::fabs(double{got[i]} - 0.5 * (a32[i] + b32[i])));
  }
  EXPECT_LT(from_int8, 1e-6) << "the mean of the two int8 readings";
  EXPECT_GT(from_fp32, 1e-4) << "not of the fp32 ones: int8 must read apart from fp32 for this check";
}

TEST(Int8, APassOnFewerThreadsReadsTheSame) {
  std::string why;
  if (!int8_here(why)) GTEST_SKIP() << "int8 inference cannot run here: " << why;
  Network model(int8_spec(), 3), partner(int8_spec(), 4), screen(int8_spec(), 5);
  perturb(model, 31);
  perturb(partner, 32);
  const std::vector<uint8_t> calibration = stroke_images(100, 5);
  for (Network* n : {&model, &partner, &screen}) n->set_int8_calibration(calibrate_int8(*n, calibration, 100));
  const int64_t count = 37;
  const std::vector<uint8_t> pixels = stroke_images(count, 9);
  set_threads(3);
  Inference reader(model, Backend::cpu, 16);
  reader.set_int8_threads(1);  // before the screen and the partner: they take it too
  reader.set_screen(screen, 0.5f);
  reader.set_partner(partner);
  ASSERT_TRUE(reader.set_int8(true));
  const Tensor one = reader.probabilities(pixels, count);
#if DIGITFLOW_HAVE_ONEDNN
  EXPECT_EQ(omp_get_max_threads(), 1) << "the passes ran on one thread";
#endif
  reader.set_int8_threads(0);
  const Tensor all = reader.probabilities(pixels, count);
#if DIGITFLOW_HAVE_ONEDNN
  EXPECT_EQ(omp_get_max_threads(), 3) << "the passes ran on the process's threads";
#endif
  set_threads(0);
  ASSERT_EQ(one.shape(), all.shape());
  for (int64_t i = 0; i < one.numel(); ++i) ASSERT_NEAR(one[i], all[i], 1e-6) << i;
}

TEST(Int8, ReadsEachImageAsFp32DoesWithinRounding) {
  std::string why;
  if (!int8_here(why)) GTEST_SKIP() << "int8 inference cannot run here: " << why;
  Network net(int8_spec(), 3);
  perturb(net, 11);
  const std::vector<uint8_t> calibration = stroke_images(200, 5);
  net.set_int8_calibration(calibrate_int8(net, calibration, 200));
  Int8Network int8(net);
  EXPECT_EQ(int8.int8_layers(), 5);  // two convolutions and two poolings after the first convolution, the first dense layer
  const int64_t count = 37;  // not a multiple of the passes' size
  const std::vector<uint8_t> pixels = stroke_images(count, 9);
  const Tensor expected = fp32_probabilities(net, pixels, count);
  const Tensor got = int8.probabilities(pixels, count, 16);
  ASSERT_EQ(got.shape(), expected.shape());
  double worst = 0;
  for (int64_t i = 0; i < got.numel(); ++i) worst = std::max(worst, std::fabs(double{got[i]} - expected[i]));
  EXPECT_LT(worst, 0.03) << "largest difference of a probability from fp32's";
  int same = 0;
  for (int64_t i = 0; i < count; ++i) {
    const float* a = expected.data() + i * 11;
    const float* b = got.data() + i * 11;
    same += std::max_element(a, a + 11) - a == std::max_element(b, b + 11) - b;
  }
  EXPECT_GE(same, count - 1) << "images whose most likely class is fp32's";
  EXPECT_GT(worst, 0.0) << "the int8 path ran the fp32 forward";
  // An image reads the same alone and among others, in passes of any size.
  for (int64_t i : {int64_t{0}, int64_t{17}, count - 1}) {
    const Tensor alone = int8.probabilities(std::span<const uint8_t>(pixels).subspan(static_cast<size_t>(i * 784), 784), 1, 16);
    for (int c = 0; c < 11; ++c) EXPECT_NEAR(alone[c], got[i * 11 + c], 1e-5) << "image " << i << " class " << c;
  }
  const Tensor one_pass = int8.probabilities(pixels, count, 64);
  for (int64_t i = 0; i < got.numel(); ++i) ASSERT_NEAR(one_pass[i], got[i], 1e-5);
  EXPECT_THROW(int8.probabilities(std::span<const uint8_t>(pixels).first(100), 1, 16), std::invalid_argument);

  Inference inference(net);
  ASSERT_TRUE(inference.set_int8(true));
  const Tensor through_inference = inference.probabilities(pixels, count);
  for (int64_t i = 0; i < got.numel(); ++i) ASSERT_NEAR(through_inference[i], got[i], 1e-5);
  EXPECT_FALSE(inference.set_int8(false));
  const Tensor back = inference.probabilities(pixels, count);
  for (int64_t i = 0; i < got.numel(); ++i) ASSERT_FLOAT_EQ(back[i], expected[i]);
}

// A dense layer runs in int8 only with a ReLU after it (its output is fp32, then rectified)
// and a layer after that; otherwise the whole head stays fp32 and reads as before.
TEST(Int8, ADenseLayerStaysInFp32WithoutAReluAndALayerAfterIt) {
  std::string why;
  if (!int8_here(why)) GTEST_SKIP() << "int8 inference cannot run here: " << why;
  ModelSpec spec = int8_spec();
  spec.layers.erase(spec.layers.end() - 3, spec.layers.end());  // dense(32), relu, dense(11)
  spec.layers.push_back(dense(11));
  Network net(spec, 5);
  perturb(net, 13);
  net.set_int8_calibration(calibrate_int8(net, stroke_images(100, 6), 100));
  Int8Network int8(net);
  EXPECT_EQ(int8.int8_layers(), 4);  // the convolutions and poolings only
  const std::vector<uint8_t> pixels = stroke_images(20, 8);
  const Tensor expected = fp32_probabilities(net, pixels, 20);
  const Tensor got = int8.probabilities(pixels, 20, 16);
  double worst = 0;
  for (int64_t i = 0; i < got.numel(); ++i) worst = std::max(worst, std::fabs(double{got[i]} - expected[i]));
  EXPECT_LT(worst, 0.03) << "largest difference of a probability from fp32's";

  // Nor one whose ReLU ends the model: nothing would be left to run in fp32.
  ModelSpec last = int8_spec();
  last.layers.erase(last.layers.end() - 3, last.layers.end());  // dense(32), relu, dense(11)
  last.layers.push_back(dense(11));
  last.layers.push_back(plain(LayerKind::relu));
  Network ends_in_relu(last, 5);
  ends_in_relu.set_int8_calibration(calibrate_int8(ends_in_relu, stroke_images(20, 6), 20));
  Int8Network relu_last(ends_in_relu);
  EXPECT_EQ(relu_last.int8_layers(), 4);  // the convolutions and poolings only
  const Tensor read = relu_last.probabilities(pixels, 20, 16);
  const Tensor fp32 = fp32_probabilities(ends_in_relu, pixels, 20);
  for (int64_t i = 0; i < read.numel(); ++i) EXPECT_NEAR(read[i], fp32[i], 0.03) << "probability " << i;
}

TEST(Int8, ShippedModelReadsMnistTestDigitsAsFp32Does) {
  if (!testing::mnist_available()) GTEST_SKIP() << "MNIST not in " << testing::mnist_dir() << ": run scripts/fetch-mnist.sh";
  std::string why;
  if (!int8_here(why)) GTEST_SKIP() << "int8 inference cannot run here: " << why;
  LoadedModel shipped = load_model(testing::source_dir() / "models/digits.safetensors");
  ASSERT_EQ(int8_unsupported(shipped.network), "") << "the shipped model is calibrated (digitflow calibrate)";
  LabelledImages test = load_mnist(testing::mnist_dir(), MnistSplit::test);
  test.count = 2000;
  test.pixels.resize(2000 * 784);
  test.labels.resize(2000);
  const Tensor fp32 = fp32_probabilities(shipped.network, test.pixels, test.count);
  Int8Network int8(shipped.network);
  const Tensor q = int8.probabilities(test.pixels, test.count, 64);
  int64_t same = 0;
  double worst = 0;
  for (int64_t i = 0; i < test.count; ++i) {
    const float* a = fp32.data() + i * 11;
    const float* b = q.data() + i * 11;
    same += std::max_element(a, a + 11) - a == std::max_element(b, b + 11) - b;
    for (int c = 0; c < 11; ++c) worst = std::max(worst, std::fabs(double{a[c]} - b[c]));
  }
  EXPECT_GE(same, 1996) << "of 2000 test digits, the same class as fp32";
  EXPECT_LT(worst, 0.25) << "largest difference of a probability from fp32's";
  const EvalResult r = evaluate_probabilities(test, q);
  EXPECT_GE(r.accuracy, 0.99) << "int8 accuracy on the first 2000 test digits";
}

TEST(Int8, CalibrationIsSavedWithTheModelAndCheckedOnLoad) {
  testing::TempDir dir;
  Network net(int8_spec(), 3);
  net.set_int8_calibration(calibrate_int8(net, stroke_images(20, 4), 20));
  save_model(dir / "m.safetensors", net, nullptr, nullptr);
  LoadedModel back = load_model(dir / "m.safetensors");
  EXPECT_EQ(back.network.int8_calibration().images, 20);
  EXPECT_EQ(back.network.int8_calibration().output_max, net.int8_calibration().output_max);

  Network plain_net(int8_spec(), 3);
  save_model(dir / "plain.safetensors", plain_net, nullptr, nullptr);
  EXPECT_TRUE(load_model(dir / "plain.safetensors").network.int8_calibration().empty());

  // The same file with its calibration replaced by something malformed.
  auto refused = [&](const std::string& calibration, const std::string& expected) {
    SafetensorsContent bad = load_safetensors(dir / "m.safetensors");
    bad.metadata["int8_calibration"] = calibration;
    std::vector<std::pair<std::string, const Tensor*>> tensors;
    for (const auto& [name, t] : bad.tensors) tensors.emplace_back(name, &t);
    save_safetensors(dir / "bad.safetensors", tensors, bad.metadata);
    try {
      load_model(dir / "bad.safetensors");
      ADD_FAILURE() << "loaded with int8_calibration " << calibration;
    } catch (const ModelFileError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("bad.safetensors"), std::string::npos) << what;
      EXPECT_NE(what.find(expected), std::string::npos) << what;
    }
  };
  refused("{not json", "int8_calibration");
  refused(R"({"images": 5, "output_max": {"1": 2.0}})", "layer '1'");       // a batchnorm
  refused(R"({"images": 5, "output_max": {"0": -1.0}})", "layer '0'");      // negative
  refused(R"({"images": 5, "output_max": {"99": 1.0}})", "layer '99'");     // no such layer
  refused(R"({"images": 5, "output_max": {"x": 1.0}})", "layer 'x'");
  refused(R"({"images": 5, "output_max": {"0": "big"}})", "layer '0'");
  refused(R"({"images": 5, "output_max": [5.0]})", "needs {");
  refused(R"({"images": 0, "output_max": {"0": 1.0}})", "needs {");
  refused(R"({"images": 5})", "needs {");
  refused("[]", "needs {");
}

TEST(Int8, TheFp32HeadStartsOnlyWhereAStepStarts) {
  Network net(int8_spec(), 3);
  Tensor x(net.layer_input_shape(1, 2));
  EXPECT_THROW(net.forward_from(1, x), std::invalid_argument);  // the first convolution's batchnorm
  Tensor pooled(net.layer_input_shape(3, 2));
  EXPECT_NO_THROW(net.forward_from(3, pooled));
  EXPECT_THROW(net.forward_from(3, Tensor({2, 8, 14, 14})), std::invalid_argument);  // the wrong shape
  EXPECT_THROW(net.forward_from(99, pooled), std::invalid_argument);
}

TEST(Int8, EvaluationFromProbabilities) {
  LabelledImages data;
  data.count = 4, data.rows = 1, data.cols = 1;
  data.pixels.assign(4, 0);
  data.labels = {0, 1, 2, 1};
  Tensor p({4, 3});
  const float rows[4][3] = {{0.7f, 0.2f, 0.1f}, {0.1f, 0.8f, 0.1f}, {0.5f, 0.1f, 0.4f}, {0.2f, 0.6f, 0.2f}};
  for (int i = 0; i < 4; ++i)
    for (int c = 0; c < 3; ++c) p[i * 3 + c] = rows[i][c];
  const EvalResult r = evaluate_probabilities(data, p);
  EXPECT_EQ(r.count, 4);
  EXPECT_DOUBLE_EQ(r.accuracy, 0.75);
  EXPECT_EQ(r.confusion[2][0], 1);
  EXPECT_NEAR(r.loss, -(std::log(0.7) + std::log(0.8) + std::log(0.4) + std::log(0.6)) / 4, 1e-6);
  EXPECT_THROW(evaluate_probabilities(data, Tensor({3, 3})), std::invalid_argument);
  data.labels[3] = 7;
  EXPECT_THROW(evaluate_probabilities(data, p), std::invalid_argument);
}

}  // namespace
}  // namespace digitflow::kernels

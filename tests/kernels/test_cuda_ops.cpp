// The GPU backends against the CPU reference: every CUDA kernel beside its CPU twin on
// random inputs (odd shapes that fit no tile, and the MNIST shapes of the seed and default
// models), every backward too, whole networks forward and backward, a few training steps
// from the same weights, inference and evaluation. Outputs are poisoned with NaN first, so
// an element a kernel forgets to write fails. Tolerances, |gpu - ref| <= atol + rtol |ref|:
//   element-wise ops, dropout masks, maxpool      exact (atol 0)
//   conv2d, dense (fp32 sums vs the double ref)    1e-4 + 1e-4 |ref|; weight grads 1e-3 + 1e-3
//   conv2d through cuDNN (FFT, Winograd allowed)   1e-3 + 1e-3 |ref|
//   batchnorm, softmax cross-entropy, optimisers   1e-5 + 1e-4 |ref|
//   a network's logits                             1e-3 + 1e-3 |ref|
//   a network's gradients                          |gpu - ref| / |ref| <= 1e-3 per tensor (L2
//     norms: a relu or maxpool tie decided the other way by rounding moves single elements)
//   what 8 training steps changed in each tensor   |gpu - ref| / |ref| <= 2e-2 (AdamW divides by
//     the gradient's size, so a gradient that rounding alone decides moves by a whole step)
//   augmented pixels: equal to within one grey level, on at most 0.5% of pixels
// Every test that needs a device skips, saying why, where there is none.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "digitflow/kernels/backend.hpp"
#include "digitflow/kernels/network.hpp"
#include "digitflow/kernels/ops/batchnorm2d.hpp"
#include "digitflow/kernels/ops/conv2d.hpp"
#include "digitflow/kernels/ops/dense.hpp"
#include "digitflow/kernels/ops/elementwise.hpp"
#include "digitflow/kernels/ops/maxpool.hpp"
#include "digitflow/kernels/ops/softmax_xent.hpp"
#include "digitflow/kernels/seed_mix.hpp"
#include "digitflow/kernels/trainer.hpp"
#include "test_support.hpp"

#if DIGITFLOW_HAVE_CUDA
#include "digitflow/kernels/cuda/device.hpp"
#include "digitflow/kernels/cuda/network.hpp"
#include "digitflow/kernels/cuda/ops.hpp"
#endif

namespace digitflow::kernels {
namespace {

using testing::all_close;
using testing::random_tensor;

#if !DIGITFLOW_HAVE_CUDA

TEST(CudaOps, NeedACudaBuild) {
  GTEST_SKIP()
      << "no CUDA device: this build has no GPU backends (no CUDA toolkit at configure time)";
}

TEST(CudaBackend, SaysThisBuildHasNoGpuBackends) {
  try {
    start_backend(Backend::cudnn);
    FAIL() << "cudnn started in a build without GPU backends";
  } catch (const BackendUnavailable& e) {
    EXPECT_NE(std::string(e.what()).find("no GPU backends"), std::string::npos) << e.what();
  }
}

#else

using cuda::DeviceTensor;

// "" when a device is usable, else why not (one line).
std::string no_device_reason() {
  static const std::string reason = [] {
    cuda::DeviceProbe probe = cuda::probe_device();
    return probe.usable ? std::string() : probe.reason;
  }();
  return reason;
}

#define SKIP_WITHOUT_DEVICE()                                       \
  do {                                                              \
    if (const std::string why_ = no_device_reason(); !why_.empty()) \
      GTEST_SKIP() << "no CUDA device: " << why_;                   \
  } while (0)

DeviceTensor up(const Tensor& t) { return DeviceTensor::from(t); }
Tensor down(const DeviceTensor& t) { return t.to_host(); }

// A device tensor full of NaN: whatever a kernel does not write stays NaN and fails the check.
DeviceTensor poisoned(const Shape& shape) {
  Tensor nan(shape);
  nan.fill(std::numeric_limits<float>::quiet_NaN());
  return up(nan);
}

// |actual - expected| / |expected| in L2 norms, at most `bound` (NaN fails).
::testing::AssertionResult relative_error_within(const Tensor& actual, const Tensor& expected,
                                                 double bound) {
  if (actual.shape() != expected.shape())
    return ::testing::AssertionFailure()
           << "shape " << actual.shape().str() << " vs " << expected.shape().str();
  double diff = 0.0, norm = 0.0;
  for (int64_t i = 0; i < expected.numel(); ++i) {
    diff += (double{actual[i]} - expected[i]) * (double{actual[i]} - expected[i]);
    norm += double{expected[i]} * expected[i];
  }
  const double relative = norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff);
  if (relative <= bound) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "relative error " << relative << " > " << bound << "\n"
                                       << all_close(actual, expected, 1e-3f, 1e-3f).message();
}

std::string describe(const Conv2dShape& s) {
  std::string text = "conv n=";
  for (int v : {s.n, s.c_in, s.h, s.w, s.c_out, s.kernel, s.stride, s.padding}) {
    text += std::to_string(v);
    text += ' ';
  }
  return text + "(n c_in h w c_out k stride pad)";
}

enum class ConvPath { ours, cudnn };

void compare_conv(const Conv2dShape& s, bool bias, ConvPath path) {
  SCOPED_TRACE(describe(s) + (path == ConvPath::ours ? " ours" : " cudnn"));
  Tensor x = random_tensor({s.n, s.c_in, s.h, s.w}, 11);
  Tensor w = random_tensor({s.c_out, s.c_in, s.kernel, s.kernel}, 12);
  Tensor b = random_tensor({s.c_out}, 13);
  const Shape y_shape{s.n, s.c_out, s.out_h(), s.out_w()};
  Tensor y_ref(y_shape), dy = random_tensor(y_shape, 14);
  ref::conv2d_forward(s, x.data(), w.data(), bias ? b.data() : nullptr, y_ref.data());
  Tensor dx_ref(x.shape()), dw_ref(w.shape()), db_ref({s.c_out});
  ref::conv2d_backward(s, x.data(), w.data(), dy.data(), dx_ref.data(), dw_ref.data(),
                       db_ref.data());

  DeviceTensor dx_d = up(x), dw_d = up(w), db_d = up(b), dyd = up(dy);
  DeviceTensor y = poisoned(y_shape), dx = poisoned(x.shape()), dw = poisoned(w.shape()),
               db = poisoned({s.c_out});
  auto forward = path == ConvPath::ours ? cuda::conv2d_forward : nullptr;
  auto backward = path == ConvPath::ours ? cuda::conv2d_backward : nullptr;
#if DIGITFLOW_HAVE_CUDNN
  if (path == ConvPath::cudnn) {
    forward = cuda::cudnn_path::conv2d_forward;
    backward = cuda::cudnn_path::conv2d_backward;
  }
#endif
  ASSERT_NE(forward, nullptr);
  const float tol = path == ConvPath::ours ? 1e-4f : 1e-3f;
  forward(s, dx_d.data(), dw_d.data(), bias ? db_d.data() : nullptr, y.data());
  EXPECT_TRUE(all_close(down(y), y_ref, tol, tol)) << "forward";
  backward(s, dx_d.data(), dw_d.data(), dyd.data(), dx.data(), dw.data(),
           bias ? db.data() : nullptr);
  EXPECT_TRUE(all_close(down(dx), dx_ref, tol, tol)) << "input gradient";
  EXPECT_TRUE(all_close(down(dw), dw_ref, 1e-3f, 1e-3f)) << "weight gradient";
  if (bias) {
    EXPECT_TRUE(all_close(down(db), db_ref, 1e-3f, 1e-3f)) << "bias gradient";
  }
  // A first layer: no input gradient, the same weight gradient.
  DeviceTensor dw_only = poisoned(w.shape());
  backward(s, dx_d.data(), dw_d.data(), dyd.data(), nullptr, dw_only.data(), nullptr);
  EXPECT_TRUE(all_close(down(dw_only), dw_ref, 1e-3f, 1e-3f)) << "weight gradient without dx";
}

const std::vector<Conv2dShape>& conv_shapes() {
  static const std::vector<Conv2dShape> shapes = {
      {3, 5, 13, 11, 7, 3, 1, 0},    // odd everything
      {2, 3, 17, 19, 13, 5, 2, 2},   // stride 2, padding 2
      {2, 4, 10, 9, 3, 3, 3, 1},     // stride 3
      {5, 7, 6, 6, 65, 1, 1, 0},     // 1x1, 65 outputs (one past a tile)
      {4, 1, 28, 28, 32, 3, 1, 0},   // seed model, first layer
      {4, 32, 26, 26, 64, 3, 1, 0},  // seed model, second layer
      {4, 32, 28, 28, 32, 3, 1, 1},  // default model, second layer
      {6, 64, 14, 14, 64, 3, 1, 1},  // default model, fourth layer
  };
  return shapes;
}

TEST(CudaOps, Conv2dMatchesReference) {
  SKIP_WITHOUT_DEVICE();
  for (const Conv2dShape& s : conv_shapes()) compare_conv(s, true, ConvPath::ours);
  compare_conv({3, 5, 13, 11, 7, 3, 1, 0}, false, ConvPath::ours);
}

TEST(CudaOps, Conv2dCudnnMatchesReference) {
  SKIP_WITHOUT_DEVICE();
#if DIGITFLOW_HAVE_CUDNN
  for (const Conv2dShape& s : conv_shapes()) compare_conv(s, true, ConvPath::cudnn);
  compare_conv({3, 5, 13, 11, 7, 3, 1, 0}, false, ConvPath::cudnn);
#else
  GTEST_SKIP() << "this build found no cuDNN";
#endif
}

TEST(CudaOps, DenseMatchesReference) {
  SKIP_WITHOUT_DEVICE();
  for (DenseShape s : {DenseShape{5, 37, 11}, DenseShape{1, 1, 1}, DenseShape{130, 67, 129},
                       DenseShape{128, 9216, 64}, DenseShape{128, 3136, 128}}) {
    SCOPED_TRACE("dense n=" + std::to_string(s.n) + " in=" + std::to_string(s.in) +
                 " out=" + std::to_string(s.out));
    Tensor x = random_tensor({s.n, s.in}, 21), w = random_tensor({s.out, s.in}, 22),
           b = random_tensor({s.out}, 23), dy = random_tensor({s.n, s.out}, 24);
    Tensor y_ref({s.n, s.out}), dx_ref(x.shape()), dw_ref(w.shape()), db_ref({s.out});
    ref::dense_forward(s, x.data(), w.data(), b.data(), y_ref.data());
    ref::dense_backward(s, x.data(), w.data(), dy.data(), dx_ref.data(), dw_ref.data(),
                        db_ref.data());
    DeviceTensor xd = up(x), wd = up(w), bd = up(b), dyd = up(dy);
    DeviceTensor y = poisoned({s.n, s.out}), dx = poisoned(x.shape()), dw = poisoned(w.shape()),
                 db = poisoned({s.out});
    cuda::dense_forward(s, xd.data(), wd.data(), bd.data(), y.data());
    cuda::dense_backward(s, xd.data(), wd.data(), dyd.data(), dx.data(), dw.data(), db.data());
    EXPECT_TRUE(all_close(down(y), y_ref, 1e-4f, 1e-4f)) << "forward";
    EXPECT_TRUE(all_close(down(dx), dx_ref, 1e-4f, 1e-4f)) << "input gradient";
    EXPECT_TRUE(all_close(down(dw), dw_ref, 1e-3f, 1e-3f)) << "weight gradient";
    EXPECT_TRUE(all_close(down(db), db_ref, 1e-3f, 1e-3f)) << "bias gradient";
  }
}

TEST(CudaOps, ReluAndDropoutMatchTheCpuExactly) {
  SKIP_WITHOUT_DEVICE();
  for (int64_t count : {int64_t{1}, int64_t{1000003}, int64_t{128} * 9216}) {
    SCOPED_TRACE("count " + std::to_string(count));
    Tensor x = random_tensor({count}, 31), dy = random_tensor({count}, 32);
    Tensor y_ref({count}), dx_ref({count}), mask_ref({count});
    relu_forward(count, x.data(), y_ref.data());
    relu_backward(count, y_ref.data(), dy.data(), dx_ref.data());
    DeviceTensor xd = up(x), dyd = up(dy), y = poisoned({count}), dx = poisoned({count}),
                 mask = poisoned({count});
    cuda::relu_forward(count, xd.data(), y.data());
    cuda::relu_backward(count, y.data(), dyd.data(), dx.data());
    EXPECT_TRUE(all_close(down(y), y_ref, 0.0f, 0.0f)) << "relu forward";
    EXPECT_TRUE(all_close(down(dx), dx_ref, 0.0f, 0.0f)) << "relu backward";

    dropout_forward(count, 0.3f, 77, x.data(), y_ref.data(), mask_ref.data());
    dropout_backward(count, mask_ref.data(), dy.data(), dx_ref.data());
    cuda::dropout_forward(count, 0.3f, 77, xd.data(), y.data(), mask.data());
    cuda::dropout_backward(count, mask.data(), dyd.data(), dx.data());
    EXPECT_TRUE(all_close(down(mask), mask_ref, 0.0f, 0.0f)) << "dropout mask";
    EXPECT_TRUE(all_close(down(y), y_ref, 0.0f, 0.0f)) << "dropout forward";
    EXPECT_TRUE(all_close(down(dx), dx_ref, 0.0f, 0.0f)) << "dropout backward";
  }
}

TEST(CudaOps, MaxPoolMatchesReference) {
  SKIP_WITHOUT_DEVICE();
  for (MaxPoolShape s : {MaxPoolShape{3, 5, 13, 11, 2, 2}, MaxPoolShape{2, 3, 9, 9, 3, 2},
                         MaxPoolShape{1, 1, 7, 5, 3, 1}, MaxPoolShape{128, 64, 24, 24, 2, 2}}) {
    SCOPED_TRACE("maxpool " + std::to_string(s.n) + "x" + std::to_string(s.c) + "x" +
                 std::to_string(s.h) + "x" + std::to_string(s.w) + " k" + std::to_string(s.kernel) +
                 " s" + std::to_string(s.stride));
    const Shape y_shape{s.n, s.c, s.out_h(), s.out_w()};
    Tensor x = random_tensor({s.n, s.c, s.h, s.w}, 41), dy = random_tensor(y_shape, 42);
    Tensor y_ref(y_shape), dx_ref(x.shape());
    std::vector<int32_t> argmax_ref(static_cast<size_t>(y_ref.numel()));
    ref::maxpool_forward(s, x.data(), y_ref.data(), argmax_ref.data());
    ref::maxpool_backward(s, dy.data(), argmax_ref.data(), dx_ref.data());
    DeviceTensor xd = up(x), dyd = up(dy), y = poisoned(y_shape), dx = poisoned(x.shape());
    cuda::DeviceArray<int32_t> argmax(y_ref.numel());
    cuda::maxpool_forward(s, xd.data(), y.data(), argmax.data());
    cuda::maxpool_backward(s, dyd.data(), argmax.data(), dx.data());
    std::vector<int32_t> argmax_gpu(argmax_ref.size());
    argmax.download(argmax_gpu.data());
    EXPECT_TRUE(all_close(down(y), y_ref, 0.0f, 0.0f)) << "forward";
    EXPECT_EQ(argmax_gpu, argmax_ref) << "argmax";
    EXPECT_TRUE(all_close(down(dx), dx_ref, 0.0f, 0.0f)) << "backward";
  }
}

TEST(CudaOps, BatchNormMatchesTheCpu) {
  SKIP_WITHOUT_DEVICE();
  for (BatchNormShape s : {BatchNormShape{3, 5, 63}, BatchNormShape{17, 6, 1},
                           BatchNormShape{128, 32, 784}, BatchNormShape{128, 64, 196}}) {
    SCOPED_TRACE("batchnorm n=" + std::to_string(s.n) + " c=" + std::to_string(s.c) +
                 " hw=" + std::to_string(s.hw));
    const Shape shape{s.n, s.c, s.hw}, c{s.c};
    Tensor x = random_tensor(shape, 51, -2.0f, 3.0f), dy = random_tensor(shape, 52);
    Tensor gamma = random_tensor(c, 53, 0.5f, 1.5f), beta = random_tensor(c, 54);
    Tensor y_ref(shape), mean_ref(c), invstd_ref(c), var_ref(c), dx_ref(shape), dg_ref(c),
        db_ref(c);
    batchnorm2d_forward_train(s, x.data(), gamma.data(), beta.data(), 1e-5f, y_ref.data(),
                              mean_ref.data(), invstd_ref.data(), var_ref.data());
    batchnorm2d_backward(s, x.data(), gamma.data(), mean_ref.data(), invstd_ref.data(), dy.data(),
                         dx_ref.data(), dg_ref.data(), db_ref.data());
    DeviceTensor xd = up(x), dyd = up(dy), gd = up(gamma), bd = up(beta);
    DeviceTensor y = poisoned(shape), mean = poisoned(c), invstd = poisoned(c), var = poisoned(c),
                 dx = poisoned(shape), dg = poisoned(c), db = poisoned(c);
    cuda::batchnorm2d_forward_train(s, xd.data(), gd.data(), bd.data(), 1e-5f, y.data(),
                                    mean.data(), invstd.data(), var.data());
    cuda::batchnorm2d_backward(s, xd.data(), gd.data(), mean.data(), invstd.data(), dyd.data(),
                               dx.data(), dg.data(), db.data());
    EXPECT_TRUE(all_close(down(mean), mean_ref, 1e-5f, 1e-4f)) << "mean";
    EXPECT_TRUE(all_close(down(invstd), invstd_ref, 1e-5f, 1e-4f)) << "invstd";
    EXPECT_TRUE(all_close(down(var), var_ref, 1e-5f, 1e-4f)) << "variance";
    EXPECT_TRUE(all_close(down(y), y_ref, 1e-5f, 1e-4f)) << "train forward";
    EXPECT_TRUE(all_close(down(dx), dx_ref, 1e-5f, 1e-4f)) << "backward dx";
    EXPECT_TRUE(all_close(down(dg), dg_ref, 1e-4f, 1e-4f)) << "backward dgamma";
    EXPECT_TRUE(all_close(down(db), db_ref, 1e-4f, 1e-4f)) << "backward dbeta";

    // Running statistics as BatchNorm2dLayer updates them, then inference with them.
    Tensor run_mean = random_tensor(c, 55), run_var = random_tensor(c, 56, 0.5f, 2.0f);
    DeviceTensor rmd = up(run_mean), rvd = up(run_var);
    cuda::batchnorm2d_update_running(s, 0.1f, mean.data(), var.data(), rmd.data(), rvd.data());
    const double count = static_cast<double>(s.n) * s.hw;
    for (int k = 0; k < s.c; ++k) {
      run_mean[k] = 0.9f * run_mean[k] + 0.1f * mean_ref[k];
      run_var[k] = 0.9f * run_var[k] + 0.1f * static_cast<float>(var_ref[k] * count / (count - 1));
    }
    EXPECT_TRUE(all_close(down(rmd), run_mean, 1e-5f, 1e-4f)) << "running mean";
    EXPECT_TRUE(all_close(down(rvd), run_var, 1e-5f, 1e-4f)) << "running variance";
    Tensor y_infer_ref(shape);
    batchnorm2d_forward_infer(s, x.data(), gamma.data(), beta.data(), run_mean.data(),
                              run_var.data(), 1e-5f, y_infer_ref.data());
    DeviceTensor y_infer = poisoned(shape);
    cuda::batchnorm2d_forward_infer(s, xd.data(), gd.data(), bd.data(), rmd.data(), rvd.data(),
                                    1e-5f, y_infer.data());
    EXPECT_TRUE(all_close(down(y_infer), y_infer_ref, 1e-5f, 1e-4f)) << "inference forward";
  }
}

TEST(CudaOps, SoftmaxCrossEntropyMatchesTheCpu) {
  SKIP_WITHOUT_DEVICE();
  for (auto [n, classes] :
       {std::pair{1, 10}, std::pair{7, 3}, std::pair{128, 11}, std::pair{300, 10}}) {
    SCOPED_TRACE("softmax n=" + std::to_string(n) + " classes=" + std::to_string(classes));
    Tensor logits = random_tensor({n, classes}, 61, -6.0f, 6.0f);
    std::vector<uint8_t> labels(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i)
      labels[static_cast<size_t>(i)] = static_cast<uint8_t>((i * 7) % classes);
    Tensor probs_ref({n, classes}), dlogits_ref({n, classes});
    const float loss_ref =
        softmax_xent_forward(n, classes, logits.data(), labels.data(), 0.1f, probs_ref.data());
    softmax_xent_backward(n, classes, probs_ref.data(), labels.data(), 0.1f, dlogits_ref.data());

    DeviceTensor ld = up(logits), probs = poisoned({n, classes}), dlogits = poisoned({n, classes}),
                 row_loss = poisoned({n});
    cuda::DeviceArray<uint8_t> labels_d;
    labels_d.upload(labels.data(), n);
    cuda::DeviceArray<int32_t> predicted(n);
    cuda::softmax_xent(n, classes, ld.data(), labels_d.data(), 0.1f, probs.data(), dlogits.data(),
                       row_loss.data(), predicted.data());
    EXPECT_TRUE(all_close(down(probs), probs_ref, 1e-6f, 1e-5f)) << "probabilities";
    EXPECT_TRUE(all_close(down(dlogits), dlogits_ref, 1e-7f, 1e-5f)) << "dlogits";
    Tensor losses = down(row_loss);
    const double mean_loss = std::accumulate(losses.data(), losses.data() + n, 0.0) / n;
    EXPECT_NEAR(mean_loss, loss_ref, 1e-5 + 1e-5 * std::fabs(loss_ref)) << "mean loss";
    std::vector<int32_t> got(static_cast<size_t>(n));
    predicted.download(got.data());
    for (int i = 0; i < n; ++i) {
      const float* p = probs_ref.data() + i * classes;
      EXPECT_EQ(got[static_cast<size_t>(i)], std::max_element(p, p + classes) - p) << "row " << i;
    }
  }
}

TEST(CudaOps, OptimiserStepsMatchTheCpu) {
  SKIP_WITHOUT_DEVICE();
  for (const char* optimizer : {"adamw", "sgd"}) {
    SCOPED_TRACE(optimizer);
    TrainConfig config;
    config.optimizer = optimizer;
    Parameter weight{"w", random_tensor({1001}, 71), Tensor({1001}), true};
    Parameter bias{"b", random_tensor({13}, 72), Tensor({13}), false};
    cuda::DeviceParameter dweight{"w", up(weight.value), DeviceTensor({1001}), true};
    cuda::DeviceParameter dbias{"b", up(bias.value), DeviceTensor({13}), false};
    Optimizer cpu(config, {&weight, &bias});
    cuda::DeviceOptimizer gpu(config, {&dweight, &dbias});
    for (int step = 0; step < 3; ++step) {
      weight.grad = random_tensor({1001}, 80 + static_cast<uint64_t>(step));
      bias.grad = random_tensor({13}, 90 + static_cast<uint64_t>(step));
      dweight.grad.upload(weight.grad);
      dbias.grad.upload(bias.grad);
      cpu.step(0.01f);
      gpu.step(0.01f);
    }
    EXPECT_TRUE(all_close(down(dweight.value), weight.value, 1e-6f, 1e-5f)) << "weights";
    EXPECT_TRUE(all_close(down(dbias.value), bias.value, 1e-6f, 1e-5f)) << "biases";
  }
}

// Images with strokes, so that warps move real edges (a random-noise image hides little).
LabelledImages synthetic_digits(int count, uint64_t seed) {
  LabelledImages data;
  data.count = count;
  data.rows = data.cols = 28;
  data.pixels.assign(static_cast<size_t>(count) * 28 * 28, 0);
  data.labels.resize(static_cast<size_t>(count));
  std::mt19937_64 rng(seed);
  for (int i = 0; i < count; ++i) {
    const int label = static_cast<int>(rng() % 10);
    data.labels[static_cast<size_t>(i)] = static_cast<uint8_t>(label);
    uint8_t* image = data.pixels.data() + static_cast<size_t>(i) * 784;
    const int x0 = 6 + static_cast<int>(rng() % 6), y0 = 6 + static_cast<int>(rng() % 6);
    for (int y = 0; y < 14; ++y)
      for (int x = 0; x < 12; ++x) {
        const bool stroke = (label % 2 ? x == y / 2 + label / 2 : y == x + label / 3) || x == label;
        if (stroke) image[(y0 + y) * 28 + x0 + x] = static_cast<uint8_t>(128 + rng() % 128);
      }
  }
  return data;
}

TEST(CudaOps, BatchGatherWarpsAsTheCpu) {
  SKIP_WITHOUT_DEVICE();
  const LabelledImages data = synthetic_digits(300, 5);
  const int count = 97;
  std::vector<int32_t> indices(static_cast<size_t>(count));
  for (int i = 0; i < count; ++i) indices[static_cast<size_t>(i)] = (i * 37 + 11) % 300;
  AugmentConfig augment;
  const uint64_t base = mix_seed(3, 2), position = 640;
  const InputNormalization norm;

  Tensor expected({count, 1, 28, 28});
  std::vector<uint8_t> warped(784);
  for (int i = 0; i < count; ++i) {
    random_affine(data.pixels.data() + indices[static_cast<size_t>(i)] * 784, 28, 28, augment,
                  mix_seed(base, position + static_cast<uint64_t>(i)), warped.data());
    for (int p = 0; p < 784; ++p)
      expected[i * 784 + p] =
          static_cast<float>(warped[static_cast<size_t>(p)]) * (1.0f / (255.0f * norm.std)) -
          norm.mean / norm.std;
  }
  cuda::DeviceArray<uint8_t> images, labels, batch_labels(count);
  images.upload(data.pixels.data(), static_cast<int64_t>(data.pixels.size()));
  labels.upload(data.labels.data(), data.count);
  cuda::DeviceArray<int32_t> indices_d;
  indices_d.upload(indices.data(), count);
  DeviceTensor x = poisoned({count, 1, 28, 28});
  cuda::gather_batch({images.data(), labels.data(), 28, 28}, indices_d.data(), count, true, augment,
                     base, position, norm.mean, norm.std, x.data(), batch_labels.data());
  Tensor got = down(x);
  const float one_level = 1.0f / (255.0f * norm.std);
  int64_t off = 0;
  for (int64_t i = 0; i < got.numel(); ++i) {
    const float diff = std::fabs(got[i] - expected[i]);
    ASSERT_LE(diff, one_level * 1.01f + 1e-5f) << "pixel " << i;  // NaN fails here too
    off += diff > 1e-5f;
  }
  EXPECT_LE(off, got.numel() / 200) << off << " pixels differ by one grey level";
  std::vector<uint8_t> got_labels(static_cast<size_t>(count));
  batch_labels.download(got_labels.data());
  for (int i = 0; i < count; ++i)
    EXPECT_EQ(got_labels[static_cast<size_t>(i)],
              data.labels[static_cast<size_t>(indices[static_cast<size_t>(i)])]);
}

ModelSpec seed_model() {
  ModelSpec spec;
  spec.name = "seed";
  auto conv = [](int out, int padding, bool bias) {
    LayerSpec l;
    l.kind = LayerKind::conv2d;
    l.out = out;
    l.padding = padding;
    l.bias = bias;
    return l;
  };
  auto plain = [](LayerKind kind) {
    LayerSpec l;
    l.kind = kind;
    return l;
  };
  auto pool = [] {
    LayerSpec l;
    l.kind = LayerKind::maxpool;
    l.kernel = 2;
    l.stride = 2;
    return l;
  };
  auto dropout = [](float rate) {
    LayerSpec l;
    l.kind = LayerKind::dropout;
    l.rate = rate;
    return l;
  };
  auto dense = [](int out) {
    LayerSpec l;
    l.kind = LayerKind::dense;
    l.out = out;
    return l;
  };
  spec.layers = {conv(32, 0, true),
                 plain(LayerKind::relu),
                 conv(64, 0, true),
                 plain(LayerKind::relu),
                 pool(),
                 dropout(0.25f),
                 plain(LayerKind::flatten),
                 dense(64),
                 plain(LayerKind::relu),
                 dropout(0.5f),
                 dense(10)};
  return spec;
}

// The default model's structure (config/models/default.yaml) at reduced width, for speed.
ModelSpec batchnorm_model() {
  ModelSpec spec = seed_model();
  spec.name = "batchnorm";
  LayerSpec conv;
  conv.kind = LayerKind::conv2d;
  conv.out = 8;
  conv.padding = 1;
  conv.bias = false;
  LayerSpec bn;
  bn.kind = LayerKind::batchnorm2d;
  LayerSpec relu;
  relu.kind = LayerKind::relu;
  LayerSpec pool;
  pool.kind = LayerKind::maxpool;
  pool.kernel = pool.stride = 2;
  LayerSpec flatten;
  flatten.kind = LayerKind::flatten;
  LayerSpec dropout;
  dropout.kind = LayerKind::dropout;
  dropout.rate = 0.3f;
  LayerSpec dense;
  dense.kind = LayerKind::dense;
  dense.out = 11;
  spec.classes = 11;
  spec.layers = {conv, bn, relu, conv, bn, relu, pool, flatten, dropout, dense};
  return spec;
}

void compare_networks(const ModelSpec& spec, Backend backend) {
  SCOPED_TRACE("model " + spec.name + ", backend " + to_string(backend));
  Network cpu(spec, 7);
  cuda::DeviceNetwork gpu(cpu, backend);
  const int n = 16;
  Tensor x = random_tensor(cpu.input_shape(n), 101, -0.5f, 2.5f);
  DeviceTensor xd = up(x);
  for (bool training : {false, true}) {
    SCOPED_TRACE(training ? "training" : "inference");
    const ForwardContext ctx{training, 3, 5};
    const Tensor& logits_ref = cpu.forward(x, ctx);
    EXPECT_TRUE(all_close(down(gpu.forward(xd, ctx)), logits_ref, 1e-3f, 1e-3f)) << "logits";
  }
  Tensor dlogits = random_tensor({n, spec.classes}, 102, -0.1f, 0.1f);
  cpu.backward(dlogits);
  gpu.backward(up(dlogits));
  auto cpu_params = cpu.parameters();
  auto gpu_params = gpu.parameters();
  ASSERT_EQ(cpu_params.size(), gpu_params.size());
  for (size_t i = 0; i < cpu_params.size(); ++i) {
    ASSERT_EQ(cpu_params[i]->name, gpu_params[i]->name);
    EXPECT_TRUE(relative_error_within(down(gpu_params[i]->grad), cpu_params[i]->grad, 1e-3))
        << "gradient of " << cpu_params[i]->name;
  }
  // The running statistics the training forward updated come back by name.
  Network copy(spec, 99);
  gpu.download(copy);
  auto expected = cpu.state();
  auto got = copy.state();
  for (size_t i = 0; i < expected.size(); ++i)
    EXPECT_TRUE(all_close(*got[i].second, *expected[i].second, 1e-4f, 1e-4f)) << expected[i].first;
}

TEST(CudaNetwork, ForwardAndBackwardMatchTheCpu) {
  SKIP_WITHOUT_DEVICE();
  compare_networks(seed_model(), Backend::cuda);
  compare_networks(batchnorm_model(), Backend::cuda);
#if DIGITFLOW_HAVE_CUDNN
  compare_networks(seed_model(), Backend::cudnn);
  compare_networks(batchnorm_model(), Backend::cudnn);
#endif
}

TEST(CudaNetwork, TrainingStepsMatchTheCpu) {
  SKIP_WITHOUT_DEVICE();
  const LabelledImages data = synthetic_digits(600, 9);
  TrainConfig config;
  config.epochs = 1;
  config.batch_size = 64;
  config.validation_images = 88;  // 512 left: 8 steps
  config.label_smoothing = 0.05f;
  for (Backend backend : {Backend::cuda, Backend::cudnn}) {
#if !DIGITFLOW_HAVE_CUDNN
    if (backend == Backend::cudnn) continue;
#endif
    for (const ModelSpec& spec : {batchnorm_model(), seed_model()}) {
      SCOPED_TRACE("model " + spec.name + ", backend " + to_string(backend));
      Network cpu(spec, 3), gpu(spec, 3), start(spec, 3);
      TrainResult on_cpu = train(cpu, data, config);
      TrainResult on_gpu = train(gpu, data, config, {}, backend);
      ASSERT_EQ(on_cpu.epochs.size(), on_gpu.epochs.size());
      EXPECT_NEAR(on_gpu.epochs[0].train_loss, on_cpu.epochs[0].train_loss, 1e-3);
      EXPECT_NEAR(on_gpu.epochs[0].val_loss, on_cpu.epochs[0].val_loss, 1e-3);
      EXPECT_NEAR(on_gpu.epochs[0].val_accuracy, on_cpu.epochs[0].val_accuracy, 2.0 / 88);
      // What the 8 steps moved, on each side (a plain comparison of the weights would hide a
      // wrong update under the size of the weights).
      auto expected = cpu.state();
      auto got = gpu.state();
      auto initial = start.state();
      for (size_t i = 0; i < expected.size(); ++i) {
        Tensor moved_gpu = got[i].second->clone(), moved_cpu = expected[i].second->clone();
        for (int64_t j = 0; j < moved_cpu.numel(); ++j) {
          moved_gpu[j] -= (*initial[i].second)[j];
          moved_cpu[j] -= (*initial[i].second)[j];
        }
        EXPECT_TRUE(relative_error_within(moved_gpu, moved_cpu, 2e-2))
            << "the change of " << expected[i].first;
      }
    }
  }
}

TEST(CudaNetwork, InferenceAndEvaluationMatchTheCpu) {
  SKIP_WITHOUT_DEVICE();
  const LabelledImages data = synthetic_digits(1000, 13);
  for (const ModelSpec& spec : {batchnorm_model(), seed_model()}) {
    SCOPED_TRACE("model " + spec.name);
    Network net(spec, 5);
    Tensor expected = infer_probabilities(net, data.pixels, data.count, 256);
    for (int batch : {1, 256, 333}) {
      SCOPED_TRACE("batch " + std::to_string(batch));
      cuda::DeviceInference inference(net, Backend::cuda, batch);
      const int64_t count = batch == 1 ? 50 : data.count;
      Tensor got = inference.probabilities(
          std::span<const uint8_t>(data.pixels).first(static_cast<size_t>(count) * 784), count);
      EXPECT_TRUE(all_close(got.data(), expected.data(), got.numel(), 1e-5f, 1e-3f));
    }
    EvalResult cpu = evaluate(net, data);
    EvalResult gpu = evaluate(net, data, 500, Backend::cuda);
    EXPECT_EQ(gpu.count, cpu.count);
    EXPECT_NEAR(gpu.accuracy, cpu.accuracy, 2.0 / 1000);  // a near tie may go either way
    EXPECT_NEAR(gpu.loss, cpu.loss, 1e-4 + 1e-4 * cpu.loss);
  }
}

TEST(CudaBackend, StartsOrSaysWhyInOneLine) {
  const std::string why = no_device_reason();
  if (why.empty()) {
    EXPECT_EQ(start_backend(Backend::cuda), Backend::cuda);
    EXPECT_NE(start_backend(Backend::automatic), Backend::cpu);
    return;
  }
  EXPECT_EQ(start_backend(Backend::automatic), Backend::cpu) << "auto falls back to the CPU";
  for (Backend backend : {Backend::cuda, Backend::cudnn}) {
    try {
      start_backend(backend);
      ADD_FAILURE() << to_string(backend) << " started without a usable device";
    } catch (const BackendUnavailable& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find("backend " + to_string(backend)), std::string::npos) << message;
      EXPECT_NE(message.find(why), std::string::npos) << message;
      EXPECT_EQ(message.find('\n'), std::string::npos) << "one line: " << message;
    }
  }
  // A GPU backend asked of train() says the same, before any work.
  Network net(seed_model(), 1);
  EXPECT_THROW(train(net, synthetic_digits(200, 1), TrainConfig{}, {}, Backend::cuda),
               BackendUnavailable);
}

TEST(CudaBackend, AFailedCallNamesTheFileTheLineAndTheError) {
  // Runs with or without a device: an allocation no device can hold fails either way.
  try {
    cuda::DeviceBuffer huge(size_t{1} << 62);
    FAIL() << "an allocation of 4 EiB succeeded";
  } catch (const cuda::CudaError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("device.cpp:"), std::string::npos) << message;
    EXPECT_NE(message.find("cudaMalloc"), std::string::npos) << message;
    EXPECT_NE(message.find("cuda"), std::string::npos) << message;
  }
  // The failure is not left behind for the next launch check to report.
  if (no_device_reason().empty()) {
    cuda::DeviceTensor t = poisoned({1000});
    cuda::relu_forward(1000, t.data(), t.data());
    EXPECT_NO_THROW(cuda::synchronize());
    EXPECT_NO_THROW(cuda::relu_forward(1000, t.data(), t.data()));
  }
}

#endif  // DIGITFLOW_HAVE_CUDA

}  // namespace
}  // namespace digitflow::kernels

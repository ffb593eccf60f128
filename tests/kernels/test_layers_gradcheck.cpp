// Every layer's backward against central finite differences of its forward, on small odd
// shapes: loss = sum(y * r) for a fixed random r, so dL/dy = r.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <vector>

#include "digitflow/kernels/network.hpp"
#include "test_support.hpp"

namespace digitflow::kernels {
namespace {

using testing::random_tensor;

double weighted_sum(const Tensor& y, const Tensor& r) {
  double s = 0.0;
  for (int64_t i = 0; i < y.numel(); ++i) s += double{y[i]} * r[i];
  return s;
}

// Checks up to `samples` entries of `target` (an input or a parameter value) against the
// analytic gradient `analytic`, perturbing by eps. Relative tolerance 2e-2 + atol 2e-3.
void check_gradient(Layer& layer, const Tensor& x, const Tensor& r, Tensor& target,
                    const Tensor& analytic, const std::string& what, float eps = 1e-2f) {
  const ForwardContext ctx{true, 7, 3};
  Tensor y;
  int64_t stride = std::max<int64_t>(1, target.numel() / 40);
  for (int64_t i = 0; i < target.numel(); i += stride) {
    float saved = target[i];
    target[i] = saved + eps;
    layer.forward(x, y, ctx);
    double plus = weighted_sum(y, r);
    target[i] = saved - eps;
    layer.forward(x, y, ctx);
    double minus = weighted_sum(y, r);
    target[i] = saved;
    double numeric = (plus - minus) / (2.0 * eps);
    double diff = std::fabs(numeric - analytic[i]);
    EXPECT_LE(diff, 2e-3 + 2e-2 * std::fabs(numeric))
        << what << "[" << i << "]: numeric " << numeric << ", analytic " << analytic[i];
  }
}

// away_from_zero moves inputs off relu's kink; distinct spaces inputs 0.1 apart so that a
// perturbation never changes which element wins a max-pool window.
void check_layer(const LayerSpec& spec, const Shape& in_shape, float away_from_zero = 0.0f,
                 bool distinct = false) {
  auto layer = make_layer(spec, in_shape, 0);
  layer->initialize(11);
  // Give biases and batchnorm scales non-trivial values.
  for (Parameter* p : layer->parameters()) {
    Tensor v = random_tensor(p->value.shape(), 5, 0.5f, 1.5f);
    if (!p->decay) p->value = std::move(v);
  }
  Tensor x = random_tensor(in_shape, 3);
  if (away_from_zero > 0)
    for (int64_t i = 0; i < x.numel(); ++i) x[i] += x[i] >= 0 ? away_from_zero : -away_from_zero;
  if (distinct) {
    std::vector<int64_t> order(static_cast<size_t>(x.numel()));
    for (int64_t i = 0; i < x.numel(); ++i) order[static_cast<size_t>(i)] = (i * 7919) % x.numel();
    for (int64_t i = 0; i < x.numel(); ++i) x[i] = 0.1f * static_cast<float>(order[static_cast<size_t>(i)]);
  }
  Tensor y;
  const ForwardContext ctx{true, 7, 3};
  layer->forward(x, y, ctx);
  Tensor r = random_tensor(y.shape(), 9);
  Tensor dx;
  layer->backward(x, y, r, &dx);
  ASSERT_EQ(dx.shape(), x.shape());
  Tensor x_copy = x.clone();
  check_gradient(*layer, x_copy, r, x_copy, dx, to_string(spec.kind) + " dx");
  for (Parameter* p : layer->parameters()) {
    Tensor grad = p->grad.clone();
    check_gradient(*layer, x, r, p->value, grad, p->name);
  }
}

TEST(GradCheck, Conv2dOddShape) {
  LayerSpec s{LayerKind::conv2d};
  s.out = 5, s.kernel = 3, s.stride = 2, s.padding = 1;
  check_layer(s, {3, 2, 7, 9});
}

TEST(GradCheck, Conv2dNoBiasNoPadding) {
  LayerSpec s{LayerKind::conv2d};
  s.out = 4, s.kernel = 5, s.bias = false;
  check_layer(s, {2, 3, 8, 6});
}

TEST(GradCheck, Conv2dPointwise) {
  LayerSpec s{LayerKind::conv2d};
  s.out = 3, s.kernel = 1;
  check_layer(s, {2, 5, 3, 4});
}

TEST(GradCheck, Dense) {
  LayerSpec s{LayerKind::dense};
  s.out = 7;
  check_layer(s, {5, 13});
}

TEST(GradCheck, BatchNorm2dSpatial) {
  LayerSpec s{LayerKind::batchnorm2d};
  check_layer(s, {4, 3, 5, 3});
}

TEST(GradCheck, BatchNormAfterDense) {
  LayerSpec s{LayerKind::batchnorm2d};
  check_layer(s, {6, 5});
}

TEST(GradCheck, Relu) { check_layer(LayerSpec{LayerKind::relu}, {3, 2, 5, 5}, 0.05f); }

TEST(GradCheck, MaxPool) {
  LayerSpec s{LayerKind::maxpool};
  s.kernel = 2, s.stride = 2;
  check_layer(s, {2, 3, 7, 6}, 0.0f, true);
}

TEST(GradCheck, MaxPoolOverlapping) {
  LayerSpec s{LayerKind::maxpool};
  s.kernel = 3, s.stride = 2;
  check_layer(s, {2, 2, 9, 7}, 0.0f, true);
}

TEST(GradCheck, Dropout) {
  LayerSpec s{LayerKind::dropout};
  s.rate = 0.4f;
  check_layer(s, {4, 31});
}

TEST(GradCheck, Flatten) { check_layer(LayerSpec{LayerKind::flatten}, {3, 2, 3, 5}); }

}  // namespace
}  // namespace digitflow::kernels

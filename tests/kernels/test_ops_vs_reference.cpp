// The fast CPU ops against their plain references, on odd shapes and on the MNIST shapes of
// the seed model. Tolerance: |fast - ref| <= 1e-4 + 1e-4 * |ref| (float sums vs double).
#include <gtest/gtest.h>

#include <vector>

#include "digitflow/kernels/ops/conv2d.hpp"
#include "digitflow/kernels/ops/dense.hpp"
#include "digitflow/kernels/ops/maxpool.hpp"
#include "test_support.hpp"

namespace digitflow::kernels {
namespace {

using testing::all_close;
using testing::random_tensor;

constexpr float kAtol = 1e-4f, kRtol = 1e-4f;

using ConvForward = void (*)(const Conv2dShape&, const float*, const float*, const float*, float*);
using ConvBackward = void (*)(const Conv2dShape&, const float*, const float*, const float*, float*,
                              float*, float*);

// Both CPU paths: the one conv2d_forward/backward take in this build (oneDNN where found),
// and im2col + our GEMM, which runs where oneDNN is absent.
void compare_conv_path(const Conv2dShape& s, bool bias, ConvForward forward, ConvBackward backward);

void compare_conv(const Conv2dShape& s, bool bias) {
  {
    SCOPED_TRACE(std::string("path ") + conv2d_path_name());
    compare_conv_path(s, bias, conv2d_forward, conv2d_backward);
  }
  SCOPED_TRACE("path im2col+gemm");
  compare_conv_path(s, bias, im2col_path::conv2d_forward, im2col_path::conv2d_backward);
}

void compare_conv_path(const Conv2dShape& s, bool bias, ConvForward forward, ConvBackward backward) {
  SCOPED_TRACE("conv n=" + std::to_string(s.n) + " c_in=" + std::to_string(s.c_in) + " h=" +
               std::to_string(s.h) + " w=" + std::to_string(s.w) + " c_out=" + std::to_string(s.c_out) +
               " k=" + std::to_string(s.kernel) + " stride=" + std::to_string(s.stride) +
               " pad=" + std::to_string(s.padding));
  Tensor x = random_tensor({s.n, s.c_in, s.h, s.w}, 1);
  Tensor w = random_tensor({s.c_out, s.c_in, s.kernel, s.kernel}, 2);
  Tensor b = random_tensor({s.c_out}, 3);
  Shape y_shape{s.n, s.c_out, s.out_h(), s.out_w()};
  Tensor y(y_shape), y_ref(y_shape);
  forward(s, x.data(), w.data(), bias ? b.data() : nullptr, y.data());
  ref::conv2d_forward(s, x.data(), w.data(), bias ? b.data() : nullptr, y_ref.data());
  EXPECT_TRUE(all_close(y, y_ref, kAtol, kRtol)) << "forward";

  Tensor dy = random_tensor(y_shape, 4);
  Tensor dx(x.shape()), dx_ref(x.shape()), dw(w.shape()), dw_ref(w.shape()), db({s.c_out}),
      db_ref({s.c_out});
  dx.fill(123.0f);  // must be overwritten
  dw.fill(123.0f);
  backward(s, x.data(), w.data(), dy.data(), dx.data(), dw.data(), bias ? db.data() : nullptr);
  // Without an input gradient (a first layer) the weight gradients are the same.
  Tensor dw_only(w.shape());
  backward(s, x.data(), w.data(), dy.data(), nullptr, dw_only.data(), bias ? db.data() : nullptr);
  EXPECT_TRUE(all_close(dw_only, dw, 1e-5f, 1e-5f)) << "dweight without dx";
  ref::conv2d_backward(s, x.data(), w.data(), dy.data(), dx_ref.data(), dw_ref.data(),
                       bias ? db_ref.data() : nullptr);
  EXPECT_TRUE(all_close(dx, dx_ref, kAtol, kRtol)) << "dx";
  EXPECT_TRUE(all_close(dw, dw_ref, 1e-3f, kRtol)) << "dweight";
  if (bias) {
    EXPECT_TRUE(all_close(db, db_ref, 1e-3f, kRtol)) << "dbias";
  }
}

TEST(Conv2dFast, OddShapes) {
  compare_conv({3, 1, 13, 11, 5, 3, 1, 0}, true);
  compare_conv({2, 3, 13, 13, 7, 3, 2, 1}, true);
  compare_conv({1, 5, 9, 17, 3, 5, 1, 2}, false);
  compare_conv({9, 2, 7, 7, 13, 1, 1, 0}, true);   // pointwise
  compare_conv({4, 3, 6, 5, 2, 3, 3, 2}, true);    // stride larger than... padding near edges
  compare_conv({17, 2, 5, 5, 3, 5, 1, 0}, true);   // output 1x1, more images than a chunk
}

TEST(Conv2dFast, SeedModelShapes) {
  compare_conv({16, 1, 28, 28, 32, 3, 1, 0}, true);
  compare_conv({16, 32, 26, 26, 64, 3, 1, 0}, true);
}

void compare_dense(const DenseShape& s) {
  SCOPED_TRACE("dense n=" + std::to_string(s.n) + " in=" + std::to_string(s.in) + " out=" +
               std::to_string(s.out));
  Tensor x = random_tensor({s.n, s.in}, 1), w = random_tensor({s.out, s.in}, 2),
         b = random_tensor({s.out}, 3), dy = random_tensor({s.n, s.out}, 4);
  Tensor y({s.n, s.out}), y_ref({s.n, s.out});
  dense_forward(s, x.data(), w.data(), b.data(), y.data());
  ref::dense_forward(s, x.data(), w.data(), b.data(), y_ref.data());
  EXPECT_TRUE(all_close(y, y_ref, kAtol, kRtol)) << "forward";
  Tensor dx(x.shape()), dx_ref(x.shape()), dw(w.shape()), dw_ref(w.shape()), db({s.out}),
      db_ref({s.out});
  dense_backward(s, x.data(), w.data(), dy.data(), dx.data(), dw.data(), db.data());
  ref::dense_backward(s, x.data(), w.data(), dy.data(), dx_ref.data(), dw_ref.data(), db_ref.data());
  EXPECT_TRUE(all_close(dx, dx_ref, kAtol, kRtol)) << "dx";
  EXPECT_TRUE(all_close(dw, dw_ref, 1e-3f, kRtol)) << "dweight";
  EXPECT_TRUE(all_close(db, db_ref, 1e-3f, kRtol)) << "dbias";
}

TEST(DenseFast, OddShapes) {
  compare_dense({1, 1, 1});
  compare_dense({1, 9216, 64});  // batch 1 and a few rows take the dot-product path
  compare_dense({3, 1031, 13});
  compare_dense({7, 13, 5});
  compare_dense({33, 127, 11});
  compare_dense({65, 1031, 3});
}

TEST(DenseFast, SeedModelShapes) {
  compare_dense({128, 9216, 64});
  compare_dense({128, 64, 10});
}

void compare_maxpool(const MaxPoolShape& s) {
  Tensor x = random_tensor({s.n, s.c, s.h, s.w}, 1);
  Shape y_shape{s.n, s.c, s.out_h(), s.out_w()};
  Tensor y(y_shape), y_ref(y_shape);
  std::vector<int32_t> a(static_cast<size_t>(y.numel())), a_ref(a.size());
  maxpool_forward(s, x.data(), y.data(), a.data());
  ref::maxpool_forward(s, x.data(), y_ref.data(), a_ref.data());
  EXPECT_TRUE(all_close(y, y_ref, 0.0f, 0.0f));
  EXPECT_EQ(a, a_ref);
  Tensor y_infer(y_shape);  // inference: no argmax, the same maxima
  maxpool_forward(s, x.data(), y_infer.data(), nullptr);
  EXPECT_TRUE(all_close(y_infer, y_ref, 0.0f, 0.0f));
  Tensor dy = random_tensor(y_shape, 2), dx(x.shape()), dx_ref(x.shape());
  dx.fill(5.0f);
  maxpool_backward(s, dy.data(), a.data(), dx.data());
  ref::maxpool_backward(s, dy.data(), a_ref.data(), dx_ref.data());
  EXPECT_TRUE(all_close(dx, dx_ref, 1e-6f, 0.0f));
}

TEST(MaxPoolFast, Shapes) {
  compare_maxpool({3, 5, 7, 9, 2, 2});
  compare_maxpool({2, 32, 28, 28, 2, 2});  // the default model's pools
  compare_maxpool({2, 64, 14, 14, 2, 2});
  compare_maxpool({2, 3, 13, 11, 3, 2});
  compare_maxpool({16, 64, 24, 24, 2, 2});
}

TEST(MaxPoolFast, TiesGoToTheFirstInRowMajorOrder) {
  // 2x2 windows over a 2x6 plane: all equal; equal on the lower row only; equal on the
  // right column only.
  const float x[] = {3, 3, 1, 2, 1, 5, 3, 3, 4, 4, 2, 5};
  float y[3];
  int32_t a[3], a_ref[3];
  maxpool_forward({1, 1, 2, 6, 2, 2}, x, y, a);
  ref::maxpool_forward({1, 1, 2, 6, 2, 2}, x, y, a_ref);
  EXPECT_EQ(std::vector<int32_t>(a, a + 3), (std::vector<int32_t>{0, 8, 5}));
  EXPECT_EQ(std::vector<int32_t>(a, a + 3), std::vector<int32_t>(a_ref, a_ref + 3));
}

TEST(MaxPoolFast, HandWorkedExample) {
  // One 4x4 plane, 2x2 windows: maxima 6, 8, 14, 16 at known places.
  const float x[] = {1, 6, 2, 3, 5, 4, 8, 7, 9, 10, 16, 15, 14, 13, 12, 11};
  float y[4];
  int32_t a[4];
  maxpool_forward({1, 1, 4, 4, 2, 2}, x, y, a);
  EXPECT_EQ(std::vector<float>(y, y + 4), (std::vector<float>{6, 8, 14, 16}));
  EXPECT_EQ(std::vector<int32_t>(a, a + 4), (std::vector<int32_t>{1, 6, 12, 10}));
}

TEST(Conv2dFast, HandWorkedExample) {
  // 1x3x3 input, one 2x2 kernel of ones, bias 1: each output is its window's sum + 1.
  const float x[] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  const float w[] = {1, 1, 1, 1};
  const float b[] = {1};
  float y[4];
  conv2d_forward({1, 1, 3, 3, 1, 2, 1, 0}, x, w, b, y);
  EXPECT_EQ(std::vector<float>(y, y + 4), (std::vector<float>{13, 17, 25, 29}));
}

}  // namespace
}  // namespace digitflow::kernels

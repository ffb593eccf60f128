// Tensor and Shape: sizes, alignment, zero fill, resize without shrinking the storage,
// reshape that keeps the element count, clone that copies.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "digitflow/kernels/tensor.hpp"

namespace digitflow::kernels {
namespace {

TEST(Shape, CountsAndPrints) {
  EXPECT_EQ((Shape{128, 1, 28, 28}).numel(), 100352);
  EXPECT_EQ(Shape{}.numel(), 0);
  EXPECT_EQ((Shape{3, 0, 2}).numel(), 0);
  EXPECT_EQ((Shape{2, 3}).str(), "(2, 3)");
}

TEST(Tensor, ZeroFilledAndAligned) {
  Tensor t({3, 5, 7});
  EXPECT_EQ(t.numel(), 105);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data()) % 64, 0u);
  for (int64_t i = 0; i < t.numel(); ++i) ASSERT_EQ(t[i], 0.0f);
  EXPECT_THROW(Tensor({2, -1}), std::invalid_argument);
}

TEST(Tensor, ResizeKeepsStorageWhenItFits) {
  Tensor t({4, 4});
  const float* before = t.data();
  t.resize({2, 8});
  EXPECT_EQ(t.data(), before);
  t.resize({3, 3});
  EXPECT_EQ(t.data(), before);
  EXPECT_EQ(t.shape(), (Shape{3, 3}));
  t.resize({10, 10});
  EXPECT_EQ(t.numel(), 100);
}

TEST(Tensor, ReshapeCloneFillFrom) {
  Tensor t = Tensor::from({2, 3}, std::vector<float>{1, 2, 3, 4, 5, 6});
  t.reshape({3, 2});
  EXPECT_EQ(t.shape(), (Shape{3, 2}));
  EXPECT_EQ(t[5], 6.0f);
  EXPECT_THROW(t.reshape({4, 2}), std::invalid_argument);
  Tensor copy = t.clone();
  copy.fill(0.5f);
  EXPECT_EQ(t[0], 1.0f) << "clone shares no storage";
  EXPECT_EQ(copy[4], 0.5f);
  EXPECT_THROW(Tensor::from({2, 2}, std::vector<float>{1, 2, 3}), std::invalid_argument);
}

}  // namespace
}  // namespace digitflow::kernels

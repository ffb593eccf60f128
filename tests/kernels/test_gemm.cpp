// gemm against gemm_reference (the specification) for every kernel this processor can run:
// all four transpose combinations, sizes that fit no tile (1, 7, 13, 127, 300), the network's
// real shapes, alpha/beta variants, beta = 0 over NaN, and row strides wider than the matrix.
#include <gtest/gtest.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <iostream>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "digitflow/kernels/gemm.hpp"

namespace digitflow::kernels::detail {
// Defined in kernels/src/gemm.cpp for tests and benchmarks; not part of the public header.
bool gemm_kernel_available(const char* name);
void gemm_with_kernel(const char* name, bool trans_a, bool trans_b, int m, int n, int k,
                      float alpha, const float* a, int lda, const float* b, int ldb, float beta,
                      float* c, int ldc);
}  // namespace digitflow::kernels::detail

namespace {

using digitflow::kernels::gemm;
using digitflow::kernels::gemm_reference;

struct GemmCase {
  bool trans_a = false;
  bool trans_b = false;
  int m = 1, n = 1, k = 1;
  float alpha = 1.0f;
  float beta = 0.0f;
  int pad = 0;  // extra floats per stored row of A, B and C

  std::string describe() const {
    std::ostringstream out;
    out << (trans_a ? 'T' : 'N') << (trans_b ? 'T' : 'N') << " m=" << m << " n=" << n
        << " k=" << k << " alpha=" << alpha << " beta=" << beta << " pad=" << pad;
    return out.str();
  }
};

// Stored operands of one case: A is (trans_a ? k x m : m x k), B is (trans_b ? n x k : k x n),
// each row `pad` floats wider than needed; C is m x n with row stride n + pad.
struct GemmOperands {
  int lda, ldb, ldc;
  std::vector<float> a, b, c;
};

constexpr float kSentinel = 12345.0f;

GemmOperands make_operands(const GemmCase& tc, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  GemmOperands ops;
  const int a_rows = tc.trans_a ? tc.k : tc.m;
  const int b_rows = tc.trans_b ? tc.n : tc.k;
  ops.lda = (tc.trans_a ? tc.m : tc.k) + tc.pad;
  ops.ldb = (tc.trans_b ? tc.k : tc.n) + tc.pad;
  ops.ldc = tc.n + tc.pad;
  ops.a.resize(static_cast<std::size_t>(a_rows) * ops.lda);
  ops.b.resize(static_cast<std::size_t>(b_rows) * ops.ldb);
  ops.c.resize(static_cast<std::size_t>(tc.m) * ops.ldc);
  for (float& v : ops.a) v = dist(rng);
  for (float& v : ops.b) v = dist(rng);
  for (int i = 0; i < tc.m; ++i) {
    for (int j = 0; j < ops.ldc; ++j) {
      float& v = ops.c[static_cast<std::size_t>(i) * ops.ldc + j];
      if (j >= tc.n) {
        v = kSentinel;  // must survive: gemm writes only the m x n window
      } else {
        v = tc.beta == 0.0f ? std::numeric_limits<float>::quiet_NaN() : dist(rng);
      }
    }
  }
  return ops;
}

// |actual - expected| <= atol + rtol * |expected| with atol growing with k: fp32 sums of k
// products of [-1, 1] values, against a reference that accumulates in double.
::testing::AssertionResult matches_reference(const GemmCase& tc, const std::vector<float>& actual,
                                             const std::vector<float>& expected, int ldc) {
  const double atol = 1e-5 + 1e-6 * tc.k;
  const double rtol = 1e-5;
  int mismatches = 0;
  double worst = 0.0;
  int worst_i = 0, worst_j = 0;
  std::ostringstream first;
  for (int i = 0; i < tc.m; ++i) {
    for (int j = 0; j < ldc; ++j) {
      const std::size_t at = static_cast<std::size_t>(i) * ldc + j;
      const double want = expected[at];
      const double got = actual[at];
      const double err = std::isfinite(got) ? std::abs(got - want) : INFINITY;
      const bool ok = j >= tc.n ? got == kSentinel : err <= atol + rtol * std::abs(want);
      if (err > worst || !std::isfinite(err)) {
        worst = err;
        worst_i = i;
        worst_j = j;
      }
      if (!ok && mismatches++ < 5) {
        first << "\n  C(" << i << ", " << j << ") = " << got << ", expected " << want;
      }
    }
  }
  if (mismatches == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << tc.describe() << ": " << mismatches << " mismatches (atol " << atol << ", rtol "
         << rtol << "), worst error " << worst << " at (" << worst_i << ", " << worst_j << ")"
         << first.str();
}

// Runs one case through `kernel` ("" for the dispatched gemm) and compares with the reference.
::testing::AssertionResult check_case(const std::string& kernel, const GemmCase& tc,
                                      uint32_t seed = 42) {
  GemmOperands ops = make_operands(tc, seed);
  std::vector<float> expected = ops.c;
  gemm_reference(tc.trans_a, tc.trans_b, tc.m, tc.n, tc.k, tc.alpha, ops.a.data(), ops.lda,
                 ops.b.data(), ops.ldb, tc.beta, expected.data(), ops.ldc);
  if (kernel.empty()) {
    gemm(tc.trans_a, tc.trans_b, tc.m, tc.n, tc.k, tc.alpha, ops.a.data(), ops.lda, ops.b.data(),
         ops.ldb, tc.beta, ops.c.data(), ops.ldc);
  } else {
    digitflow::kernels::detail::gemm_with_kernel(kernel.c_str(), tc.trans_a, tc.trans_b, tc.m,
                                                 tc.n, tc.k, tc.alpha, ops.a.data(), ops.lda,
                                                 ops.b.data(), ops.ldb, tc.beta, ops.c.data(),
                                                 ops.ldc);
  }
  return matches_reference(tc, ops.c, expected, ops.ldc);
}

// Shapes of the MNIST network's conv (im2col, per image) and dense layers, forward and
// backward, as conv2d_cpu.cpp and dense_cpu.cpp call gemm.
std::vector<GemmCase> network_cases() {
  return {
      {false, false, 32, 676, 9},     // conv1 forward
      {false, false, 64, 576, 288},   // conv2 forward
      {false, true, 64, 288, 576},    // conv2 weight gradient
      {true, false, 288, 576, 64},    // conv2 input gradient
      {false, true, 64, 128, 9216},   // dense forward
      {true, false, 128, 9216, 64},   // dense weight gradient
      {false, false, 64, 9216, 128},  // dense input gradient
      {false, false, 32, 9000, 20},   // wider than one B block (nc)
  };
}

class GemmKernelTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (!digitflow::kernels::detail::gemm_kernel_available(GetParam().c_str())) {
      GTEST_SKIP() << "gemm kernel '" << GetParam()
                   << "' is not supported by this processor (needs "
                   << (GetParam() == "avx512" ? "AVX-512F" : "AVX2 and FMA") << ")";
    }
  }
};

TEST_P(GemmKernelTest, OddShapesAllTransposes) {
  const int sizes[] = {1, 7, 13, 127, 300};
  for (int ta = 0; ta < 2; ++ta) {
    for (int tb = 0; tb < 2; ++tb) {
      for (int m : sizes) {
        for (int n : sizes) {
          for (int k : sizes) {
            const GemmCase tc{ta == 1, tb == 1, m, n, k, 1.0f, 0.0f, 0};
            ASSERT_TRUE(check_case(GetParam(), tc));
          }
        }
      }
    }
  }
}

TEST_P(GemmKernelTest, AlphaBetaAndStrides) {
  const float alphas[] = {1.0f, -0.5f, 2.0f};
  const float betas[] = {0.0f, 1.0f, 0.25f};
  for (int ta = 0; ta < 2; ++ta) {
    for (int tb = 0; tb < 2; ++tb) {
      for (float alpha : alphas) {
        for (float beta : betas) {
          for (int pad : {0, 3}) {
            for (const GemmCase& shape :
                 {GemmCase{false, false, 13, 37, 300}, GemmCase{false, false, 50, 33, 7}}) {
              GemmCase tc = shape;
              tc.trans_a = ta == 1;
              tc.trans_b = tb == 1;
              tc.alpha = alpha;
              tc.beta = beta;
              tc.pad = pad;
              ASSERT_TRUE(check_case(GetParam(), tc));
            }
          }
        }
      }
    }
  }
}

TEST_P(GemmKernelTest, NetworkShapes) {
  for (GemmCase tc : network_cases()) {
    ASSERT_TRUE(check_case(GetParam(), tc));
    tc.beta = 1.0f;  // accumulation, as the conv weight gradient does across images
    ASSERT_TRUE(check_case(GetParam(), tc));
  }
}

TEST_P(GemmKernelTest, DegenerateSizesOnlyScaleC) {
  // k = 0 or alpha = 0: C = beta * C without touching A or B (beta = 0 clears NaN).
  for (const GemmCase& tc : {GemmCase{false, false, 5, 9, 0, 1.0f, 0.5f, 2},
                             GemmCase{true, true, 5, 9, 0, 1.0f, 0.0f, 2},
                             GemmCase{false, true, 7, 3, 11, 0.0f, 2.0f, 0},
                             GemmCase{true, false, 7, 3, 11, 0.0f, 0.0f, 0}}) {
    ASSERT_TRUE(check_case(GetParam(), tc));
  }
}

INSTANTIATE_TEST_SUITE_P(Kernels, GemmKernelTest,
                         ::testing::Values("avx512", "avx2", "portable"),
                         [](const ::testing::TestParamInfo<std::string>& kernel) {
                           return kernel.param;
                         });

TEST(Gemm, DispatchedKernelIsNamedAndCorrect) {
  const std::string name = digitflow::kernels::gemm_kernel_name();
  EXPECT_TRUE(name == "avx512" || name == "avx2" || name == "portable") << name;
  EXPECT_TRUE(digitflow::kernels::detail::gemm_kernel_available(name.c_str())) << name;
  std::cout << "[          ] dispatched gemm kernel: " << name << "\n";
  for (const GemmCase& tc : network_cases()) ASSERT_TRUE(check_case("", tc));
}

TEST(Gemm, ConcurrentCallsUseTheirOwnBuffers) {
  // Callers run gemm on several oneTBB workers at once; packing buffers are per thread.
  const std::vector<GemmCase> cases = {{false, false, 64, 576, 288},
                                       {true, false, 127, 300, 13},
                                       {false, true, 13, 127, 300},
                                       {true, true, 32, 676, 9}};
  std::vector<int> failures(cases.size(), 0);
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < cases.size(); ++t) {
    threads.emplace_back([&, t] {
      for (int repeat = 0; repeat < 5; ++repeat) {
        if (!check_case("", cases[t], static_cast<uint32_t>(t * 10 + repeat))) ++failures[t];
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (std::size_t t = 0; t < cases.size(); ++t) {
    EXPECT_EQ(failures[t], 0) << cases[t].describe();
  }
}

}  // namespace

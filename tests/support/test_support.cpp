// Shared test helpers; see test_support.hpp.
#include "test_support.hpp"

#include <cmath>
#include <cstdlib>
#include <random>
#include <sstream>

namespace digitflow::testing {

kernels::Tensor random_tensor(const kernels::Shape& shape, uint64_t seed, float lo, float hi) {
  kernels::Tensor t(shape);
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  for (int64_t i = 0; i < t.numel(); ++i) t[i] = dist(rng);
  return t;
}

::testing::AssertionResult all_close(const float* actual, const float* expected, int64_t n,
                                     float atol, float rtol) {
  int64_t bad = 0;
  double worst = 0.0;
  int64_t worst_at = -1;
  std::ostringstream first;
  for (int64_t i = 0; i < n; ++i) {
    double diff = std::fabs(static_cast<double>(actual[i]) - expected[i]);
    double allowed = atol + rtol * std::fabs(expected[i]);
    if (!(diff <= allowed)) {  // NaN counts as a mismatch
      if (bad < 5) first << "  [" << i << "] got " << actual[i] << ", want " << expected[i] << "\n";
      ++bad;
    }
    if (!(diff <= worst)) {
      worst = diff;
      worst_at = i;
    }
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << bad << " of " << n << " values differ beyond atol "
                                       << atol << " + rtol " << rtol << "; first:\n"
                                       << first.str() << "  worst error " << worst << " at ["
                                       << worst_at << "]";
}

::testing::AssertionResult all_close(const kernels::Tensor& actual,
                                     const kernels::Tensor& expected, float atol, float rtol) {
  if (actual.shape() != expected.shape())
    return ::testing::AssertionFailure() << "shape " << actual.shape().str() << " != expected "
                                         << expected.shape().str();
  return all_close(actual.data(), expected.data(), actual.numel(), atol, rtol);
}

TempDir::TempDir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "digitflow-test-XXXXXX").string();
  if (!mkdtemp(pattern.data())) throw std::runtime_error("cannot create a temporary directory");
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

std::filesystem::path source_dir() { return DIGITFLOW_SOURCE_DIR; }

std::filesystem::path mnist_dir() {
  if (const char* env = std::getenv("DIGITFLOW_DATA"); env && *env) return env;
  return source_dir() / "data" / "mnist";
}

bool mnist_available() {
  for (const char* name : {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                           "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"})
    if (!std::filesystem::exists(mnist_dir() / name)) return false;
  return true;
}

}  // namespace digitflow::testing

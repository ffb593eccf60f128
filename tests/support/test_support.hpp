// Helpers shared by the test executables: seeded random tensors, a tolerance check that
// prints the first mismatches and the worst error, temporary directories, the MNIST path.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <string>

#include "digitflow/kernels/tensor.hpp"

namespace digitflow::testing {

kernels::Tensor random_tensor(const kernels::Shape& shape, uint64_t seed, float lo = -1.0f,
                              float hi = 1.0f);

// Passes when |actual - expected| <= atol + rtol * |expected| everywhere; otherwise the
// message lists the first mismatches and the worst error.
::testing::AssertionResult all_close(const kernels::Tensor& actual,
                                     const kernels::Tensor& expected, float atol, float rtol);
::testing::AssertionResult all_close(const float* actual, const float* expected, int64_t n,
                                     float atol, float rtol);

// Passes when `action` throws an `Error` whose message contains every one of `parts`.
template <typename Error>
::testing::AssertionResult throws_with_message(const std::function<void()>& action,
                                               std::initializer_list<std::string> parts) {
  try {
    action();
  } catch (const Error& e) {
    const std::string message = e.what();
    for (const std::string& part : parts)
      if (message.find(part) == std::string::npos)
        return ::testing::AssertionFailure()
               << "message \"" << message << "\" does not contain \"" << part << "\"";
    return ::testing::AssertionSuccess() << message;
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "threw another kind of error: " << e.what();
  }
  return ::testing::AssertionFailure() << "nothing was thrown";
}

// A fresh directory under the system temp dir, removed when the object goes.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

std::filesystem::path source_dir();
// DIGITFLOW_DATA if set, else <source>/data/mnist.
std::filesystem::path mnist_dir();
// Whether the MNIST files are in mnist_dir(); DIGITFLOW_SKIP_WITHOUT_MNIST() skips with the reason.
bool mnist_available();

}  // namespace digitflow::testing

// Skips the calling test, saying why, when the MNIST files are missing.
#define DIGITFLOW_SKIP_WITHOUT_MNIST()               \
  if (!::digitflow::testing::mnist_available())      \
  GTEST_SKIP() << "MNIST not in " << ::digitflow::testing::mnist_dir() << ": run scripts/fetch-mnist.sh"

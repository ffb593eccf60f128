// digitflow retrain from the shell: usage mistakes are named (exit 2), a store without
// reviewed samples is refused before anything is trained or recorded (exit 1). The training
// itself is tested in tests/jobs/test_retrain.cpp.
#include <gtest/gtest.h>

#include "cli_support.hpp"
#include "test_support.hpp"

namespace digitflow::testing {
namespace {

namespace fs = std::filesystem;

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

TEST(RetrainCli, NamesUsageMistakes) {
  TempDir dir;
  std::string state = " --state-dir ";
  state += quoted(dir / "state");
  CommandResult r = run_digitflow(std::string("retrain --steps 0").append(state));
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_TRUE(contains(r.output, "--steps must be at least 1")) << r.output;
  r = run_digitflow(std::string("retrain --held-out 1").append(state));
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_TRUE(contains(r.output, "--held-out")) << r.output;
  r = run_digitflow("retrain --help");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "not worse on MNIST test")) << r.output;
}

TEST(RetrainCli, NoReviewedSamplesIsRefusedAndNothingIsRecorded) {
  TempDir dir;
  std::string state = " --state-dir ";
  state += quoted(dir / "state");
  CommandResult r = run_digitflow(std::string("retrain").append(state));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "no reviewed samples")) << r.output;
  EXPECT_FALSE(fs::exists(dir / "state" / "models"));
}

}  // namespace
}  // namespace digitflow::testing

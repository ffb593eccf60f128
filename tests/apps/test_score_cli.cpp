// `digitflow score` as a script runs it: the table, --json, the --min-exact exit status, and
// a malformed truth file named with its line.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "cli_support.hpp"
#include "test_support.hpp"

namespace {

using digitflow::testing::quoted;
using digitflow::testing::run_digitflow;

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// Truth: two strings on one page. Results: one exact, one with a wrong digit.
class ScoreCli : public ::testing::Test {
 protected:
  void SetUp() override {
    std::ofstream(truth_)
        << R"({"page": "a.png", "page_index": 0, "width": 100, "height": 50, "strings": [)"
        << R"({"text": "0412", "box": [10, 10, 40, 20], "confidence": 1},)"
        << R"({"text": "77", "box": [60, 10, 20, 20], "confidence": 1}]})"
        << "\n";
    std::ofstream(results_)
        << R"({"page": "a.png", "page_index": 0, "width": 100, "height": 50, "strings": [)"
        << R"({"text": "0412", "box": [10, 10, 40, 20], "confidence": 0.97},)"
        << R"({"text": "71", "box": [60, 10, 20, 20], "confidence": 0.6}]})"
        << "\n";
  }

  std::string files() const { return quoted(results_) + " " + quoted(truth_); }

  digitflow::testing::TempDir dir_;
  std::filesystem::path truth_ = dir_ / "truth.jsonl";
  std::filesystem::path results_ = dir_ / "results.jsonl";
};

TEST_F(ScoreCli, PrintsTheTableAndHelp) {
  digitflow::testing::CommandResult r = run_digitflow("score " + files());
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "50.00% exact-match rate")) << r.output;
  EXPECT_TRUE(contains(r.output, "83.33% digit accuracy")) << r.output;
  r = run_digitflow("score --help");
  EXPECT_EQ(r.status, 0);
  EXPECT_TRUE(contains(r.output, "Usage: digitflow score RESULTS.jsonl TRUTH.jsonl")) << r.output;
  EXPECT_FALSE(contains(r.output, "--file")) << r.output;  // the files are arguments, not an option
  EXPECT_TRUE(contains(run_digitflow("--help").output, "score")) << r.output;
}

TEST_F(ScoreCli, JsonReport) {
  const digitflow::testing::CommandResult r = run_digitflow("score --json " + files());
  ASSERT_EQ(r.status, 0) << r.output;
  const nlohmann::json j = nlohmann::json::parse(r.output);
  EXPECT_EQ(j["truth_strings"], 2);
  EXPECT_EQ(j["exact"], 1);
  EXPECT_DOUBLE_EQ(j["exact_rate"].get<double>(), 0.5);
}

TEST_F(ScoreCli, MinExactSetsTheExitStatus) {
  EXPECT_EQ(run_digitflow("score --min-exact 0.5 " + files()).status, 0);
  const digitflow::testing::CommandResult r = run_digitflow("score --min-exact 0.9 " + files());
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "below --min-exact 0.9")) << r.output;
  EXPECT_EQ(run_digitflow("score --min-exact 2 " + files()).status, 2);
}

TEST_F(ScoreCli, UsageAndFileErrors) {
  digitflow::testing::CommandResult r = run_digitflow("score " + quoted(results_));
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_TRUE(contains(r.output, "RESULTS.jsonl and TRUTH.jsonl")) << r.output;
  r = run_digitflow("score " + files() + " " + quoted(truth_));
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_TRUE(contains(r.output, "too many arguments; usage: digitflow score RESULTS.jsonl TRUTH.jsonl")) << r.output;

  std::ofstream(truth_, std::ios::app) << R"({"page": "b.png", "strings": [{"text": "1"}]})"
                                       << "\n";
  r = run_digitflow("score " + files());
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_TRUE(contains(r.output, truth_.string() + ":2:")) << r.output;
  EXPECT_TRUE(contains(r.output, "missing key \"box\"")) << r.output;

  r = run_digitflow("score " + quoted(results_) + " " + quoted(dir_ / "absent.jsonl"));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "absent.jsonl: cannot open (No such file or directory)")) << r.output;

  // The output folder given for its results.jsonl.
  r = run_digitflow("score " + quoted(dir_.path()) + " " + quoted(truth_));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_TRUE(contains(r.output, dir_.path().string() + ": is a folder, not a results file (give " +
                                     (dir_ / "results.jsonl").string() + ")"))
      << r.output;

  // Not JSON: the line named, the parser's own tag and line left out, binary bytes as '?'.
  std::ofstream(dir_ / "bad.jsonl") << "{\"page\": \"a.png\", \"strings\": []}\n\x89PNG\x01\n";
  r = run_digitflow("score " + quoted(dir_ / "bad.jsonl") + " " + quoted(truth_));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "bad.jsonl:2: not JSON (at column 1: syntax error")) << r.output;
  EXPECT_FALSE(contains(r.output, "json.exception")) << r.output;
  EXPECT_FALSE(contains(r.output, "\x89")) << r.output;
}

TEST_F(ScoreCli, SaysWhenTheFilesAreTheWrongWayRound) {
  // Results carry other candidates per digit; a truth file does not.
  const std::string digits =
      R"("digits": [{"digit": 7, "box": [60, 10, 10, 20], "confidence": 0.9, "top3": [{"digit": 7, "confidence": 0.9}, )"
      R"({"digit": 1, "confidence": 0.1}]}])";
  std::ofstream(results_) << R"({"page": "a.png", "page_index": 0, "width": 100, "height": 50, "strings": [)"
                          << R"({"text": "7", "box": [60, 10, 20, 20], "confidence": 0.9, )" << digits << "}]}\n";
  digitflow::testing::CommandResult r = run_digitflow("score " + files());
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_FALSE(contains(r.output, "warning")) << r.output;
  r = run_digitflow("score " + quoted(truth_) + " " + quoted(results_));
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "warning: " + truth_.string() + " looks like a truth file and " +
                                     results_.string() + " like results"))
      << r.output;
  EXPECT_TRUE(contains(r.output, "the order is RESULTS TRUTH")) << r.output;
}

TEST_F(ScoreCli, ATemperatureFittedOnFewStringsIsFlagged) {
  const digitflow::testing::CommandResult r = run_digitflow("score --fit-temperature " + files());
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "temperature fit over")) << r.output;
  EXPECT_TRUE(contains(r.output, "warning: the temperature was fitted on")) << r.output;
  EXPECT_TRUE(contains(r.output, "too few to trust")) << r.output;
}

}  // namespace

// digitflow run --shard K/N and digitflow merge as a scheduler runs them: three shards of a
// synthetic job merged equal one unsharded run byte for byte; bad --shard values and
// inputs that cannot be merged are named.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "cli_support.hpp"
#include "test_support.hpp"

namespace digitflow::testing {
namespace {

namespace fs = std::filesystem;

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

fs::path shard_dir(const TempDir& dir, int k) {
  std::string name = "shard-";
  name += std::to_string(k);
  return dir / name;
}

std::string shard_option(int k, int n) {
  std::string option = " --shard ";
  option += std::to_string(k);
  option += "/";
  option += std::to_string(n);
  return option;
}

TEST(ShardCli, ThreeShardsMergedEqualOneRun) {
  if (!mnist_available())
    GTEST_SKIP() << "MNIST not in " << mnist_dir() << ": run scripts/fetch-mnist.sh";
  TempDir dir;
  const fs::path job = dir / "job", whole = dir / "whole", merged = dir / "merged";
  // Six pages: a PNG, a JPEG, a two-page TIFF and a two-page PDF.
  CommandResult r =
      run_digitflow("synth --out " + quoted(job) + " --pages 6 --seed 11 --kind checks");
  ASSERT_EQ(r.status, 0) << r.output;
  r = run_digitflow("run " + quoted(job) + " --out " + quoted(whole) + " --threads 2");
  ASSERT_EQ(r.status, 0) << r.output;
  int64_t pages = 0;
  for (int k = 0; k < 3; ++k) {
    r = run_digitflow("run " + quoted(job) + " --out " + quoted(shard_dir(dir, k)) +
                      " --threads 2" + shard_option(k, 3));
    ASSERT_EQ(r.status, 0) << r.output;
    EXPECT_TRUE(contains(r.output, "shard " + std::to_string(k) + "/3: ")) << r.output;
    const nlohmann::json summary =
        nlohmann::json::parse(read_file(shard_dir(dir, k) / "summary.json"));
    EXPECT_EQ(summary["shard"], nlohmann::json({{"index", k}, {"count", 3}}));
    pages += summary["pages"].get<int64_t>();
  }
  EXPECT_EQ(pages, 6);
  r = run_digitflow("merge " + quoted(shard_dir(dir, 2)) + " " + quoted(shard_dir(dir, 0)) + " " +
                    quoted(shard_dir(dir, 1)) + " --out " + quoted(merged));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "merged 3 shards: 6 pages")) << r.output;
  const std::string jsonl = read_file(whole / "results.jsonl");
  ASSERT_FALSE(jsonl.empty());
  EXPECT_EQ(read_file(merged / "results.jsonl"), jsonl);
  EXPECT_EQ(read_file(merged / "results.csv"), read_file(whole / "results.csv"));
  const nlohmann::json a = nlohmann::json::parse(read_file(whole / "summary.json"));
  const nlohmann::json b = nlohmann::json::parse(read_file(merged / "summary.json"));
  for (const char* key : {"pages", "failed_pages", "strings", "digits", "low_confidence_strings",
                          "images_scored", "images_read_in_full", "int8", "pages_listed", "pages_without_resolution",
                          "skipped_files", "shard", "job"})
    EXPECT_EQ(a[key], b[key]) << key;
}

TEST(ShardCli, BadShardValuesAreNamed) {
  TempDir dir;
  fs::create_directories(dir / "job");
  const std::string run =
      "run " + quoted(dir / "job") + " --out " + quoted(dir / "out") + " --shard ";
  CommandResult r = run_digitflow(run + "3/3");
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.output, "--shard 3/3: K counts from 0")) << r.output;
  EXPECT_TRUE(contains(r.output, "0/3 .. 2/3")) << r.output;
  for (const char* bad : {"1", "a/3", "-1/3", "1/3/4"}) {
    r = run_digitflow(run + "'" + bad + "'");
    EXPECT_EQ(r.status, 2) << bad;
    EXPECT_TRUE(contains(r.output, "--shard " + std::string(bad) + ": expected K/N")) << r.output;
  }
  r = run_digitflow(run + "0/0");
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.output, "--shard 0/0: N must be between 1 and")) << r.output;
  r = run_digitflow("run --help");
  EXPECT_TRUE(contains(r.output, "--shard K/N")) << r.output;
  EXPECT_TRUE(contains(r.output, "JOB_COMPLETION_INDEX")) << r.output;
}

TEST(ShardCli, MergeRefusesWhatCannotBeMerged) {
  TempDir dir;
  fs::create_directories(dir / "job");
  // Shards of an empty folder: real outputs, no model work.
  for (int k = 0; k < 2; ++k) {
    CommandResult r = run_digitflow("run " + quoted(dir / "job") + " --out " +
                                    quoted(shard_dir(dir, k)) + shard_option(k, 2));
    ASSERT_EQ(r.status, 0) << r.output;
  }
  const std::string both = quoted(shard_dir(dir, 0)) + " " + quoted(shard_dir(dir, 1));
  CommandResult r = run_digitflow("merge " + both + " --out " + quoted(dir / "merged"));
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "merged 2 shards: 0 pages")) << r.output;

  r = run_digitflow("merge " + quoted(shard_dir(dir, 0)) + " --out " + quoted(dir / "merged"));
  EXPECT_EQ(r.status, 1);
  EXPECT_TRUE(contains(r.output, "shard 1/2 is missing")) << r.output;
  r = run_digitflow("merge " + both + " --out " + quoted(shard_dir(dir, 1)));
  EXPECT_EQ(r.status, 1);
  EXPECT_TRUE(contains(r.output, "shard-1 is also an input")) << r.output;
  r = run_digitflow("merge " + both + " " + quoted(dir / "absent") + " --out " +
                    quoted(dir / "merged"));
  EXPECT_EQ(r.status, 1);
  EXPECT_TRUE(contains(r.output, "absent: no such folder")) << r.output;
  std::ofstream(shard_dir(dir, 1) / "results.jsonl") << "{\"page\": \"a.png\", \"strings\": [\n";
  r = run_digitflow("merge " + both + " --out " + quoted(dir / "merged"));
  EXPECT_EQ(r.status, 1);
  EXPECT_TRUE(contains(r.output, "shard-1/results.jsonl:1: not JSON")) << r.output;
  r = run_digitflow("merge --out " + quoted(dir / "merged"));
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.output, "no shard output folders given")) << r.output;
  r = run_digitflow("merge " + both);
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.output, "--out DIR is required")) << r.output;
}

}  // namespace
}  // namespace digitflow::testing

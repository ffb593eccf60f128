// Joining shard outputs (digitflow merge): the merged results.jsonl and results.csv equal,
// byte for byte, those one output of the whole folder holds; summary.json adds up; every
// kind of bad input is refused with its folder, file and line, and the output left alone.
// The outputs are written here as run_job writes them, so no model runs.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "digitflow/pipeline/decode.hpp"
#include "digitflow/pipeline/merge.hpp"
#include "digitflow/pipeline/results.hpp"
#include "digitflow/pipeline/run.hpp"
#include "test_support.hpp"

namespace digitflow::pipeline {
namespace {

namespace fs = std::filesystem;
using digitflow::testing::TempDir;
using digitflow::testing::throws_with_message;
using nlohmann::json;

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

PageResult page(const std::string& name, int page_index, int strings) {
  PageResult p;
  p.page = name;
  p.page_index = page_index;
  p.width = 1650;
  p.height = 720;
  for (int i = 0; i < strings; ++i) {
    StringResult s;
    s.text = std::to_string(40 + i);
    s.box = {100 * i, 200, 60, 40};
    s.confidence = 0.5 + 0.1 * i;
    for (int d = 0; d < 2; ++d)
      s.digits.push_back(
          {s.text[static_cast<size_t>(d)] - '0', {100 * i + 30 * d, 200, 30, 40}, 0.9f, {}});
    p.strings.push_back(s);
  }
  return p;
}

// A folder's pages in run_job's order: one-page files, a three-page TIFF, a failed page, a
// page without strings, names that CSV must quote (a comma, quotes, a line break).
std::vector<PageResult> folder_pages() {
  std::vector<PageResult> pages;
  for (int i = 0; i < 24; ++i) {
    std::string name = i % 2 ? "a/" : "b/";
    name += "scan-";
    name += std::to_string(100 + i);
    name += ".png";
    pages.push_back(page(name, 0, i % 4));
  }
  for (int i = 0; i < 3; ++i) pages.push_back(page("b/multi.tif", i, 1 + i));
  PageResult broken = page("c/broken.png", 0, 0);
  broken.error = "broken.png: not an image, a text file";
  pages.push_back(broken);
  pages.push_back(page("c/blank.png", 0, 0));
  pages.push_back(page("c/smith, john \"jr\".png", 0, 2));
  pages.push_back(page("c/line\nbreak.png", 0, 1));
  pages.push_back(page("d/\xC3\xBC.png", 0, 1));
  std::sort(pages.begin(), pages.end(), [](const PageResult& x, const PageResult& y) {
    return std::pair(x.page, x.page_index) < std::pair(y.page, y.page_index);
  });
  return pages;
}

// An output folder as run_job writes it.
void write_output(const fs::path& dir, const std::vector<PageResult>& pages, const Shard& shard,
                  double seconds, const std::vector<std::string>& skipped = {}) {
  fs::create_directories(dir);
  std::ofstream jsonl(dir / "results.jsonl", std::ios::binary),
      csv(dir / "results.csv", std::ios::binary);
  write_csv_header(csv);
  RunSummary summary;
  for (const PageResult& p : pages) {
    jsonl << to_json(p).dump(-1, ' ', false, json::error_handler_t::replace) << '\n';
    write_csv_rows(csv, p);
    ++summary.pages;
    if (p.error) ++summary.failed_pages;
    summary.strings += static_cast<int64_t>(p.strings.size());
    for (const StringResult& s : p.strings) summary.digits += static_cast<int64_t>(s.digits.size());
  }
  summary.seconds = seconds;
  summary.stages.decode = seconds / 2;
  summary.stages.infer = seconds / 4;
  json s = to_json(summary);
  s["job"] = "/scans/night-1";
  s["pages_listed"] = pages.size();
  s["shard"] = {{"index", shard.index}, {"count", shard.count}};
  s["skipped_files"] = skipped;
  std::ofstream(dir / "summary.json") << s.dump(2) << "\n";
}

// The whole folder written once, and as three shards.
struct ShardedOutputs {
  TempDir dir;
  std::vector<PageResult> pages = folder_pages();
  ShardedOutputs() {
    write_output(dir / "whole", pages, {0, 1}, 9.0, {"notes.txt", "z/truth.jsonl"});
    for (int k = 0; k < 3; ++k) {
      std::vector<PageResult> mine;
      for (const PageResult& p : pages)
        if (shard_of(p.page, 3) == k) mine.push_back(p);
      std::vector<std::string> skipped;
      for (const char* name : {"notes.txt", "z/truth.jsonl"})
        if (shard_of(name, 3) == k) skipped.push_back(name);
      write_output(shard(k), mine, {k, 3}, 2.0 + k, skipped);
    }
  }
  fs::path shard(int k) const {
    std::string name = "shard-";
    name += std::to_string(k);
    return dir / name;
  }
  std::vector<fs::path> all() const { return {shard(2), shard(0), shard(1)}; }  // any order
  fs::path out() const { return dir / "merged"; }
};

TEST(Merge, ShardsMergeToExactlyTheWholeFoldersOutput) {
  ShardedOutputs o;
  for (int k = 0; k < 3; ++k)
    ASSERT_LT(read_results((o.shard(k) / "results.jsonl").string()).size(), o.pages.size());
  const MergeReport report = merge_outputs(o.all(), o.out());
  EXPECT_EQ(report.shards, 3);
  EXPECT_EQ(report.pages, static_cast<int64_t>(o.pages.size()));
  EXPECT_EQ(report.failed_pages, 1);
  EXPECT_TRUE(report.warnings.empty());
  EXPECT_EQ(read_file(o.out() / "results.jsonl"), read_file(o.dir / "whole" / "results.jsonl"));
  EXPECT_EQ(read_file(o.out() / "results.csv"), read_file(o.dir / "whole" / "results.csv"));
  EXPECT_FALSE(fs::exists(o.out() / "results.jsonl.part"));

  const json merged = json::parse(read_file(o.out() / "summary.json"));
  const json whole = json::parse(read_file(o.dir / "whole" / "summary.json"));
  for (const char* key : {"pages", "failed_pages", "strings", "digits", "pages_listed",
                          "pages_without_resolution", "skipped_files", "job", "cancelled"})
    EXPECT_EQ(merged[key], whole[key]) << key;
  EXPECT_EQ(merged["shard"], json({{"index", 0}, {"count", 1}}));
  EXPECT_EQ(merged["merged"]["shards"], 3);
  EXPECT_DOUBLE_EQ(merged["seconds"].get<double>(), 4.0);                  // the longest shard
  EXPECT_DOUBLE_EQ(merged["stage_seconds"]["decode"].get<double>(), 4.5);  // 1 + 1.5 + 2
  EXPECT_DOUBLE_EQ(merged["pages_per_s"].get<double>(),
                   std::round(1000.0 * static_cast<double>(o.pages.size()) / 4.0) / 1000);
}

TEST(Merge, Int8OnlyWhereEveryShardReadInInt8AndEachReasonForFp32Once) {
  ShardedOutputs o;
  auto set = [&](int k, bool int8, const std::string& why) {
    const fs::path summary = o.shard(k) / "summary.json";
    json s = json::parse(read_file(summary));
    s["int8"] = int8;
    s["int8_fallback"] = why;
    std::ofstream(summary) << s.dump();
  };
  auto merged = [&] {
    merge_outputs(o.all(), o.out());
    return json::parse(read_file(o.out() / "summary.json"));
  };
  for (int k = 0; k < 3; ++k) set(k, true, "");
  json m = merged();
  EXPECT_TRUE(m["int8"].get<bool>());
  EXPECT_EQ(m["int8_fallback"], "");
  set(1, false, "the model: no calibration");
  set(2, false, "the model: no calibration");
  set(0, true, "the screening model: no calibration");
  m = merged();
  EXPECT_FALSE(m["int8"].get<bool>());
  // In shard order (they were given as 2, 0, 1), each reason once.
  EXPECT_EQ(m["int8_fallback"], "the screening model: no calibration; the model: no calibration");
  // Reasons are compared one by one, not as the whole line of a shard.
  set(0, false, "the model: no calibration");
  set(1, false, "the model: no calibration; the partner model: no calibration");
  set(2, true, "");
  EXPECT_EQ(merged()["int8_fallback"], "the model: no calibration; the partner model: no calibration");
}

TEST(Merge, OneUnshardedOutputMergesToItselfAndOverlaysAreCopied) {
  ShardedOutputs o;
  merge_outputs({o.dir / "whole"}, o.out());
  EXPECT_EQ(read_file(o.out() / "results.csv"), read_file(o.dir / "whole" / "results.csv"));
  fs::create_directories(o.shard(1) / "overlays" / "a");
  std::ofstream(o.shard(1) / "overlays" / "a" / "scan-101.png") << "png bytes";
  const MergeReport report = merge_outputs(o.all(), o.out());
  EXPECT_TRUE(report.overlays);
  EXPECT_EQ(read_file(o.out() / "overlays" / "a" / "scan-101.png"), "png bytes");
  // Merged again from shards without overlays: the old ones go with the old results.
  fs::remove_all(o.shard(1) / "overlays");
  EXPECT_FALSE(merge_outputs(o.all(), o.out()).overlays);
  EXPECT_FALSE(fs::exists(o.out() / "overlays"));
}

TEST(Merge, RefusesMissingDifferentAndRepeatedShards) {
  ShardedOutputs o;
  EXPECT_TRUE(throws_with_message<MergeError>(
      [&] {
        merge_outputs({o.shard(0), o.shard(1)}, o.out());
      },
      {"shard 2/3 is missing", "2 of 3 given"}));
  EXPECT_TRUE(throws_with_message<MergeError>([&] { merge_outputs({o.shard(1)}, o.out()); },
                                              {"shards 0/3, 2/3 are missing"}));
  write_output(o.dir / "other", {}, {1, 4}, 1.0);
  EXPECT_TRUE(throws_with_message<MergeError>(
      [&] {
        merge_outputs({o.shard(0), o.dir / "other", o.shard(1), o.shard(2)}, o.out());
      },
      {"shard-0 is shard 0/3", "other is shard 1/4", "different splits"}));
  fs::copy(o.shard(1), o.dir / "copy", fs::copy_options::recursive);
  EXPECT_TRUE(throws_with_message<MergeError>(
      [&] {
        merge_outputs({o.shard(0), o.shard(1), o.dir / "copy", o.shard(2)}, o.out());
      },
      {"shard-1 and ", "copy are both shard 1/3"}));
  EXPECT_TRUE(throws_with_message<MergeError>(
      [&] {
        merge_outputs({o.shard(0), o.shard(0)}, o.out());
      },
      {"the same folder, given twice"}));
  EXPECT_TRUE(throws_with_message<MergeError>(
      [&] {
        merge_outputs({o.shard(0), o.shard(1), o.shard(2)}, o.shard(1));
      },
      {"shard-1 is also an input"}));
  EXPECT_TRUE(
      throws_with_message<MergeError>([&] { merge_outputs({}, o.out()); }, {"no shard outputs"}));
  EXPECT_FALSE(fs::exists(o.out()));
}

TEST(Merge, RefusesAPageInTwoInputsOrOfAnotherShard) {
  ShardedOutputs o;
  // A page of shard h written into another shard's output.
  const PageResult& stray = o.pages.front();
  const int home = shard_of(stray.page, 3), other = (home + 1) % 3;
  std::ofstream(o.shard(other) / "results.jsonl", std::ios::app) << to_json(stray).dump() << "\n";
  EXPECT_TRUE(throws_with_message<MergeError>(
      [&] { merge_outputs(o.all(), o.out()); },
      {o.shard(other).string(), "results.jsonl:", stray.page,
       std::string("belongs to shard ") + to_string(Shard{home, 3})}));
  // A name that was not UTF-8 (stored with U+FFFD) cannot be placed by its hash; the
  // join still finds it twice.
  ShardedOutputs p;
  PageResult odd = page("zz/\xEF\xBF\xBD.png", 0, 1);
  for (int k : {0, 2}) {
    std::vector<PageResult> mine;
    for (const PageResult& q : p.pages)
      if (shard_of(q.page, 3) == k) mine.push_back(q);
    mine.push_back(odd);
    write_output(p.shard(k), mine, {k, 3}, 1.0);
  }
  EXPECT_TRUE(throws_with_message<MergeError>(
      [&] { merge_outputs(p.all(), p.out()); },
      {"page \"zz/\xEF\xBF\xBD.png\" (page_index 0) is in two inputs",
       "shard-0/results.jsonl:", "shard-2/results.jsonl:"}));
}

TEST(Merge, RefusesMalformedOrDisorderedResultsNamingFileAndLine) {
  ShardedOutputs o;
  const fs::path jsonl = o.shard(1) / "results.jsonl";
  const std::string good = read_file(jsonl);
  const std::string first_line = good.substr(0, good.find('\n') + 1);
  const std::string rest = good.substr(first_line.size());
  std::ofstream(jsonl, std::ios::binary) << first_line << "{\"page\": \"a/x.png\", \"strings\": [\n"
                                         << rest;
  EXPECT_TRUE(throws_with_message<MergeError>([&] { merge_outputs(o.all(), o.out()); },
                                              {jsonl.string() + ":2: not JSON"}));
  std::ofstream(jsonl, std::ios::binary) << first_line << R"({"page": "a/x.png"})"
                                         << "\n";
  EXPECT_TRUE(throws_with_message<MergeError>([&] { merge_outputs(o.all(), o.out()); },
                                              {jsonl.string() + ":2:", "missing key \"strings\""}));
  std::ofstream(jsonl, std::ios::binary) << rest << first_line;
  EXPECT_TRUE(throws_with_message<MergeError>(
      [&] { merge_outputs(o.all(), o.out()); },
      {jsonl.string() + ":", "not in the order digitflow run writes"}));
  std::ofstream(jsonl, std::ios::binary) << first_line << first_line << rest;
  EXPECT_TRUE(throws_with_message<MergeError>([&] { merge_outputs(o.all(), o.out()); },
                                              {jsonl.string() + ":2:", "again"}));
  std::ofstream(jsonl, std::ios::binary) << first_line;
  EXPECT_TRUE(throws_with_message<MergeError>(
      [&] { merge_outputs(o.all(), o.out()); },
      {jsonl.string() + " has 1 pages but its summary.json counts", "cut short"}));
  fs::remove(jsonl);
  EXPECT_TRUE(throws_with_message<MergeError>([&] { merge_outputs(o.all(), o.out()); },
                                              {o.shard(1).string() + ": no results.jsonl"}));
  std::ofstream(jsonl, std::ios::binary) << good;

  const fs::path csv = o.shard(0) / "results.csv";
  const std::string good_csv = read_file(csv);
  std::ofstream(csv, std::ios::binary) << "page,text\n";
  EXPECT_TRUE(throws_with_message<MergeError>([&] { merge_outputs(o.all(), o.out()); },
                                              {csv.string() + ":1: not the results.csv header"}));
  std::ofstream(csv, std::ios::binary) << good_csv << "\"unclosed,0,0\n";
  EXPECT_TRUE(throws_with_message<MergeError>([&] { merge_outputs(o.all(), o.out()); },
                                              {csv.string() + ":", "not closed"}));
  std::ofstream(csv, std::ios::binary) << good_csv << "zz/x.png,first,0\n";
  EXPECT_TRUE(throws_with_message<MergeError>([&] { merge_outputs(o.all(), o.out()); },
                                              {csv.string() + ":", "not a results.csv row"}));
  // A row more than its results.jsonl's pages make: the files are not of one run.
  std::ofstream(csv, std::ios::binary) << good_csv << "zz/x.png,0,0,12,0.5,1,2,3,4,,,\n";
  EXPECT_TRUE(throws_with_message<MergeError>(
      [&] { merge_outputs(o.all(), o.out()); },
      {csv.string() + " has ", "rows but the pages of its results.jsonl make"}));
}

TEST(Merge, ShardsThatNameDifferentJobFoldersMergeWithAWarning) {
  ShardedOutputs o;
  const fs::path summary = o.shard(1) / "summary.json";
  json s = json::parse(read_file(summary));
  s["job"] = "/mnt/node7/scans/night-1";
  std::ofstream(summary) << s.dump();
  const MergeReport report = merge_outputs(o.all(), o.out());
  ASSERT_EQ(report.warnings.size(), 1u);
  EXPECT_NE(report.warnings[0].find("different job folders"), std::string::npos)
      << report.warnings[0];
  EXPECT_EQ(json::parse(read_file(o.out() / "summary.json"))["job"], "/scans/night-1");
}

TEST(Merge, RefusesUnfinishedOrStoppedRunsAndLeavesTheOutputAlone) {
  ShardedOutputs o;
  fs::create_directories(o.out());
  std::ofstream(o.out() / "results.jsonl") << "an earlier merge\n";
  const fs::path summary = o.shard(2) / "summary.json";
  const std::string good = read_file(summary);
  fs::remove(summary);
  EXPECT_TRUE(throws_with_message<MergeError>(
      [&] { merge_outputs(o.all(), o.out()); },
      {o.shard(2).string() + ": no summary.json", "finished digitflow run"}));
  json s = json::parse(good);
  s["cancelled"] = true;
  std::ofstream(summary) << s.dump();
  EXPECT_TRUE(throws_with_message<MergeError>([&] { merge_outputs(o.all(), o.out()); },
                                              {o.shard(2).string() + ": the run was stopped"}));
  s["cancelled"] = false;
  s.erase("shard");
  std::ofstream(summary) << s.dump();
  EXPECT_TRUE(throws_with_message<MergeError>([&] { merge_outputs(o.all(), o.out()); },
                                              {summary.string() + ": no \"shard\""}));
  std::ofstream(summary) << "{\"pages\": ";
  EXPECT_TRUE(throws_with_message<MergeError>([&] { merge_outputs(o.all(), o.out()); },
                                              {summary.string() + ": not JSON"}));
  // A bad line found while writing: the earlier output is still there, no temporary files.
  std::ofstream(summary) << good;
  std::ofstream(o.shard(2) / "results.csv", std::ios::app) << "zz/x.png,first,0\n";
  EXPECT_THROW(merge_outputs(o.all(), o.out()), MergeError);
  EXPECT_EQ(read_file(o.out() / "results.jsonl"), "an earlier merge\n");
  for (const fs::directory_entry& entry : fs::directory_iterator(o.out()))
    EXPECT_EQ(entry.path().filename(), "results.jsonl") << entry.path();
}

}  // namespace
}  // namespace digitflow::pipeline

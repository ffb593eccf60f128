// Splitting a job folder into shards (digitflow run --shard K/N): the split depends only on
// each file's path, the shards are disjoint and together hold every page in the listing's
// order, a multi-page file stays in one shard, and K/N is validated.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <opencv2/imgcodecs.hpp>
#include <set>

#include "digitflow/pipeline/decode.hpp"
#include "test_support.hpp"

namespace digitflow::pipeline {
namespace {

namespace fs = std::filesystem;
using digitflow::testing::TempDir;
using digitflow::testing::throws_with_message;

// 30 one-page PNGs in three folders, a three-page TIFF, two files that are not pages.
struct ShardJob {
  TempDir dir;
  ShardJob() {
    const cv::Mat blank(16, 24, CV_8U, cv::Scalar(230));
    for (int i = 0; i < 30; ++i) {
      std::string folder = "batch", name = "scan-";
      folder += std::to_string(i % 3);
      name += std::to_string(i);
      name += ".png";
      const fs::path file = root() / folder / name;
      fs::create_directories(file.parent_path());
      cv::imwrite(file.string(), blank);
    }
    cv::imwritemulti((root() / "batch1" / "multi.tif").string(),
                     std::vector<cv::Mat>{blank, blank, blank});
    std::ofstream(root() / "notes.txt") << "scanned on Monday\n";
    std::ofstream(root() / "batch2" / "truth.jsonl") << "{}\n";
  }
  fs::path root() const { return dir.path() / "job"; }
};

using PageSet = std::set<std::pair<std::string, int>>;

TEST(Shard, HashIsFnv1aOfThePathSoEveryMachineSplitsAlike) {
  // Pinned: changing the function would re-split folders whose shards are already written.
  EXPECT_EQ(shard_of("", 1000), 37);  // 14695981039346656037, the FNV-1a 64 offset basis
  EXPECT_EQ(shard_of("a", 1000), 996);
  EXPECT_EQ(shard_of("batch1/check-001.png", 7), 0);
  EXPECT_EQ(shard_of("batch2/check-005.pdf", 3), 2);
  for (const char* name : {"a", "batch1/check-001.png", "x/y/z.tif"})
    EXPECT_EQ(shard_of(name, 1), 0);
}

TEST(Shard, ParsesKOfNAndNamesWhatIsWrong) {
  EXPECT_EQ(parse_shard("0/1"), (Shard{0, 1}));
  EXPECT_EQ(parse_shard("3/4"), (Shard{3, 4}));
  EXPECT_EQ(parse_shard("999999/1000000"), (Shard{999999, 1000000}));
  EXPECT_EQ(to_string(Shard{2, 5}), "2/5");
  for (const char* text :
       {"", "3", "1/", "/4", "a/4", "1/b", "-1/4", "1/-4", "1/2/3", " 1/2", "1.0/2", "1/2 "})
    EXPECT_TRUE(
        throws_with_message<std::invalid_argument>([&] { parse_shard(text); }, {"expected K/N"}))
        << text;
  EXPECT_TRUE(throws_with_message<std::invalid_argument>([] { parse_shard("4/4"); },
                                                         {"counts from 0", "0/4 .. 3/4"}));
  EXPECT_TRUE(throws_with_message<std::invalid_argument>([] { parse_shard("0/0"); },
                                                         {"N must be between 1 and"}));
  EXPECT_TRUE(throws_with_message<std::invalid_argument>([] { parse_shard("0/1000001"); },
                                                         {"N must be between 1"}));
  EXPECT_TRUE(throws_with_message<std::invalid_argument>([] { parse_shard("0/9999999999"); },
                                                         {"expected K/N"}));
}

TEST(Shard, ShardsAreDisjointCoverEveryPageInOrderAndKeepAFileTogether) {
  ShardJob job;
  std::vector<std::string> all_skipped;
  const std::vector<PageRef> all = list_pages(job.root(), {}, &all_skipped);
  ASSERT_EQ(all.size(), 33u);
  ASSERT_EQ(all_skipped, (std::vector<std::string>{"batch2/truth.jsonl", "notes.txt"}));
  for (int count : {1, 2, 3, 7, 50}) {
    PageSet seen;
    std::set<std::string> skipped;
    std::map<std::string, int> shard_of_file;
    for (int index = 0; index < count; ++index) {
      std::vector<std::string> shard_skipped;
      const std::vector<PageRef> pages = list_pages(job.root(), {}, &shard_skipped, {index, count});
      // In the listing's order: a subsequence of the whole folder's list.
      auto at = all.begin();
      for (const PageRef& page : pages) {
        at = std::find_if(at, all.end(), [&](const PageRef& p) {
          return p.name == page.name && p.page_index == page.page_index;
        });
        ASSERT_NE(at, all.end()) << page.name << " out of order in shard " << index << "/" << count;
        EXPECT_TRUE(seen.insert({page.name, page.page_index}).second)
            << page.name << " in two shards";
        EXPECT_EQ(shard_of(page.name, count), index);
        EXPECT_EQ(shard_of_file.emplace(page.name, index).first->second, index)
            << page.name << ": pages of one file in two shards";
      }
      skipped.insert(shard_skipped.begin(), shard_skipped.end());
    }
    EXPECT_EQ(seen.size(), all.size()) << "N = " << count << ": pages left out";
    EXPECT_EQ(skipped, std::set<std::string>(all_skipped.begin(), all_skipped.end()));
    if (count == 3) {  // the split spreads these names over all three shards
      for (int index = 0; index < count; ++index)
        EXPECT_FALSE(list_pages(job.root(), {}, nullptr, {index, 3}).empty());
    }
  }
  const std::vector<PageRef> whole = list_pages(job.root(), {}, nullptr, {0, 1});
  ASSERT_EQ(whole.size(), all.size());
  EXPECT_TRUE(
      std::equal(whole.begin(), whole.end(), all.begin(), [](const PageRef& a, const PageRef& b) {
        return a.name == b.name && a.page_index == b.page_index;
      }));
}

TEST(Shard, AddingAFileMovesNoOther) {
  ShardJob job;
  auto split = [&](int count) {
    std::map<std::pair<std::string, int>, int> where;
    for (int index = 0; index < count; ++index)
      for (const PageRef& page : list_pages(job.root(), {}, nullptr, {index, count}))
        where[{page.name, page.page_index}] = index;
    return where;
  };
  const auto before = split(4);
  cv::imwrite((job.root() / "batch0" / "added-late.png").string(),
              cv::Mat(16, 24, CV_8U, cv::Scalar(230)));
  fs::remove(job.root() / "batch1" / "scan-1.png");
  const auto after = split(4);
  EXPECT_EQ(after.size(), before.size());
  for (const auto& [page, index] : before)
    if (page.first != "batch1/scan-1.png") {
      EXPECT_EQ(after.at(page), index) << page.first;
    }
}

TEST(Shard, ListPagesRefusesAShardOutsideItsCount) {
  ShardJob job;
  EXPECT_THROW(list_pages(job.root(), {}, nullptr, {3, 3}), std::invalid_argument);
  EXPECT_THROW(list_pages(job.root(), {}, nullptr, {0, 0}), std::invalid_argument);
}

}  // namespace
}  // namespace digitflow::pipeline

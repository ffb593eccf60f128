// Tests of the results format: a page survives to_json and page_from_json, a malformed
// results.jsonl is refused with its file, line and key, and the CSV quotes what needs it.
#include <gtest/gtest.h>

#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "digitflow/pipeline/results.hpp"
#include "test_support.hpp"

namespace digitflow::pipeline {
namespace {

using digitflow::testing::TempDir;
using digitflow::testing::throws_with_message;

PageResult sample_page() {
  PageResult page;
  page.page = "batch1/check-004.png";
  page.page_index = 2;
  page.width = 1650;
  page.height = 720;
  StringResult s;
  s.text = "04";
  s.box = {100, 200, 60, 40};
  s.confidence = 0.9312;
  DigitResult d0;
  d0.digit = 0;
  d0.box = {100, 200, 30, 40};
  d0.confidence = 0.99f;
  d0.top = {{0, 0.99f}, {6, 0.0075f}, {8, 0.0025f}};
  DigitResult d4 = d0;
  d4.digit = 4;
  d4.box = {130, 200, 30, 40};
  d4.confidence = 0.9406f;
  d4.top = {{4, 0.9406f}, {9, 0.05f}, {1, 0.0094f}};
  s.digits = {d0, d4};
  page.strings = {s};
  FieldResult f;
  f.name = "account";
  f.rule = "luhn";
  f.text = "04";
  f.found = true;
  f.valid = false;
  f.corrected = true;
  f.confidence = 0.5;
  f.box = s.box;
  page.fields = {f};
  return page;
}

void expect_same(const PageResult& a, const PageResult& b) {
  EXPECT_EQ(a.page, b.page);
  EXPECT_EQ(a.page_index, b.page_index);
  EXPECT_EQ(a.width, b.width);
  EXPECT_EQ(a.height, b.height);
  EXPECT_EQ(a.error, b.error);
  ASSERT_EQ(a.strings.size(), b.strings.size());
  for (size_t i = 0; i < a.strings.size(); ++i) {
    const StringResult &x = a.strings[i], &y = b.strings[i];
    EXPECT_EQ(x.text, y.text);
    EXPECT_EQ(x.box, y.box);
    EXPECT_NEAR(x.confidence, y.confidence, 1e-4);
    ASSERT_EQ(x.digits.size(), y.digits.size());
    for (size_t j = 0; j < x.digits.size(); ++j) {
      EXPECT_EQ(x.digits[j].digit, y.digits[j].digit);
      EXPECT_EQ(x.digits[j].box, y.digits[j].box);
      EXPECT_NEAR(x.digits[j].confidence, y.digits[j].confidence, 1e-4);
      ASSERT_EQ(x.digits[j].top.size(), y.digits[j].top.size());
      for (size_t k = 0; k < x.digits[j].top.size(); ++k) {
        EXPECT_EQ(x.digits[j].top[k].digit, y.digits[j].top[k].digit);
        EXPECT_NEAR(x.digits[j].top[k].confidence, y.digits[j].top[k].confidence, 1e-4);
      }
    }
  }
  ASSERT_EQ(a.fields.size(), b.fields.size());
  for (size_t i = 0; i < a.fields.size(); ++i) {
    const FieldResult &x = a.fields[i], &y = b.fields[i];
    EXPECT_EQ(x.name, y.name);
    EXPECT_EQ(x.rule, y.rule);
    EXPECT_EQ(x.text, y.text);
    EXPECT_EQ(x.found, y.found);
    EXPECT_EQ(x.valid, y.valid);
    EXPECT_EQ(x.corrected, y.corrected);
    EXPECT_NEAR(x.confidence, y.confidence, 1e-4);
    EXPECT_EQ(x.box, y.box);
  }
}

std::string write_lines(const TempDir& dir, const std::string& text) {
  const auto path = dir / "results.jsonl";
  std::ofstream(path) << text;
  return path.string();
}

TEST(Results, JsonRoundTrip) {
  const PageResult page = sample_page();
  const nlohmann::json j = to_json(page);
  EXPECT_EQ(j["page"], "batch1/check-004.png");
  EXPECT_EQ(j["strings"][0]["box"], nlohmann::json::array({100, 200, 60, 40}));
  EXPECT_EQ(j["strings"][0]["digits"][1]["digit"], 4);
  expect_same(page_from_json(j), page);
  expect_same(page_from_json(nlohmann::json::parse(j.dump())), page);

  PageResult failed;
  failed.page = "bad.tif";
  failed.error = "cannot decode bad.tif";
  const nlohmann::json jf = to_json(failed);
  EXPECT_EQ(jf["error"], "cannot decode bad.tif");
  EXPECT_TRUE(jf["strings"].empty());
  EXPECT_FALSE(jf.contains("fields"));
  expect_same(page_from_json(jf), failed);
}

TEST(Results, ReadResultsReadsEveryLineAndSkipsBlankOnes) {
  TempDir dir;
  const std::string path = write_lines(
      dir, to_json(sample_page()).dump() + "\n\n" + R"({"page": "b.png", "strings": []})" + "\n");
  const auto pages = read_results(path);
  ASSERT_EQ(pages.size(), 2u);
  expect_same(pages[0], sample_page());
  EXPECT_EQ(pages[1].page, "b.png");
  EXPECT_EQ(pages[1].page_index, 0);
}

TEST(Results, MalformedLineNamesFileAndLine) {
  TempDir dir;
  const std::string path = write_lines(dir, R"({"page": "a.png", "strings": []})"
                                            "\n"
                                            R"({"page": "b.png", "strings": [)"
                                            "\n");
  EXPECT_TRUE(throws_with_message<ResultsFormatError>([&] { read_results(path); },
                                                      {path + ":2:", "not JSON"}));
}

TEST(Results, MissingOrMistypedKeyIsNamed) {
  TempDir dir;
  std::string path = write_lines(dir, R"({"page": "a.png"})"
                                      "\n");
  EXPECT_TRUE(throws_with_message<ResultsFormatError>([&] { read_results(path); },
                                                      {path + ":1:", "missing key \"strings\""}));
  path = write_lines(dir,
                     "\n"
                     R"({"page": "a.png", "strings": [{"text": "12", "box": [1, 2, 3]}]})"
                     "\n");
  EXPECT_TRUE(throws_with_message<ResultsFormatError>(
      [&] { read_results(path); },
      {path + ":2:", "string 0", "\"box\" must be [x, y, width, height]"}));
  path = write_lines(dir, R"({"page": "a.png", "strings": [{"box": [1, 2, 3, 4]}]})"
                          "\n");
  EXPECT_TRUE(throws_with_message<ResultsFormatError>([&] { read_results(path); },
                                                      {path + ":1:", "missing key \"text\""}));
  EXPECT_TRUE(throws_with_message<ResultsFormatError>(
      [&] { read_results((dir / "absent.jsonl").string()); }, {"absent.jsonl", "cannot open"}));
}

TEST(Results, NumbersOutOfRangeAreNamedNotConverted) {
  TempDir dir;
  // A good first line, then `line`: refused at line 2, naming where and what.
  auto refused = [&](const std::string& line, const std::string& where, const std::string& what) {
    std::string text = R"({"page": "a.png", "strings": []})";
    text += "\n";
    text += line;
    text += "\n";
    const std::string path = write_lines(dir, text);
    return throws_with_message<ResultsFormatError>([&] { read_results(path); }, {path + ":2:", where, what});
  };
  EXPECT_TRUE(refused(R"({"page": "b.png", "strings": [{"text": "1", "box": [1e20, 2, 3, 4]}]})", "string 0",
                      "\"box\" value 1e+20 is out of range"));
  EXPECT_TRUE(refused(R"({"page": "b.png", "strings": [{"text": "1", "box": [1, 2, 3, -1e300]}]})", "string 0",
                      "\"box\" value -1e+300 is out of range"));
  EXPECT_TRUE(refused(R"({"page": "b.png", "strings": [{"text": "1", "box": [2147483000, 2, 3000, 4]}]})", "string 0",
                      "\"box\" reaches past the largest coordinate"));
  EXPECT_TRUE(refused(R"({"page": "b.png", "page_index": 10000000000, "strings": []})", "page \"b.png\"",
                      "\"page_index\" value 10000000000 is out of range"));
  EXPECT_TRUE(refused(R"({"page": "b.png", "width": 1e19, "strings": []})", "page \"b.png\"",
                      "\"width\" value 1e+19 is out of range"));
  EXPECT_TRUE(refused(R"({"page": "b.png", "strings": [{"text": "1", "box": [1, 2, 3, 4], "digits": [)"
                      R"({"digit": 3e9, "box": [1, 2, 3, 4]}]}]})",
                      "string 0 digit 0", "is out of range"));
  EXPECT_TRUE(refused(R"({"page": "b.png", "strings": [{"text": "1", "box": [1, 2, 3, 4], "digits": [)"
                      R"({"digit": 1, "box": [1, 2, 3, 4], "confidence": 1e300}]}]})",
                      "string 0 digit 0", "\"confidence\" value 1e+300 is not between 0 and 1"));
  EXPECT_TRUE(refused(R"({"page": "b.png", "strings": [{"text": "1", "box": [1, 2, 3, 4], "confidence": -0.5}]})",
                      "string 0", "\"confidence\" value -0.5 is not between 0 and 1"));
  // The ends of the range still read.
  const std::string path = write_lines(dir, R"({"page": "c.png", "page_index": 2147483647, "strings": [)"
                                            R"({"text": "1", "box": [-2147483648, 0, 0, 2147483647], "confidence": 1}]})"
                                            "\n");
  const auto pages = read_results(path);
  ASSERT_EQ(pages.size(), 1u);
  EXPECT_EQ(pages[0].page_index, std::numeric_limits<int>::max());
  EXPECT_EQ(pages[0].strings[0].box, (Box{std::numeric_limits<int>::min(), 0, 0, std::numeric_limits<int>::max()}));
}

TEST(Results, CsvQuotesPageNamesWithCommas) {
  PageResult page = sample_page();
  page.page = "batch 1/smith, john \"jr\".png";
  std::ostringstream out;
  write_csv_header(out);
  write_csv_rows(out, page);
  PageResult failed;
  failed.page = "x.png";
  failed.error = "too large, 90000 x 90000";
  write_csv_rows(out, failed);
  const std::string csv = out.str();
  EXPECT_EQ(csv.substr(0, csv.find('\n')),
            "page,page_index,string,text,confidence,x,y,width,height,field,valid,error");
  EXPECT_NE(
      csv.find(
          "\"batch 1/smith, john \"\"jr\"\".png\",2,0,04,0.9312,100,200,60,40,account,false,\n"),
      std::string::npos)
      << csv;
  EXPECT_NE(csv.find("x.png,0,,,,,,,,,,\"too large, 90000 x 90000\"\n"), std::string::npos) << csv;
}

}  // namespace
}  // namespace digitflow::pipeline

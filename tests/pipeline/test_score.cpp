// Tests of scoring results against truth, on small pages whose figures are worked out by
// hand: exact matches, edit distances, false strings, missing and failed pages, thresholds,
// and template fields.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "digitflow/pipeline/score.hpp"

namespace digitflow::pipeline {
namespace {

StringResult text_at(const std::string& text, Box box, double confidence = 0.99) {
  StringResult s;
  s.text = text;
  s.box = box;
  s.confidence = confidence;
  return s;
}

PageResult page(const std::string& name, std::vector<StringResult> strings, int index = 0) {
  PageResult p;
  p.page = name;
  p.page_index = index;
  p.width = 1000;
  p.height = 500;
  p.strings = std::move(strings);
  return p;
}

// Two pages, three strings, 4 + 6 + 9 = 19 digits.
std::vector<PageResult> truth_pages() {
  return {
      page("a.png", {text_at("0412", {100, 100, 80, 40}), text_at("987654", {400, 100, 120, 40})}),
      page("b.png", {text_at("011000015", {50, 400, 270, 40})})};
}

TEST(Score, PerfectResultsScoreOne) {
  const ScoreReport r = score_results(truth_pages(), truth_pages());
  EXPECT_EQ(r.pages, 2);
  EXPECT_EQ(r.truth_strings, 3);
  EXPECT_EQ(r.truth_digits, 19);
  EXPECT_EQ(r.result_strings, 3);
  EXPECT_EQ(r.matched, 3);
  EXPECT_EQ(r.exact, 3);
  EXPECT_DOUBLE_EQ(r.exact_rate, 1.0);
  EXPECT_DOUBLE_EQ(r.digit_accuracy, 1.0);
  EXPECT_EQ(r.false_strings, 0);
  EXPECT_EQ(r.missing_pages, 0);
  EXPECT_EQ(r.failed_pages, 0);
  EXPECT_EQ(r.extra_pages, 0);
}

TEST(Score, OneWrongDigitCostsOneEdit) {
  std::vector<PageResult> results = truth_pages();
  results[0].strings[1].text = "987604";
  results[0].strings[1].box = {404, 102, 118, 40};  // a slightly different box still matches
  const ScoreReport r = score_results(results, truth_pages());
  EXPECT_EQ(r.matched, 3);
  EXPECT_EQ(r.exact, 2);
  EXPECT_DOUBLE_EQ(r.exact_rate, 2.0 / 3.0);
  EXPECT_EQ(r.edit_distance, 1);
  EXPECT_DOUBLE_EQ(r.digit_accuracy, 1.0 - 1.0 / 19.0);
}

TEST(Score, InsertionsAndDeletionsAreEdits) {
  EXPECT_EQ(levenshtein("0412", "04412"), 1u);
  EXPECT_EQ(levenshtein("0412", "042"), 1u);
  EXPECT_EQ(levenshtein("0412", ""), 4u);
  EXPECT_EQ(levenshtein("123", "321"), 2u);
  std::vector<PageResult> results = truth_pages();
  results[0].strings[0].text = "04412";    // 1 insertion
  results[1].strings[0].text = "0110015";  // 2 deletions
  const ScoreReport r = score_results(results, truth_pages());
  EXPECT_EQ(r.edit_distance, 3);
  EXPECT_DOUBLE_EQ(r.digit_accuracy, 1.0 - 3.0 / 19.0);
}

TEST(Score, FalseAndMisplacedStringsAreCounted) {
  std::vector<PageResult> results = truth_pages();
  results[0].strings.push_back(text_at("77", {800, 300, 40, 40}));  // nothing there
  results[1].strings[0].box = {600, 50, 270, 40};                   // right text, wrong place
  const ScoreReport r = score_results(results, truth_pages());
  EXPECT_EQ(r.result_strings, 4);
  EXPECT_EQ(r.matched, 2);
  EXPECT_EQ(r.exact, 2);
  EXPECT_EQ(r.false_strings, 2);
  EXPECT_DOUBLE_EQ(r.false_per_page, 1.0);
  EXPECT_EQ(r.edit_distance, 9);  // the unmatched truth string counts its full length
  EXPECT_DOUBLE_EQ(r.digit_accuracy, 1.0 - 9.0 / 19.0);
}

TEST(Score, MatchingIsOneToOneByLargestOverlap) {
  // Two result strings over one truth string: the closer one is matched, the other is false.
  const std::vector<PageResult> truth = {page("a.png", {text_at("55", {100, 100, 100, 40})})};
  const std::vector<PageResult> results = {
      page("a.png", {text_at("56", {150, 100, 100, 40}), text_at("55", {105, 100, 100, 40})})};
  const ScoreReport r = score_results(results, truth);
  EXPECT_EQ(r.matched, 1);
  EXPECT_EQ(r.exact, 1);
  EXPECT_EQ(r.false_strings, 1);
  EXPECT_EQ(r.edit_distance, 0);
}

TEST(Score, MissingFailedAndExtraPages) {
  std::vector<PageResult> results = {truth_pages()[0], page("c.png", {text_at("1", {0, 0, 9, 9})})};
  ScoreReport r = score_results(results, truth_pages());
  EXPECT_EQ(r.pages, 2);
  EXPECT_EQ(r.missing_pages, 1);
  EXPECT_EQ(r.extra_pages, 1);
  EXPECT_EQ(r.result_strings, 2);  // the extra page is not scored
  EXPECT_EQ(r.false_strings, 0);
  EXPECT_EQ(r.exact, 2);
  EXPECT_DOUBLE_EQ(r.exact_rate, 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(r.digit_accuracy, 1.0 - 9.0 / 19.0);

  results = truth_pages();
  results[1].strings.clear();
  results[1].error = "cannot decode b.png";
  r = score_results(results, truth_pages());
  EXPECT_EQ(r.failed_pages, 1);
  EXPECT_EQ(r.missing_pages, 0);
  EXPECT_EQ(r.exact, 2);

  // Pages pair by name and index: page 1 of a multi-page file is another page.
  results = truth_pages();
  results[1].page_index = 1;
  r = score_results(results, truth_pages());
  EXPECT_EQ(r.missing_pages, 1);
  EXPECT_EQ(r.extra_pages, 1);
}

TEST(Score, ConfidenceThresholds) {
  std::vector<PageResult> results = truth_pages();
  results[0].strings[0].confidence = 0.995;  // exact
  results[0].strings[1].confidence = 0.95;   // wrong text
  results[0].strings[1].text = "987655";
  results[1].strings[0].confidence = 0.6;                              // exact
  results[1].strings.push_back(text_at("3", {900, 10, 20, 40}, 0.3));  // false
  const ScoreReport r = score_results(results, truth_pages());
  ASSERT_EQ(r.thresholds.size(), 3u);
  EXPECT_DOUBLE_EQ(r.thresholds[0].threshold, 0.5);
  EXPECT_DOUBLE_EQ(r.thresholds[1].threshold, 0.9);
  EXPECT_DOUBLE_EQ(r.thresholds[2].threshold, 0.99);

  const ThresholdScore& half = r.thresholds[0];  // keeps 0.995, 0.95, 0.6
  EXPECT_EQ(half.kept, 3);
  EXPECT_EQ(half.kept_exact, 2);
  EXPECT_DOUBLE_EQ(half.exact_rate, 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(half.truth_kept_rate, 1.0);
  EXPECT_EQ(half.false_strings, 0);

  const ThresholdScore& high = r.thresholds[1];  // keeps 0.995, 0.95
  EXPECT_EQ(high.kept, 2);
  EXPECT_EQ(high.kept_exact, 1);
  EXPECT_DOUBLE_EQ(high.truth_kept_rate, 2.0 / 3.0);

  const ThresholdScore& top = r.thresholds[2];  // keeps 0.995
  EXPECT_EQ(top.kept, 1);
  EXPECT_DOUBLE_EQ(top.exact_rate, 1.0);
  EXPECT_DOUBLE_EQ(top.truth_kept_rate, 1.0 / 3.0);
  EXPECT_DOUBLE_EQ(top.false_per_page, 0.0);

  EXPECT_EQ(r.false_strings, 1);  // the unthresholded figure counts the 0.3 string
  EXPECT_DOUBLE_EQ(r.false_per_page, 0.5);
}

TEST(Score, FieldsAreScoredWhenPresent) {
  std::vector<PageResult> truth = truth_pages();
  std::vector<PageResult> results = truth_pages();
  EXPECT_TRUE(score_results(results, truth).fields.empty());
  FieldResult routing;
  routing.name = "routing";
  routing.text = "011000015";
  routing.found = routing.valid = true;
  results[1].fields = {routing};
  truth[1].fields = {routing};
  routing.valid = false;
  routing.text = "011000016";
  results[0].fields = {routing};
  const ScoreReport r = score_results(results, truth);
  ASSERT_EQ(r.fields.size(), 1u);
  EXPECT_EQ(r.fields[0].name, "routing");
  EXPECT_EQ(r.fields[0].pages, 2);
  EXPECT_EQ(r.fields[0].found, 2);
  EXPECT_EQ(r.fields[0].valid, 1);
  EXPECT_DOUBLE_EQ(r.fields[0].valid_rate, 0.5);
  EXPECT_EQ(r.fields[0].with_truth, 1);
  EXPECT_EQ(r.fields[0].exact, 1);
  // All fields together, and kept by confidence: page 1's (exact) at 0.995, and a date on
  // page 0 whose truth says 01022024, read 01022021 at 0.95.
  EXPECT_EQ(r.field_truths, 1);
  EXPECT_EQ(r.field_exact, 1);
  results[1].fields[0].confidence = 0.995;
  FieldResult date;
  date.name = "date";
  date.found = date.valid = true;
  date.text = "01022024";
  truth[0].fields = {date};
  date.text = "01022021";
  date.confidence = 0.95;
  results[0].fields.push_back(date);
  const ScoreReport both = score_results(results, truth);
  EXPECT_EQ(both.field_truths, 2);
  EXPECT_EQ(both.field_exact, 1);
  EXPECT_DOUBLE_EQ(both.field_exact_rate, 0.5);
  ASSERT_EQ(both.field_thresholds.size(), 3u);
  EXPECT_EQ(both.field_thresholds[1].kept, 2);  // >= 0.9
  EXPECT_DOUBLE_EQ(both.field_thresholds[1].exact_rate, 0.5);
  EXPECT_EQ(both.field_thresholds[2].kept, 1);  // >= 0.99
  EXPECT_EQ(both.field_thresholds[2].kept_exact, 1);
  EXPECT_DOUBLE_EQ(both.field_thresholds[2].truth_kept_rate, 0.5);
  EXPECT_EQ(both.field_thresholds[1].corrected_kept, 0);
  const nlohmann::json j = to_json(both);
  EXPECT_EQ(j["field_exact"], 1);
  EXPECT_EQ(j["field_thresholds"][2]["kept"], 1);
  EXPECT_FALSE(j["thresholds"][0].contains("corrected_kept")) << "strings are not corrected";
  const std::string table = score_table(both);
  EXPECT_NE(table.find("all fields 1/2 exact (50.00%)"), std::string::npos) << table;
  // The corrected fields among those kept, counted apart: the date was corrected (wrongly).
  results[0].fields.back().corrected = true;
  const ScoreReport corrected = score_results(results, truth);
  EXPECT_EQ(corrected.field_thresholds[1].corrected_kept, 1);  // >= 0.9
  EXPECT_EQ(corrected.field_thresholds[1].corrected_kept_exact, 0);
  EXPECT_EQ(corrected.field_thresholds[2].corrected_kept, 0);  // >= 0.99
  EXPECT_EQ(to_json(corrected)["field_thresholds"][1]["corrected_kept"], 1);
  EXPECT_NE(score_table(corrected).find("0 / 1\n"), std::string::npos) << score_table(corrected);
  // Without fields, no such lines.
  EXPECT_EQ(score_table(score_results(truth_pages(), truth_pages())).find("all fields"), std::string::npos);
}

TEST(Score, JsonAndTableCarryTheFigures) {
  std::vector<PageResult> results = truth_pages();
  results[0].strings[1].text = "987604";
  const ScoreReport r = score_results(results, truth_pages());
  const nlohmann::json j = to_json(r);
  EXPECT_EQ(j["pages"], 2);
  EXPECT_EQ(j["exact"], 2);
  EXPECT_DOUBLE_EQ(j["exact_rate"].get<double>(), 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(j["digit_accuracy"].get<double>(), 1.0 - 1.0 / 19.0);
  ASSERT_EQ(j["thresholds"].size(), 3u);
  EXPECT_DOUBLE_EQ(j["thresholds"][2]["threshold"].get<double>(), 0.99);
  const std::string table = score_table(r);
  EXPECT_NE(table.find("66.67% exact-match rate"), std::string::npos) << table;
  EXPECT_NE(table.find("94.74% digit accuracy"), std::string::npos) << table;
  EXPECT_NE(table.find("0.99"), std::string::npos) << table;
}

TEST(Score, StringsWithTouchingDigitsAreCountedApart) {
  // Truth strings with a box per digit: "12" whose boxes meet (x 100..130, then 130..), "34"
  // whose boxes overlap, "56" with a gap, "78" with a gap; and "90" without digit boxes
  // (not counted), "3" of one digit (not counted). Read: "12" and "56" right, "34" wrong,
  // "78" and "3" missed.
  auto with_boxes = [](const std::string& text, std::vector<Box> boxes) {
    StringResult s = text_at(text, {boxes.front().x, 100, boxes.back().x + boxes.back().w - boxes.front().x, 40});
    for (size_t d = 0; d < boxes.size(); ++d) {
      DigitResult digit;
      digit.digit = text[d] - '0';
      digit.box = boxes[d];
      s.digits.push_back(digit);
    }
    return s;
  };
  const std::vector<PageResult> truth = {
      page("a.png", {with_boxes("12", {{100, 100, 30, 40}, {130, 100, 30, 40}}),
                     with_boxes("34", {{300, 100, 30, 40}, {325, 100, 30, 40}})}),
      page("b.png", {with_boxes("56", {{100, 100, 30, 40}, {131, 100, 30, 40}}),
                     with_boxes("78", {{300, 100, 30, 40}, {340, 100, 30, 40}}), text_at("90", {500, 100, 60, 40}),
                     with_boxes("3", {{700, 100, 30, 40}})})};
  const std::vector<PageResult> results = {
      page("a.png", {text_at("12", {100, 100, 60, 40}), text_at("39", {300, 100, 55, 40})}),
      page("b.png", {text_at("56", {100, 100, 61, 40}), text_at("90", {500, 100, 60, 40})})};
  const ScoreReport r = score_results(results, truth);
  EXPECT_EQ(r.touching_strings, 2);
  EXPECT_EQ(r.touching_exact, 1);
  EXPECT_EQ(r.apart_strings, 2);
  EXPECT_EQ(r.apart_exact, 1);
  EXPECT_EQ(r.exact, 3);  // "90" too; "3", one digit, is in neither group and missed
  const nlohmann::json j = to_json(r);
  EXPECT_EQ(j["touching_digits"], nlohmann::json({{"strings", 2}, {"exact", 1}, {"exact_rate", 0.5}}));
  EXPECT_EQ(j["digits_apart"]["exact"], 1);
  const std::string table = score_table(r);
  EXPECT_NE(table.find("touching digits             2   1 exact (50.00%)"), std::string::npos) << table;
  // A truth page with no result page: its strings count, none of them read.
  std::vector<PageResult> more = truth;
  more.push_back(page("c.png", {with_boxes("45", {{100, 100, 30, 40}, {120, 100, 30, 40}})}));
  const ScoreReport missing = score_results(results, more);
  EXPECT_EQ(missing.missing_pages, 1);
  EXPECT_EQ(missing.touching_strings, 3);
  EXPECT_EQ(missing.touching_exact, 1);
  // A group with no strings shows no rate.
  const ScoreReport apart_only = score_results({results[1]}, {truth[1]});
  EXPECT_EQ(apart_only.touching_strings, 0);
  EXPECT_NE(score_table(apart_only).find("touching digits             0   -:"), std::string::npos)
      << score_table(apart_only);
  // Without digit boxes in the truth, nothing is split and the table says nothing of it.
  const ScoreReport plain = score_results(truth_pages(), truth_pages());
  EXPECT_EQ(plain.touching_strings + plain.apart_strings, 0);
  EXPECT_EQ(score_table(plain).find("touching"), std::string::npos);
}

// Strings whose digits each carry the same top-3 probabilities.
StringResult read_with(const std::string& text, Box box, float p) {
  StringResult s = text_at(text, box);
  s.confidence = 1;
  for (char c : text) {
    DigitResult d;
    d.digit = c - '0';
    d.confidence = p;
    d.top = {{d.digit, p}, {(d.digit + 1) % 10, (1 - p) / 2}, {(d.digit + 2) % 10, (1 - p) / 4}};
    s.confidence *= p;
    s.digits.push_back(d);
  }
  return s;
}

TEST(Score, DigitCalibrationComparesErrorsWithConfidence) {
  // Ten strings of four digits: eight read right at 0.9995 per digit, two with their last
  // digit wrong at 0.95, and one read a digit short (left out: its digits are out of step).
  std::vector<PageResult> truth, results;
  for (int i = 0; i < 11; ++i) {
    const std::string name = std::to_string(i).append(".png");
    truth.push_back(page(name, {text_at("0412", {100, 100, 80, 40})}));
    StringResult read = read_with(i < 8 ? "0412" : i < 10 ? "0413" : "041", {100, 100, 80, 40}, 0.9995f);
    if (i == 8 || i == 9) read.digits[3].confidence = 0.95f;
    results.push_back(page(name, {read}));
  }
  const ScoreReport report = score_results(results, truth);
  ASSERT_EQ(report.digit_calibration.size(), 4u);
  const CalibrationBin &low = report.digit_calibration[0], &mid = report.digit_calibration[1],
                       &top = report.digit_calibration[3];
  EXPECT_EQ(low.count, 0);
  EXPECT_EQ(mid.count, 2);
  EXPECT_EQ(mid.wrong, 2);
  EXPECT_DOUBLE_EQ(mid.error_rate, 1.0);
  EXPECT_NEAR(mid.stated_rate, 0.05, 1e-6);
  EXPECT_EQ(top.count, 8 * 4 + 2 * 3);
  EXPECT_EQ(top.wrong, 0);
  EXPECT_NEAR(top.stated_rate, 0.0005, 1e-6);
  EXPECT_EQ(report.digit_calibration[2].count, 0);
  const nlohmann::json json = to_json(report);
  ASSERT_EQ(json.at("digit_calibration").size(), 4u);
  EXPECT_EQ(json.at("digit_calibration")[1].at("wrong"), 2);
  const std::string table = score_table(report);
  EXPECT_NE(table.find("digit confidence"), std::string::npos) << table;
  EXPECT_NE(table.find("0.9 - 0.99"), std::string::npos) << table;
  EXPECT_NE(table.find("100.000%  5.000%"), std::string::npos) << table;
}

TEST(Score, StringCalibrationComparesWrongStringsWithTheirConfidence) {
  // Per page one truth string. Read at 0.995: four right, one wrong. At 0.95: two right, one
  // a digit short. At 0.2: one right. One false string at 0.7 (no truth string under it), on
  // a page whose truth string was missed; one string on a page without truth (not counted).
  std::vector<PageResult> truth, results;
  auto add = [&](const std::string& text, const std::string& read, double confidence) {
    const std::string name = std::to_string(truth.size()).append(".png");
    truth.push_back(page(name, {text_at(text, {100, 100, 80, 40})}));
    StringResult s = text_at(read, {100, 100, 80, 40});
    if (read.empty()) s = text_at("77", {600, 600, 40, 40});  // far from the truth's box
    s.confidence = confidence;
    results.push_back(page(name, {s}));
  };
  for (int i = 0; i < 4; ++i) add("2026", "2026", 0.995);
  add("2026", "2028", 0.995);
  add("31", "31", 0.95);
  add("31", "31", 0.95);
  add("3141", "341", 0.95);
  add("5", "5", 0.2);
  add("9", "", 0.7);
  // On the edges (results.jsonl rounds to 4 places): a bin holds its low edge, the last holds 1.
  add("77", "77", 0.99);
  add("88", "88", 1.0);
  add("12", "12", 0.9);
  add("3", "3", 0.5);
  results.push_back(page("extra.png", {text_at("1", {0, 0, 10, 10})}));
  const ScoreReport report = score_results(results, truth);
  ASSERT_EQ(report.string_calibration.size(), 4u);
  const CalibrationBin &low = report.string_calibration[0], &half = report.string_calibration[1],
                       &mid = report.string_calibration[2], &top = report.string_calibration[3];
  EXPECT_DOUBLE_EQ(low.low, 0);
  EXPECT_DOUBLE_EQ(top.low, 0.99);
  EXPECT_DOUBLE_EQ(top.high, 1);
  EXPECT_EQ(top.count, 7);
  EXPECT_EQ(top.wrong, 1);
  EXPECT_DOUBLE_EQ(top.error_rate, 1.0 / 7);
  EXPECT_NEAR(top.stated_rate, 1 - (5 * 0.995 + 0.99 + 1.0) / 7, 1e-6);
  EXPECT_EQ(mid.count, 4);
  EXPECT_EQ(mid.wrong, 1);
  EXPECT_NEAR(mid.stated_rate, 1 - (3 * 0.95 + 0.9) / 4, 1e-6);
  EXPECT_EQ(half.count, 2);  // the false string and the one at 0.5
  EXPECT_EQ(half.wrong, 1);
  EXPECT_EQ(low.count, 1);
  EXPECT_EQ(low.wrong, 0);
  EXPECT_NEAR(low.stated_rate, 0.8, 1e-6);
  const nlohmann::json json = to_json(report);
  ASSERT_EQ(json.at("string_calibration").size(), 4u);
  EXPECT_EQ(json.at("string_calibration")[3].at("strings"), 7);
  EXPECT_EQ(json.at("digit_calibration")[3].count("digits"), 1u);
  const std::string table = score_table(report);
  EXPECT_NE(table.find("string confidence"), std::string::npos) << table;
  EXPECT_NE(table.find("14.286%  0.500%"), std::string::npos) << table;
}

TEST(Score, TemperatureFitSharpensUnderconfidentDigits) {
  // Right strings read at 0.9 per digit (string confidence ~0.66): the fit must sharpen.
  std::vector<PageResult> truth, results;
  for (int i = 0; i < 20; ++i) {
    std::string name = "p";
    name += std::to_string(i);
    name += ".png";
    truth.push_back(page(name, {text_at("0412", {100, 100, 80, 40})}));
    results.push_back(page(name, {read_with("0412", {100, 100, 80, 40}, 0.9f)}));
  }
  TemperatureFit fit = fit_temperature(results, truth);
  EXPECT_EQ(fit.strings, 20);
  EXPECT_LT(fit.factor, 0.5);
  EXPECT_LT(fit.brier_after, fit.brier_before / 4);
  // Wrong strings read at 0.9 per digit: the fit must soften instead.
  for (PageResult& r : results) r.strings[0] = read_with("0413", {100, 100, 80, 40}, 0.9f);
  fit = fit_temperature(results, truth);
  EXPECT_GT(fit.factor, 1.0);
  EXPECT_LT(fit.brier_after, fit.brier_before);
  EXPECT_EQ(fit_temperature({}, truth).strings, 0);
}

}  // namespace
}  // namespace digitflow::pipeline

// Scores a run against the truth of the same pages (both results.jsonl-shaped): how many
// strings were found and read exactly, digit accuracy from edit distances, strings read
// where there are none, and the same at confidence thresholds, so that a threshold for the
// review queue can be chosen from numbers.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "digitflow/pipeline/results.hpp"

namespace digitflow::pipeline {

// A truth string and a result string match when their boxes overlap this much (IoU).
inline constexpr double kMatchIoU = 0.3;

// Result strings kept at confidence >= threshold.
struct ThresholdScore {
  double threshold = 0;
  int kept = 0;                // result strings kept (on pages with truth)
  int kept_exact = 0;          // kept strings that match a truth string with identical text
  int false_strings = 0;       // kept strings that match no truth string
  double exact_rate = 0;       // kept_exact / kept (1 when nothing is kept)
  double truth_kept_rate = 0;  // truth strings whose matched result string is kept
  double false_per_page = 0;   // false_strings / pages
  int corrected_kept = 0;        // fields only: kept fields whose digits a rule corrected
  int corrected_kept_exact = 0;  // fields only: of those, the ones read exactly
};

// What was read with a confidence in [low, high): how often it was wrong beside how often
// its confidence says it would be. For digits: those of matched strings of the truth's
// length, each compared with the truth's at its place. For strings: every result string on
// a page with truth, wrong unless it matches a truth string with identical text (a false
// string is wrong), as a string's confidence is the probability that it is right.
struct CalibrationBin {
  double low = 0, high = 1;
  int count = 0;  // digits or strings
  int wrong = 0;
  double error_rate = 0;   // wrong / count (0 when there are none)
  double stated_rate = 0;  // 1 - their mean confidence (0 when there are none)
};

// Per template field, over the result pages that have it.
struct FieldScore {
  std::string name;
  int pages = 0;  // result pages with this field
  int found = 0;
  int valid = 0;
  int corrected = 0;
  double valid_rate = 0;  // valid / pages
  int with_truth = 0;     // of those, pages whose truth has this field
  int exact = 0;          // of those, pages whose field text equals the truth's
};

struct ScoreReport {
  int pages = 0;          // truth pages
  int missing_pages = 0;  // truth pages with no result page
  int failed_pages = 0;   // truth pages whose result is an error
  int extra_pages = 0;    // result pages with no truth page (not scored)
  int truth_strings = 0;
  int truth_digits = 0;       // characters of the truth strings
  int result_strings = 0;     // on result pages that have a truth page
  int matched = 0;            // truth strings matched to a result string (IoU >= kMatchIoU)
  int exact = 0;              // matched with identical text
  int edit_distance = 0;      // Levenshtein sum; an unmatched truth string counts its length
  int false_strings = 0;      // result strings matching no truth string
  double exact_rate = 0;      // exact / truth_strings (1 when there are none)
  double digit_accuracy = 0;  // 1 - edit_distance / truth_digits (1 when there are none)
  double false_per_page = 0;  // false_strings / pages (0 when there are none)
  // Truth strings of two digits or more that give a box per digit (digitflow synth's truth
  // does), by whether two neighbouring digits touch (their boxes meet or overlap across):
  // how many, and how many were read exactly. All 0 where the truth gives no digit boxes.
  int touching_strings = 0, touching_exact = 0;
  int apart_strings = 0, apart_exact = 0;
  std::vector<ThresholdScore> thresholds;  // at 0.5, 0.9, 0.99
  std::vector<CalibrationBin> digit_calibration;   // [0, 0.9), [0.9, 0.99), [0.99, 0.999), [0.999, 1]
  std::vector<CalibrationBin> string_calibration;  // [0, 0.5), [0.5, 0.9), [0.9, 0.99), [0.99, 1]
  std::vector<FieldScore> fields;          // in order of first appearance; empty without fields
  // Every field whose truth page has it, all names together: how many were read exactly, and
  // the fields kept at confidence >= 0.5, 0.9, 0.99 (kept, kept_exact, exact_rate; the share
  // of those fields kept in truth_kept_rate; no false strings). Empty without fields.
  int field_truths = 0;
  int field_exact = 0;
  double field_exact_rate = 0;  // field_exact / field_truths (1 when there are none)
  std::vector<ThresholdScore> field_thresholds;
};

// Pages are paired by (page, page_index); within a page, string pairs are matched one to
// one, greedily by decreasing IoU among pairs with IoU >= kMatchIoU. Truth strings on
// missing or failed pages are unmatched. A digit accuracy below 0 is possible when results
// insert many digits; it is not clamped.
ScoreReport score_results(const std::vector<PageResult>& results,
                          const std::vector<PageResult>& truth);

size_t levenshtein(const std::string& a, const std::string& b);

// Temperature scaling fitted on scored results: the factor F such that raising each digit's
// probabilities to the power 1/F (renormalised) makes the string confidences best predict
// which strings are exactly right (least Brier score over every result string on a page with
// truth; a false string counts as wrong). The digits' top 3 carry the probabilities; the
// mass outside them is taken as spread evenly over the other classes. Results made with
// pipeline.temperature T0 are recalibrated by T0 * F.
struct TemperatureFit {
  double factor = 1;
  double brier_before = 0, brier_after = 0;
  int strings = 0;  // result strings used
};
TemperatureFit fit_temperature(const std::vector<PageResult>& results, const std::vector<PageResult>& truth);

nlohmann::json to_json(const ScoreReport& report);
// The report as an aligned plain-text table for a terminal.
std::string score_table(const ScoreReport& report);

}  // namespace digitflow::pipeline

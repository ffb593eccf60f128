// Scoring results against truth: pages paired by name and index, strings paired greedily by
// box overlap, text compared exactly and by edit distance.
#include "digitflow/pipeline/score.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iterator>
#include <map>
#include <optional>
#include <nlohmann/json.hpp>
#include <set>
#include <span>
#include <tuple>
#include <utility>

namespace digitflow::pipeline {

namespace {

constexpr double kThresholds[] = {0.5, 0.9, 0.99};
constexpr double kCalibrationEdges[] = {0, 0.9, 0.99, 0.999, 1};
constexpr double kStringCalibrationEdges[] = {0, 0.5, 0.9, 0.99, 1};

double ratio(int part, int whole, double if_empty) {
  return whole == 0 ? if_empty : static_cast<double>(part) / whole;
}

std::vector<CalibrationBin> calibration_bins(std::span<const double> edges) {
  std::vector<CalibrationBin> bins;
  for (size_t b = 0; b + 1 < edges.size(); ++b) bins.push_back({.low = edges[b], .high = edges[b + 1]});
  return bins;
}

// Counts one reading of confidence c into the bin that holds it (the last bin holds 1).
void count_in(std::vector<CalibrationBin>& bins, std::vector<double>& confidence_sum, double c, bool wrong) {
  size_t b = 0;
  while (b + 1 < bins.size() && c >= bins[b].high) ++b;
  ++bins[b].count;
  confidence_sum[b] += c;
  if (wrong) ++bins[b].wrong;
}

void finish(std::vector<CalibrationBin>& bins, const std::vector<double>& confidence_sum) {
  for (size_t b = 0; b < bins.size(); ++b) {
    bins[b].error_rate = ratio(bins[b].wrong, bins[b].count, 0.0);
    bins[b].stated_rate = bins[b].count == 0 ? 0.0 : 1.0 - confidence_sum[b] / bins[b].count;
  }
}


// matched[i] = index of the result string paired with truth string i, or -1.
std::vector<int> match_strings(const std::vector<StringResult>& truth,
                               const std::vector<StringResult>& results) {
  std::vector<std::tuple<double, size_t, size_t>> pairs;
  for (size_t i = 0; i < truth.size(); ++i)
    for (size_t j = 0; j < results.size(); ++j)
      if (const double overlap = iou(truth[i].box, results[j].box); overlap >= kMatchIoU)
        pairs.emplace_back(overlap, i, j);
  std::stable_sort(pairs.begin(), pairs.end(),
                   [](const auto& a, const auto& b) { return std::get<0>(a) > std::get<0>(b); });
  std::vector<int> matched(truth.size(), -1);
  std::vector<bool> taken(results.size(), false);
  for (const auto& [overlap, i, j] : pairs) {
    if (matched[i] >= 0 || taken[j]) continue;
    matched[i] = static_cast<int>(j);
    taken[j] = true;
  }
  return matched;
}

FieldScore& field_score(ScoreReport& report, const std::string& name) {
  for (FieldScore& f : report.fields)
    if (f.name == name) return f;
  report.fields.push_back({});
  report.fields.back().name = name;
  return report.fields.back();
}

std::string percent(double rate) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f%%", 100.0 * rate);
  return text;
}

// Whether a truth string gives one box per digit, and if so whether two neighbours touch:
// the right edge of one reaches the left edge of the next. Empty when it gives no boxes, or
// is one digit long (no neighbours: in neither group, which compares strings of several).
std::optional<bool> digits_touch(const StringResult& s) {
  if (s.digits.size() < 2 || s.digits.size() != s.text.size()) return std::nullopt;
  for (size_t d = 0; d + 1 < s.digits.size(); ++d)
    if (s.digits[d].box.x + s.digits[d].box.w >= s.digits[d + 1].box.x) return true;
  return false;
}

}  // namespace

size_t levenshtein(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

ScoreReport score_results(const std::vector<PageResult>& results,
                          const std::vector<PageResult>& truth) {
  using Key = std::pair<std::string, int>;
  std::map<Key, const PageResult*> by_key;
  for (const PageResult& r : results) by_key.emplace(Key{r.page, r.page_index}, &r);
  std::set<Key> truth_keys;
  for (const PageResult& t : truth) truth_keys.insert({t.page, t.page_index});

  ScoreReport report;
  for (double threshold : kThresholds) {
    ThresholdScore level;
    level.threshold = threshold;
    report.thresholds.push_back(level);
  }
  std::vector<int> truth_kept(report.thresholds.size(), 0);
  report.digit_calibration = calibration_bins(kCalibrationEdges);
  report.string_calibration = calibration_bins(kStringCalibrationEdges);
  std::vector<double> confidence_sum(report.digit_calibration.size(), 0.0);
  std::vector<double> string_confidence_sum(report.string_calibration.size(), 0.0);

  for (const PageResult& t : truth) {
    ++report.pages;
    report.truth_strings += static_cast<int>(t.strings.size());
    int unmatched_length = 0;
    for (const StringResult& s : t.strings) {
      report.truth_digits += static_cast<int>(s.text.size());
      unmatched_length += static_cast<int>(s.text.size());
    }
    const auto found = by_key.find({t.page, t.page_index});
    if (found == by_key.end()) {
      for (const StringResult& s : t.strings)  // none of them read
        if (const std::optional<bool> touch = digits_touch(s)) ++(*touch ? report.touching_strings : report.apart_strings);
      ++report.missing_pages;
      report.edit_distance += unmatched_length;
      continue;
    }
    const PageResult& r = *found->second;
    if (r.error && !t.error) ++report.failed_pages;
    report.result_strings += static_cast<int>(r.strings.size());

    const std::vector<int> matched = match_strings(t.strings, r.strings);
    std::vector<bool> has_truth(r.strings.size(), false);
    std::vector<bool> exact(r.strings.size(), false);
    for (size_t i = 0; i < t.strings.size(); ++i) {
      const std::string& text = t.strings[i].text;
      const std::optional<bool> touch = digits_touch(t.strings[i]);
      const bool read_exactly = matched[i] >= 0 && r.strings[static_cast<size_t>(matched[i])].text == text;
      if (touch) {
        (*touch ? report.touching_strings : report.apart_strings) += 1;
        (*touch ? report.touching_exact : report.apart_exact) += read_exactly ? 1 : 0;
      }
      if (matched[i] < 0) {
        report.edit_distance += static_cast<int>(text.size());
        continue;
      }
      const StringResult& s = r.strings[static_cast<size_t>(matched[i])];
      ++report.matched;
      has_truth[static_cast<size_t>(matched[i])] = true;
      report.edit_distance += static_cast<int>(levenshtein(text, s.text));
      if (s.text == text) {
        ++report.exact;
        exact[static_cast<size_t>(matched[i])] = true;
      }
      for (size_t k = 0; k < report.thresholds.size(); ++k)
        if (s.confidence >= report.thresholds[k].threshold) ++truth_kept[k];
      if (s.digits.size() != text.size()) continue;  // digits out of step with the truth's
      for (size_t d = 0; d < text.size(); ++d)
        count_in(report.digit_calibration, confidence_sum, s.digits[d].confidence,
                 s.digits[d].digit != text[d] - '0');
    }
    for (size_t j = 0; j < r.strings.size(); ++j) {
      if (!has_truth[j]) ++report.false_strings;
      count_in(report.string_calibration, string_confidence_sum, r.strings[j].confidence, !exact[j]);
      for (ThresholdScore& level : report.thresholds) {
        if (r.strings[j].confidence < level.threshold) continue;
        ++level.kept;
        if (exact[j]) ++level.kept_exact;
        if (!has_truth[j]) ++level.false_strings;
      }
    }

    for (const FieldResult& f : r.fields) {
      FieldScore& score = field_score(report, f.name);
      ++score.pages;
      score.found += f.found ? 1 : 0;
      score.valid += f.valid ? 1 : 0;
      score.corrected += f.corrected ? 1 : 0;
      const auto truth_field = std::find_if(t.fields.begin(), t.fields.end(),
                                            [&](const FieldResult& g) { return g.name == f.name; });
      if (truth_field != t.fields.end()) {
        const bool right = f.found && f.text == truth_field->text;
        ++score.with_truth;
        score.exact += right ? 1 : 0;
        ++report.field_truths;
        report.field_exact += right ? 1 : 0;
        if (report.field_thresholds.empty())
          for (double threshold : kThresholds) report.field_thresholds.push_back({.threshold = threshold});
        for (ThresholdScore& level : report.field_thresholds)
          if (f.found && f.confidence >= level.threshold) {
            ++level.kept;
            level.kept_exact += right ? 1 : 0;
            level.corrected_kept += f.corrected ? 1 : 0;
            level.corrected_kept_exact += f.corrected && right ? 1 : 0;
          }
      }
    }
  }
  for (const PageResult& r : results)
    if (!truth_keys.count({r.page, r.page_index})) ++report.extra_pages;

  report.exact_rate = ratio(report.exact, report.truth_strings, 1.0);
  report.digit_accuracy =
      report.truth_digits == 0
          ? 1.0
          : 1.0 - static_cast<double>(report.edit_distance) / report.truth_digits;
  report.false_per_page = ratio(report.false_strings, report.pages, 0.0);
  for (size_t k = 0; k < report.thresholds.size(); ++k) {
    ThresholdScore& level = report.thresholds[k];
    level.exact_rate = ratio(level.kept_exact, level.kept, 1.0);
    level.truth_kept_rate = ratio(truth_kept[k], report.truth_strings, 1.0);
    level.false_per_page = ratio(level.false_strings, report.pages, 0.0);
  }
  for (FieldScore& f : report.fields) f.valid_rate = ratio(f.valid, f.pages, 0.0);
  report.field_exact_rate = ratio(report.field_exact, report.field_truths, 1.0);
  for (ThresholdScore& level : report.field_thresholds) {
    level.exact_rate = ratio(level.kept_exact, level.kept, 1.0);
    level.truth_kept_rate = ratio(level.kept, report.field_truths, 1.0);
  }
  finish(report.digit_calibration, confidence_sum);
  finish(report.string_calibration, string_confidence_sum);
  return report;
}

nlohmann::json to_json(const ScoreReport& report) {
  auto calibration = [](const std::vector<CalibrationBin>& bins, const char* counted) {
    nlohmann::json rows = nlohmann::json::array();
    for (const CalibrationBin& b : bins)
      rows.push_back({{"low", b.low},
                      {"high", b.high},
                      {counted, b.count},
                      {"wrong", b.wrong},
                      {"error_rate", b.error_rate},
                      {"stated_rate", b.stated_rate}});
    return rows;
  };
  // The reject curve of strings, or of fields (which have no false strings).
  auto curve = [](const std::vector<ThresholdScore>& levels, bool strings) {
    nlohmann::json rows = nlohmann::json::array();
    for (const ThresholdScore& t : levels) {
      nlohmann::json row = {{"threshold", t.threshold},
                            {"kept", t.kept},
                            {"kept_exact", t.kept_exact},
                            {"exact_rate", t.exact_rate},
                            {"truth_kept_rate", t.truth_kept_rate}};
      if (strings) row["false_strings"] = t.false_strings, row["false_per_page"] = t.false_per_page;
      else row["corrected_kept"] = t.corrected_kept, row["corrected_kept_exact"] = t.corrected_kept_exact;
      rows.push_back(std::move(row));
    }
    return rows;
  };
  const nlohmann::json thresholds = curve(report.thresholds, true);
  const nlohmann::json field_thresholds = curve(report.field_thresholds, false);
  nlohmann::json fields = nlohmann::json::array();
  for (const FieldScore& f : report.fields)
    fields.push_back({{"name", f.name},
                      {"pages", f.pages},
                      {"found", f.found},
                      {"valid", f.valid},
                      {"corrected", f.corrected},
                      {"valid_rate", f.valid_rate},
                      {"with_truth", f.with_truth},
                      {"exact", f.exact}});
  return {{"pages", report.pages},
          {"missing_pages", report.missing_pages},
          {"failed_pages", report.failed_pages},
          {"extra_pages", report.extra_pages},
          {"truth_strings", report.truth_strings},
          {"truth_digits", report.truth_digits},
          {"result_strings", report.result_strings},
          {"matched", report.matched},
          {"exact", report.exact},
          {"edit_distance", report.edit_distance},
          {"false_strings", report.false_strings},
          {"exact_rate", report.exact_rate},
          {"digit_accuracy", report.digit_accuracy},
          {"false_per_page", report.false_per_page},
          {"touching_digits",
           {{"strings", report.touching_strings},
            {"exact", report.touching_exact},
            {"exact_rate", ratio(report.touching_exact, report.touching_strings, 1.0)}}},
          {"digits_apart",
           {{"strings", report.apart_strings},
            {"exact", report.apart_exact},
            {"exact_rate", ratio(report.apart_exact, report.apart_strings, 1.0)}}},
          {"thresholds", thresholds},
          {"digit_calibration", calibration(report.digit_calibration, "digits")},
          {"string_calibration", calibration(report.string_calibration, "strings")},
          {"fields", fields},
          {"field_truths", report.field_truths},
          {"field_exact", report.field_exact},
          {"field_exact_rate", report.field_exact_rate},
          {"field_thresholds", field_thresholds}};
}

std::string score_table(const ScoreReport& report) {
  std::string out;
  char line[256];
  auto row = [&](const char* label, int count, const std::string& note) {
    std::snprintf(line, sizeof line, "%-22s %8d", label, count);
    out += line;
    if (!note.empty()) out.append("   ").append(note);
    out += '\n';
  };
  row("pages", report.pages,
      "missing " + std::to_string(report.missing_pages) + ", failed " +
          std::to_string(report.failed_pages) + ", not in truth " +
          std::to_string(report.extra_pages));
  row("truth strings", report.truth_strings, std::to_string(report.truth_digits) + " digits");
  row("result strings", report.result_strings, "");
  row("matched", report.matched,
      percent(ratio(report.matched, report.truth_strings, 1.0)) +
          " of truth strings (box IoU >= 0.3)");
  row("exact", report.exact,
      percent(report.exact_rate) + " exact-match rate (exact / truth strings)");
  if (report.touching_strings + report.apart_strings > 0) {
    auto exact_of = [](int exact, int strings) {
      return strings == 0 ? std::string("-") : std::to_string(exact) + " exact (" + percent(ratio(exact, strings, 1.0)) + ")";
    };
    row("  touching digits", report.touching_strings,
        exact_of(report.touching_exact, report.touching_strings) + ": truth strings in which two digits' boxes meet");
    row("  digits apart", report.apart_strings,
        exact_of(report.apart_exact, report.apart_strings) + ": the other truth strings of 2+ digits with boxes");
  }
  row("edit distance", report.edit_distance, percent(report.digit_accuracy) + " digit accuracy");
  char per_page[32];
  std::snprintf(per_page, sizeof per_page, "%.3f", report.false_per_page);
  row("false strings", report.false_strings, std::string(per_page) + " per page");

  out += "\nconfidence >=      kept  exact among kept  truth kept  false/page\n";
  for (const ThresholdScore& t : report.thresholds) {
    std::snprintf(line, sizeof line, "%-13.2f %9d  %16s  %10s  %10.3f\n", t.threshold, t.kept,
                  t.kept == 0 ? "-" : percent(t.exact_rate).c_str(),
                  percent(t.truth_kept_rate).c_str(), t.false_per_page);
    out += line;
  }
  // Wrong as often as the confidences say? The error rate beside 1 - the mean confidence.
  auto calibration = [&](const char* heading, const std::vector<CalibrationBin>& bins) {
    out += heading;
    for (const CalibrationBin& b : bins) {
      char range[32];
      std::snprintf(range, sizeof range, "%g - %g", b.low, b.high);
      if (b.count == 0)
        std::snprintf(line, sizeof line, "%-18s %8d  %6d  %10s  %s\n", range, 0, 0, "-", "-");
      else
        std::snprintf(line, sizeof line, "%-18s %8d  %6d  %9.3f%%  %.3f%%\n", range, b.count, b.wrong,
                      100 * b.error_rate, 100 * b.stated_rate);
      out += line;
    }
  };
  calibration("\nstring confidence   strings   wrong  error rate  stated (1 - mean confidence)\n",
              report.string_calibration);
  calibration("\ndigit confidence     digits   wrong  error rate  stated (1 - mean confidence)\n",
              report.digit_calibration);
  if (!report.fields.empty()) {
    out += "\nfield                 pages   found   valid  corrected  valid rate  exact\n";
    for (const FieldScore& f : report.fields) {
      const std::string exact =
          f.with_truth == 0 ? "-" : std::to_string(f.exact) + "/" + std::to_string(f.with_truth);
      std::snprintf(line, sizeof line, "%-20s %6d  %6d  %6d  %9d  %10s  %s\n", f.name.c_str(),
                    f.pages, f.found, f.valid, f.corrected, percent(f.valid_rate).c_str(),
                    exact.c_str());
      out += line;
    }
  }
  if (report.field_truths > 0) {
    out += "\nall fields " + std::to_string(report.field_exact) + "/" + std::to_string(report.field_truths) +
           " exact (" + percent(report.field_exact_rate) + ")\n";
    out += "field confidence >=  kept  exact among kept  fields kept  corrected: exact / kept\n";
    for (const ThresholdScore& t : report.field_thresholds) {
      std::snprintf(line, sizeof line, "%-17.2f %6d  %16s  %11s  %10d / %d\n", t.threshold, t.kept,
                    t.kept == 0 ? "-" : percent(t.exact_rate).c_str(), percent(t.truth_kept_rate).c_str(),
                    t.corrected_kept_exact, t.corrected_kept);
      out += line;
    }
  }
  return out;
}

namespace {

// A string's confidence after scaling its digits' probabilities by 1/temperature.
double scaled_confidence(const StringResult& s, double temperature) {
  double confidence = 1;
  for (const DigitResult& d : s.digits) {
    if (d.top.empty()) return s.confidence;
    double top_mass = 0, chosen = 0, sum = 0;
    for (const Candidate& c : d.top) {
      const double w = std::pow(std::max(1e-9, static_cast<double>(c.confidence)), 1 / temperature);
      top_mass += c.confidence;
      sum += w;
      if (c.digit == d.digit) chosen = w;
    }
    const double others = 8;  // classes outside the top 3 (of 11; 7 of 10 would change little)
    const double rest = std::max(0.0, 1 - top_mass) / others;
    sum += others * std::pow(std::max(1e-12, rest), 1 / temperature);
    confidence *= chosen / sum;
  }
  return confidence;
}

}  // namespace

TemperatureFit fit_temperature(const std::vector<PageResult>& results, const std::vector<PageResult>& truth) {
  std::map<std::pair<std::string, int>, const PageResult*> truth_of;
  for (const PageResult& t : truth) truth_of.emplace(std::pair{t.page, t.page_index}, &t);
  std::vector<std::pair<const StringResult*, bool>> samples;  // string, exactly right
  for (const PageResult& r : results) {
    auto it = truth_of.find({r.page, r.page_index});
    if (it == truth_of.end() || r.error) continue;
    const std::vector<int> matched = match_strings(it->second->strings, r.strings);
    std::vector<bool> right(r.strings.size(), false);
    for (size_t i = 0; i < matched.size(); ++i)
      if (matched[i] >= 0 && r.strings[static_cast<size_t>(matched[i])].text == it->second->strings[i].text)
        right[static_cast<size_t>(matched[i])] = true;
    for (size_t j = 0; j < r.strings.size(); ++j) samples.emplace_back(&r.strings[j], right[j]);
  }
  TemperatureFit fit;
  fit.strings = static_cast<int>(samples.size());
  if (samples.empty()) return fit;
  auto brier = [&](double temperature) {
    double sum = 0;
    for (const auto& [s, right] : samples) {
      const double miss = scaled_confidence(*s, temperature) - (right ? 1.0 : 0.0);
      sum += miss * miss;
    }
    return sum / static_cast<double>(samples.size());
  };
  fit.brier_before = brier(1.0);
  fit.brier_after = fit.brier_before;
  for (double t = 0.05; t <= 3.0; t *= 1.03) {  // a 3% grid is finer than the fit's noise
    const double b = brier(t);
    if (b < fit.brier_after) fit.brier_after = b, fit.factor = t;
  }
  return fit;
}

}  // namespace digitflow::pipeline

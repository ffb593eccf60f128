// digitflow score: compares a run's results.jsonl with the truth of the same pages and
// prints exact-match rate, digit accuracy, false strings, the same at confidence
// thresholds, and how often strings and digits at each confidence were wrong; --min-exact turns it into a pass/fail check for scripts.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "cli.hpp"
#include "commands.hpp"
#include "digitflow/pipeline/results.hpp"
#include "digitflow/pipeline/score.hpp"

namespace digitflow::cli {

int run_score(int argc, char** argv) {
  std::vector<std::string> files;
  bool json = false, fit = false;
  double min_exact = -1;
  po::options_description options("Options");
  // clang-format off
  options.add_options()
      ("json", po::bool_switch(&json), "print the report as one JSON object")
      ("min-exact", po::value(&min_exact)->value_name("X"),
       "exit with status 1 when the exact-match rate (exact strings / truth strings) is "
       "below X (0..1)")
      ("fit-temperature", po::bool_switch(&fit),
       "also fit the calibration: the factor to multiply pipeline.temperature by so that "
       "string confidences best predict exact strings (on 500 strings or more)")
      ("file", po::value(&files)->composing(), "RESULTS.jsonl TRUTH.jsonl (positional)");
  // clang-format on
  po::positional_options_description positional;
  positional.add("file", 2);
  po::variables_map vm;
  if (!parse(argc, argv, "digitflow score RESULTS.jsonl TRUTH.jsonl [--json] [--min-exact X] [--fit-temperature]",
             "Scores results against truth (both in the results.jsonl format). Pages pair by\n"
             "page and page_index; a result string matches a truth string when their boxes\n"
             "overlap with IoU >= 0.3 (one to one, largest overlap first), and is exact when\n"
             "its text is identical. Reports:\n"
             "  - the exact-match rate (exact / truth strings), digit accuracy (1 - edit\n"
             "    distance / truth digits; a missed string counts its length) and false strings\n"
             "    per page; where the truth gives a box per digit (digitflow synth's does), the\n"
             "    exact strings among those with touching digits (two neighbours' boxes meet)\n"
             "    and among the others;\n"
             "  - the same at confidence >= 0.5, 0.9 and 0.99, with the share of strings kept;\n"
             "  - string calibration: by confidence band, how many result strings were wrong (a\n"
             "    false string counts wrong) beside 1 - their mean confidence;\n"
             "  - digit calibration: by confidence band, how often the digits of matched strings\n"
             "    of the right length were wrong beside how often their confidence says;\n"
             "  - with template fields: per field the valid rate and exact fields; all fields'\n"
             "    exact-match rate and the same at field confidence >= 0.5, 0.9, 0.99 (the share\n"
             "    kept; among them the fields a rule corrected, and how many of those were right).\n"
             "Exit status: 0; 1 on an error or when --min-exact is not met; 2 on usage mistakes.",
             options, &positional, vm))
    return 0;
  if (files.size() != 2) throw UsageError("expects RESULTS.jsonl and TRUTH.jsonl");
  if (vm.count("min-exact") && (min_exact < 0 || min_exact > 1))
    throw UsageError("--min-exact expects a number from 0 to 1");

  const std::vector<pipeline::PageResult> results = pipeline::read_results(files[0]);
  const std::vector<pipeline::PageResult> truth = pipeline::read_results(files[1]);
  if (truth.empty()) throw std::runtime_error(files[1] + ": holds no pages");
  // Given the other way round, the scores look plausible: say so.
  if (pipeline::looks_like_truth(results) && !pipeline::looks_like_truth(truth))
    std::fprintf(stderr,
                 "warning: %s looks like a truth file and %s like results (every string of the first at "
                 "confidence 1, with no other candidates): the order is RESULTS TRUTH\n",
                 files[0].c_str(), files[1].c_str());
  const pipeline::ScoreReport report = pipeline::score_results(results, truth);

  pipeline::TemperatureFit calibration;
  if (fit) calibration = pipeline::fit_temperature(results, truth);
  // Below a few hundred strings the fit follows a handful of them.
  constexpr int kFewStrings = 500;
  if (fit && calibration.strings < kFewStrings)
    std::fprintf(stderr,
                 "warning: the temperature was fitted on %d strings, too few to trust (fit it on %d or more: "
                 "a few hundred pages)\n",
                 calibration.strings, kFewStrings);
  if (json) {
    nlohmann::json out = pipeline::to_json(report);
    if (fit)
      out["temperature_fit"] = {{"factor", calibration.factor}, {"brier_before", calibration.brier_before},
                                {"brier_after", calibration.brier_after}, {"strings", calibration.strings}};
    std::cout << out.dump(2) << "\n";
  } else {
    std::cout << pipeline::score_table(report);
    if (fit)
      std::printf("\ntemperature fit over %d strings: multiply pipeline.temperature by %.3f "
                  "(Brier score %.4f -> %.4f)\n",
                  calibration.strings, calibration.factor, calibration.brier_before, calibration.brier_after);
  }
  if (vm.count("min-exact") && report.exact_rate < min_exact) {
    std::cerr << "digitflow score: exact-match rate " << report.exact_rate
              << " is below --min-exact " << min_exact << "\n";
    return 1;
  }
  return 0;
}

}  // namespace digitflow::cli

// digitflow merge: joins the outputs of `digitflow run --shard K/N` into the output one
// unsharded run would have written (pipeline/merge.hpp does the work and the checks).
#include <cstdio>
#include <iostream>

#include "cli.hpp"
#include "commands.hpp"
#include "digitflow/pipeline/merge.hpp"

namespace digitflow::cli {

namespace fs = std::filesystem;

int run_merge(int argc, char** argv) {
  std::vector<std::string> inputs;
  std::string out;
  po::options_description options("Options");
  options.add_options()
      ("out", po::value(&out)->value_name("DIR"), "merged output folder (created; results there are replaced)")
      ("input", po::value(&inputs)->multitoken()->value_name("OUT_K"), "shard output folders (positional)");
  po::positional_options_description positional;
  positional.add("input", -1);
  po::variables_map vm;
  if (!parse(argc, argv, "digitflow merge OUT_0 OUT_1 .. OUT_N-1 --out DIR",
             "Joins the output folders of `digitflow run JOB_DIR --shard K/N` (K = 0..N-1) into\n"
             "DIR, as one run without --shard would have written it: results.jsonl and\n"
             "results.csv in page order (by path, then page inside a file), byte for byte the\n"
             "same, overlays/ copied, and summary.json with the counts summed over the shards;\n"
             "stage_seconds are sums too, while seconds is the longest shard's (the shards ran\n"
             "side by side) and pages_per_s is pages / seconds.\n"
             "Every shard of the split must be given, once, in any order. Refused, with the folder\n"
             "(and file and line) named: a missing shard, shards of different N, a shard given\n"
             "twice, a run that was stopped, a missing or malformed results.jsonl, results.csv or\n"
             "summary.json, the same page in two inputs, DIR equal to an input. Nothing in DIR\n"
             "changes then; otherwise each file is written whole and renamed into place,\n"
             "summary.json last.\n"
             "Exit status: 0 when merged (failed pages are counted in summary.json, as by run),\n"
             "1 when an input is refused or DIR cannot be written, 2 on usage mistakes.",
             options, &positional, vm))
    return 0;
  if (inputs.empty()) throw UsageError("no shard output folders given");
  if (out.empty()) throw UsageError("--out DIR is required");
  if (fs::exists(out) && !fs::is_directory(out)) throw UsageError("--out " + out + ": exists and is not a folder");

  std::vector<fs::path> dirs(inputs.begin(), inputs.end());
  const pipeline::MergeReport report = pipeline::merge_outputs(dirs, out);
  for (const std::string& warning : report.warnings) std::cerr << "digitflow merge: warning: " << warning << "\n";
  auto counted = [](long long n, const char* one, const char* many) { return std::to_string(n) + " " + (n == 1 ? one : many); };
  std::printf("merged %s: %s, %s, %s could not be read\n", counted(report.shards, "shard", "shards").c_str(),
              counted(report.pages, "page", "pages").c_str(), counted(report.strings, "string", "strings").c_str(),
              counted(report.failed_pages, "page", "pages").c_str());
  std::printf("results: %s (results.jsonl, results.csv, summary.json%s)\n", out.c_str(),
              report.overlays ? ", overlays/" : "");
  return 0;
}

}  // namespace digitflow::cli

// digitflow synth: writes a folder of synthetic scanned pages (forms, checks or plain sheets
// with MNIST test digits written on them, or its training digits to learn from) and their
// truth.jsonl, to test and score runs on.
#include <cstdio>
#include <iostream>
#include <set>

#include "cli.hpp"
#include "commands.hpp"
#include "digitflow/pipeline/results.hpp"
#include "digitflow/pipeline/synth.hpp"

namespace digitflow::cli {

namespace fs = std::filesystem;

namespace {

// --force over an earlier synth output: its page files go, so that no page of the old job
// is left without truth in the new one.
void remove_previous_job(const fs::path& out) {
  std::set<std::string> files;
  for (const pipeline::PageResult& page : pipeline::read_results((out / "truth.jsonl").string()))
    files.insert(page.page);
  for (const std::string& file : files) fs::remove(out / file);
  fs::remove(out / "truth.jsonl");
  fs::remove(out / "template.yaml");
  fs::remove(out / "sources.jsonl");
}

}  // namespace

int run_synth(int argc, char** argv) {
  CommonOptions common;
  pipeline::SynthOptions synth;
  std::string out, data_dir;
  bool force = false;
  po::options_description options("Options");
  // clang-format off
  options.add_options()
      ("out", po::value(&out)->value_name("DIR"),
       "folder to write the pages, truth.jsonl and template.yaml into")
      ("pages", po::value(&synth.pages)->value_name("N")->default_value(12),
       "pages in all (with 6 or more, one multi-page TIFF and one PDF among them)")
      ("seed", po::value(&synth.seed)->value_name("S")->default_value(1),
       "random seed: the same seed gives identical files")
      ("kind", po::value(&synth.kind)->value_name("K")->default_value("forms"),
       "forms (A4 forms with 8 fields), checks (bank checks) or free (strings anywhere on a "
       "plain sheet)")
      ("jpeg-share", po::value(&synth.jpeg_share)->value_name("X")->default_value(0.2, "0.2"),
       "share of the single-page files stored as JPEG, 0..1 (the others are PNG)")
      ("touching", po::value(&synth.touching_share)->value_name("X")->default_value(0.12, "0.12"),
       "share of the strings in which two neighbouring digits touch, 0..1")
      ("dpi", po::value(&synth.dpi)->value_name("N")->default_value(300),
       "the scanner's resolution, 100..1200: pages are drawn at 300 dpi and scanned at N (the "
       "truth in the pixels of the files; PDF pages are the paper's size, their truth at 300 dpi)")
      ("bitonal", po::bool_switch(&synth.bitonal),
       "scan in black and white, as check scanners do: TIFF and PDF pages 1-bit CCITT G4, no "
       "JPEG files")
      ("untagged", po::bool_switch(&synth.untagged),
       "files state no resolution (PNG, JPEG and TIFF), as some scanners write them")
      ("one-pdf", po::bool_switch(&synth.one_pdf),
       "every page in one PDF (DIR/batch1/form-001.pdf, check-001.pdf or page-001.pdf), as a "
       "sheet-fed scanner stores a batch")
      ("data-dir", po::value(&data_dir)->value_name("DIR"),
       "folder of the MNIST IDX files (default: DIGITFLOW_DATA or data.dir); only the test set "
       "is used, unless --training-digits")
      ("training-digits", po::bool_switch(&synth.training_digits),
       "write MNIST's training digits instead of its test digits: pages for digitflow train "
       "--pages to learn from, never to score a model on")
      ("sources", po::bool_switch(&synth.sources),
       "also write DIR/sources.jsonl: for each string of the truth, the index in the MNIST set of "
       "the image each of its digits was drawn from")
      ("force", po::bool_switch(&force),
       "write into a folder that is not empty; replaces an earlier synth output there");
  // clang-format on
  add_config_options(options, common);
  po::variables_map vm;
  if (!parse(
          argc, argv, "digitflow synth --out DIR [--pages N] [--seed S] [--kind forms|checks|free]",
          "Writes synthetic scanned pages with handwritten digit strings made of MNIST test\n"
          "digits: PNG and JPEG pages in DIR/batch1 and DIR/batch2 and, from 6 pages on, one\n"
          "multi-page TIFF and one PDF; pages are rotated up to 4 degrees, unevenly lit, blurred\n"
          "and noisy. DIR/truth.jsonl holds every string and digit with its box, in the shape\n"
          "of results.jsonl (for digitflow score); for forms and checks DIR/template.yaml names\n"
          "the fields for digitflow run --template.",
          options, nullptr, vm))
    return 0;
  if (out.empty()) throw UsageError("--out DIR is required");
  if (synth.pages < 1) throw UsageError("--pages must be at least 1");
  if (synth.dpi < 100 || synth.dpi > 1200) throw UsageError("--dpi must be between 100 and 1200");
  if (!(synth.jpeg_share >= 0 && synth.jpeg_share <= 1))
    throw UsageError("--jpeg-share must be between 0 and 1");
  if (!(synth.touching_share >= 0 && synth.touching_share <= 1))
    throw UsageError("--touching must be between 0 and 1");
  if (synth.kind != "forms" && synth.kind != "checks" && synth.kind != "free")
    throw UsageError("--kind " + synth.kind + ": expected forms, checks or free");
  synth.out = out;
  std::error_code ec;
  if (fs::exists(synth.out / "truth.jsonl", ec)) {
    if (!force)
      throw UsageError(out +
                       " holds an earlier synth output (truth.jsonl); pass --force to replace it");
    remove_previous_job(synth.out);
  } else if (fs::is_directory(synth.out, ec) && !fs::is_empty(synth.out, ec) && !force) {
    throw UsageError(out + " is not empty; choose a new folder, or pass --force to write into it");
  }
  config::Settings settings = load_settings(common);
  synth.mnist_dir = mnist_dir(settings, data_dir);

  ProgressLine progress;
  const pipeline::SynthReport report =
      pipeline::make_synthetic_job(synth, [&](int done, int total) {
        progress.update("synth: page " + std::to_string(done) + " of " + std::to_string(total),
                        done == total);
      });
  progress.finish();
  std::printf(
      "%d %s pages in %d files (%d PNG, %d JPEG, %d TIFF, %d PDF), %d strings, %d digits; truth in "
      "%s%s%s\n",
      report.pages, synth.kind.c_str(), report.files, report.png, report.jpeg, report.tiff,
      report.pdf, report.strings, report.digits, report.truth.c_str(),
      report.template_file.empty() ? "" : ", template in ", report.template_file.c_str());
  if (!report.sources.empty()) std::printf("each digit's MNIST image: %s\n", report.sources.c_str());
  return 0;
}

}  // namespace digitflow::cli

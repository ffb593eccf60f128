// digitflow run: reads every page of a job folder and writes results.jsonl, results.csv,
// summary.json (and overlays) into the output folder, with a progress bar. Ctrl-C stops
// feeding pages; those in flight are finished and written, so the results stay valid.
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <optional>
#include <nlohmann/json.hpp>
#include <opencv2/core/utils/logger.hpp>

#include "cli.hpp"
#include "commands.hpp"
#include "digitflow/config/template.hpp"
#include "digitflow/kernels/model_file.hpp"
#include "digitflow/kernels/parallel.hpp"
#include "digitflow/pipeline/run.hpp"

namespace digitflow::cli {

namespace fs = std::filesystem;
namespace k = digitflow::kernels;

namespace {

std::string bar(double share, int width) {
  const int filled = static_cast<int>(share * width + 0.5);
  std::string text(static_cast<size_t>(width + 2), '.');
  text.front() = '[';
  text.back() = ']';
  std::fill_n(text.begin() + 1, filled, '#');
  return text;
}

}  // namespace

int run_run(int argc, char** argv) {
  CommonOptions common;
  std::string job, out, model, template_file, shard;
  bool overlays = false;
  pipeline::Template form;
  pipeline::RunOptions run;
  po::options_description options("Options");
  options.add_options()
      ("out", po::value(&out)->value_name("DIR"), "output folder (created; results there are replaced, unless --resume)")
      ("template", po::value(&template_file)->value_name("T.yaml"),
       "form template: named fields with zones and rules, a YAML file or the name of one in config/templates/ "
       "(--template check); default: search the whole page")
      ("model", po::value(&model)->value_name("FILE"),
       "model file (default: model.default, models/digits.safetensors); for model.default only, a small screening "
       "model (model.screen) reads every digit first and passes on those it is unsure of, and a partner model "
       "(model.partner) reads those beside it")
      ("threads", po::value<int>()->value_name("N"), "worker threads, 0 = every core (runtime.threads)")
      ("overlays", po::bool_switch(&overlays), "also write OUT/overlays/<page>.png with the boxes and text drawn")
      ("shard", po::value(&shard)->value_name("K/N"),
       "read only share K of N (K = 0..N-1, as JOB_COMPLETION_INDEX or SLURM_ARRAY_TASK_ID): a file is in share "
       "FNV-1a(its path under JOB_DIR) mod N, so all pages of a TIFF or PDF stay together and adding a file moves "
       "no other; join the N outputs with digitflow merge")
      ("resume", po::bool_switch(&run.resume),
       "go on with the run in OUT_DIR that Ctrl-C stopped or a crash cut short (the same JOB_DIR and "
       "options): the pages its results.jsonl holds whole are kept, the rest are read after them")
      ("decode-clean-only", po::bool_switch(&run.decode_clean_only),
       "for timing: decode and clean every page but read nothing (results have no strings)")
      ("job", po::value(&job)->value_name("JOB_DIR"), "job folder (positional)");
  add_config_options(options, common);
  add_backend_option(options, common);
  po::positional_options_description positional;
  positional.add("job", 1);
  po::variables_map vm;
  if (!parse(argc, argv,
             "digitflow run JOB_DIR --out OUT_DIR [--template T.yaml] [--model M] [--threads N] [--overlays] "
             "[--shard K/N] [--resume]",
             "Reads the handwritten digit strings on every page under JOB_DIR (recursively: PNG,\n"
             "JPEG, BMP, TIFF incl. multi-page, PDF at 300 dpi) and writes OUT_DIR/results.jsonl\n"
             "(one JSON object per page), results.csv (one row per string) and summary.json.\n"
             "Pages are read at 300 dpi: one whose file states another resolution (a check scanned\n"
             "at 200 dpi) is resampled first; boxes are in the pixels of the page as stored. For\n"
             "files that state none, --set pipeline.assume_dpi=N gives the scanner's resolution.\n"
             "A page that cannot be read gets an \"error\" in its results line; the job goes on.\n"
             "Files that are not pages (notes, truth.jsonl) are skipped and listed in summary.json.\n"
             "With --shard K/N only that share of the files is read (summary.json records it as\n"
             "\"shard\": {\"index\": K, \"count\": N}); digitflow merge joins the N outputs into\n"
             "results.jsonl and results.csv equal, byte for byte, to those of one run without it.\n"
             "Settings: pipeline.* in config/digitflow.yaml (e.g. --set pipeline.min_digit_height=24).\n"
             "Ctrl-C finishes the pages in flight and stops with valid outputs; --resume goes on\n"
             "from them (or from what a crash left) to the outputs of one whole run.\n"
             "Exit status: 0 when every page was read, 3 when some pages failed, 130 when\n"
             "stopped, 1 on errors (and when JOB_DIR holds no pages, unless --shard is given),\n"
             "2 on usage mistakes.",
             options, &positional, vm))
    return 0;
  if (job.empty()) throw UsageError("no JOB_DIR given");
  if (out.empty()) throw UsageError("--out OUT_DIR is required");
  if (vm.count("shard")) {
    try {
      run.shard = pipeline::parse_shard(shard);
    } catch (const std::invalid_argument& e) {
      std::string message = "--shard ";
      message += shard;
      message += ": ";
      message += e.what();
      throw UsageError(message);
    }
  }
  if (!fs::is_directory(job)) throw UsageError(job + ": " + (fs::exists(job) ? "not a folder" : "no such folder"));
  if (fs::exists(out) && !fs::is_directory(out)) throw UsageError("--out " + out + ": exists and is not a folder");
  {
    // Results inside the job folder would be read as pages by the next run.
    const fs::path a = fs::weakly_canonical(fs::absolute(job)), b = fs::weakly_canonical(fs::absolute(out));
    const auto [a_end, b_at] = std::mismatch(a.begin(), a.end(), b.begin(), b.end());
    if (a_end == a.end())
      throw UsageError("--out " + out + " is " + (b_at == b.end() ? "the job folder itself" : "inside the job folder") +
                       "; write the results elsewhere");
  }
  config::Settings settings = load_settings(common);
  start_backend(settings);
  k::set_threads(threads_option(vm, settings.runtime.threads));
  cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_SILENT);

  if (!template_file.empty()) {
    // A bare name ("check") is one of config/templates/.
    fs::path named = template_file;
    const bool bare = !named.has_parent_path() && !named.has_extension();
    if (bare && (!fs::exists(named) || fs::is_directory(named))) {
      const fs::path shipped = project_root() / "config" / "templates" / (template_file + ".yaml");
      if (fs::exists(shipped)) named = shipped;
    }
    if (fs::is_directory(named)) throw UsageError("--template " + template_file + ": is a folder, not a template file");
    if (!fs::exists(named))
      throw UsageError("--template " + template_file + ": no such file" +
                       (bare ? ", nor config/templates/" + template_file + ".yaml" : std::string()));
    form = config::load_template(named);
    run.page_template = &form;
  }
  fs::path model_path = model.empty() ? resolve(settings.model.default_model) : fs::path(model);
  k::LoadedModel loaded = k::load_model(model_path);
  {
    pipeline::RunOptions from_settings = run_options(settings);
    from_settings.decode_clean_only = run.decode_clean_only;
    from_settings.resume = run.resume;
    from_settings.shard = run.shard;
    from_settings.page_template = run.page_template;
    run = from_settings;
  }
  run.job_dir = job;
  run.out_dir = out;
  run.overlays = overlays;
  std::string model_files = "the model: " + model_path.string();  // for messages
  std::optional<k::LoadedModel> screen;
  if (const fs::path screen_path = screen_for(settings, model_path); !screen_path.empty()) {
    screen = k::load_model(screen_path);
    run.screen = &screen->network;
    model_files += ", the screening model: " + screen_path.string();
  }
  std::optional<k::LoadedModel> partner;
  if (const fs::path partner_path = partner_for(settings, model_path); !partner_path.empty()) {
    partner = k::load_model(partner_path);
    run.partner = &partner->network;
    model_files += ", the partner model: " + partner_path.string();
  }

  std::optional<CtrlC> ctrl_c(std::in_place);
  ProgressLine line;
  auto progress = [&](const pipeline::RunProgress& p) {
    const double share = p.pages_total ? static_cast<double>(p.pages_done) / static_cast<double>(p.pages_total) : 1.0;
    const double eta = p.pages_per_s > 0 ? static_cast<double>(p.pages_total - p.pages_done) / p.pages_per_s : 0;
    char text[256];
    std::snprintf(text, sizeof text, "%s %lld/%lld pages  %.1f pages/s  %lld strings  %lld failed  ETA %s",
                  bar(share, 24).c_str(), static_cast<long long>(p.pages_done), static_cast<long long>(p.pages_total),
                  p.pages_per_s, static_cast<long long>(p.strings), static_cast<long long>(p.failed),
                  format_duration(eta).c_str());
    // Away from a terminal (a log file): a line every 10% of the pages.
    const int64_t step = std::max<int64_t>(1, p.pages_total / 10);
    line.update(text, !line.is_terminal() && (p.pages_done % step == 0 || p.pages_done == p.pages_total));
  };
  pipeline::RunSummary s = pipeline::run_job(run, loaded.network, progress, CtrlC::flag());
  line.finish();
  ctrl_c.reset();

  if (run.shard.count > 1) std::printf("shard %s: ", pipeline::to_string(run.shard).c_str());
  std::printf("%s%lld %s in %s (%.2f pages/s): %lld strings, %lld digits, %lld below %.0f%% confidence",
              s.cancelled ? "STOPPED after " : "", static_cast<long long>(s.pages), s.pages == 1 ? "page" : "pages",
              format_duration(s.seconds).c_str(),
              s.pages_per_s, static_cast<long long>(s.strings), static_cast<long long>(s.digits),
              static_cast<long long>(s.low_confidence_strings), 100 * run.low_confidence);
  if (run.page_template)
    std::printf(", %lld of %lld fields valid", static_cast<long long>(s.valid_fields), static_cast<long long>(s.fields));
  if (run.resume) std::printf(" (%lld of the pages kept from the stopped run)", static_cast<long long>(s.resumed_after));
  std::printf("\n");
  if (!s.skipped_files.empty()) {
    std::printf("skipped %zu %s:", s.skipped_files.size(),
                s.skipped_files.size() == 1 ? "file that is not a page" : "files that are not pages");
    for (size_t i = 0; i < s.skipped_files.size() && i < 5; ++i) std::printf(" %s", s.skipped_files[i].c_str());
    std::printf("%s\n", s.skipped_files.size() > 5 ? " ..." : "");
  }
  note_unused_folder_template(job, run.page_template != nullptr);
  if (!s.int8_fallback.empty())
    std::fprintf(stderr, "warning: runtime.int8 is on, but these read in fp32 (slower): %s (%s)\n",
                 s.int8_fallback.c_str(), model_files.c_str());
  if (s.pages_without_resolution)
    std::printf("%lld %s; if %s scanned at another, say so with --set pipeline.assume_dpi=DPI\n",
                static_cast<long long>(s.pages_without_resolution),
                s.pages_without_resolution == 1 ? "page states no scan resolution and was read as a 300 dpi scan"
                                                : "pages state no scan resolution and were read as 300 dpi scans",
                s.pages_without_resolution == 1 ? "it was" : "they were");
  if (s.failed_pages)
    std::printf("%lld %s could not be read: see \"error\" in %s\n", static_cast<long long>(s.failed_pages),
                s.failed_pages == 1 ? "page" : "pages",
                (fs::path(out) / "results.jsonl").c_str());
  std::printf("results: %s (results.jsonl, results.csv, summary.json%s)\n", out.c_str(), overlays ? ", overlays/" : "");
  if (s.cancelled) {
    std::printf("the same command with --resume goes on from there\n");
    return 130;
  }
  // The wrong folder, or scans not yet copied: not a night's work done. (A shard of a small
  // folder may rightly hold none.)
  if (s.pages == 0 && run.shard.count <= 1) {
    std::fprintf(stderr, "digitflow run: no pages under %s (PNG, JPEG, BMP, TIFF or PDF files, in subfolders too)\n",
                 job.c_str());
    return 1;
  }
  return s.failed_pages ? 3 : 0;
}

}  // namespace digitflow::cli

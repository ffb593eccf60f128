// Shared option handling and terminal output for the subcommands.
#include "cli.hpp"

#include "digitflow/kernels/backend.hpp"
#include "digitflow/pipeline/harvest.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <set>

namespace digitflow::cli {

namespace fs = std::filesystem;

void add_config_options(po::options_description& options, CommonOptions& common) {
  options.add_options()
      ("config", po::value(&common.config_files)->composing()->value_name("FILE"),
       "YAML file overriding config/digitflow.yaml (may be repeated)")
      ("set", po::value(&common.sets)->composing()->value_name("KEY=VALUE"),
       "override one setting of config/digitflow.yaml, e.g. --set runtime.threads=4 (may be repeated)");
}

void add_backend_option(po::options_description& options, CommonOptions& common) {
  options.add_options()("backend", po::value(&common.backend)->value_name("NAME"),
                        "where the CNN runs: cpu, cuda (our GPU kernels), cudnn (cuDNN convolutions) or "
                        "auto (the fastest that starts, else the CPU); runtime.backend");
}

bool parse(int argc, char** argv, const std::string& usage, const std::string& about,
           po::options_description& options, po::positional_options_description* positional,
           po::variables_map& vm) {
  options.add_options()("help,h", "show this help");
  try {
    po::command_line_parser parser(argc, argv);
    parser.options(options);
    if (positional) parser.positional(*positional);
    po::store(parser.run(), vm);
    if (vm.count("help")) {
      // Positional arguments are in the usage line, not among the options.
      std::set<std::string> positional_names;
      if (positional)
        for (unsigned i = 0; i < std::min(positional->max_total_count(), 8u); ++i)
          positional_names.insert(positional->name_for_position(i));
      po::options_description shown("Options");
      for (const auto& option : options.options())
        if (!positional_names.count(option->long_name())) shown.add(option);
      std::cout << "Usage: " << usage << "\n\n" << about << "\n\n" << shown << "\n";
      return false;
    }
    po::notify(vm);
  } catch (const po::too_many_positional_options_error&) {
    throw UsageError("too many arguments; usage: " + usage);
  } catch (const po::error& e) {
    throw UsageError(e.what());
  }
  return true;
}

fs::path project_root() {
  auto has_config = [](const fs::path& dir) { return fs::exists(dir / "config" / "digitflow.yaml"); };
  if (const char* home = std::getenv("DIGITFLOW_HOME"); home && *home) {
    if (!has_config(home))
      throw std::runtime_error(std::string("DIGITFLOW_HOME=") + home + " holds no config/digitflow.yaml");
    return home;
  }
  if (has_config(fs::current_path())) return fs::current_path();
  if (has_config(DIGITFLOW_SOURCE_DIR)) return DIGITFLOW_SOURCE_DIR;
  throw std::runtime_error(
      "cannot find config/digitflow.yaml: run from the digitflow folder or set DIGITFLOW_HOME");
}

config::Settings load_settings(const CommonOptions& common, std::vector<std::string> extra_sets) {
  std::vector<fs::path> files(common.config_files.begin(), common.config_files.end());
  for (const auto& f : files)
    if (!fs::exists(f)) throw UsageError("--config " + f.string() + ": no such file");
  std::vector<std::string> sets = common.sets;
  if (!common.backend.empty()) {
    try {
      kernels::parse_backend(common.backend);
    } catch (const std::invalid_argument&) {
      throw UsageError("--backend " + common.backend + ": expects cpu, cuda, cudnn or auto");
    }
    sets.push_back("runtime.backend=" + common.backend);
  }
  sets.insert(sets.end(), extra_sets.begin(), extra_sets.end());
  try {
    return config::load_settings(project_root() / "config" / "digitflow.yaml", files, sets);
  } catch (const config::ConfigError& e) {
    if (e.source().rfind("--set", 0) == 0) throw UsageError(e.what());  // typed on the command line
    throw;
  }
}

kernels::Backend start_backend(const config::Settings& settings) {
  return kernels::start_backend(kernels::parse_backend(settings.runtime.backend));
}

pipeline::RunOptions run_options(const config::Settings& settings) {
  const config::PipelineSettings& ps = settings.pipeline;
  if (ps.min_digit_height > ps.max_digit_height)
    throw UsageError("pipeline.min_digit_height (" + std::to_string(ps.min_digit_height) +
                     ") is above pipeline.max_digit_height (" + std::to_string(ps.max_digit_height) + ")");
  pipeline::RunOptions run;
  run.limits.max_pixels = ps.max_page_pixels;
  run.limits.pdf_dpi = ps.pdf_dpi;
  if (ps.assume_dpi != 0 && ps.assume_dpi < 100)
    throw UsageError("pipeline.assume_dpi is " + std::to_string(ps.assume_dpi) +
                     ": give a scanner's resolution, 100 to 1200 dpi, or 0 to read pages as they are stored");
  run.limits.assume_dpi = ps.assume_dpi;
  run.pages_in_flight = ps.pages_in_flight;
  run.batch_digits = ps.batch_digits;
  run.segment.min_digit_height = ps.min_digit_height;
  run.segment.max_digit_height = ps.max_digit_height;
  run.low_confidence = ps.low_confidence;
  run.read.temperature = ps.temperature;
  run.screen_confidence = ps.screen_confidence;
  run.int8 = settings.runtime.int8;
  run.read.min_digits = ps.min_string_digits;
  run.backend = start_backend(settings);
  return run;
}

fs::path resolve(const fs::path& path) {
  if (path.is_absolute() || fs::exists(path)) return path;
  fs::path in_root = project_root() / path;
  return fs::exists(in_root) ? in_root : path;
}

namespace {

// A model trained beside model.default (`key` = `value` in the settings), resolved: empty
// when `value` is "" or `model` is not model.default.
fs::path companion_for(const config::Settings& settings, const fs::path& model, const std::string& key,
                       const std::string& value, const std::string& without) {
  if (value.empty()) return {};
  std::error_code ec;
  if (!fs::equivalent(model, resolve(settings.model.default_model), ec)) return {};
  const fs::path path = resolve(value);
  if (!fs::is_regular_file(path))
    throw UsageError(key + ": " + value + ": no such file (set " + key + " to \"\" to read " + without + ")");
  return fs::absolute(path);
}

}  // namespace

fs::path screen_for(const config::Settings& settings, const fs::path& model) {
  return companion_for(settings, model, "model.screen", settings.model.screen,
                       "every digit with the model alone");
}

fs::path partner_for(const config::Settings& settings, const fs::path& model) {
  return companion_for(settings, model, "model.partner", settings.model.partner, "with model.default alone");
}

void note_unused_folder_template(const fs::path& folder, bool template_given) {
  const fs::path own = folder / "template.yaml";
  if (!template_given && fs::is_regular_file(own))
    std::printf("the folder's template.yaml was not used: to read its fields, --template %s\n", own.c_str());
}

fs::path mnist_dir(const config::Settings& settings, const std::string& data_dir_option) {
  if (!data_dir_option.empty()) return data_dir_option;
  return resolve(settings.data.dir);
}

namespace {
double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

namespace {
std::atomic<bool> ctrl_c{false};
extern "C" void on_ctrl_c(int) {
  ctrl_c = true;
  std::signal(SIGINT, SIG_DFL);  // a second Ctrl-C stops at once
}
}  // namespace

CtrlC::CtrlC() {
  ctrl_c = false;
  std::signal(SIGINT, on_ctrl_c);
}
CtrlC::~CtrlC() { std::signal(SIGINT, SIG_DFL); }
bool CtrlC::requested() { return ctrl_c; }
std::atomic<bool>* CtrlC::flag() { return &ctrl_c; }

ProgressLine::ProgressLine() : terminal_(isatty(fileno(stderr)) != 0) {}

void ProgressLine::update(const std::string& text, bool force) {
  double t = now_s();
  if (terminal_) {
    if (!force && t - last_ < 0.1) return;
    std::cerr << "\r\033[K" << text << std::flush;
    open_ = true;
  } else if (force) {
    std::cerr << text << "\n";
  }
  last_ = t;
}

void ProgressLine::finish() {
  if (terminal_ && open_) std::cerr << "\n";
  open_ = false;
}

int threads_option(const po::variables_map& vm, int configured) {
  if (!vm.count("threads")) return configured;
  const int threads = vm["threads"].as<int>();
  if (threads < 0 || threads > config::kMaxThreads)
    throw UsageError("--threads expects 0 (every core) to " + std::to_string(config::kMaxThreads) + ", got " +
                     std::to_string(threads));
  return threads;
}

std::string format_duration(double seconds) {
  long s = std::lround(std::max(0.0, seconds));
  char buf[32];
  if (seconds < 9.95) {  // a short run: "0.4s", not "0s"
    std::snprintf(buf, sizeof buf, "%.1fs", std::max(0.0, seconds));
    return buf;
  }
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%ldh %02ldm", s / 3600, (s / 60) % 60);
  else if (s >= 60)
    std::snprintf(buf, sizeof buf, "%ldm %02lds", s / 60, s % 60);
  else
    std::snprintf(buf, sizeof buf, "%lds", s);
  return buf;
}

kernels::LabelledImages harvest_page_folders(const std::filesystem::path& pages, const std::string& what,
                                             const config::Settings& settings) {
  const pipeline::RunOptions run = run_options(settings);
  const pipeline::HarvestOptions options{run.limits, run.clean, run.segment};
  std::error_code ec;
  if (!std::filesystem::is_directory(pages, ec)) throw UsageError(what + " " + pages.string() + ": no such folder");
  std::vector<std::filesystem::path> jobs;
  if (std::filesystem::exists(pages / "truth.jsonl", ec)) {
    jobs.push_back(pages);
  } else {
    for (const std::filesystem::directory_entry& e : std::filesystem::directory_iterator(pages))
      if (e.is_directory() && std::filesystem::exists(e.path() / "truth.jsonl", ec)) jobs.push_back(e.path());
    std::sort(jobs.begin(), jobs.end());
  }
  if (jobs.empty())
    throw UsageError(what + " " + pages.string() +
                     ": no truth.jsonl in it or in a folder under it; digitflow synth " +
                     (what == "data.pages" ? "--training-digits " : "") + "--out " + (pages / "forms").string() +
                     " writes pages with theirs");
  kernels::LabelledImages all;
  all.rows = 28;
  all.cols = 28;
  std::string first_failure;
  for (const std::filesystem::path& job : jobs) {
    ProgressLine progress;
    pipeline::HarvestReport r;
    const kernels::LabelledImages images = pipeline::harvest_pieces(job, options, &r, [&](int64_t done, int64_t total) {
      progress.update("cutting digit images from " + job.string() + ": page " + std::to_string(done) + " of " +
                          std::to_string(total),
                      done == total);
    });
    progress.finish();
    std::fprintf(stderr,
                 "%s: %lld pages (%lld failed): %lld digits, %lld glued digits and %lld other pieces as "
                 "\"not a digit\"; %lld partial pieces left out, %lld truth digits not found\n",
                 job.c_str(), static_cast<long long>(r.pages), static_cast<long long>(r.failed_pages),
                 static_cast<long long>(r.digits), static_cast<long long>(r.glued),
                 static_cast<long long>(r.not_digit), static_cast<long long>(r.ambiguous),
                 static_cast<long long>(r.missed));
    if (!r.first_failure.empty()) std::fprintf(stderr, "  the first that failed: %s\n", r.first_failure.c_str());
    if (first_failure.empty() && !r.first_failure.empty()) first_failure = (job / r.first_failure).string();
    kernels::append_images(all, images);
  }
  if (all.count == 0)
    throw std::runtime_error(what + " " + pages.string() + ": no digit image could be cut from its pages" +
                             (first_failure.empty() ? std::string() : "; the first that failed: " + first_failure));
  return all;
}

}  // namespace digitflow::cli

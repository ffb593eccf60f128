// Shared pieces of the subcommands: usage errors, the --config/--set/--threads options,
// finding config/digitflow.yaml and resolving paths, and a progress line for terminals.
#pragma once

#include <atomic>
#include <boost/program_options.hpp>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "digitflow/config/config.hpp"
#include "digitflow/kernels/backend.hpp"
#include "digitflow/kernels/idx.hpp"
#include "digitflow/pipeline/run.hpp"

namespace digitflow::cli {

namespace po = boost::program_options;

// A mistake on the command line: printed with a hint to --help, exit status 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct CommonOptions {
  std::vector<std::string> config_files;
  std::vector<std::string> sets;
  std::string backend;  // --backend: runtime.backend, after every --set
};

// Adds --config and --set to `options`.
void add_config_options(po::options_description& options, CommonOptions& common);
// Adds --backend (commands that run the CNN).
void add_backend_option(po::options_description& options, CommonOptions& common);

// Parses argv (after the subcommand) into `vm`; throws UsageError on unknown or bad options.
// Returns false when --help was given (help is printed).
bool parse(int argc, char** argv, const std::string& usage, const std::string& about,
           po::options_description& options, po::positional_options_description* positional,
           po::variables_map& vm);

// The project folder: the one holding config/digitflow.yaml ($DIGITFLOW_HOME, then the
// working directory, then the source tree this binary was built from).
std::filesystem::path project_root();
config::Settings load_settings(const CommonOptions& common, std::vector<std::string> extra_sets = {});
// Starts runtime.backend and returns the backend that runs (auto resolved); a backend that
// cannot start throws with one line saying why.
kernels::Backend start_backend(const config::Settings& settings);
// The page pipeline's settings (pipeline.*) as run options; folders, outputs, template and
// overlays are left for the caller. Throws UsageError for settings that contradict.
pipeline::RunOptions run_options(const config::Settings& settings);
// A relative path from the config: as given if it exists from the working directory, else
// relative to the project root.
std::filesystem::path resolve(const std::filesystem::path& path);
// The screening model (model.screen) to read with `model`, resolved: empty when model.screen
// is "" or `model` is not model.default (a screen is trained beside the model it screens
// for). Throws UsageError naming the setting when the file is missing.
std::filesystem::path screen_for(const config::Settings& settings, const std::filesystem::path& model);
// The partner model (model.partner) to read with `model`, the same way: empty when
// model.partner is "" or `model` is not model.default.
std::filesystem::path partner_for(const config::Settings& settings, const std::filesystem::path& model);

// A job folder's own template is read only when named (the drop folder and the web's submit
// page take it by themselves): when `folder` holds a template.yaml and no template was
// given, prints the option that would read it.
void note_unused_folder_template(const std::filesystem::path& folder, bool template_given);

// The digit images digitflow run cuts from pages with truth (pipeline::harvest_pieces, with
// run's decode limits, cleaning and segmentation: run_options(settings)), with a progress
// line and a count per folder on stderr: `pages` is one folder made by digitflow synth (it
// holds truth.jsonl), or a folder of them (each folder under it that holds one, in name
// order). Throws UsageError naming `what` (the option) when there is no such folder or no
// truth.jsonl in it or under it, and std::runtime_error when no image could be cut.
kernels::LabelledImages harvest_page_folders(const std::filesystem::path& pages, const std::string& what,
                                             const config::Settings& settings);

// The MNIST folder named by --data-dir, DIGITFLOW_DATA or data.dir.
std::filesystem::path mnist_dir(const config::Settings& settings, const std::string& data_dir_option);

// A single line redrawn in place on a terminal (stderr), throttled; plain lines elsewhere.
class ProgressLine {
 public:
  ProgressLine();
  bool is_terminal() const { return terminal_; }
  // Redrawn on a terminal at most every 100 ms; ignored elsewhere unless `force`.
  void update(const std::string& text, bool force = false);
  void finish();  // ends the line on a terminal

 private:
  bool terminal_;
  bool open_ = false;
  double last_ = -1.0;
};

// Ctrl-C as a request to stop, while one lives: the first sets requested() (the work stops
// where it can keep what it has done), a second ends the program at once.
class CtrlC {
 public:
  CtrlC();
  ~CtrlC();
  CtrlC(const CtrlC&) = delete;
  CtrlC& operator=(const CtrlC&) = delete;
  static bool requested();
  static std::atomic<bool>* flag();
};

// --threads where given, else `configured` (runtime.threads, already checked): 0 = every
// core, up to config::kMaxThreads. Throws UsageError naming the option for anything else.
int threads_option(const po::variables_map& vm, int configured);

std::string format_duration(double seconds);  // "1h 02m", "3m 05s", "42s", "4.5s"

}  // namespace digitflow::cli

// Typed settings for every digitflow command: config/digitflow.yaml (the defaults), then each
// --config file, then --set key=value strings, and model YAML files turned into ModelSpec.
// Nothing is ignored: unknown keys, wrong types and bad values throw ConfigError naming the
// file (or --set), the line and the dotted key.
#pragma once

#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "digitflow/kernels/model_spec.hpp"
#include "digitflow/kernels/train_config.hpp"

namespace digitflow::config {

// what() reads "SOURCE:LINE: KEY: PROBLEM"; the line is left out where YAML gives none.
class ConfigError : public std::runtime_error {
 public:
  // source: a file path, or "--set KEY=VALUE"; line: 1-based, 0 when unknown; key: dotted
  // (layers[2].conv2d.out in model files), empty when the problem is the whole file.
  ConfigError(std::string source, int line, std::string key, const std::string& problem);

  const std::string& source() const { return source_; }
  int line() const { return line_; }
  const std::string& key() const { return key_; }

 private:
  std::string source_;
  int line_ = 0;
  std::string key_;
};

// Relative paths are kept as written and resolved against the working directory.
struct DataSettings {
  std::string dir = "data/mnist";  // data.dir: folder of the MNIST IDX files
  int negatives = 0;               // data.negatives: generated "not a digit" images (class 10)
  std::string pages;               // data.pages: folder of training pages with truth ("" = none)
  int mnist_repeats = 1;           // data.mnist_repeats: draws of each MNIST digit per epoch
};

struct ModelSettings {
  std::string default_model = "models/digits.safetensors";  // model.default
  std::string spec = "config/models/default.yaml";          // model.spec
  std::string screen = "models/screen.safetensors";         // model.screen: "" = none
  std::string partner = "models/partner.safetensors";       // model.partner: "" = none
};

struct RuntimeSettings {
  int threads = 0;              // runtime.threads: 0 = every core
  std::string backend = "cpu";  // runtime.backend: "cpu" | "cuda" | "cudnn" | "auto"
  bool int8 = true;             // runtime.int8: int8 convolutions on the CPU where the model is calibrated
};

// The page pipeline (digitflow run); see pipeline/run.hpp for what each one steers.
struct PipelineSettings {
  int max_page_pixels = 80'000'000;  // pipeline.max_page_pixels: larger pages are refused
  int pdf_dpi = 300;                 // pipeline.pdf_dpi: PDF pages rendered at this resolution
  int assume_dpi = 0;                // pipeline.assume_dpi: resolution of files that state none; 0 = as stored
  int pages_in_flight = 0;           // pipeline.pages_in_flight: 0 = 4 per thread
  int batch_digits = 512;            // pipeline.batch_digits: CNN batch across pages
  int min_digit_height = 30;         // pipeline.min_digit_height: px; smaller ink is not a digit
  int max_digit_height = 400;        // pipeline.max_digit_height: px
  int min_string_digits = 2;         // pipeline.min_string_digits: shorter strings are not reported
  float low_confidence = 0.9f;       // pipeline.low_confidence: strings below go to review
  float temperature = 0.55f;         // pipeline.temperature: probabilities sharpened as p^(1/T)
  float screen_confidence = 0.94f;   // pipeline.screen_confidence: the screen's readings kept above this
};

// Jobs: the store, the state directory and the workers (digitflow submit, worker, serve).
struct JobsSettings {
  std::string state_dir = "var";  // jobs.state_dir: job inputs, results, drop folder, SQLite file
  std::string db;                 // jobs.db: "" = SQLite in the state dir; or postgres://...
  int lease_seconds = 30;         // jobs.lease_seconds: a silent worker's job is taken back after this
  int heartbeat_seconds = 2;      // jobs.heartbeat_seconds: also how soon a cancel is noticed
  bool overlays = true;           // jobs.overlays: draw overlays for every page of a job
};

// The web server (digitflow serve): accounts, sessions, upload limits.
struct WebSettings {
  std::string listen = "127.0.0.1:8080";  // web.listen: HOST:PORT; --listen wins
  int workers = 1;                        // web.workers: in-process job workers; --workers wins
  std::string assets;                     // web.assets: "" = web/assets in the project folder
  bool registration_open = true;          // web.registration_open: false = only admins add users
  int session_hours = 168;                // web.session_hours: a login lasts this long
  int max_file_mb = 50;                   // web.max_file_mb: largest uploaded file
  int max_job_mb = 1024;                  // web.max_job_mb: largest upload of one job, all files
  int max_files = 10000;                  // web.max_files: most files in one job upload
  float review_confidence = 0.9f;         // web.review_confidence: digits below go to review
  int argon2_ops = 2;                     // web.argon2_ops: Argon2id passes for new password hashes
  int argon2_memory_mb = 19;              // web.argon2_memory_mb: Argon2id memory for new hashes
};

// The most threads a command takes (runtime.threads, train.threads, --threads): more only
// slows a run down, and far more makes the threading library fail.
inline constexpr int kMaxThreads = 1024;

struct Settings {
  DataSettings data;
  ModelSettings model;
  kernels::TrainConfig train;
  RuntimeSettings runtime;
  PipelineSettings pipeline;
  JobsSettings jobs;
  WebSettings web;
};

// Precedence, lowest first: the C++ defaults above, defaults_file, the DIGITFLOW_DATA
// environment variable (data.dir only, when set and non-empty), each override file in order,
// then each --set string in order. So DIGITFLOW_DATA beats the shipped defaults but not a
// data.dir the user wrote in a --config file or a --set. Files hold any subset of the keys;
// an empty file changes nothing. After merging, train.threads == 0 takes runtime.threads.
Settings load_settings(const std::filesystem::path& defaults_file,
                       const std::vector<std::filesystem::path>& override_files = {},
                       const std::vector<std::string>& set_overrides = {});

// Every dotted key load_settings accepts, in file order ("data.dir", ..., "runtime.backend").
std::vector<std::string> setting_keys();

// All settings as YAML in the layout of digitflow.yaml; load_settings reads it back to the
// same values (floats are written in their shortest exact form).
std::string settings_to_yaml(const Settings& settings);

// A model YAML file (config/models/*.yaml). Checks layer names and keys, value ranges, that
// shapes stay positive through the layers, that dense layers follow a flatten, and that the
// last dense layer outputs `classes` values. `name` defaults to the file's stem.
kernels::ModelSpec load_model_spec(const std::filesystem::path& yaml);

}  // namespace digitflow::config

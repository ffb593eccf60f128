// digitflow retrain: fine-tunes the default model on the reviewed samples in the job store (as
// the web page's Admin: retrain does, in the foreground), records the new model version and
// prints both evaluations and whether it became the default.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli.hpp"
#include "commands.hpp"
#include "digitflow/jobs/retrain.hpp"
#include "store_options.hpp"

namespace digitflow::cli {

namespace fs = std::filesystem;

namespace {

std::string percent_or_dash(const nlohmann::json& accuracy) {
  if (!accuracy.is_number()) return "-";
  char text[32];
  std::snprintf(text, sizeof text, "%.2f%%", 100 * accuracy.get<double>());
  return text;
}

}  // namespace

int run_retrain(int argc, char** argv) {
  CommonOptions common;
  StoreOptions store_options;
  jobs::RetrainOptions r;
  std::string data_dir;
  bool json = false;
  po::options_description options("Options");
  // clang-format off
  options.add_options()
      ("steps", po::value(&r.steps)->value_name("N"), "optimizer steps of --batch-size images (default 120)")
      ("batch-size", po::value(&r.batch_size)->value_name("N"), "images per step (default 128)")
      ("lr", po::value(&r.lr)->value_name("X"), "peak learning rate, one-cycle (default 0.0001)")
      ("held-out", po::value(&r.held_out_share)->value_name("SHARE"),
       "share of the samples kept out of training for evaluation, chosen by sample id (default 0.2)")
      ("margin", po::value(&r.required_margin)->value_name("SHARE"),
       "promote only when MNIST test accuracy >= the current model's + SHARE (default 0: not worse)")
      ("threads", po::value(&r.threads)->value_name("N"), "threads, 0 = every core (default 2)")
      ("seed", po::value(&r.seed)->value_name("S"), "random seed (default 1)")
      ("data-dir", po::value(&data_dir)->value_name("DIR"), "folder of the MNIST IDX files (default: DIGITFLOW_DATA or data.dir)")
      ("json", po::bool_switch(&json), "print the recorded version as one JSON object");
  // clang-format on
  add_store_options(options, store_options);
  add_config_options(options, common);
  po::variables_map vm;
  if (!parse(argc, argv,
             "digitflow retrain [--state-dir DIR | --db URL] [--steps N] [--margin SHARE]",
             "Fine-tunes the default model (the store's default version, else model.default) on\n"
             "the reviewed samples mixed with MNIST digits and generated negatives, evaluates the\n"
             "new model and the current one on MNIST test and on the held-out samples, and saves\n"
             "it under STATE/models. It becomes the default only when not worse on MNIST test than\n"
             "the current one as the workers read it (model.default beside model.screen and\n"
             "model.partner; a retrained default alone, as the new one will be read).\n"
             "Exit status 0 when it was promoted or rejected, 1 when it failed.",
             options, nullptr, vm))
    return 0;
  if (r.steps < 1) throw UsageError("--steps must be at least 1");
  if (r.batch_size < 2) throw UsageError("--batch-size must be at least 2");
  if (r.held_out_share < 0 || r.held_out_share >= 1)
    throw UsageError("--held-out must be in [0, 1)");
  if (vm.count("threads")) r.threads = threads_option(vm, r.threads);

  Opened o = open_jobs(common, store_options);
  r.lease_ms = int64_t{o.settings.jobs.lease_seconds} * 1000;
  jobs::RetrainPaths paths;
  paths.state = o.state;
  paths.configured_model = fs::absolute(resolve(o.settings.model.default_model));
  paths.mnist_dir = mnist_dir(o.settings, data_dir);
  paths.screen_model = screen_for(o.settings, paths.configured_model);
  paths.partner_model = partner_for(o.settings, paths.configured_model);
  paths.screen_confidence = o.settings.pipeline.screen_confidence;

  const jobs::ModelVersion started = jobs::start_retrain(*o.store, paths, r);
  std::cerr << "model version " << started.id << ": fine-tuning "
            << jobs::default_model(*o.store, paths.configured_model).string() << " into "
            << started.path << "\n";
  ProgressLine progress;
  const jobs::RetrainResult result =
      jobs::run_retrain(*o.store, started, paths, r, [&](const jobs::RetrainProgress& p) {
        if (p.stage != "training") {
          progress.update(p.stage, true);
          return;
        }
        char line[160];
        std::snprintf(line, sizeof line, "training %lld/%lld  loss %.4f  acc %.2f%%  ETA %s",
                      static_cast<long long>(p.step), static_cast<long long>(p.steps), p.loss,
                      100 * p.accuracy, format_duration(p.eta_s).c_str());
        progress.update(line, p.step % 20 == 0 || p.step == p.steps);  // plain lines every 20 steps
      });
  progress.finish();

  const jobs::ModelVersion& v = result.version;
  if (json) {
    nlohmann::json out = {{"id", v.id},         {"path", v.path},
                          {"status", v.status}, {"is_default", v.is_default},
                          {"note", v.note},     {"metrics", result.metrics}};
    std::cout << out.dump() << "\n";
  } else if (v.status == "failed") {
    std::printf("model version %lld failed: %s\n", static_cast<long long>(v.id), v.note.c_str());
  } else {
    const nlohmann::json& m = result.metrics["retrain"];
    std::printf("model version %lld %s: %s\n", static_cast<long long>(v.id),
                v.is_default ? "is the new default" : "is kept but not the default",
                v.path.c_str());
    std::printf("  MNIST test (%lld images): new %s, current %s\n",
                static_cast<long long>(m["mnist_test"]["count"].get<int64_t>()),
                percent_or_dash(m["mnist_test"]["new"]["accuracy"]).c_str(),
                percent_or_dash(m["mnist_test"]["current"]["accuracy"]).c_str());
    std::printf("  held-out samples (%lld): new %s, current %s\n",
                static_cast<long long>(m["held_out_samples"]["count"].get<int64_t>()),
                percent_or_dash(m["held_out_samples"]["new"]["accuracy"]).c_str(),
                percent_or_dash(m["held_out_samples"]["current"]["accuracy"]).c_str());
    if (m["held_out_negatives"].is_object())
      std::printf("  not a digit (%lld held-out negatives): new rejects %s, current %s\n",
                  static_cast<long long>(m["held_out_negatives"]["count"].get<int64_t>()),
                  percent_or_dash(m["held_out_negatives"]["new"]["rejected"]).c_str(),
                  percent_or_dash(m["held_out_negatives"]["current"]["rejected"]).c_str());
    std::printf("  trained on %lld samples (x%d) among %lld images in %s; %s\n",
                static_cast<long long>(m["samples"]["training"].get<int64_t>()),
                m["samples"]["copies"].get<int>(),
                static_cast<long long>(m["training"]["images"].get<int64_t>()),
                format_duration(m["seconds"].get<double>()).c_str(), v.note.c_str());
  }
  return v.status == "failed" ? 1 : 0;
}

}  // namespace digitflow::cli

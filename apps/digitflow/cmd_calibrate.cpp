// digitflow calibrate: records the ranges int8 inference quantizes to (kernels/int8.hpp) in
// a model file, from MNIST training digits as training draws them (half of them redrawn as
// on a page) and, for a model with "not a digit", generated negatives in training's share.
// Then prints the MNIST test accuracy in fp32 and in int8 side by side, so that the cost of
// int8 is seen before any page is read with it. `train` and `retrain` calibrate the models
// they save; this command is for model files made before.
#include <cstdio>
#include <iostream>

#include "cli.hpp"
#include "commands.hpp"
#include "digitflow/kernels/int8.hpp"
#include "digitflow/kernels/model_file.hpp"
#include "digitflow/kernels/parallel.hpp"
#include "digitflow/kernels/trainer.hpp"
#include "digitflow/pipeline/negatives.hpp"

namespace digitflow::cli {

namespace fs = std::filesystem;
namespace k = digitflow::kernels;

namespace {

k::LabelledImages calibration_images(const k::LabelledImages& train, int64_t digits, bool negatives) {
  k::LabelledImages subset = train;
  subset.count = std::min(train.count, digits);
  subset.pixels.resize(static_cast<size_t>(subset.count * subset.rows * subset.cols));
  subset.labels.resize(static_cast<size_t>(subset.count));
  subset = pipeline::digits_through_page(subset, 1, 0.5);
  if (!negatives) return subset;
  // config/train.yaml: 12,000 negatives beside 60,000 digits.
  return pipeline::with_negatives(subset, pipeline::make_negatives(subset.count / 5, 1, &train), 1);
}

}  // namespace

int run_calibrate(int argc, char** argv) {
  CommonOptions common;
  std::string model, out, data_dir;
  int64_t digits = 10000;
  po::options_description options("Options");
  options.add_options()
      ("model", po::value(&model)->value_name("FILE"), "model file (default: model.default, models/digits.safetensors)")
      ("out", po::value(&out)->value_name("FILE"), "where to write the calibrated model (default: over --model)")
      ("digits", po::value(&digits)->value_name("N"), "MNIST training digits to calibrate on (default 10000)")
      ("data-dir", po::value(&data_dir)->value_name("DIR"), "folder of the MNIST IDX files (default: DIGITFLOW_DATA or data.dir)")
      ("threads", po::value<int>()->value_name("N"), "worker threads, 0 = every core");
  add_config_options(options, common);
  po::variables_map vm;
  if (!parse(argc, argv, "digitflow calibrate [--model M] [--out FILE] [--digits N]",
             "Records in a model file the range of each convolution's output over MNIST training\n"
             "digits (and generated negatives, for a model with class 10), which int8 inference\n"
             "(runtime.int8) quantizes to. Prints the MNIST test accuracy in fp32 and in int8.\n"
             "train and retrain calibrate the models they write; this is for older model files.",
             options, nullptr, vm))
    return 0;
  if (digits < 100 || digits > 60000) throw UsageError("--digits must be 100 to 60000, not " + std::to_string(digits));
  config::Settings settings = load_settings(common);
  k::set_threads(threads_option(vm, settings.runtime.threads));
  const fs::path model_path = model.empty() ? resolve(settings.model.default_model) : fs::path(model);
  const fs::path out_path = out.empty() ? model_path : fs::path(out);
  k::LoadedModel loaded = k::load_model(model_path);
  k::Network& net = loaded.network;
  const fs::path mnist = mnist_dir(settings, data_dir);
  const k::LabelledImages train = k::load_mnist(mnist, k::MnistSplit::train);
  const k::LabelledImages test = k::load_mnist(mnist, k::MnistSplit::test);
  const bool negatives = net.spec().classes == pipeline::kClassesWithNotDigit;
  const k::LabelledImages images = calibration_images(train, digits, negatives);
  net.set_int8_calibration(k::calibrate_int8(net, images, images.count));
  std::printf("%s: calibrated on %lld images (%lld MNIST training digits%s)\n", model_path.c_str(),
              static_cast<long long>(images.count), static_cast<long long>(std::min(train.count, digits)),
              negatives ? " and generated negatives" : "");
  for (const auto& [layer, top] : net.int8_calibration().output_max)
    std::printf("  layer %d (conv2d): output up to %.3f\n", layer, static_cast<double>(top));
  const std::string why = k::int8_unsupported(net);
  const k::EvalResult fp32 = k::evaluate(net, test, 500);
  if (!why.empty()) {
    std::printf("MNIST test accuracy %.2f%% in fp32; int8 cannot run this model here: %s\n", 100 * fp32.accuracy,
                why.c_str());
  } else {
    k::Int8Network int8(net);
    const k::EvalResult q = k::evaluate_probabilities(test, int8.probabilities(test.pixels, test.count, 500));
    std::printf("MNIST test accuracy: fp32 %.2f%% (%lld wrong), int8 %.2f%% (%lld wrong); %d layers in int8\n",
                100 * fp32.accuracy, static_cast<long long>(std::llround((1 - fp32.accuracy) * static_cast<double>(test.count))),
                100 * q.accuracy, static_cast<long long>(std::llround((1 - q.accuracy) * static_cast<double>(test.count))),
                int8.int8_layers());
  }
  k::save_model(out_path, net, loaded.train_config, loaded.metrics);
  std::printf("saved %s\n", out_path.c_str());
  return 0;
}

}  // namespace digitflow::cli

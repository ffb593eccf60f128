// digitflow eval: accuracy, per-class accuracy and the confusion matrix of a model file on
// a labelled IDX test set, as a table or as one JSON object.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli.hpp"
#include "commands.hpp"
#include "digitflow/kernels/model_file.hpp"
#include "digitflow/kernels/parallel.hpp"
#include "digitflow/kernels/trainer.hpp"

namespace digitflow::cli {

namespace fs = std::filesystem;
namespace k = digitflow::kernels;

namespace {

k::LabelledImages load_eval_data(const std::string& data, const config::Settings& settings,
                                 const std::string& data_dir) {
  if (data == "mnist-test" || data == "mnist-train")
    return k::load_mnist(mnist_dir(settings, data_dir),
                         data == "mnist-test" ? k::MnistSplit::test : k::MnistSplit::train);
  if (data == "fashion-test") {
    fs::path dir = resolve("data/fashion-mnist");
    if (!fs::exists(dir / "t10k-images-idx3-ubyte"))
      throw std::runtime_error(dir.string() +
                               ": no Fashion-MNIST here; run scripts/fetch-fashion-mnist.sh");
    return k::load_mnist(dir, k::MnistSplit::test);
  }
  fs::path dir(data);
  if (!fs::is_directory(dir))
    throw UsageError("--data " + data + ": not mnist-test, mnist-train, fashion-test or a folder");
  return k::load_mnist(dir, k::MnistSplit::test);
}

}  // namespace

int run_eval(int argc, char** argv) {
  CommonOptions common;
  std::string model, data = "mnist-test", data_dir;
  bool json = false;
  po::options_description options("Options");
  options.add_options()
      ("model", po::value(&model)->value_name("FILE"), "model file (default: model.default, models/digits.safetensors)")
      ("data", po::value(&data)->value_name("SET"),
       "mnist-test, mnist-train, fashion-test, or a folder holding t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte")
      ("data-dir", po::value(&data_dir)->value_name("DIR"), "folder of the MNIST IDX files (default: DIGITFLOW_DATA or data.dir)")
      ("threads", po::value<int>()->value_name("N"), "worker threads, 0 = every core")
      ("json", po::bool_switch(&json), "print one JSON object: accuracy, per_class, confusion, count, loss");
  add_config_options(options, common);
  po::variables_map vm;
  if (!parse(argc, argv, "digitflow eval --model M [--data mnist-test|fashion-test|DIR] [--json]",
             "Evaluates a model file: accuracy, accuracy per class and the confusion matrix\n"
             "(rows: true class, columns: predicted).",
             options, nullptr, vm))
    return 0;
  config::Settings settings = load_settings(common);
  start_backend(settings);
  k::set_threads(vm.count("threads") ? vm["threads"].as<int>() : settings.runtime.threads);
  fs::path model_path = model.empty() ? resolve(settings.model.default_model) : fs::path(model);
  k::LoadedModel loaded = k::load_model(model_path);
  k::LabelledImages set = load_eval_data(data, settings, data_dir);
  k::EvalResult r = k::evaluate(loaded.network, set);

  if (json) {
    nlohmann::json out = {{"model", model_path.string()}, {"data", data},
                          {"count", r.count},             {"accuracy", r.accuracy},
                          {"loss", r.loss},               {"per_class", r.per_class},
                          {"confusion", r.confusion}};
    std::cout << out.dump() << "\n";
    return 0;
  }
  std::printf("%s on %s: accuracy %.2f%% (%lld of %lld), loss %.4f\n\n", model_path.c_str(),
              data.c_str(), 100 * r.accuracy,
              static_cast<long long>(std::llround(r.accuracy * static_cast<double>(r.count))),
              static_cast<long long>(r.count), r.loss);
  const size_t classes = r.per_class.size();
  std::printf("true\\pred");
  for (size_t c = 0; c < classes; ++c) std::printf("%6zu", c);
  std::printf("   accuracy\n");
  for (size_t t = 0; t < classes; ++t) {
    std::printf("%9zu", t);
    for (size_t p = 0; p < classes; ++p) std::printf("%6lld", static_cast<long long>(r.confusion[t][p]));
    std::printf("   %7.2f%%\n", 100 * r.per_class[t]);
  }
  return 0;
}

}  // namespace digitflow::cli

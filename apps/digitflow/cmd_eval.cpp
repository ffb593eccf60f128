// digitflow eval: accuracy, per-class accuracy and the confusion matrix of a model file on
// a labelled IDX test set (or on the pieces cut from pages with truth, --pages), as a table
// or as one JSON object. For a model with the "not a
// digit" class also the rejection rate on held-out generated negatives and the share of the
// set's digits wrongly rejected.
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>
#include <nlohmann/json.hpp>

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

// The held-out negatives `digitflow train` reports: fixed seed, glued pairs and slices cut
// from MNIST test digits (the evaluated set when it is MNIST test).
k::LabelledImages held_out_negatives(const std::string& data, const k::LabelledImages& set,
                                     const config::Settings& settings, const std::string& data_dir) {
  if (data == "mnist-test")
    return pipeline::make_negatives(pipeline::kHeldOutNegatives, pipeline::kHeldOutNegativesSeed, &set);
  try {
    const k::LabelledImages test = k::load_mnist(mnist_dir(settings, data_dir), k::MnistSplit::test);
    return pipeline::make_negatives(pipeline::kHeldOutNegatives, pipeline::kHeldOutNegativesSeed, &test);
  } catch (const std::exception& e) {
    std::cerr << "digitflow eval: no MNIST test digits for the held-out negatives (" << e.what()
              << "); glued pairs and slices left out\n";
    return pipeline::make_negatives(pipeline::kHeldOutNegatives, pipeline::kHeldOutNegativesSeed);
  }
}

// The images of `set` whose most probable class is not their label, in the set's order: the
// index to find the image by (in the IDX file; in digitflow synth's sources.jsonl), its
// label, what the model read and how sure it was, and what it gave the label.
nlohmann::json misread(const k::LabelledImages& set, const k::Tensor& probs) {
  nlohmann::json list = nlohmann::json::array();
  const int64_t classes = probs.dim(1);
  for (int64_t i = 0; i < set.count; ++i) {
    const float* row = probs.data() + i * classes;
    const int64_t read = std::max_element(row, row + classes) - row;
    const uint8_t label = set.labels[static_cast<size_t>(i)];
    if (read == label) continue;
    list.push_back({{"index", i}, {"label", label}, {"read", read}, {"confidence", row[read]},
                    {"label_probability", label < classes ? row[label] : 0.0f}});
  }
  return list;
}

}  // namespace

int run_eval(int argc, char** argv) {
  CommonOptions common;
  std::string model, data = "mnist-test", data_dir, pages;
  bool json = false, int8 = false;
  po::options_description options("Options");
  options.add_options()
      ("model", po::value(&model)->value_name("FILE"), "model file (default: model.default, models/digits.safetensors)")
      ("data", po::value(&data)->value_name("SET"),
       "mnist-test (the default), mnist-train, fashion-test, or a folder holding t10k-images-idx3-ubyte and "
       "t10k-labels-idx1-ubyte")
      ("pages", po::value(&pages)->value_name("DIR"),
       "instead of --data: the digit images digitflow run cuts from these pages, labelled by their "
       "truth (a folder made by digitflow synth, or a folder of them); glued digits and print are "
       "class 10")
      ("data-dir", po::value(&data_dir)->value_name("DIR"), "folder of the MNIST IDX files (default: DIGITFLOW_DATA or data.dir)")
      ("threads", po::value<int>()->value_name("N"), "worker threads, 0 = every core")
      ("int8", po::bool_switch(&int8), "read through int8 inference (needs a calibrated model; see digitflow calibrate)")
      ("json", po::bool_switch(&json),
       "print one JSON object: accuracy, per_class, confusion, count, loss and (unless --pages) "
       "misread, each image of the set the model reads wrong, by its index");
  add_config_options(options, common);
  add_backend_option(options, common);
  po::variables_map vm;
  if (!parse(argc, argv, "digitflow eval --model M [--data mnist-test|mnist-train|fashion-test|DIR | --pages DIR] [--json]",
             "Evaluates a model file: accuracy, accuracy per class and the confusion matrix\n"
             "(rows: true class, columns: predicted). For a model with class 10 (\"not a digit\")\n"
             "also the share of 2,000 held-out generated negatives it rejects and the share of\n"
             "the set's digits it wrongly rejects.",
             options, nullptr, vm))
    return 0;
  config::Settings settings = load_settings(common);
  const k::Backend backend = start_backend(settings);
  k::set_threads(threads_option(vm, settings.runtime.threads));
  fs::path model_path = model.empty() ? resolve(settings.model.default_model) : fs::path(model);
  k::LoadedModel loaded = k::load_model(model_path);
  if (!pages.empty() && vm.count("data")) throw UsageError("--data and --pages: give one");
  if (!pages.empty()) data = pages;
  if (!pages.empty() && loaded.network.spec().classes != pipeline::kClassesWithNotDigit)
    throw UsageError("--pages needs a model with 11 classes: glued digits and print cut from the pages are "
                     "class 10, \"not a digit\"; " + model_path.string() + " has " +
                     std::to_string(loaded.network.spec().classes));
  k::LabelledImages set = pages.empty() ? load_eval_data(data, settings, data_dir) : harvest_page_folders(pages, "--pages", settings);
  std::unique_ptr<k::Int8Network> quantized;
  if (int8) {
    if (backend != k::Backend::cpu)
      throw UsageError("--int8 runs on the CPU, but the backend is " + settings.runtime.backend +
                       " (runtime.backend or --backend): pass --backend cpu");
    if (const std::string why = k::int8_unsupported(loaded.network); !why.empty())
      throw std::runtime_error(model_path.string() + ": no int8 inference: " + why);
    quantized = std::make_unique<k::Int8Network>(loaded.network);
  }
  auto probabilities = [&](const k::LabelledImages& images) {
    return quantized ? quantized->probabilities(images.pixels, images.count, 500)
                     : k::infer_probabilities(loaded.network, images.pixels, images.count, 500);
  };
  auto evaluate = [&](const k::LabelledImages& images) {
    return quantized ? k::evaluate_probabilities(images, probabilities(images))
                     : k::evaluate(loaded.network, images, 500, backend);
  };
  // With --json on an IDX set the images read wrong are listed, from the same probabilities
  // as the figures where the CPU computes them (int8, or the CPU backend).
  const bool list_misread = json && pages.empty();
  std::optional<k::Tensor> set_probs;
  if (quantized || (list_misread && backend == k::Backend::cpu)) set_probs = probabilities(set);
  k::EvalResult r = set_probs ? k::evaluate_probabilities(set, *set_probs) : evaluate(set);
  const bool rejects = loaded.network.spec().classes == pipeline::kClassesWithNotDigit;
  int64_t negatives = 0;
  double negatives_rejected = 0;
  k::EvalResult page;  // the set redrawn as the page pipeline draws digits
  if (rejects) {
    const k::LabelledImages held_out = held_out_negatives(data, set, settings, data_dir);
    negatives = held_out.count;
    negatives_rejected = pipeline::rejected_share(evaluate(held_out));
    if (pages.empty()) page = evaluate(pipeline::digits_through_page(set, pipeline::kHeldOutNegativesSeed));
  }

  if (json) {
    nlohmann::json out = {{"model", model_path.string()}, {"data", data}, {"int8", int8},
                          {"count", r.count},             {"accuracy", r.accuracy},
                          {"loss", r.loss},               {"per_class", r.per_class},
                          {"confusion", r.confusion}};
    if (list_misread) {
      if (!set_probs) set_probs = probabilities(set);  // the figures came from another backend
      out["misread"] = misread(set, *set_probs);
    }
    if (rejects) {
      out["held_out_negatives"] = negatives;
      out["negatives_rejected"] = negatives_rejected;
      out["digits_rejected"] = pipeline::rejected_share(r);
      if (pages.empty()) {
        out["page_digits_accuracy"] = page.accuracy;
        out["page_digits_rejected"] = pipeline::rejected_share(page);
      }
    }
    std::cout << out.dump() << "\n";
    return 0;
  }
  std::printf("%s on %s%s: accuracy %.2f%% (%lld of %lld), loss %.4f\n", model_path.c_str(),
              data.c_str(), int8 ? " (int8)" : "", 100 * r.accuracy,
              static_cast<long long>(std::llround(r.accuracy * static_cast<double>(r.count))),
              static_cast<long long>(r.count), r.loss);
  if (rejects && !pages.empty())
    std::printf("not a digit (class 10): %.2f%% of %lld held-out negatives rejected\n", 100 * negatives_rejected,
                static_cast<long long>(negatives));
  else if (rejects)
    std::printf("not a digit (class 10): %.2f%% of %lld held-out negatives rejected; %.2f%% of the "
                "%lld images of %s wrongly rejected (%.2f%% when redrawn as on a page, accuracy then "
                "%.2f%%)\n",
                100 * negatives_rejected, static_cast<long long>(negatives), 100 * pipeline::rejected_share(r),
                static_cast<long long>(r.count), data.c_str(), 100 * pipeline::rejected_share(page),
                100 * page.accuracy);
  std::printf("\n");
  const size_t classes = r.per_class.size();
  std::printf("true\\pred");
  for (size_t c = 0; c < classes; ++c) std::printf("%6zu", c);
  std::printf("   accuracy\n");
  for (size_t t = 0; t < classes; ++t) {
    std::printf("%9zu", t);
    int64_t row_total = 0;
    for (size_t p = 0; p < classes; ++p) {
      std::printf("%6lld", static_cast<long long>(r.confusion[t][p]));
      row_total += r.confusion[t][p];
    }
    if (row_total == 0)
      std::printf("         -\n");  // no image of this class in the set (class 10 in MNIST)
    else
      std::printf("   %7.2f%%\n", 100 * r.per_class[t]);
  }
  return 0;
}

}  // namespace digitflow::cli

// digitflow predict: reads images of single handwritten digits, normalises each the way
// MNIST was made, and prints the digit, its probability and the top 3 digits. With a model
// that has class 10, an image in that class is "not a digit" (JSON: "digit": null), and the
// JSON always gives the not-a-digit probability.
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <numeric>

#include "cli.hpp"
#include "commands.hpp"
#include "digitflow/kernels/inference.hpp"
#include "digitflow/kernels/model_file.hpp"
#include "digitflow/kernels/parallel.hpp"
#include "digitflow/kernels/trainer.hpp"
#include "digitflow/pipeline/negatives.hpp"
#include "digitflow/pipeline/normalize.hpp"

namespace digitflow::cli {

namespace fs = std::filesystem;
namespace k = digitflow::kernels;

int run_predict(int argc, char** argv) {
  CommonOptions common;
  std::string model;
  std::vector<std::string> images;
  bool json = false;
  po::options_description options("Options");
  options.add_options()
      ("model", po::value(&model)->value_name("FILE"), "model file (default: model.default, models/digits.safetensors)")
      ("json", po::bool_switch(&json), "one JSON object per image: file, digit (null: not a digit), probability, not_digit (11-class models), top3")
      ("threads", po::value<int>()->value_name("N"), "worker threads, 0 = every core (runtime.threads)")
      ("image", po::value(&images)->composing(), "image files (positional)");
  add_config_options(options, common);
  add_backend_option(options, common);
  po::positional_options_description positional;
  positional.add("image", -1);
  po::variables_map vm;
  if (!parse(argc, argv, "digitflow predict [--model M] IMAGE...",
             "Recognises one handwritten digit per image (PNG, JPEG, BMP, TIFF; dark on light\n"
             "or light on dark, any size): prints the digit, its probability and the top 3\n"
             "digits, or \"not a digit\" where the model has that class (10) and picks it.",
             options, &positional, vm))
    return 0;
  if (images.empty()) throw UsageError("no IMAGE given");
  config::Settings settings = load_settings(common);
  const k::Backend backend = start_backend(settings);
  fs::path model_path = model.empty() ? resolve(settings.model.default_model) : fs::path(model);
  k::LoadedModel loaded = k::load_model(model_path);
  const k::ModelSpec& spec = loaded.network.spec();
  if (spec.input_channels != 1 || spec.input_height != 28 || spec.input_width != 28)
    throw std::runtime_error(model_path.string() + ": takes " +
                             loaded.network.input_shape(1).str() +
                             " inputs; predict normalises digits to 1x28x28 like MNIST");
  k::set_threads(threads_option(vm, settings.runtime.threads));
  k::Inference inference(loaded.network, backend, 1);

  int failures = 0;
  for (const std::string& file : images) {
    try {
      pipeline::DigitPixels pixels = pipeline::normalize_digit(pipeline::read_image(file));
      k::Tensor probs = inference.probabilities(pixels, 1);
      const bool rejects = probs.dim(1) == pipeline::kClassesWithNotDigit;
      const int classes = static_cast<int>(probs.dim(1)) - (rejects ? 1 : 0);  // the digits
      std::vector<int> order(static_cast<size_t>(classes));
      std::iota(order.begin(), order.end(), 0);
      std::partial_sort(order.begin(), order.begin() + std::min(3, classes), order.end(),
                        [&](int a, int b) { return probs[a] > probs[b]; });
      const float not_digit = rejects ? probs[pipeline::kNotDigitClass] : 0.0f;
      const bool rejected = rejects && not_digit > probs[order[0]];
      const float probability = rejected ? not_digit : probs[order[0]];
      if (json) {
        nlohmann::json top = nlohmann::json::array();
        for (int i = 0; i < std::min(3, classes); ++i)
          top.push_back({{"digit", order[static_cast<size_t>(i)]}, {"probability", probs[order[static_cast<size_t>(i)]]}});
        nlohmann::json line = {{"file", file},
                               {"digit", rejected ? nlohmann::json(nullptr) : nlohmann::json(order[0])},
                               {"probability", probability}};
        if (rejects) line["not_digit"] = not_digit;
        line["top3"] = top;
        std::cout << line.dump() << "\n";
      } else {
        if (rejected)
          std::printf("%s: not a digit (%.4f)   top 3:", file.c_str(), static_cast<double>(not_digit));
        else
          std::printf("%s: %d (%.4f)   top 3:", file.c_str(), order[0], static_cast<double>(probability));
        for (int i = 0; i < std::min(3, classes); ++i)
          std::printf("  %d %.4f", order[static_cast<size_t>(i)], static_cast<double>(probs[order[static_cast<size_t>(i)]]));
        if (rejects && !rejected) std::printf("   not a digit %.4f", static_cast<double>(not_digit));
        std::printf("\n");
      }
    } catch (const std::exception& e) {  // one bad image never stops the others
      ++failures;
      std::string message = e.what();
      if (message.rfind(file, 0) != 0) message = file + ": " + message;
      if (json)
        std::cout << nlohmann::json{{"file", file}, {"error", message}}.dump() << "\n";
      std::cerr << "digitflow predict: " << message << "\n";
    }
  }
  return failures ? 1 : 0;
}

}  // namespace digitflow::cli

// digitflow bench train|infer: training images/s (Adam, batch 128, no augmentation) and
// inference digits/s with the batch's median latency, on a model file or a model YAML
// (random weights: the timing does not depend on them).
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli.hpp"
#include "commands.hpp"
#include "digitflow/kernels/gemm.hpp"
#include "digitflow/kernels/int8.hpp"
#include "digitflow/kernels/model_file.hpp"
#include "digitflow/kernels/parallel.hpp"
#include "digitflow/kernels/throughput.hpp"

namespace digitflow::cli {

namespace fs = std::filesystem;
namespace k = digitflow::kernels;

namespace {

k::Network load_any_model(const std::string& model) {
  fs::path path = resolve(model);
  if (!fs::exists(path)) throw UsageError("--model " + model + ": no such file");
  std::string ext = path.extension().string();
  if (ext == ".yaml" || ext == ".yml") return k::Network(config::load_model_spec(path), 1);
  return std::move(k::load_model(path).network);
}

}  // namespace

int run_bench(int argc, char** argv) {
  std::string what, model;
  int threads = 0, batch = 0;
  int64_t images = 2560;
  double seconds = 3.0;
  bool json = false, int8 = false;
  po::options_description options("Options");
  options.add_options()
      ("what", po::value(&what)->value_name("train|infer"), "what to time (positional)")
      ("model", po::value(&model)->value_name("FILE|YAML"), "model file or model YAML (required)")
      ("threads", po::value(&threads)->value_name("N"), "worker threads, 0 = every core")
      ("images", po::value(&images)->value_name("N"), "train: images to time after the warm-up (default 2560)")
      ("batch", po::value(&batch)->value_name("B"), "batch size (train: 128, infer: 256)")
      ("seconds", po::value(&seconds)->value_name("S"), "infer: time to spend measuring (default 3)")
      ("int8", po::bool_switch(&int8), "infer: through int8 inference (a calibrated model file; see digitflow calibrate)")
      ("json", po::bool_switch(&json), "print one JSON object (images_per_s, latency_us, ...)");
  po::positional_options_description positional;
  positional.add("what", 1);
  po::variables_map vm;
  if (!parse(argc, argv, "digitflow bench train|infer --model M [--threads T] [--images N] [--batch B] [--json]",
             "Times training (Adam, batch 128, augmentation off, after a warm-up) or inference\n"
             "(digits/s and the median latency of one batch).",
             options, &positional, vm))
    return 0;
  if (what != "train" && what != "infer")
    throw UsageError(what.empty() ? "say what to time: train or infer"
                                  : "cannot time '" + what + "': say what to time, train or infer");
  if (model.empty()) throw UsageError("--model is required");
  k::set_threads(threads_option(vm, threads));
  k::Network net = load_any_model(model);
  nlohmann::json out = {{"bench", what}, {"model", net.spec().name}, {"threads", k::thread_count()},
                        {"gemm_kernel", k::gemm_kernel_name()}};
  if (what == "train") {
    if (batch == 0) batch = 128;
    k::TrainingThroughput t = k::measure_training(net, images, batch);
    out.update({{"batch", batch}, {"images", t.images}, {"seconds", t.seconds},
                {"images_per_s", t.images_per_s}});
    if (!json)
      std::printf("train %s: %.0f images/s (batch %d, %lld images in %.2f s, %d threads, gemm %s)\n",
                  net.spec().name.c_str(), t.images_per_s, batch, static_cast<long long>(t.images),
                  t.seconds, k::thread_count(), k::gemm_kernel_name());
  } else {
    if (batch == 0) batch = 256;
    if (const std::string why = int8 ? k::int8_unsupported(net) : ""; !why.empty())
      throw std::runtime_error(model + ": no int8 inference: " + why);
    k::InferenceThroughput t = k::measure_inference(net, batch, seconds, int8);
    out.update({{"int8", int8}, {"batch", batch}, {"batches", t.batches}, {"images_per_s", t.digits_per_s},
                {"latency_us", t.median_latency_us}});
    if (!json)
      std::printf("infer %s%s: %.0f digits/s at batch %d, median latency %.1f us per batch (%d threads, gemm %s)\n",
                  net.spec().name.c_str(), int8 ? " (int8)" : "", t.digits_per_s, batch, t.median_latency_us,
                  k::thread_count(), k::gemm_kernel_name());
  }
  if (json) std::cout << out.dump() << "\n";
  return 0;
}

}  // namespace digitflow::cli

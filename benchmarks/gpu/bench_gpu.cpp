// The GPU figures of benchmarks/gpu/run.sh for one model and backend, as JSON lines (the
// keys gpu_peer_torch.py prints for PyTorch): training images/s and seconds per MNIST epoch,
// a full training run with the test accuracy after every epoch (time to a target accuracy),
// and inference digits/s at a given batch. Kernels only: the model comes as ModelSpec JSON
// (gpu_peer_torch.py spec turns config/models/*.yaml into it), MNIST as the IDX files.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "digitflow/kernels/backend.hpp"
#include "digitflow/kernels/cuda/device.hpp"
#include "digitflow/kernels/cuda/network.hpp"
#include "digitflow/kernels/idx.hpp"
#include "digitflow/kernels/model_spec.hpp"
#include "digitflow/kernels/trainer.hpp"

namespace k = digitflow::kernels;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  std::string what;  // train | full | infer | probe
  std::string model_path, data_dir = "data/mnist";
  std::string backend = "cuda";
  int epochs = 15, batch = 128;
  std::vector<int> batches = {1, 256, 8192};  // infer
  int64_t images = 0;                         // train on the first N digits only (0: all)
  double target = 0.995;
};

[[noreturn]] void usage(const std::string& problem) {
  std::cerr
      << "bench_gpu: " << problem << "\n"
      << "usage: bench_gpu probe\n"
      << "       bench_gpu train|full|infer --model SPEC.json [--data DIR] [--backend cuda|cudnn]\n"
      << "                 [--epochs N] [--batch N] [--batches 1,256,8192] [--target ACCURACY]\n"
      << "                 [--images N]   (the first N training digits, or N digits to score; a "
         "dry run on the CPU with\n"
      << "                                 --backend cpu checks the plumbing where no GPU is)\n";
  std::exit(2);
}

std::vector<int> parse_list(const std::string& text) {  // "1,256,8192"
  std::vector<int> values;
  for (size_t at = 0; at < text.size();) {
    size_t comma = text.find(',', at);
    if (comma == std::string::npos) comma = text.size();
    values.push_back(std::stoi(text.substr(at, comma - at)));
    at = comma + 1;
  }
  return values;
}

Options parse(int argc, char** argv) {
  if (argc < 2) usage("what to run?");
  Options o;
  o.what = argv[1];
  for (int i = 2; i < argc; ++i) {
    const std::string arg = argv[i];
    if (i + 1 >= argc) usage(arg + " needs a value");
    const std::string value = argv[++i];
    if (arg == "--model")
      o.model_path = value;
    else if (arg == "--data")
      o.data_dir = value;
    else if (arg == "--backend")
      o.backend = value;
    else if (arg == "--epochs")
      o.epochs = std::stoi(value);
    else if (arg == "--batch")
      o.batch = std::stoi(value);
    else if (arg == "--images")
      o.images = std::stoll(value);
    else if (arg == "--batches")
      o.batches = parse_list(value);
    else if (arg == "--target")
      o.target = std::stod(value);
    else
      usage("unknown option " + arg);
  }
  if (o.what != "probe" && o.model_path.empty()) usage("--model is required");
  return o;
}

k::ModelSpec load_spec(const std::string& path) {
  std::ifstream in(path);
  if (!in) usage("cannot read " + path);
  return k::model_spec_from_json(nlohmann::json::parse(in));
}

// The shipped model's training settings (config/train.yaml) on MNIST alone, no split.
k::TrainConfig train_config(const Options& o) {
  k::TrainConfig c;
  c.epochs = o.epochs;
  c.batch_size = o.batch;
  c.label_smoothing = 0.05f;
  c.validation_images = 0;
  return c;
}

nlohmann::json base(const Options& o, const k::ModelSpec& spec) {
  return {{"peer", "digitflow"}, {"backend", o.backend}, {"model", spec.name}, {"what", o.what}};
}

void emit(const nlohmann::json& j) { std::cout << j.dump() << std::endl; }

k::LabelledImages training_digits(const Options& o) {
  k::LabelledImages train = k::load_mnist(o.data_dir, k::MnistSplit::train);
  if (o.images > 0 && o.images < train.count) {
    train.count = o.images;
    train.pixels.resize(static_cast<size_t>(o.images) * 784);
    train.labels.resize(static_cast<size_t>(o.images));
  }
  return train;
}

// Two epochs over the 60,000 training digits; the second is the steady state.
void bench_train(const Options& o, k::Backend backend) {
  const k::ModelSpec spec = load_spec(o.model_path);
  const k::LabelledImages train = training_digits(o);
  k::Network net(spec, 1);
  Options two = o;
  two.epochs = 2;
  k::TrainResult r = k::train(net, train, train_config(two), {}, backend);
  const k::EpochMetrics& last = r.epochs.back();
  nlohmann::json j = base(o, spec);
  j["images_per_s"] = last.images_per_s;
  j["epoch_s"] = last.seconds;
  j["first_epoch_s"] = r.epochs.front().seconds;
  j["batch"] = o.batch;
  emit(j);
}

// A full run; after every epoch the test set is scored on the device, outside the timing.
void bench_full(const Options& o, k::Backend backend) {
  const k::ModelSpec spec = load_spec(o.model_path);
  const k::LabelledImages train = training_digits(o);
  const k::LabelledImages test = k::load_mnist(o.data_dir, k::MnistSplit::test);
  k::Network net(spec, 1);
  double train_seconds = 0.0, reached_at = -1.0, best = 0.0;
  int reached_epoch = 0;
  nlohmann::json epochs = nlohmann::json::array();
  k::TrainCallbacks callbacks;
  callbacks.on_epoch = [&](const k::EpochMetrics& m, k::Network& current) {
    train_seconds += m.seconds;
    const double accuracy = k::evaluate(current, test, 10000, backend).accuracy;
    best = std::max(best, accuracy);
    if (reached_at < 0 && accuracy >= o.target) {
      reached_at = train_seconds;
      reached_epoch = m.epoch;
    }
    epochs.push_back({{"epoch", m.epoch}, {"seconds", m.seconds}, {"test_accuracy", accuracy}});
  };
  const auto t0 = Clock::now();
  k::train(net, train, train_config(o), callbacks, backend);
  nlohmann::json j = base(o, spec);
  j["target"] = o.target;
  j["time_to_target_s"] = reached_at >= 0 ? nlohmann::json(reached_at) : nlohmann::json(nullptr);
  j["epoch_reached"] = reached_epoch;
  j["best_test_accuracy"] = best;
  j["train_s"] = train_seconds;
  j["wall_s"] = std::chrono::duration<double>(Clock::now() - t0).count();
  j["epochs"] = epochs;
  emit(j);
}

// Digits/s from host pixels to host probabilities at each batch size, median of three passes.
void bench_infer(const Options& o, k::Backend backend) {
  const k::ModelSpec spec = load_spec(o.model_path);
  const k::LabelledImages test = k::load_mnist(o.data_dir, k::MnistSplit::test);
  k::Network net(spec, 1);
  for (int batch : o.batches) {
    int64_t count = batch == 1 ? 2000 : std::max<int64_t>(int64_t{batch} * 32, 262144);
    if (o.images > 0) count = o.images;
    std::vector<uint8_t> pixels(static_cast<size_t>(count) * 784);
    for (int64_t i = 0; i < count; ++i)
      std::copy_n(test.pixels.data() + (i % test.count) * 784, 784, pixels.data() + i * 784);
    std::unique_ptr<k::cuda::DeviceInference> device;
    if (backend != k::Backend::cpu)
      device = std::make_unique<k::cuda::DeviceInference>(net, backend, batch);
    std::vector<float> out(static_cast<size_t>(count) * static_cast<size_t>(spec.classes));
    auto pass = [&] {
      const auto t0 = Clock::now();
      if (!device) {
        k::Tensor probs = k::infer_probabilities(net, pixels, count, batch);
        std::copy_n(probs.data(), probs.numel(), out.data());
      } else if (batch == 1) {
        for (int64_t i = 0; i < count; ++i)
          device->probabilities(
              std::span<const uint8_t>(pixels).subspan(static_cast<size_t>(i) * 784, 784), 1,
              out.data() + i * spec.classes);
      } else {
        device->probabilities(pixels, count, out.data());
      }
      return std::chrono::duration<double>(Clock::now() - t0).count();
    };
    pass();  // warm-up: allocations, cuDNN plans
    std::vector<double> times = {pass(), pass(), pass()};
    std::sort(times.begin(), times.end());
    nlohmann::json j = base(o, spec);
    j["batch"] = batch;
    j["digits"] = count;
    j["digits_per_s"] = static_cast<double>(count) / times[1];
    emit(j);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  try {
    if (o.what == "probe") {
      const k::cuda::DeviceProbe p = k::cuda::probe_device();
      if (!p.usable) {
        std::cerr << "bench_gpu: no CUDA device: " << p.reason << "\n";
        return 1;
      }
      std::cout << p.name << ", compute " << p.compute_major << "." << p.compute_minor << ", "
                << p.multiprocessors << " multiprocessors, " << (p.memory_bytes >> 20)
                << " MiB, driver " << p.driver_version << ", runtime " << p.runtime_version << "\n";
      return 0;
    }
    const k::Backend backend = k::start_backend(k::parse_backend(o.backend));
    if (o.what == "train")
      bench_train(o, backend);
    else if (o.what == "full")
      bench_full(o, backend);
    else if (o.what == "infer")
      bench_infer(o, backend);
    else
      usage("unknown benchmark '" + o.what + "'");
  } catch (const std::exception& e) {
    std::cerr << "bench_gpu " << o.what << " (" << o.backend << "): " << e.what() << "\n";
    return 1;
  }
  return 0;
}

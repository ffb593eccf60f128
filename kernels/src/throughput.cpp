// Timing loops: each batch is timed on its own so that the median is available.
#include "digitflow/kernels/throughput.hpp"

#include <algorithm>
#include <chrono>
#include <memory>
#include <random>
#include <vector>

#include "digitflow/kernels/int8.hpp"
#include "digitflow/kernels/ops/softmax_xent.hpp"
#include "digitflow/kernels/train_config.hpp"
#include "digitflow/kernels/trainer.hpp"

namespace digitflow::kernels {

namespace {
using Clock = std::chrono::steady_clock;

Tensor random_input(const Network& net, int batch) {
  Tensor x(net.input_shape(batch));
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> d(-0.5f, 2.5f);
  for (int64_t i = 0; i < x.numel(); ++i) x[i] = d(rng);
  return x;
}
}  // namespace

TrainingThroughput measure_training(Network& net, int64_t images, int batch_size,
                                    int warmup_batches) {
  const int classes = net.spec().classes;
  TrainConfig config;
  config.optimizer = "adamw";
  Optimizer optimizer(config, net.parameters());
  Tensor x = random_input(net, batch_size);
  std::vector<uint8_t> labels(static_cast<size_t>(batch_size));
  for (int i = 0; i < batch_size; ++i) labels[static_cast<size_t>(i)] = static_cast<uint8_t>(i % classes);
  Tensor probs({batch_size, classes}), dlogits({batch_size, classes});
  auto step = [&](uint64_t s) {
    const Tensor& logits = net.forward(x, {true, 1, s});
    softmax_xent_forward(batch_size, classes, logits.data(), labels.data(), 0.0f, probs.data());
    softmax_xent_backward(batch_size, classes, probs.data(), labels.data(), 0.0f, dlogits.data());
    net.backward(dlogits);
    optimizer.step(1e-4f);
  };
  for (int i = 0; i < warmup_batches; ++i) step(static_cast<uint64_t>(i));
  const int64_t batches = std::max<int64_t>(1, images / batch_size);
  auto t0 = Clock::now();
  for (int64_t b = 0; b < batches; ++b) step(static_cast<uint64_t>(b));
  double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return {static_cast<double>(batches * batch_size) / seconds, batches * batch_size, seconds};
}

InferenceThroughput measure_inference(Network& net, int batch_size, double seconds, bool int8) {
  Tensor x = random_input(net, batch_size);
  std::unique_ptr<Int8Network> quantized;
  std::vector<uint8_t> pixels;
  if (int8) {
    quantized = std::make_unique<Int8Network>(net);
    pixels.resize(static_cast<size_t>(x.numel()));
    for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<uint8_t>(std::clamp(x[static_cast<int64_t>(i)], 0.0f, 2.5f) * 100);
  }
  auto pass = [&] {
    if (quantized)
      quantized->probabilities(pixels, batch_size, batch_size);
    else
      net.forward(x, {});
  };
  for (int i = 0; i < 5; ++i) pass();
  std::vector<double> times;
  auto start = Clock::now();
  double total = 0.0;
  while (times.size() < 5 || total < seconds) {
    auto t0 = Clock::now();
    pass();
    double dt = std::chrono::duration<double>(Clock::now() - t0).count();
    times.push_back(dt);
    total = std::chrono::duration<double>(Clock::now() - start).count();
  }
  std::vector<double> sorted = times;
  std::nth_element(sorted.begin(), sorted.begin() + static_cast<long>(sorted.size() / 2), sorted.end());
  double median = sorted[sorted.size() / 2];
  return {batch_size / median, median * 1e6, static_cast<int64_t>(times.size())};
}

}  // namespace digitflow::kernels

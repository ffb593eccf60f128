// Each layer's forward and backward at the MNIST shapes of the seed and default models,
// batch 128, fast CPU path against the plain reference where one exists. Thread count
// comes from DIGITFLOW_THREADS (default: every core).
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <random>
#include <vector>

#include "digitflow/kernels/ops/batchnorm2d.hpp"
#include "digitflow/kernels/ops/conv2d.hpp"
#include "digitflow/kernels/ops/dense.hpp"
#include "digitflow/kernels/ops/elementwise.hpp"
#include "digitflow/kernels/ops/maxpool.hpp"
#include "digitflow/kernels/parallel.hpp"
#include "digitflow/kernels/tensor.hpp"

namespace k = digitflow::kernels;

namespace {

constexpr int kBatch = 128;

k::Tensor random(const k::Shape& shape) {
  k::Tensor t(shape);
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  for (int64_t i = 0; i < t.numel(); ++i) t[i] = d(rng);
  return t;
}

// The conv layers of the seed and default models at batch 128.
k::Conv2dShape conv_shape(int which) {
  switch (which) {
    case 0: return {kBatch, 1, 28, 28, 32, 3, 1, 0};    // seed conv1
    case 1: return {kBatch, 32, 26, 26, 64, 3, 1, 0};   // seed conv2
    case 2: return {kBatch, 32, 28, 28, 32, 3, 1, 1};   // default conv2
    default: return {kBatch, 64, 14, 14, 64, 3, 1, 1};  // default conv4
  }
}

void set_counters(benchmark::State& state, double flops_per_iter) {
  state.counters["GFLOP/s"] = benchmark::Counter(flops_per_iter * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.SetItemsProcessed(state.iterations() * kBatch);
}

template <bool Reference>
void BM_conv2d_forward(benchmark::State& state) {
  auto s = conv_shape(static_cast<int>(state.range(0)));
  auto x = random({s.n, s.c_in, s.h, s.w}), w = random({s.c_out, s.c_in, s.kernel, s.kernel}),
       b = random({s.c_out});
  k::Tensor y({s.n, s.c_out, s.out_h(), s.out_w()});
  for (auto _ : state) {
    if (Reference) k::ref::conv2d_forward(s, x.data(), w.data(), b.data(), y.data());
    else k::conv2d_forward(s, x.data(), w.data(), b.data(), y.data());
    benchmark::DoNotOptimize(y.data());
  }
  set_counters(state, 2.0 * static_cast<double>(y.numel()) * static_cast<double>(s.col_rows()));
}

template <bool Reference>
void BM_conv2d_backward(benchmark::State& state) {
  auto s = conv_shape(static_cast<int>(state.range(0)));
  auto x = random({s.n, s.c_in, s.h, s.w}), w = random({s.c_out, s.c_in, s.kernel, s.kernel});
  auto dy = random({s.n, s.c_out, s.out_h(), s.out_w()});
  k::Tensor dx(x.shape()), dw(w.shape()), db({s.c_out});
  for (auto _ : state) {
    if (Reference) k::ref::conv2d_backward(s, x.data(), w.data(), dy.data(), dx.data(), dw.data(), db.data());
    else k::conv2d_backward(s, x.data(), w.data(), dy.data(), dx.data(), dw.data(), db.data());
    benchmark::DoNotOptimize(dw.data());
  }
  set_counters(state, 4.0 * static_cast<double>(dy.numel()) * static_cast<double>(s.col_rows()));
}

template <bool Reference>
void BM_dense_forward(benchmark::State& state) {
  k::DenseShape s{kBatch, static_cast<int>(state.range(0)), static_cast<int>(state.range(1))};
  auto x = random({s.n, s.in}), w = random({s.out, s.in}), b = random({s.out});
  k::Tensor y({s.n, s.out});
  for (auto _ : state) {
    if (Reference) k::ref::dense_forward(s, x.data(), w.data(), b.data(), y.data());
    else k::dense_forward(s, x.data(), w.data(), b.data(), y.data());
    benchmark::DoNotOptimize(y.data());
  }
  set_counters(state, 2.0 * s.n * s.in * s.out);
}

template <bool Reference>
void BM_dense_backward(benchmark::State& state) {
  k::DenseShape s{kBatch, static_cast<int>(state.range(0)), static_cast<int>(state.range(1))};
  auto x = random({s.n, s.in}), w = random({s.out, s.in}), dy = random({s.n, s.out});
  k::Tensor dx(x.shape()), dw(w.shape()), db({s.out});
  for (auto _ : state) {
    if (Reference) k::ref::dense_backward(s, x.data(), w.data(), dy.data(), dx.data(), dw.data(), db.data());
    else k::dense_backward(s, x.data(), w.data(), dy.data(), dx.data(), dw.data(), db.data());
    benchmark::DoNotOptimize(dw.data());
  }
  set_counters(state, 4.0 * s.n * s.in * s.out);
}

void BM_maxpool_forward_backward(benchmark::State& state) {
  k::MaxPoolShape s{kBatch, 64, 24, 24, 2, 2};
  auto x = random({s.n, s.c, s.h, s.w});
  k::Tensor y({s.n, s.c, s.out_h(), s.out_w()}), dx(x.shape());
  std::vector<int32_t> a(static_cast<size_t>(y.numel()));
  for (auto _ : state) {
    k::maxpool_forward(s, x.data(), y.data(), a.data());
    k::maxpool_backward(s, y.data(), a.data(), dx.data());
    benchmark::DoNotOptimize(dx.data());
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}

void BM_batchnorm_forward_backward(benchmark::State& state) {
  k::BatchNormShape s{kBatch, 32, 28 * 28};
  auto x = random({s.n, s.c, 28, 28}), dy = random(x.shape()), g = random({s.c}), b = random({s.c});
  k::Tensor y(x.shape()), dx(x.shape()), m({s.c}), is({s.c}), var({s.c}), dg({s.c}), db({s.c});
  for (auto _ : state) {
    k::batchnorm2d_forward_train(s, x.data(), g.data(), b.data(), 1e-5f, y.data(), m.data(), is.data(), var.data());
    k::batchnorm2d_backward(s, x.data(), g.data(), m.data(), is.data(), dy.data(), dx.data(), dg.data(), db.data());
    benchmark::DoNotOptimize(dx.data());
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}

void BM_relu_forward_backward(benchmark::State& state) {
  auto x = random({kBatch, 32, 28, 28}), dy = random(x.shape());
  k::Tensor y(x.shape()), dx(x.shape());
  for (auto _ : state) {
    k::relu_forward(x.numel(), x.data(), y.data());
    k::relu_backward(x.numel(), y.data(), dy.data(), dx.data());
    benchmark::DoNotOptimize(dx.data());
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}

struct ThreadSetting {
  ThreadSetting() {
    const char* t = std::getenv("DIGITFLOW_THREADS");
    k::set_threads(t ? std::atoi(t) : 0);
  }
} thread_setting;

}  // namespace

BENCHMARK(BM_conv2d_forward<false>)->Name("BM_conv2d_forward/cpu")->DenseRange(0, 3)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_conv2d_forward<true>)->Name("BM_conv2d_forward/reference")->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_conv2d_backward<false>)->Name("BM_conv2d_backward/cpu")->DenseRange(0, 3)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_dense_forward<false>)->Name("BM_dense_forward/cpu")->Args({9216, 64})->Args({3136, 128})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_dense_forward<true>)->Name("BM_dense_forward/reference")->Args({9216, 64})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_dense_backward<false>)->Name("BM_dense_backward/cpu")->Args({9216, 64})->Args({3136, 128})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_maxpool_forward_backward)->Name("BM_maxpool_forward_backward/cpu")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_batchnorm_forward_backward)->Name("BM_batchnorm_forward_backward/cpu")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_relu_forward_backward)->Name("BM_relu_forward_backward/cpu")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_MAIN();

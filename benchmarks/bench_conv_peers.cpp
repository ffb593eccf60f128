// Our conv2d forward and backward against oneDNN's direct convolution primitives, in one
// binary, on the seed and default models' conv shapes at batch 128, with 1 and 2 threads.
// oneDNN is timed twice: "onednn" runs the primitives alone on tensors already in the blocked
// layouts it chose (reorders excluded), "onednn_nchw" adds the reorders from and to our plain
// NCHW/OIHW tensors on every iteration, which is what a drop-in replacement would pay.
// Before timing, every shape's results are checked against ours; a mismatch aborts the run.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <oneapi/dnnl/dnnl.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "digitflow/kernels/ops/conv2d.hpp"
#include "digitflow/kernels/parallel.hpp"

namespace k = digitflow::kernels;
using dnnl::memory;

namespace {

constexpr int kBatch = 128;
constexpr double kRelativeTolerance = 1e-3;

struct ConvCase {
  const char* name;
  k::Conv2dShape shape;
};

// {n, c_in, h, w, c_out, kernel, stride, padding}, as in bench_layers.cpp.
const ConvCase kCases[] = {
    {"seed_conv1", {kBatch, 1, 28, 28, 32, 3, 1, 0}},
    {"seed_conv2", {kBatch, 32, 26, 26, 64, 3, 1, 0}},
    {"default_conv2", {kBatch, 32, 28, 28, 32, 3, 1, 1}},
    {"default_conv4", {kBatch, 64, 14, 14, 64, 3, 1, 1}},
};

const int kThreadCounts[] = {1, 2};

enum class Peer { ours, onednn, onednn_nchw };

const char* peer_name(Peer peer) {
  switch (peer) {
    case Peer::ours: return "ours";
    case Peer::onednn: return "onednn";
    default: return "onednn_nchw";
  }
}

// 2*N*Cout*OH*OW*Cin*K*K; backward (input and weight gradients) is twice that.
double forward_flops(const k::Conv2dShape& s) {
  return 2.0 * s.n * s.c_out * s.out_h() * s.out_w() * static_cast<double>(s.col_rows());
}

std::vector<float> random_values(int64_t count, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> values(static_cast<size_t>(count));
  for (float& v : values) v = dist(rng);
  return values;
}

// Plain tensors, x/dx (n, c_in, h, w), weight/dweight (c_out, c_in, k, k), y/dy (n, c_out,
// oh, ow), shared by both implementations; the outputs start as NaN so a skipped write shows.
struct ConvTensors {
  std::vector<float> x, weight, bias, dy, y, dx, dweight, dbias;

  explicit ConvTensors(const k::Conv2dShape& s)
      : x(random_values(int64_t{s.n} * s.c_in * s.h * s.w, 1)),
        weight(random_values(int64_t{s.c_out} * s.col_rows(), 2)),
        bias(random_values(s.c_out, 3)),
        dy(random_values(int64_t{s.n} * s.c_out * s.out_h() * s.out_w(), 4)),
        y(dy.size(), NAN),
        dx(x.size(), NAN),
        dweight(weight.size(), NAN),
        dbias(bias.size(), NAN) {}
};

// A plain tensor and its copy in the layout a primitive chose (the same memory when oneDNN
// chose the plain layout), with the reorders between them.
struct LinkedMemory {
  memory plain, chosen;
  std::optional<dnnl::reorder> to_chosen, to_plain;

  void load(const dnnl::stream& stream) {
    if (to_chosen) to_chosen->execute(stream, plain, chosen);
  }
  void store(const dnnl::stream& stream) {
    if (to_plain) to_plain->execute(stream, chosen, plain);
  }
};

LinkedMemory link(const memory& plain, const memory::desc& chosen, const dnnl::engine& engine) {
  LinkedMemory m{plain, plain, std::nullopt, std::nullopt};
  if (chosen == plain.get_desc()) return m;
  m.chosen = memory(chosen, engine);
  m.to_chosen = dnnl::reorder(m.plain, m.chosen);
  m.to_plain = dnnl::reorder(m.chosen, m.plain);
  return m;
}

// oneDNN's forward_training, backward_data and backward_weights (with bias) convolutions over
// a ConvTensors. Build it after omp_set_num_threads: oneDNN splits the work at creation.
class OnednnConv {
 public:
  OnednnConv(const k::Conv2dShape& s, ConvTensors& t) {
    using tag = memory::format_tag;
    const auto f32 = memory::data_type::f32;
    const memory::dims x_dims{s.n, s.c_in, s.h, s.w}, y_dims{s.n, s.c_out, s.out_h(), s.out_w()},
        w_dims{s.c_out, s.c_in, s.kernel, s.kernel}, b_dims{s.c_out};
    const memory::dims strides{s.stride, s.stride}, padding{s.padding, s.padding};
    const memory::desc x_any(x_dims, f32, tag::any), y_any(y_dims, f32, tag::any),
        w_any(w_dims, f32, tag::any), b_plain(b_dims, f32, tag::x);

    const auto algo = dnnl::algorithm::convolution_direct;
    const dnnl::convolution_forward::desc forward(dnnl::prop_kind::forward_training, algo, x_any,
                                                  w_any, b_plain, y_any, strides, padding, padding);
    const dnnl::convolution_backward_data::desc backward_data(algo, x_any, w_any, y_any, strides,
                                                              padding, padding);
    const dnnl::convolution_backward_weights::desc backward_weights(
        algo, x_any, w_any, b_plain, y_any, strides, padding, padding);
    forward_pd_ = dnnl::convolution_forward::primitive_desc(forward, engine_);
    backward_data_pd_ =
        dnnl::convolution_backward_data::primitive_desc(backward_data, engine_, forward_pd_);
    backward_weights_pd_ =
        dnnl::convolution_backward_weights::primitive_desc(backward_weights, engine_, forward_pd_);
    forward_ = dnnl::convolution_forward(forward_pd_);
    backward_data_ = dnnl::convolution_backward_data(backward_data_pd_);
    backward_weights_ = dnnl::convolution_backward_weights(backward_weights_pd_);

    const memory::desc x_plain(x_dims, f32, tag::nchw), y_plain(y_dims, f32, tag::nchw),
        w_plain(w_dims, f32, tag::oihw);
    const memory x(x_plain, engine_, t.x.data()), w(w_plain, engine_, t.weight.data()),
        dy(y_plain, engine_, t.dy.data());
    x_forward_ = link(x, forward_pd_.src_desc(), engine_);
    w_forward_ = link(w, forward_pd_.weights_desc(), engine_);
    y_ = link(memory(y_plain, engine_, t.y.data()), forward_pd_.dst_desc(), engine_);
    bias_ = memory(b_plain, engine_, t.bias.data());
    w_backward_data_ = link(w, backward_data_pd_.weights_desc(), engine_);
    dy_backward_data_ = link(dy, backward_data_pd_.diff_dst_desc(), engine_);
    dx_ = link(memory(x_plain, engine_, t.dx.data()), backward_data_pd_.diff_src_desc(), engine_);
    x_backward_weights_ = link(x, backward_weights_pd_.src_desc(), engine_);
    dy_backward_weights_ = link(dy, backward_weights_pd_.diff_dst_desc(), engine_);
    dw_ = link(memory(w_plain, engine_, t.dweight.data()),
               backward_weights_pd_.diff_weights_desc(), engine_);
    dbias_ = memory(b_plain, engine_, t.dbias.data());
  }

  // x and weight from plain to the forward layouts.
  void load_forward() {
    x_forward_.load(stream_);
    w_forward_.load(stream_);
    stream_.wait();
  }
  void run_forward() {
    forward_.execute(stream_, {{DNNL_ARG_SRC, x_forward_.chosen},
                               {DNNL_ARG_WEIGHTS, w_forward_.chosen},
                               {DNNL_ARG_BIAS, bias_},
                               {DNNL_ARG_DST, y_.chosen}});
    stream_.wait();
  }
  void store_forward() {
    y_.store(stream_);
    stream_.wait();
  }

  // x, weight and dy from plain to the layouts of the two backward primitives.
  void load_backward() {
    w_backward_data_.load(stream_);
    dy_backward_data_.load(stream_);
    x_backward_weights_.load(stream_);
    dy_backward_weights_.load(stream_);
    stream_.wait();
  }
  void run_backward() {
    backward_data_.execute(stream_, {{DNNL_ARG_DIFF_DST, dy_backward_data_.chosen},
                                     {DNNL_ARG_WEIGHTS, w_backward_data_.chosen},
                                     {DNNL_ARG_DIFF_SRC, dx_.chosen}});
    backward_weights_.execute(stream_, {{DNNL_ARG_SRC, x_backward_weights_.chosen},
                                        {DNNL_ARG_DIFF_DST, dy_backward_weights_.chosen},
                                        {DNNL_ARG_DIFF_WEIGHTS, dw_.chosen},
                                        {DNNL_ARG_DIFF_BIAS, dbias_}});
    stream_.wait();
  }
  void store_backward() {
    dx_.store(stream_);
    dw_.store(stream_);
    stream_.wait();
  }

  std::string forward_implementation() const { return forward_pd_.impl_info_str(); }
  std::string backward_implementation() const {
    return std::string("data ") + backward_data_pd_.impl_info_str() + ", weights " +
           backward_weights_pd_.impl_info_str();
  }

 private:
  dnnl::engine engine_{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream_{engine_};
  dnnl::convolution_forward::primitive_desc forward_pd_;
  dnnl::convolution_backward_data::primitive_desc backward_data_pd_;
  dnnl::convolution_backward_weights::primitive_desc backward_weights_pd_;
  dnnl::convolution_forward forward_;
  dnnl::convolution_backward_data backward_data_;
  dnnl::convolution_backward_weights backward_weights_;
  LinkedMemory x_forward_, w_forward_, y_, w_backward_data_, dy_backward_data_, dx_,
      x_backward_weights_, dy_backward_weights_, dw_;
  memory bias_, dbias_;
};

// Passes when |theirs - ours| <= 1e-3 * max(|ours|, floor) everywhere: relative for the usual
// magnitudes, absolute near zero. The forward output uses floor 1; the gradients, sums over
// the whole batch whose elements can cancel to near zero, use the tensor's rms.
// Prints the worst element either way.
bool matches(const char* shape, const char* tensor, const std::vector<float>& ours,
             const std::vector<float>& theirs, double floor) {
  double worst = -1.0;
  size_t worst_at = 0;
  for (size_t i = 0; i < ours.size(); ++i) {
    const double scale = std::max(floor, std::fabs(static_cast<double>(ours[i])));
    const double error = std::fabs(static_cast<double>(theirs[i]) - ours[i]) / scale;
    if (!(error <= worst)) {  // also catches NaN
      worst = std::isnan(error) ? INFINITY : error;
      worst_at = i;
    }
  }
  const bool ok = worst <= kRelativeTolerance;
  std::fprintf(stderr,
               "check %-13s %-7s worst error %.2e at %zu (ours %g, onednn %g, floor %.3g)%s\n",
               shape, tensor, worst, worst_at, ours[worst_at], theirs[worst_at], floor,
               ok ? "" : "  <-- MISMATCH");
  return ok;
}

double rms(const std::vector<float>& values) {
  double sum = 0.0;
  for (float v : values) sum += static_cast<double>(v) * v;
  return std::sqrt(sum / static_cast<double>(values.size()));
}

// Runs both implementations once per shape on plain tensors; false on any mismatch.
bool onednn_matches_ours() {
  bool ok = true;
  for (const ConvCase& c : kCases) {
    const k::Conv2dShape& s = c.shape;
    ConvTensors ours(s), theirs(s);
    k::conv2d_forward(s, ours.x.data(), ours.weight.data(), ours.bias.data(), ours.y.data());
    k::conv2d_backward(s, ours.x.data(), ours.weight.data(), ours.dy.data(), ours.dx.data(),
                       ours.dweight.data(), ours.dbias.data());
    OnednnConv conv(s, theirs);
    conv.load_forward();
    conv.run_forward();
    conv.store_forward();
    conv.load_backward();
    conv.run_backward();
    conv.store_backward();
    std::fprintf(stderr, "onednn %-13s forward: %s; backward: %s\n", c.name,
                 conv.forward_implementation().c_str(), conv.backward_implementation().c_str());
    ok &= matches(c.name, "y", ours.y, theirs.y, 1.0);
    ok &= matches(c.name, "dx", ours.dx, theirs.dx, rms(ours.dx));
    ok &= matches(c.name, "dweight", ours.dweight, theirs.dweight, rms(ours.dweight));
    ok &= matches(c.name, "dbias", ours.dbias, theirs.dbias, rms(ours.dbias));
  }
  return ok;
}

void set_gflops(benchmark::State& state, double flops_per_iteration) {
  state.counters["GFLOP/s"] = benchmark::Counter(flops_per_iteration * 1e-9,
                                                 benchmark::Counter::kIsIterationInvariantRate);
}

void bm_conv_forward(benchmark::State& state, ConvCase c, Peer peer, int threads) {
  const k::Conv2dShape& s = c.shape;
  ConvTensors t(s);
  if (peer == Peer::ours) {
    k::set_threads(threads);
    for (auto _ : state) {
      k::conv2d_forward(s, t.x.data(), t.weight.data(), t.bias.data(), t.y.data());
      benchmark::ClobberMemory();
    }
  } else {
    omp_set_num_threads(threads);
    OnednnConv conv(s, t);
    conv.load_forward();
    for (auto _ : state) {
      if (peer == Peer::onednn_nchw) conv.load_forward();
      conv.run_forward();
      if (peer == Peer::onednn_nchw) conv.store_forward();
      benchmark::ClobberMemory();
    }
    state.SetLabel(conv.forward_implementation());
  }
  set_gflops(state, forward_flops(s));
}

void bm_conv_backward(benchmark::State& state, ConvCase c, Peer peer, int threads) {
  const k::Conv2dShape& s = c.shape;
  ConvTensors t(s);
  if (peer == Peer::ours) {
    k::set_threads(threads);
    for (auto _ : state) {
      k::conv2d_backward(s, t.x.data(), t.weight.data(), t.dy.data(), t.dx.data(),
                         t.dweight.data(), t.dbias.data());
      benchmark::ClobberMemory();
    }
  } else {
    omp_set_num_threads(threads);
    OnednnConv conv(s, t);
    conv.load_backward();
    for (auto _ : state) {
      if (peer == Peer::onednn_nchw) conv.load_backward();
      conv.run_backward();
      if (peer == Peer::onednn_nchw) conv.store_backward();
      benchmark::ClobberMemory();
    }
    state.SetLabel(conv.backward_implementation());
  }
  set_gflops(state, 2.0 * forward_flops(s));
}

using ConvBenchmark = void (*)(benchmark::State&, ConvCase, Peer, int);

void register_benchmarks() {
  const Peer peers[] = {Peer::ours, Peer::onednn, Peer::onednn_nchw};
  const std::pair<const char*, ConvBenchmark> directions[] = {
      {"BM_conv_forward", bm_conv_forward}, {"BM_conv_backward", bm_conv_backward}};
  for (const auto& [direction, function] : directions)
    for (const ConvCase& c : kCases)
      for (int threads : kThreadCounts)
        for (Peer peer : peers) {
          const std::string name = std::string(direction) + "/" + peer_name(peer) + "/" + c.name +
                                   "/threads:" + std::to_string(threads);
          benchmark::RegisterBenchmark(name.c_str(), function, c, peer, threads)
              ->UseRealTime()
              ->Unit(benchmark::kMillisecond);
        }
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  try {
    if (!onednn_matches_ours()) {
      std::fprintf(stderr, "oneDNN and digitflow disagree beyond %g relative; not timing.\n",
                   kRelativeTolerance);
      return EXIT_FAILURE;
    }
    register_benchmarks();
    benchmark::AddCustomContext("onednn_version",
                                std::to_string(dnnl::version()->major) + "." +
                                    std::to_string(dnnl::version()->minor) + "." +
                                    std::to_string(dnnl::version()->patch));
    benchmark::RunSpecifiedBenchmarks();
  } catch (const dnnl::error& e) {
    std::fprintf(stderr, "oneDNN error: %s (status %d)\n", e.what(), static_cast<int>(e.status));
    return EXIT_FAILURE;
  }
  benchmark::Shutdown();
  return 0;
}

// Single-threaded SGEMM: our gemm against OpenBLAS cblas_sgemm and oneDNN dnnl_sgemm in one
// binary, on the network's conv (im2col) and dense shapes, forward and backward, and a square
// reference shape. Reports GFLOP/s; the peers live only in this file.
#include <benchmark/benchmark.h>
#include <cblas.h>
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "digitflow/kernels/gemm.hpp"

namespace {

struct GemmShape {
  bool trans_a, trans_b;
  int m, n, k;
  const char* what;
};

// As conv2d_cpu.cpp and dense_cpu.cpp call gemm: per image (N = 576/676) and per batch of 128.
const GemmShape kShapes[] = {
    {false, false, 32, 676, 9, "conv1 forward, one image"},
    {false, false, 32, 86528, 9, "conv1 forward, batch of 128"},
    {false, false, 64, 576, 288, "conv2 forward, one image"},
    {false, false, 64, 73728, 288, "conv2 forward, batch of 128"},
    {false, true, 64, 288, 576, "conv2 weight gradient, one image"},
    {false, true, 64, 288, 73728, "conv2 weight gradient, batch of 128"},
    {true, false, 288, 576, 64, "conv2 input gradient, one image"},
    {false, false, 128, 64, 9216, "dense, M=128 N=64 K=9216"},
    {false, true, 64, 128, 9216, "dense forward"},
    {true, false, 128, 9216, 64, "dense weight gradient"},
    {false, false, 64, 9216, 128, "dense input gradient"},
    {false, false, 1024, 1024, 1024, "square, for the peak"},
};

struct Operands {
  int lda, ldb, ldc;
  std::vector<float> a, b, c;
};

Operands make_operands(const GemmShape& s) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  Operands ops;
  ops.lda = s.trans_a ? s.m : s.k;
  ops.ldb = s.trans_b ? s.k : s.n;
  ops.ldc = s.n;
  ops.a.resize(static_cast<std::size_t>(s.m) * s.k);
  ops.b.resize(static_cast<std::size_t>(s.k) * s.n);
  ops.c.assign(static_cast<std::size_t>(s.m) * s.n, 0.0f);
  for (float& v : ops.a) v = dist(rng);
  for (float& v : ops.b) v = dist(rng);
  return ops;
}

void set_gflops(benchmark::State& state, const GemmShape& s) {
  state.counters["GFLOP/s"] =
      benchmark::Counter(2.0 * s.m * s.n * s.k * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

void bm_ours(benchmark::State& state, GemmShape s) {
  Operands ops = make_operands(s);
  for (auto _ : state) {
    digitflow::kernels::gemm(s.trans_a, s.trans_b, s.m, s.n, s.k, 1.0f, ops.a.data(), ops.lda,
                             ops.b.data(), ops.ldb, 0.0f, ops.c.data(), ops.ldc);
    benchmark::DoNotOptimize(ops.c.data());
    benchmark::ClobberMemory();
  }
  set_gflops(state, s);
}

void bm_openblas(benchmark::State& state, GemmShape s) {
  Operands ops = make_operands(s);
  for (auto _ : state) {
    cblas_sgemm(CblasRowMajor, s.trans_a ? CblasTrans : CblasNoTrans,
                s.trans_b ? CblasTrans : CblasNoTrans, s.m, s.n, s.k, 1.0f, ops.a.data(), ops.lda,
                ops.b.data(), ops.ldb, 0.0f, ops.c.data(), ops.ldc);
    benchmark::DoNotOptimize(ops.c.data());
    benchmark::ClobberMemory();
  }
  set_gflops(state, s);
}

void bm_onednn(benchmark::State& state, GemmShape s) {
  Operands ops = make_operands(s);
  for (auto _ : state) {
    const dnnl_status_t status =
        dnnl_sgemm(s.trans_a ? 'T' : 'N', s.trans_b ? 'T' : 'N', s.m, s.n, s.k, 1.0f,
                   ops.a.data(), ops.lda, ops.b.data(), ops.ldb, 0.0f, ops.c.data(), ops.ldc);
    if (status != dnnl_success) {
      state.SkipWithError(("dnnl_sgemm failed with status " + std::to_string(status)).c_str());
      break;
    }
    benchmark::DoNotOptimize(ops.c.data());
    benchmark::ClobberMemory();
  }
  set_gflops(state, s);
}

std::string shape_name(const GemmShape& s) {
  std::string name = std::to_string(s.m) + "x" + std::to_string(s.n) + "x" + std::to_string(s.k);
  if (s.trans_a || s.trans_b) name += std::string("_") + (s.trans_a ? 'T' : 'N') + (s.trans_b ? 'T' : 'N');
  return name;
}

}  // namespace

int main(int argc, char** argv) {
  // Everything single-threaded: our callers parallelise over the batch themselves.
  openblas_set_num_threads(1);
  omp_set_num_threads(1);  // oneDNN here is built on the OpenMP runtime

  for (const GemmShape& s : kShapes) {
    const std::string shape = shape_name(s);
    benchmark::RegisterBenchmark(("BM_gemm/ours/" + shape).c_str(), bm_ours, s);
    benchmark::RegisterBenchmark(("BM_gemm/openblas/" + shape).c_str(), bm_openblas, s);
    benchmark::RegisterBenchmark(("BM_gemm/onednn/" + shape).c_str(), bm_onednn, s);
  }
  benchmark::AddCustomContext("digitflow_gemm_kernel", digitflow::kernels::gemm_kernel_name());
  benchmark::AddCustomContext("openblas_core", openblas_get_corename());
  benchmark::AddCustomContext("openblas_config", openblas_get_config());

  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

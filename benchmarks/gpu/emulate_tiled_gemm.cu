// A host transliteration of tiled_gemm_kernel (kernels/src/cuda/tiled_gemm.cuh) that runs the
// real operand and store functors of conv2d.cu and dense.cu (forward, input gradient, weight
// gradient with split-K) on the CPU and prints the worst error against ref:: for odd and
// MNIST shapes; and maxpool's gather backward (layers.cu) against ref::maxpool_backward with
// overlapping windows. It checks the index arithmetic and the tiling where no GPU is, not
// CUDA itself; keep it in step with the kernels. Not built by CMake:
//   nvcc -std=c++20 -O2 -arch=sm_90 -Ikernels/include -Ikernels/src -Ikernels/src/cuda \
//     -DDIGITFLOW_HAVE_CUDNN=0 -DDIGITFLOW_HAVE_CUDA=1 --expt-relaxed-constexpr \
//     benchmarks/gpu/emulate_tiled_gemm.cu kernels/src/cuda/device.cpp kernels/src/ops/conv2d_ref.cpp \
//     kernels/src/ops/dense_ref.cpp kernels/src/ops/maxpool_ref.cpp kernels/src/tensor.cpp \
//     -o /tmp/emulate_tiled_gemm
#include "conv2d.cu"  // the functors, from -Ikernels/src/cuda
#include "dense.cu"
#include "layers.cu"  // maxpool_input_grad
#include <cstdio>
#include <vector>
#include <random>
#include <cmath>
using namespace digitflow::kernels;
using namespace digitflow::kernels::cuda;

// Host transliteration of tiled_gemm_kernel<TM, TN>.
template <int TM, int TN, typename P>
void emulate_tiles(const P& p, int M, int N, int K, int splits, int k_per_split) {
  constexpr int RM = TM / 16, RN = TN / 16;
  int gx = (N + TN - 1) / TN, gy = (M + TM - 1) / TM;
  static float a_tile[16][TM + 1], b_tile[16][TN];
  for (int bz = 0; bz < splits; ++bz)
  for (int by = 0; by < gy; ++by)
  for (int bx = 0; bx < gx; ++bx) {
    std::vector<float> acc(256 * RM * RN, 0.0f);
    const int m0 = by * TM, n0 = bx * TN, k_begin = bz * k_per_split, k_end = std::min(K, k_begin + k_per_split);
    for (int k0 = k_begin; k0 < k_end; k0 += 16) {
      if constexpr (DecodedProblem<P>) {  // the kernel's decoded path, step by step
        decltype(p.k_info(0)) k_infos[16];
        for (int tid = 0; tid < 16; ++tid) k_infos[tid] = p.k_info(std::min(k0 + tid, k_end - 1));
        for (int tid = 0; tid < 256; ++tid) {
          const int my_ak = tid % 16, my_bn = tid % TN;
          const auto column = p.column(std::min(n0 + my_bn, N - 1));
          for (int l = 0; l < RM; ++l) {
            const int am = (tid + l * 256) / 16, m = m0 + am;
            a_tile[my_ak][am] = (m < M && k0 + my_ak < k_end) ? p.a_at(m, k_infos[my_ak]) : 0.0f;
          }
          for (int l = 0; l < RN; ++l) {
            const int bk = (tid + l * 256) / TN;
            b_tile[bk][my_bn] = (k0 + bk < k_end && n0 + my_bn < N) ? p.b_at(k_infos[bk], column) : 0.0f;
          }
        }
      } else {
      for (int tid = 0; tid < 256; ++tid) {
        for (int l = 0; l < RM; ++l) {
          const int idx = tid + l * 256;
          const int am = idx / 16, ak = idx % 16;
          const int m = m0 + am, k = k0 + ak;
          a_tile[ak][am] = (m < M && k < k_end) ? p.a(m, k) : 0.0f;
        }
        for (int l = 0; l < RN; ++l) {
          const int idx = tid + l * 256;
          const int bk = idx / TN, bn = idx % TN;
          const int kb = k0 + bk, n = n0 + bn;
          b_tile[bk][bn] = (kb < k_end && n < N) ? p.b(kb, n) : 0.0f;
        }
      }
      }
      for (int tid = 0; tid < 256; ++tid) {
        int tx = tid % 16, ty = tid / 16;
        for (int kk = 0; kk < 16; ++kk)
          for (int i = 0; i < RM; ++i) for (int j = 0; j < RN; ++j)
            acc[(tid * RM + i) * RN + j] = fmaf(a_tile[kk][ty + 16 * i], b_tile[kk][tx + 16 * j], acc[(tid * RM + i) * RN + j]);
      }
    }
    for (int tid = 0; tid < 256; ++tid) {
      int tx = tid % 16, ty = tid / 16;
      for (int i = 0; i < RM; ++i) for (int j = 0; j < RN; ++j) {
        int m = m0 + ty + 16 * i, n = n0 + tx + 16 * j;
        if (m < M && n < N) p.store(m, n, acc[(tid * RM + i) * RN + j], bz);
      }
    }
  }
}
template <typename P>
void emulate(const P& p, int M, int N, int K, int splits, int k_per_split) {
  if (M <= 32) emulate_tiles<32, 128>(p, M, N, K, splits, k_per_split);
  else emulate_tiles<64, 64>(p, M, N, K, splits, k_per_split);
}

int splits_for(int M, int N, int K, int& kps) {  // choose_splits with 132 SMs
  const int tm = M <= 32 ? 32 : 64, tn = M <= 32 ? 128 : 64;
  const int tiles = ((M + tm - 1) / tm) * ((N + tn - 1) / tn);
  int splits = std::max(1, std::min((2 * 132 + tiles - 1) / tiles, K / 256));
  kps = std::max(16, ((K + splits - 1) / splits + 15) / 16 * 16);
  return std::max(1, (K + kps - 1) / kps);
}

std::vector<float> rnd(size_t n, int seed) { std::mt19937 r(seed); std::uniform_real_distribution<float> d(-1, 1); std::vector<float> v(n); for (auto& x : v) x = d(r); return v; }
double maxerr(const std::vector<float>& a, const std::vector<float>& b) { double e = 0; for (size_t i = 0; i < a.size(); ++i) { double d = std::fabs(a[i] - b[i]); if (!(d <= e)) e = d; } return e; }

int main() {
  Conv2dShape shapes[] = {{3,5,13,11,7,3,1,0},{2,3,17,19,13,5,2,2},{2,4,10,9,3,3,3,1},{5,7,6,6,65,1,1,0},{4,1,28,28,32,3,1,0},{2,32,28,28,32,3,1,1},{3,33,9,9,33,3,1,1},{2,64,14,14,64,3,1,1}};
  for (auto s : shapes) {
    ConvGeometry g(s);
    size_t xs = size_t(s.n)*s.c_in*s.h*s.w, ws = size_t(s.c_out)*s.c_in*s.kernel*s.kernel, ys = size_t(s.n)*s.c_out*g.oh*g.ow;
    auto x = rnd(xs,1), w = rnd(ws,2), b = rnd(s.c_out,3), dy = rnd(ys,4);
    std::vector<float> y(ys, NAN), yr(ys), dx(xs, NAN), dxr(xs), dw(ws, NAN), dwr(ws), dbr(s.c_out);
    ref::conv2d_forward(s, x.data(), w.data(), b.data(), yr.data());
    ref::conv2d_backward(s, x.data(), w.data(), dy.data(), dxr.data(), dwr.data(), dbr.data());
    const int K = s.c_in*s.kernel*s.kernel;
    emulate(ConvForwardProblem{g, x.data(), w.data(), b.data(), y.data()}, s.c_out, s.n*g.oh*g.ow, K, 1, K);
    const int K2 = s.c_out*s.kernel*s.kernel;
    emulate(ConvInputGradProblem{g, w.data(), dy.data(), dx.data()}, s.c_in, s.n*s.h*s.w, K2, 1, K2);
    int M = s.c_out, N = K, KK = s.n*g.oh*g.ow, kps; int sp = splits_for(M, N, KK, kps);
    std::vector<float> part(size_t(M)*N*sp, NAN);
    ConvWeightGradProblem pw{g, x.data(), dy.data(), {}};
    pw.sink = {part.data(), N, (long long)M*N};
    emulate(pw, M, N, KK, sp, kps);
    for (long long i = 0; i < (long long)M*N; ++i) { float sum = 0; for (int z = 0; z < sp; ++z) sum += part[z*(long long)M*N + i]; dw[i] = sum; }
    printf("conv %d %d %d %d %d k%d s%d p%d: y %.2e dx %.2e dw %.2e (splits %d)\n", s.n,s.c_in,s.h,s.w,s.c_out,s.kernel,s.stride,s.padding, maxerr(y,yr), maxerr(dx,dxr), maxerr(dw,dwr), sp);
  }
  DenseShape ds[] = {{5,37,11},{1,1,1},{130,67,129},{128,3136,128},{31,40,33},{33,17,32}};
  for (auto s : ds) {
    auto x = rnd(size_t(s.n)*s.in,1), w = rnd(size_t(s.out)*s.in,2), b = rnd(s.out,3), dy = rnd(size_t(s.n)*s.out,4);
    std::vector<float> y(size_t(s.n)*s.out, NAN), yr(y.size()), dx(x.size(), NAN), dxr(x.size()), dw(w.size(), NAN), dwr(w.size()), dbr(s.out);
    ref::dense_forward(s, x.data(), w.data(), b.data(), yr.data());
    ref::dense_backward(s, x.data(), w.data(), dy.data(), dxr.data(), dwr.data(), dbr.data());
    emulate(DenseForwardProblem{s.in, s.out, x.data(), w.data(), b.data(), y.data()}, s.n, s.out, s.in, 1, s.in);
    emulate(DenseInputGradProblem{s.in, s.out, w.data(), dy.data(), dx.data()}, s.n, s.in, s.out, 1, s.out);
    int kps; int sp = splits_for(s.out, s.in, s.n, kps);
    std::vector<float> part(size_t(s.out)*s.in*sp, NAN);
    DenseWeightGradProblem pw{s.in, s.out, x.data(), dy.data(), {}};
    pw.sink = {part.data(), s.in, (long long)s.out*s.in};
    emulate(pw, s.out, s.in, s.n, sp, kps);
    for (size_t i = 0; i < dw.size(); ++i) { float sum = 0; for (int z = 0; z < sp; ++z) sum += part[z*dw.size() + i]; dw[i] = sum; }
    printf("dense %d %d %d: y %.2e dx %.2e dw %.2e (splits %d)\n", s.n, s.in, s.out, maxerr(y,yr), maxerr(dx,dxr), maxerr(dw,dwr), sp);
  }
  MaxPoolShape pools[] = {{3, 5, 13, 11, 2, 2}, {2, 3, 9, 9, 3, 2}, {1, 1, 7, 5, 3, 1}, {2, 4, 24, 24, 2, 2}};
  for (auto s : pools) {
    const int oh = s.out_h(), ow = s.out_w();
    const size_t xs = size_t(s.n) * s.c * s.h * s.w, ys = size_t(s.n) * s.c * oh * ow;
    auto x = rnd(xs, 5), dy = rnd(ys, 6);
    std::vector<float> y(ys), dx(xs, NAN), dxr(xs);
    std::vector<int32_t> argmax(ys);
    ref::maxpool_forward(s, x.data(), y.data(), argmax.data());
    ref::maxpool_backward(s, dy.data(), argmax.data(), dxr.data());
    for (size_t i = 0; i < xs; ++i) dx[i] = maxpool_input_grad(s, oh, ow, dy.data(), argmax.data(), i);
    printf("maxpool %d %d %d %d k%d s%d: dx %.2e\n", s.n, s.c, s.h, s.w, s.kernel, s.stride, maxerr(dx, dxr));
  }
}

// Single-threaded SGEMM in the GotoBLAS/BLIS layout: op(B) is packed into KC x NC blocks of
// NR-wide panels, op(A) into MC x KC blocks of MR-tall panels, and an MR x NR micro-kernel keeps
// C in registers. Micro-kernels for AVX-512, AVX2+FMA and portable C++ are compiled side by side
// with target attributes and picked once at run time (DIGITFLOW_GEMM_KERNEL forces one).
#include "digitflow/kernels/gemm.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define DIGITFLOW_GEMM_X86 1
#include <immintrin.h>
#else
#define DIGITFLOW_GEMM_X86 0
#endif

namespace digitflow::kernels {
namespace {

// c (MR x NR tile, row stride ldc) = alpha * sum_p ap[p][:] (x) bp[p][:] + beta * c, where ap is
// a packed MR-tall panel and bp a packed NR-wide panel, both kc long. beta == 0 never reads c.
using MicroKernel = void (*)(int kc, const float* ap, const float* bp, float* c, int ldc,
                             float alpha, float beta);

struct KernelSpec {
  const char* name;
  int mr, nr;          // register tile
  int mc, kc, nc;      // cache blocks: A block mc x kc in L2, B micro-panel kc x nr in L1
  MicroKernel kernel;
};

constexpr int kMaxMr = 8;
constexpr int kMaxNr = 32;

// ---------------------------------------------------------------------------------------------
// Portable: fixed-size loops the compiler can vectorise for the baseline ISA.
constexpr int kPortableMr = 4;
constexpr int kPortableNr = 8;

void micro_kernel_portable(int kc, const float* ap, const float* bp, float* c, int ldc,
                           float alpha, float beta) {
  float acc[kPortableMr][kPortableNr] = {};
  for (int p = 0; p < kc; ++p) {
    for (int i = 0; i < kPortableMr; ++i) {
      const float a = ap[i];
      for (int j = 0; j < kPortableNr; ++j) acc[i][j] += a * bp[j];
    }
    ap += kPortableMr;
    bp += kPortableNr;
  }
  for (int i = 0; i < kPortableMr; ++i) {
    float* row = c + static_cast<std::ptrdiff_t>(i) * ldc;
    if (beta == 0.0f) {
      for (int j = 0; j < kPortableNr; ++j) row[j] = alpha * acc[i][j];
    } else {
      for (int j = 0; j < kPortableNr; ++j) row[j] = alpha * acc[i][j] + beta * row[j];
    }
  }
}

#if DIGITFLOW_GEMM_X86
// ---------------------------------------------------------------------------------------------
// AVX2 + FMA, 6 x 16: 12 ymm accumulators, 2 for B, 1 broadcast of A (15 of 16 registers).
constexpr int kAvx2Mr = 6;
constexpr int kAvx2Nr = 16;

__attribute__((target("avx2,fma"))) void micro_kernel_avx2(int kc, const float* ap,
                                                            const float* bp, float* c, int ldc,
                                                            float alpha, float beta) {
  for (int i = 0; i < kAvx2Mr; ++i) {
    const char* row = reinterpret_cast<const char*>(c + static_cast<std::ptrdiff_t>(i) * ldc);
    _mm_prefetch(row, _MM_HINT_T0);
    _mm_prefetch(row + 63, _MM_HINT_T0);
  }
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
  __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
  __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
  __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
#pragma GCC unroll 4
  for (int p = 0; p < kc; ++p) {
    const __m256 b0 = _mm256_load_ps(bp);
    const __m256 b1 = _mm256_load_ps(bp + 8);
    __m256 a = _mm256_broadcast_ss(ap + 0);
    c00 = _mm256_fmadd_ps(a, b0, c00);
    c01 = _mm256_fmadd_ps(a, b1, c01);
    a = _mm256_broadcast_ss(ap + 1);
    c10 = _mm256_fmadd_ps(a, b0, c10);
    c11 = _mm256_fmadd_ps(a, b1, c11);
    a = _mm256_broadcast_ss(ap + 2);
    c20 = _mm256_fmadd_ps(a, b0, c20);
    c21 = _mm256_fmadd_ps(a, b1, c21);
    a = _mm256_broadcast_ss(ap + 3);
    c30 = _mm256_fmadd_ps(a, b0, c30);
    c31 = _mm256_fmadd_ps(a, b1, c31);
    a = _mm256_broadcast_ss(ap + 4);
    c40 = _mm256_fmadd_ps(a, b0, c40);
    c41 = _mm256_fmadd_ps(a, b1, c41);
    a = _mm256_broadcast_ss(ap + 5);
    c50 = _mm256_fmadd_ps(a, b0, c50);
    c51 = _mm256_fmadd_ps(a, b1, c51);
    ap += kAvx2Mr;
    bp += kAvx2Nr;
  }
  const __m256 va = _mm256_set1_ps(alpha);
  const __m256 acc[kAvx2Mr][2] = {{c00, c01}, {c10, c11}, {c20, c21},
                                  {c30, c31}, {c40, c41}, {c50, c51}};
  if (beta == 0.0f) {
    for (int i = 0; i < kAvx2Mr; ++i) {
      float* row = c + static_cast<std::ptrdiff_t>(i) * ldc;
      _mm256_storeu_ps(row, _mm256_mul_ps(va, acc[i][0]));
      _mm256_storeu_ps(row + 8, _mm256_mul_ps(va, acc[i][1]));
    }
  } else {
    const __m256 vb = _mm256_set1_ps(beta);
    for (int i = 0; i < kAvx2Mr; ++i) {
      float* row = c + static_cast<std::ptrdiff_t>(i) * ldc;
      _mm256_storeu_ps(row,
                       _mm256_fmadd_ps(vb, _mm256_loadu_ps(row), _mm256_mul_ps(va, acc[i][0])));
      _mm256_storeu_ps(
          row + 8, _mm256_fmadd_ps(vb, _mm256_loadu_ps(row + 8), _mm256_mul_ps(va, acc[i][1])));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// AVX-512, 8 x 32: the AVX2 kernel with zmm registers and 8 rows (16 accumulators, 2 for B,
// 1 broadcast). 8 rows rather than 14 because our M (32, 64, 128) then needs no padded rows.
constexpr int kAvx512Mr = 8;
constexpr int kAvx512Nr = 32;

__attribute__((target("avx512f"))) void micro_kernel_avx512(int kc, const float* ap,
                                                             const float* bp, float* c, int ldc,
                                                             float alpha, float beta) {
  for (int i = 0; i < kAvx512Mr; ++i) {
    const char* row = reinterpret_cast<const char*>(c + static_cast<std::ptrdiff_t>(i) * ldc);
    _mm_prefetch(row, _MM_HINT_T0);
    _mm_prefetch(row + 127, _MM_HINT_T0);
  }
  __m512 c00 = _mm512_setzero_ps(), c01 = _mm512_setzero_ps();
  __m512 c10 = _mm512_setzero_ps(), c11 = _mm512_setzero_ps();
  __m512 c20 = _mm512_setzero_ps(), c21 = _mm512_setzero_ps();
  __m512 c30 = _mm512_setzero_ps(), c31 = _mm512_setzero_ps();
  __m512 c40 = _mm512_setzero_ps(), c41 = _mm512_setzero_ps();
  __m512 c50 = _mm512_setzero_ps(), c51 = _mm512_setzero_ps();
  __m512 c60 = _mm512_setzero_ps(), c61 = _mm512_setzero_ps();
  __m512 c70 = _mm512_setzero_ps(), c71 = _mm512_setzero_ps();
#pragma GCC unroll 4
  for (int p = 0; p < kc; ++p) {
    const __m512 b0 = _mm512_load_ps(bp);
    const __m512 b1 = _mm512_load_ps(bp + 16);
    __m512 a = _mm512_set1_ps(ap[0]);
    c00 = _mm512_fmadd_ps(a, b0, c00);
    c01 = _mm512_fmadd_ps(a, b1, c01);
    a = _mm512_set1_ps(ap[1]);
    c10 = _mm512_fmadd_ps(a, b0, c10);
    c11 = _mm512_fmadd_ps(a, b1, c11);
    a = _mm512_set1_ps(ap[2]);
    c20 = _mm512_fmadd_ps(a, b0, c20);
    c21 = _mm512_fmadd_ps(a, b1, c21);
    a = _mm512_set1_ps(ap[3]);
    c30 = _mm512_fmadd_ps(a, b0, c30);
    c31 = _mm512_fmadd_ps(a, b1, c31);
    a = _mm512_set1_ps(ap[4]);
    c40 = _mm512_fmadd_ps(a, b0, c40);
    c41 = _mm512_fmadd_ps(a, b1, c41);
    a = _mm512_set1_ps(ap[5]);
    c50 = _mm512_fmadd_ps(a, b0, c50);
    c51 = _mm512_fmadd_ps(a, b1, c51);
    a = _mm512_set1_ps(ap[6]);
    c60 = _mm512_fmadd_ps(a, b0, c60);
    c61 = _mm512_fmadd_ps(a, b1, c61);
    a = _mm512_set1_ps(ap[7]);
    c70 = _mm512_fmadd_ps(a, b0, c70);
    c71 = _mm512_fmadd_ps(a, b1, c71);
    ap += kAvx512Mr;
    bp += kAvx512Nr;
  }
  const __m512 va = _mm512_set1_ps(alpha);
  const __m512 acc[kAvx512Mr][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31},
                                    {c40, c41}, {c50, c51}, {c60, c61}, {c70, c71}};
  if (beta == 0.0f) {
    for (int i = 0; i < kAvx512Mr; ++i) {
      float* row = c + static_cast<std::ptrdiff_t>(i) * ldc;
      _mm512_storeu_ps(row, _mm512_mul_ps(va, acc[i][0]));
      _mm512_storeu_ps(row + 16, _mm512_mul_ps(va, acc[i][1]));
    }
  } else {
    const __m512 vb = _mm512_set1_ps(beta);
    for (int i = 0; i < kAvx512Mr; ++i) {
      float* row = c + static_cast<std::ptrdiff_t>(i) * ldc;
      _mm512_storeu_ps(row,
                       _mm512_fmadd_ps(vb, _mm512_loadu_ps(row), _mm512_mul_ps(va, acc[i][0])));
      _mm512_storeu_ps(row + 16, _mm512_fmadd_ps(vb, _mm512_loadu_ps(row + 16),
                                                 _mm512_mul_ps(va, acc[i][1])));
    }
  }
}
#endif  // DIGITFLOW_GEMM_X86

// Block sizes: kc * nr * 4 bytes of B stays in L1 (32 KiB on Zen 3, 48 KiB on Zen 5), mc * kc
// of A in L2, kc * nc of B in L3.
constexpr KernelSpec kPortableSpec{"portable", kPortableMr, kPortableNr, 128, 256,
                                   4096,       micro_kernel_portable};
#if DIGITFLOW_GEMM_X86
constexpr KernelSpec kAvx2Spec{"avx2", kAvx2Mr, kAvx2Nr, 144, 256, 4096, micro_kernel_avx2};
constexpr KernelSpec kAvx512Spec{"avx512", kAvx512Mr, kAvx512Nr, 192, 256, 4096,
                                 micro_kernel_avx512};
#endif
static_assert(kPortableMr <= kMaxMr && kPortableNr <= kMaxNr);

bool cpu_supports(const KernelSpec& spec) {
  const std::string_view name = spec.name;
  if (name == "portable") return true;
#if DIGITFLOW_GEMM_X86
  __builtin_cpu_init();
  if (name == "avx2") return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (name == "avx512") return __builtin_cpu_supports("avx512f");
#endif
  return false;
}

const KernelSpec* find_spec(std::string_view name) {
#if DIGITFLOW_GEMM_X86
  if (name == kAvx512Spec.name) return &kAvx512Spec;
  if (name == kAvx2Spec.name) return &kAvx2Spec;
#endif
  if (name == kPortableSpec.name) return &kPortableSpec;
  return nullptr;
}

const KernelSpec& select_kernel() {
  if (const char* forced = std::getenv("DIGITFLOW_GEMM_KERNEL"); forced && *forced) {
    const KernelSpec* spec = find_spec(forced);
    if (!spec) {
      throw std::invalid_argument(std::string("DIGITFLOW_GEMM_KERNEL=") + forced +
                                  ": unknown kernel (expected avx512, avx2 or portable)");
    }
    if (!cpu_supports(*spec)) {
      throw std::runtime_error(std::string("DIGITFLOW_GEMM_KERNEL=") + forced +
                               ": this processor does not support it");
    }
    return *spec;
  }
#if DIGITFLOW_GEMM_X86
  if (cpu_supports(kAvx512Spec)) return kAvx512Spec;
  if (cpu_supports(kAvx2Spec)) return kAvx2Spec;
#endif
  return kPortableSpec;
}

const KernelSpec& active_kernel() {
  static const KernelSpec& spec = select_kernel();
  return spec;
}

// Per-thread packing storage, 64-byte aligned, grown on demand and kept for the next call:
// gemm runs concurrently on oneTBB workers, each with its own buffers.
class PackBuffer {
 public:
  float* get(std::size_t floats) {
    if (floats + kAlignFloats > storage_.size()) storage_.resize(floats + kAlignFloats);
    const auto address = reinterpret_cast<std::uintptr_t>(storage_.data());
    const std::size_t offset = ((64 - address % 64) % 64) / sizeof(float);
    return storage_.data() + offset;
  }

 private:
  static constexpr std::size_t kAlignFloats = 64 / sizeof(float);
  std::vector<float> storage_;
};

// rows x kc of row-major src into kc x rows (p-major), the inner step of packing untransposed
// A; a compile-time row count lets the compiler keep the row pointers in registers.
template <int kRows>
void pack_rows_transposed(const float* src, int ld, int kc, float* dst) {
  const float* row[kRows];
  for (int i = 0; i < kRows; ++i) row[i] = src + static_cast<std::ptrdiff_t>(i) * ld;
  for (int p = 0; p < kc; ++p) {
    for (int i = 0; i < kRows; ++i) dst[p * kRows + i] = row[i][p];
  }
}

// op(A)[i0 : i0+mc, p0 : p0+kc] into MR-tall panels, element (i, p) of a panel at p * mr + i;
// rows past mc are zero.
void pack_a(bool trans_a, const float* a, int lda, int i0, int mc, int p0, int kc, int mr,
            float* dst) {
  for (int ir = 0; ir < mc; ir += mr) {
    const int rows = std::min(mr, mc - ir);
    if (trans_a) {
      for (int p = 0; p < kc; ++p) {
        const float* src = a + static_cast<std::ptrdiff_t>(p0 + p) * lda + (i0 + ir);
        float* out = dst + static_cast<std::ptrdiff_t>(p) * mr;
        for (int i = 0; i < rows; ++i) out[i] = src[i];
        for (int i = rows; i < mr; ++i) out[i] = 0.0f;
      }
    } else {
      const float* src = a + static_cast<std::ptrdiff_t>(i0 + ir) * lda + p0;
      switch (rows == mr ? mr : 0) {
        case 4: pack_rows_transposed<4>(src, lda, kc, dst); break;
        case 6: pack_rows_transposed<6>(src, lda, kc, dst); break;
        case 8: pack_rows_transposed<8>(src, lda, kc, dst); break;
        default:
          for (int p = 0; p < kc; ++p) {
            float* out = dst + static_cast<std::ptrdiff_t>(p) * mr;
            for (int i = 0; i < rows; ++i) out[i] = src[static_cast<std::ptrdiff_t>(i) * lda + p];
            for (int i = rows; i < mr; ++i) out[i] = 0.0f;
          }
      }
    }
    dst += static_cast<std::ptrdiff_t>(mr) * kc;
  }
}

// op(B)[p0 : p0+kc, j0 : j0+nc] into NR-wide panels, element (p, j) of a panel at p * nr + j;
// columns past nc are zero. Stored B is read along its rows (whole rows for the untransposed
// case) so that the hardware prefetcher streams it from memory.
void pack_b(bool trans_b, const float* b, int ldb, int p0, int kc, int j0, int nc, int nr,
            float* dst) {
  if (!trans_b) {
    const int full = nc / nr * nr;
    for (int p = 0; p < kc; ++p) {
      const float* src = b + static_cast<std::ptrdiff_t>(p0 + p) * ldb + j0;
      float* out = dst + static_cast<std::ptrdiff_t>(p) * nr;
      for (int jr = 0; jr < full; jr += nr) {
        std::memcpy(out + static_cast<std::ptrdiff_t>(jr) * kc, src + jr,
                    sizeof(float) * static_cast<std::size_t>(nr));
      }
      if (full < nc) {
        float* tail = out + static_cast<std::ptrdiff_t>(full) * kc;
        const int cols = nc - full;
        for (int j = 0; j < cols; ++j) tail[j] = src[full + j];
        for (int j = cols; j < nr; ++j) tail[j] = 0.0f;
      }
    }
    return;
  }
  for (int jr = 0; jr < nc; jr += nr) {
    const int cols = std::min(nr, nc - jr);
    for (int j = 0; j < cols; ++j) {
      const float* src = b + static_cast<std::ptrdiff_t>(j0 + jr + j) * ldb + p0;
      for (int p = 0; p < kc; ++p) dst[static_cast<std::ptrdiff_t>(p) * nr + j] = src[p];
    }
    for (int j = cols; j < nr; ++j) {
      for (int p = 0; p < kc; ++p) dst[static_cast<std::ptrdiff_t>(p) * nr + j] = 0.0f;
    }
    dst += static_cast<std::ptrdiff_t>(nr) * kc;
  }
}

void scale_c(int m, int n, float beta, float* c, int ldc) {
  for (int i = 0; i < m; ++i) {
    float* row = c + static_cast<std::ptrdiff_t>(i) * ldc;
    if (beta == 0.0f) {
      std::fill(row, row + n, 0.0f);
    } else if (beta != 1.0f) {
      for (int j = 0; j < n; ++j) row[j] *= beta;
    }
  }
}

// Splits `total` into ceil(total / max_block) near-equal blocks, rounded up to `multiple`, so
// that k = 288 runs as 2 x 144 rather than 256 + 32.
int balanced_block(int total, int max_block, int multiple) {
  const int blocks = (total + max_block - 1) / max_block;
  const int block = (total + blocks - 1) / blocks;
  return (block + multiple - 1) / multiple * multiple;
}

void gemm_packed(const KernelSpec& spec, bool trans_a, bool trans_b, int m, int n, int k,
                 float alpha, const float* a, int lda, const float* b, int ldb, float beta,
                 float* c, int ldc) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0 || alpha == 0.0f) {
    scale_c(m, n, beta, c, ldc);
    return;
  }
  const int mr = spec.mr;
  const int nr = spec.nr;
  const int kc_max = balanced_block(k, spec.kc, 1);
  const int mc_max = balanced_block(m, spec.mc, mr);
  const int nc_max = balanced_block(n, spec.nc, nr);

  thread_local PackBuffer a_buffer;
  thread_local PackBuffer b_buffer;
  float* a_packed = a_buffer.get(static_cast<std::size_t>(mc_max) * kc_max);
  float* b_packed = b_buffer.get(static_cast<std::size_t>(nc_max) * kc_max);
  alignas(64) float edge[kMaxMr * kMaxNr];

  for (int jc = 0; jc < n; jc += nc_max) {
    const int nc = std::min(nc_max, n - jc);
    for (int pc = 0; pc < k; pc += kc_max) {
      const int kc = std::min(kc_max, k - pc);
      const float beta_block = pc == 0 ? beta : 1.0f;
      pack_b(trans_b, b, ldb, pc, kc, jc, nc, nr, b_packed);
      for (int ic = 0; ic < m; ic += mc_max) {
        const int mc = std::min(mc_max, m - ic);
        pack_a(trans_a, a, lda, ic, mc, pc, kc, mr, a_packed);
        for (int jr = 0; jr < nc; jr += nr) {
          const int cols = std::min(nr, nc - jr);
          const float* bp = b_packed + static_cast<std::ptrdiff_t>(jr) * kc;
          for (int ir = 0; ir < mc; ir += mr) {
            const int rows = std::min(mr, mc - ir);
            const float* ap = a_packed + static_cast<std::ptrdiff_t>(ir) * kc;
            float* ct = c + static_cast<std::ptrdiff_t>(ic + ir) * ldc + (jc + jr);
            if (rows == mr && cols == nr) {
              spec.kernel(kc, ap, bp, ct, ldc, alpha, beta_block);
              continue;
            }
            spec.kernel(kc, ap, bp, edge, nr, alpha, 0.0f);
            for (int i = 0; i < rows; ++i) {
              float* row = ct + static_cast<std::ptrdiff_t>(i) * ldc;
              const float* tile = edge + i * nr;
              if (beta_block == 0.0f) {
                for (int j = 0; j < cols; ++j) row[j] = tile[j];
              } else {
                for (int j = 0; j < cols; ++j) row[j] = tile[j] + beta_block * row[j];
              }
            }
          }
        }
      }
    }
  }
}

}  // namespace

namespace detail {

// For tests and benchmarks: whether a named kernel can run here, and gemm through it.
bool gemm_kernel_available(const char* name) {
  const KernelSpec* spec = find_spec(name);
  return spec && cpu_supports(*spec);
}

void gemm_with_kernel(const char* name, bool trans_a, bool trans_b, int m, int n, int k,
                      float alpha, const float* a, int lda, const float* b, int ldb, float beta,
                      float* c, int ldc) {
  const KernelSpec* spec = find_spec(name);
  if (!spec || !cpu_supports(*spec)) {
    throw std::invalid_argument(std::string("gemm kernel not available here: ") + name);
  }
  gemm_packed(*spec, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

}  // namespace detail

void gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda,
          const float* b, int ldb, float beta, float* c, int ldc) {
  gemm_packed(active_kernel(), trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void gemm_reference(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a,
                    int lda, const float* b, int ldb, float beta, float* c, int ldc) {
  for (int i = 0; i < m; ++i) {
    for (int j = 0; j < n; ++j) {
      double sum = 0.0;
      if (alpha != 0.0f) {
        for (int p = 0; p < k; ++p) {
          const float av = trans_a ? a[static_cast<std::ptrdiff_t>(p) * lda + i]
                                   : a[static_cast<std::ptrdiff_t>(i) * lda + p];
          const float bv = trans_b ? b[static_cast<std::ptrdiff_t>(j) * ldb + p]
                                   : b[static_cast<std::ptrdiff_t>(p) * ldb + j];
          sum += static_cast<double>(av) * bv;
        }
      }
      float& out = c[static_cast<std::ptrdiff_t>(i) * ldc + j];
      const double scaled = static_cast<double>(alpha) * sum;
      out = static_cast<float>(beta == 0.0f ? scaled : scaled + static_cast<double>(beta) * out);
    }
  }
}

const char* gemm_kernel_name() { return active_kernel().name; }

}  // namespace digitflow::kernels

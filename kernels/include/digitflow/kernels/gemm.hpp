// Single-precision GEMM, C = alpha * op(A) * op(B) + beta * C, row-major, single-threaded:
// callers parallelise over the batch with oneTBB. The fast path is a packed, register-
// blocked kernel chosen at run time for the processor (AVX-512, AVX2+FMA, or portable);
// gemm_reference is the plain triple loop that tests compare it with.
#pragma once

namespace digitflow::kernels {

void gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda,
          const float* b, int ldb, float beta, float* c, int ldc);

void gemm_reference(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a,
                    int lda, const float* b, int ldb, float beta, float* c, int ldc);

// Which kernel gemm() dispatches to on this processor: "avx512", "avx2" or "portable".
const char* gemm_kernel_name();

}  // namespace digitflow::kernels

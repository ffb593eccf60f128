// The fully connected layer on the tiled GEMM of tiled_gemm.cuh (weight is (out, in)):
//   forward          y (n x out)   = x (n x in)    * W^T
//   input gradient   dx (n x in)   = dy (n x out)  * W
//   weight gradient  dW (out x in) = dy^T (out x n) * x, split-K over the batch
#include "digitflow/kernels/cuda/ops.hpp"
#include "tiled_gemm.cuh"

namespace digitflow::kernels::cuda {

namespace {

struct DenseForwardProblem {
  int in, out;
  const float *x, *weight, *bias;
  float* y;
  __host__ __device__ float a(int row, int i) const {
    return x[static_cast<long long>(row) * in + i];
  }
  __host__ __device__ float b(int i, int o) const {
    return weight[static_cast<long long>(o) * in + i];
  }
  __host__ __device__ void store(int row, int o, float v, int) const {
    y[static_cast<long long>(row) * out + o] = bias ? v + bias[o] : v;
  }
};

struct DenseInputGradProblem {
  int in, out;
  const float *weight, *dy;
  float* dx;
  __host__ __device__ float a(int row, int o) const {
    return dy[static_cast<long long>(row) * out + o];
  }
  __host__ __device__ float b(int o, int i) const {
    return weight[static_cast<long long>(o) * in + i];
  }
  __host__ __device__ void store(int row, int i, float v, int) const {
    dx[static_cast<long long>(row) * in + i] = v;
  }
};

struct DenseWeightGradProblem {
  int in, out;
  const float *x, *dy;
  RowMajorStore sink;
  __host__ __device__ float a(int o, int row) const {
    return dy[static_cast<long long>(row) * out + o];
  }
  __host__ __device__ float b(int row, int i) const {
    return x[static_cast<long long>(row) * in + i];
  }
  __host__ __device__ void store(int m, int n, float v, int z) const { sink.store(m, n, v, z); }
};

}  // namespace

void dense_forward(const DenseShape& s, const float* x, const float* weight, const float* bias,
                   float* y) {
  launch_gemm(DenseForwardProblem{s.in, s.out, x, weight, bias, y}, s.n, s.out, s.in, 1, s.in);
}

void dense_backward(const DenseShape& s, const float* x, const float* weight, const float* dy,
                    float* dx, float* dweight, float* dbias) {
  if (dx)
    launch_gemm(DenseInputGradProblem{s.in, s.out, weight, dy, dx}, s.n, s.in, s.out, 1, s.out);
  gemm_split_k(DenseWeightGradProblem{s.in, s.out, x, dy, {}}, s.out, s.in, s.n, dweight);
  if (dbias) channel_sums(dy, s.n, s.out, 1, dbias);
}

}  // namespace digitflow::kernels::cuda

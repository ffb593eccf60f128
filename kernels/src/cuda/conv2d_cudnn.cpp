// conv2d through cuDNN 9's convolution API: the cudnn backend, and the peer our implicit
// GEMM is checked and timed against. Descriptors and algorithm choices (cuDNN's heuristics)
// are cached per shape and thread; math is plain fp32 (CUDNN_FMA_MATH), as ours, so that
// the two agree to fp32 rounding and compare like with like.
#include <cudnn.h>

#include <map>
#include <tuple>

#include "check.hpp"
#include "digitflow/kernels/cuda/ops.hpp"

#define CUDNN_CHECK(call)                                                         \
  do {                                                                            \
    cudnnStatus_t status_ = (call);                                               \
    if (status_ != CUDNN_STATUS_SUCCESS)                                          \
      ::digitflow::kernels::cuda::throw_cuda_error(__FILE__, __LINE__, #call,     \
                                                   cudnnGetErrorString(status_)); \
  } while (0)

namespace digitflow::kernels::cuda {

namespace {

cudnnHandle_t handle() {
  thread_local struct Handle {
    cudnnHandle_t h = nullptr;
    Handle() { CUDNN_CHECK(cudnnCreate(&h)); }
    ~Handle() { cudnnDestroy(h); }
  } owner;
  CUDNN_CHECK(cudnnSetStream(owner.h, stream()));
  return owner.h;
}

struct ConvPlan {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr, bias = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  cudnnConvolutionFwdAlgo_t forward_algo{};
  cudnnConvolutionBwdDataAlgo_t data_algo{};
  cudnnConvolutionBwdFilterAlgo_t filter_algo{};
  size_t forward_bytes = 0, data_bytes = 0, filter_bytes = 0;

  explicit ConvPlan(const Conv2dShape& s) {
    cudnnHandle_t h = handle();
    CUDNN_CHECK(cudnnCreateTensorDescriptor(&x));
    CUDNN_CHECK(cudnnCreateTensorDescriptor(&y));
    CUDNN_CHECK(cudnnCreateTensorDescriptor(&bias));
    CUDNN_CHECK(cudnnCreateFilterDescriptor(&w));
    CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&conv));
    CUDNN_CHECK(
        cudnnSetTensor4dDescriptor(x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, s.n, s.c_in, s.h, s.w));
    CUDNN_CHECK(cudnnSetTensor4dDescriptor(y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, s.n, s.c_out,
                                           s.out_h(), s.out_w()));
    CUDNN_CHECK(
        cudnnSetTensor4dDescriptor(bias, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, s.c_out, 1, 1));
    CUDNN_CHECK(cudnnSetFilter4dDescriptor(w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, s.c_out, s.c_in,
                                           s.kernel, s.kernel));
    CUDNN_CHECK(cudnnSetConvolution2dDescriptor(conv, s.padding, s.padding, s.stride, s.stride, 1,
                                                1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    CUDNN_CHECK(cudnnSetConvolutionMathType(conv, CUDNN_FMA_MATH));

    int found = 0;
    cudnnConvolutionFwdAlgoPerf_t forward[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(
        h, x, w, conv, y, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &found, forward));
    forward_algo = pick(forward, found, "forward").algo;
    CUDNN_CHECK(
        cudnnGetConvolutionForwardWorkspaceSize(h, x, w, conv, y, forward_algo, &forward_bytes));

    cudnnConvolutionBwdDataAlgoPerf_t data[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(
        h, w, y, conv, x, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &found, data));
    data_algo = pick(data, found, "backward data").algo;
    CUDNN_CHECK(
        cudnnGetConvolutionBackwardDataWorkspaceSize(h, w, y, conv, x, data_algo, &data_bytes));

    cudnnConvolutionBwdFilterAlgoPerf_t filter[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(
        h, x, y, conv, w, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &found, filter));
    filter_algo = pick(filter, found, "backward filter").algo;
    CUDNN_CHECK(cudnnGetConvolutionBackwardFilterWorkspaceSize(h, x, y, conv, w, filter_algo,
                                                               &filter_bytes));
  }
  ~ConvPlan() {
    cudnnDestroyTensorDescriptor(x);
    cudnnDestroyTensorDescriptor(y);
    cudnnDestroyTensorDescriptor(bias);
    cudnnDestroyFilterDescriptor(w);
    cudnnDestroyConvolutionDescriptor(conv);
  }
  ConvPlan(const ConvPlan&) = delete;
  ConvPlan& operator=(const ConvPlan&) = delete;

  // The heuristics' first choice that works in fp32 without tensor-core rounding.
  template <typename Perf>
  static const Perf& pick(const Perf* perf, int found, const char* what) {
    for (int i = 0; i < found; ++i)
      if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].mathType == CUDNN_FMA_MATH)
        return perf[i];
    for (int i = 0; i < found; ++i)
      if (perf[i].status == CUDNN_STATUS_SUCCESS) return perf[i];
    std::string message = "cuDNN offers no ";
    message += what;
    message += " convolution algorithm for this shape";
    throw CudaError(message);
  }
};

ConvPlan& plan_for(const Conv2dShape& s) {
  using Key = std::tuple<int, int, int, int, int, int, int, int>;
  thread_local std::map<Key, std::unique_ptr<ConvPlan>> plans;
  Key key{s.n, s.c_in, s.h, s.w, s.c_out, s.kernel, s.stride, s.padding};
  auto& slot = plans[key];
  if (!slot) slot = std::make_unique<ConvPlan>(s);
  return *slot;
}

}  // namespace

std::string start_cudnn() {
  handle();
  const size_t version = cudnnGetVersion();
  std::string text = "cuDNN ";
  text += std::to_string(version / 10000);
  text += '.';
  text += std::to_string(version % 10000 / 100);
  text += '.';
  text += std::to_string(version % 100);
  return text;
}

namespace cudnn_path {

void conv2d_forward(const Conv2dShape& s, const float* x, const float* weight, const float* bias,
                    float* y) {
  ConvPlan& p = plan_for(s);
  const float one = 1.0f, zero = 0.0f;
  void* scratch = workspace(0, p.forward_bytes);
  CUDNN_CHECK(cudnnConvolutionForward(handle(), &one, p.x, x, p.w, weight, p.conv, p.forward_algo,
                                      scratch, p.forward_bytes, &zero, p.y, y));
  if (bias) CUDNN_CHECK(cudnnAddTensor(handle(), &one, p.bias, bias, &one, p.y, y));
}

void conv2d_backward(const Conv2dShape& s, const float* x, const float* weight, const float* dy,
                     float* dx, float* dweight, float* dbias) {
  ConvPlan& p = plan_for(s);
  const float one = 1.0f, zero = 0.0f;
  if (dx) {
    void* scratch = workspace(0, p.data_bytes);
    CUDNN_CHECK(cudnnConvolutionBackwardData(handle(), &one, p.w, weight, p.y, dy, p.conv,
                                             p.data_algo, scratch, p.data_bytes, &zero, p.x, dx));
  }
  void* scratch = workspace(0, p.filter_bytes);
  CUDNN_CHECK(cudnnConvolutionBackwardFilter(handle(), &one, p.x, x, p.y, dy, p.conv, p.filter_algo,
                                             scratch, p.filter_bytes, &zero, p.w, dweight));
  if (dbias)
    CUDNN_CHECK(cudnnConvolutionBackwardBias(handle(), &one, p.y, dy, &zero, p.bias, dbias));
}

}  // namespace cudnn_path

}  // namespace digitflow::kernels::cuda

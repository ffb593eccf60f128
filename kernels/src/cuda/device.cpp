// The device probe, checked errors, device memory and the per-thread current stream. Host
// code only: the CUDA runtime's API, no kernels.
#include <cuda_runtime.h>

#include <utility>

#include "check.hpp"

namespace digitflow::kernels::cuda {

void throw_cuda_error(const char* file, int line, const char* call, const std::string& what) {
  std::string message = file;
  message += ':';
  message += std::to_string(line);
  message += ": ";
  message += call;
  message += ": ";
  message += what;
  throw CudaError(message);
}

namespace {
std::string version_text(int version) {
  std::string text = std::to_string(version / 1000);
  text += '.';
  text += std::to_string(version % 1000 / 10);
  return text;
}
}  // namespace

DeviceProbe probe_device() {
  DeviceProbe probe;
  cudaRuntimeGetVersion(&probe.runtime_version);
  if (cudaDriverGetVersion(&probe.driver_version) != cudaSuccess || probe.driver_version == 0) {
    probe.reason = "no NVIDIA driver is loaded on this machine";
    return probe;
  }
  if (probe.driver_version < probe.runtime_version) {
    probe.reason = "the NVIDIA driver supports CUDA ";
    probe.reason += version_text(probe.driver_version);
    probe.reason += ", older than the CUDA ";
    probe.reason += version_text(probe.runtime_version);
    probe.reason += " runtime this build uses (update the driver)";
    return probe;
  }
  cudaError_t status = cudaGetDeviceCount(&probe.devices);
  if (status != cudaSuccess || probe.devices == 0) {
    probe.reason = status == cudaSuccess ? std::string("no CUDA device is present")
                                         : std::string(cudaGetErrorString(status));
    probe.devices = 0;
    cudaGetLastError();  // the probe's failure is not a sticky error for later calls
    return probe;
  }
  cudaDeviceProp prop{};
  if ((status = cudaGetDeviceProperties(&prop, 0)) != cudaSuccess) {
    probe.reason = cudaGetErrorString(status);
    cudaGetLastError();
    return probe;
  }
  probe.name = prop.name;
  probe.compute_major = prop.major;
  probe.compute_minor = prop.minor;
  probe.multiprocessors = prop.multiProcessorCount;
  probe.memory_bytes = prop.totalGlobalMem;
  if (prop.major < 7) {
    probe.reason = "device 0 (";
    probe.reason += prop.name;
    probe.reason += ") has compute capability ";
    probe.reason += std::to_string(prop.major) + "." + std::to_string(prop.minor);
    probe.reason += "; the CUDA backends need 7.0 or newer";
    return probe;
  }
  probe.usable = true;
  return probe;
}

void synchronize() { CUDA_CHECK(cudaStreamSynchronize(stream())); }

DeviceBuffer::~DeviceBuffer() {
  if (data_) cudaFree(data_);  // a destructor must not throw; a failed free leaks at worst
}

DeviceBuffer::DeviceBuffer(DeviceBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
  if (this != &other) {
    if (data_) cudaFree(data_);
    data_ = std::exchange(other.data_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

void DeviceBuffer::reserve(size_t bytes) {
  if (bytes <= bytes_) return;
  if (data_) CUDA_CHECK(cudaFree(data_));
  data_ = nullptr;
  bytes_ = 0;
  CUDA_CHECK(cudaMalloc(&data_, bytes));
  bytes_ = bytes;
}

void copy_to_device(void* device, const void* host, size_t bytes) {
  if (bytes == 0) return;
  CUDA_CHECK(cudaMemcpyAsync(device, host, bytes, cudaMemcpyHostToDevice, stream()));
  CUDA_CHECK(cudaStreamSynchronize(stream()));
}

void copy_to_host(void* host, const void* device, size_t bytes) {
  if (bytes == 0) return;
  CUDA_CHECK(cudaMemcpyAsync(host, device, bytes, cudaMemcpyDeviceToHost, stream()));
  CUDA_CHECK(cudaStreamSynchronize(stream()));
}

void copy_on_device(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream()));
}

void fill_zero(void* device, size_t bytes) {
  if (bytes == 0) return;
  CUDA_CHECK(cudaMemsetAsync(device, 0, bytes, stream()));
}

DeviceTensor DeviceTensor::from(const Tensor& host) {
  DeviceTensor t;
  t.upload(host);
  return t;
}

void DeviceTensor::resize(Shape shape) {
  for (int64_t d : shape.dims())
    if (d < 0) throw std::invalid_argument("DeviceTensor: negative dimension in " + shape.str());
  if (shape.numel() > values_.size()) values_.resize(shape.numel());
  shape_ = std::move(shape);
}

void DeviceTensor::reshape(Shape shape) {
  if (shape.numel() != numel())
    throw std::invalid_argument("DeviceTensor::reshape: " + shape_.str() + " to " + shape.str());
  shape_ = std::move(shape);
}

void DeviceTensor::upload(const Tensor& host) {
  resize(host.shape());
  copy_to_device(data(), host.data(), static_cast<size_t>(numel()) * sizeof(float));
}

void DeviceTensor::download(Tensor& host) const {
  host.resize(shape_);
  copy_to_host(host.data(), data(), static_cast<size_t>(numel()) * sizeof(float));
}

Tensor DeviceTensor::to_host() const {
  Tensor host(shape_);
  download(host);
  return host;
}

namespace {
thread_local void* g_current_stream = nullptr;
}

void* current_stream() { return g_current_stream; }

ScopedStream::ScopedStream(void* s) : previous_(g_current_stream) { g_current_stream = s; }
ScopedStream::~ScopedStream() { g_current_stream = previous_; }

void* workspace(int slot, size_t bytes) {
  thread_local DeviceBuffer buffers[2];
  DeviceBuffer& buffer = buffers[slot & 1];
  buffer.reserve(bytes);
  return buffer.get();
}

#if !DIGITFLOW_HAVE_CUDNN
std::string start_cudnn() {
  throw CudaError("this build of digitflow found no cuDNN (configure with DIGITFLOW_CUDNN_ROOT)");
}
#endif

}  // namespace digitflow::kernels::cuda

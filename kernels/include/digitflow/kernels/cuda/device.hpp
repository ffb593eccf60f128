// The CUDA device as the rest of the code sees it: a probe that says in one line why no
// device can be used, errors that carry file and line, and owning device memory. No CUDA
// header leaks out of here, so code that only calls the GPU backends builds with any C++
// compiler; the kernels themselves are declared in cuda/ops.hpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "digitflow/kernels/tensor.hpp"

namespace digitflow::kernels::cuda {

// A failed CUDA or cuDNN call: "<file>:<line>: <call>: <error name>: <error string>".
class CudaError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct DeviceProbe {
  bool usable = false;
  std::string reason;  // why not, in one line, when !usable
  int devices = 0;
  int driver_version = 0;   // e.g. 13000 for CUDA 13.0 (0: no driver)
  int runtime_version = 0;  // the runtime this build links
  std::string name;         // device 0
  int compute_major = 0, compute_minor = 0;
  int multiprocessors = 0;
  size_t memory_bytes = 0;
};

// Never throws. Asks the driver for devices and versions; a build without CUDA says so.
DeviceProbe probe_device();
// "cuDNN 9.x.y" when the cudnn backend can start, else throws CudaError saying why.
std::string start_cudnn();

void synchronize();

// Untyped device memory, grown on demand (contents are lost when it grows).
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes) { reserve(bytes); }
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& other) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void reserve(size_t bytes);
  void* get() const { return data_; }
  size_t capacity() const { return bytes_; }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

// Host <-> device copies on the current stream; each returns once its copy is done.
void copy_to_device(void* device, const void* host, size_t bytes);
void copy_to_host(void* host, const void* device, size_t bytes);
// Queued on the current stream, in order with the kernels; these do not wait.
void copy_on_device(void* dst, const void* src, size_t bytes);
void fill_zero(void* device, size_t bytes);

// A typed array of `count` elements on the device.
template <typename T>
class DeviceArray {
 public:
  DeviceArray() = default;
  explicit DeviceArray(int64_t count) { resize(count); }
  void resize(int64_t count) {
    buffer_.reserve(static_cast<size_t>(count) * sizeof(T));
    count_ = count;
  }
  int64_t size() const { return count_; }
  T* data() { return static_cast<T*>(buffer_.get()); }
  const T* data() const { return static_cast<const T*>(buffer_.get()); }
  void upload(const T* host, int64_t count) {
    resize(count);
    copy_to_device(buffer_.get(), host, static_cast<size_t>(count) * sizeof(T));
  }
  void download(T* host) const {
    copy_to_host(host, buffer_.get(), static_cast<size_t>(count_) * sizeof(T));
  }
  void zero() { fill_zero(buffer_.get(), static_cast<size_t>(count_) * sizeof(T)); }

 private:
  DeviceBuffer buffer_;
  int64_t count_ = 0;
};

// A float32 tensor in device memory: the device twin of Tensor, with the same shape rules.
class DeviceTensor {
 public:
  DeviceTensor() = default;
  explicit DeviceTensor(Shape shape) { resize(std::move(shape)); }
  static DeviceTensor from(const Tensor& host);

  const Shape& shape() const { return shape_; }
  int64_t numel() const { return shape_.numel(); }
  int64_t dim(size_t i) const { return shape_[i]; }
  float* data() { return values_.data(); }
  const float* data() const { return values_.data(); }

  // Reallocates only when the element count grows; contents are unspecified afterwards.
  void resize(Shape shape);
  void reshape(Shape shape);
  void upload(const Tensor& host);    // takes host's shape
  void download(Tensor& host) const;  // resizes host to this shape
  Tensor to_host() const;
  void zero() { values_.zero(); }

 private:
  Shape shape_;
  DeviceArray<float> values_;
};

// Raw device pointers a kernel writes with no shape attached (argmax of maxpool, labels).
using DeviceBytes = DeviceArray<uint8_t>;

// The stream every launcher and copy of this thread uses (the legacy default stream until
// set). A ScopedStream makes one current for its lifetime.
void* current_stream();
class ScopedStream {
 public:
  explicit ScopedStream(void* stream);
  ~ScopedStream();
  ScopedStream(const ScopedStream&) = delete;
  ScopedStream& operator=(const ScopedStream&) = delete;

 private:
  void* previous_;
};

// Scratch device memory for one op at a time on the current thread (split-K partial sums,
// per-channel coefficients); slot 0 and 1 are independent.
void* workspace(int slot, size_t bytes);

}  // namespace digitflow::kernels::cuda

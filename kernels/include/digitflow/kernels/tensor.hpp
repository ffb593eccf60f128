// Tensor: float32, contiguous, row-major (NCHW for images), 64-byte aligned host storage.
// The device is explicit; there are no hidden copies between host and device. A Tensor is
// host storage; its device twin, with the same shape rules, is cuda::DeviceTensor
// (cuda/device.hpp), copied to and from explicitly.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace digitflow::kernels {

enum class Device { cpu, cuda };

// A shape of up to 4 dimensions (N, C, H, W); fewer dimensions are allowed.
class Shape {
 public:
  Shape() = default;
  Shape(std::initializer_list<int64_t> dims) : dims_(dims) {}
  explicit Shape(std::vector<int64_t> dims) : dims_(std::move(dims)) {}

  size_t rank() const { return dims_.size(); }
  int64_t operator[](size_t i) const { return dims_.at(i); }
  int64_t& operator[](size_t i) { return dims_.at(i); }
  int64_t numel() const;
  const std::vector<int64_t>& dims() const { return dims_; }
  std::string str() const;  // "(128, 1, 28, 28)"
  bool operator==(const Shape& other) const = default;

 private:
  std::vector<int64_t> dims_;
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(Shape shape, Device device = Device::cpu);  // zero-filled
  static Tensor zeros(Shape shape) { return Tensor(std::move(shape)); }
  static Tensor from(Shape shape, std::span<const float> values);

  const Shape& shape() const { return shape_; }
  Device device() const { return device_; }
  int64_t numel() const { return shape_.numel(); }
  int64_t dim(size_t i) const { return shape_[i]; }
  bool empty() const { return numel() == 0; }

  float* data() { return data_.get(); }
  const float* data() const { return data_.get(); }
  std::span<float> span() { return {data(), static_cast<size_t>(numel())}; }
  std::span<const float> span() const { return {data(), static_cast<size_t>(numel())}; }
  float& operator[](int64_t i) { return data_.get()[i]; }
  float operator[](int64_t i) const { return data_.get()[i]; }

  // Reallocates only when the element count grows; contents are unspecified afterwards.
  void resize(Shape shape);
  // Same storage, another shape with the same element count.
  void reshape(Shape shape);
  void fill(float value);
  Tensor clone() const;

 private:
  struct FreeAligned {
    void operator()(float* p) const;
  };
  Shape shape_;
  Device device_ = Device::cpu;
  int64_t capacity_ = 0;
  std::unique_ptr<float[], FreeAligned> data_;
};

}  // namespace digitflow::kernels

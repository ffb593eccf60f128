// Tensor storage: 64-byte aligned so that AVX-512 loads of whole rows never split lines.
#include "digitflow/kernels/tensor.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <sstream>
#include <stdexcept>

namespace digitflow::kernels {

int64_t Shape::numel() const {
  if (dims_.empty()) return 0;
  int64_t n = 1;
  for (int64_t d : dims_) n *= d;
  return n;
}

std::string Shape::str() const {
  std::ostringstream out;
  out << '(';
  for (size_t i = 0; i < dims_.size(); ++i) out << (i ? ", " : "") << dims_[i];
  out << ')';
  return out.str();
}

void Tensor::FreeAligned::operator()(float* p) const { std::free(p); }

namespace {
float* allocate_aligned(int64_t count) {
  if (count <= 0) return nullptr;
  size_t bytes = (static_cast<size_t>(count) * sizeof(float) + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, bytes);
  if (!p) throw std::bad_alloc();
  return static_cast<float*>(p);
}
}  // namespace

Tensor::Tensor(Shape shape, Device device) : shape_(std::move(shape)), device_(device) {
  if (device_ != Device::cpu) throw std::invalid_argument("Tensor: only host tensors are built here");
  for (int64_t d : shape_.dims())
    if (d < 0) throw std::invalid_argument("Tensor: negative dimension in " + shape_.str());
  capacity_ = shape_.numel();
  data_.reset(allocate_aligned(capacity_));
  if (capacity_ > 0) std::memset(data_.get(), 0, static_cast<size_t>(capacity_) * sizeof(float));
}

Tensor Tensor::from(Shape shape, std::span<const float> values) {
  Tensor t(std::move(shape));
  if (static_cast<int64_t>(values.size()) != t.numel())
    throw std::invalid_argument("Tensor::from: " + std::to_string(values.size()) +
                                " values for shape " + t.shape().str());
  std::copy(values.begin(), values.end(), t.data());
  return t;
}

void Tensor::resize(Shape shape) {
  int64_t n = shape.numel();
  if (n > capacity_) {
    data_.reset(allocate_aligned(n));
    capacity_ = n;
  }
  shape_ = std::move(shape);
}

void Tensor::reshape(Shape shape) {
  if (shape.numel() != numel())
    throw std::invalid_argument("Tensor::reshape: " + shape_.str() + " to " + shape.str());
  shape_ = std::move(shape);
}

void Tensor::fill(float value) { std::fill_n(data(), numel(), value); }

Tensor Tensor::clone() const {
  Tensor t(shape_);
  if (numel() > 0) std::memcpy(t.data(), data(), static_cast<size_t>(numel()) * sizeof(float));
  return t;
}

}  // namespace digitflow::kernels

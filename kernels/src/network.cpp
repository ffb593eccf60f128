// Network: builds the layers from a ModelSpec, checks every shape once, runs forward and
// backward over reusable activation buffers.
#include "digitflow/kernels/network.hpp"

#include <algorithm>
#include <stdexcept>

#include "digitflow/kernels/parallel.hpp"

namespace digitflow::kernels {

Network::Network(ModelSpec spec, uint64_t init_seed) : spec_(std::move(spec)) {
  if (spec_.layers.empty()) throw std::invalid_argument("model '" + spec_.name + "' has no layers");
  Shape shape = input_shape(1);
  for (size_t i = 0; i < spec_.layers.size(); ++i) {
    try {
      layers_.push_back(make_layer(spec_.layers[i], shape, static_cast<int>(i)));
      shape = layers_.back()->output_shape(shape);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument("model '" + spec_.name + "', layer " + std::to_string(i) + " (" +
                                  to_string(spec_.layers[i].kind) + "): " + e.what());
    }
    layers_.back()->initialize(init_seed * 1000003ull + i);
  }
  if (shape.rank() != 2 || shape[1] != spec_.classes)
    throw std::invalid_argument("model '" + spec_.name + "' ends in shape " + shape.str() +
                                ", expected (N, " + std::to_string(spec_.classes) +
                                "): the last layer must be dense with out = classes");
  activations_.resize(layers_.size());
  grads_.resize(layers_.size());
}

Network::Network(Network&&) noexcept = default;
Network& Network::operator=(Network&&) noexcept = default;
Network::~Network() = default;

Shape Network::input_shape(int64_t batch) const {
  return {batch, spec_.input_channels, spec_.input_height, spec_.input_width};
}

const Tensor& Network::forward(const Tensor& x, const ForwardContext& ctx) {
  Shape expected = input_shape(x.shape().rank() ? x.dim(0) : 0);
  if (x.shape() != expected)
    throw std::invalid_argument("Network::forward: input " + x.shape().str() + ", expected " +
                                expected.str());
  input_ = ctx.training ? &x : nullptr;  // backward needs this input and training statistics
  const Tensor* in = &x;
  std::vector<float> scale, shift;
  for (size_t i = 0; i < layers_.size();) {
    if (!ctx.training && layers_[i]->kind() == LayerKind::conv2d) {
      size_t next = i + 1;  // the layer after those folded in
      if (next < layers_.size() && layers_[next]->channel_affine(scale, shift)) {
        ++next;
      } else {
        scale.clear();
        shift.clear();
      }
      const bool relu = next < layers_.size() && layers_[next]->kind() == LayerKind::relu;
      if (relu) ++next;
      if (layers_[i]->forward_folded(*in, scale, shift, relu, activations_[next - 1])) {
        in = &activations_[next - 1];
        i = next;
        continue;
      }
    }
    layers_[i]->forward(*in, activations_[i], ctx);
    in = &activations_[i];
    ++i;
  }
  return activations_.back();
}

void Network::backward(const Tensor& dlogits) {
  if (!input_) throw std::logic_error("Network::backward needs a training forward just before");
  const Tensor* dy = &dlogits;
  for (size_t i = layers_.size(); i-- > 0;) {
    const Tensor& x = i == 0 ? *input_ : activations_[i - 1];
    Tensor* dx = i == 0 ? nullptr : &grads_[i - 1];
    layers_[i]->backward(x, activations_[i], *dy, dx);
    dy = dx;
  }
}

std::vector<Parameter*> Network::parameters() {
  std::vector<Parameter*> all;
  for (auto& layer : layers_)
    for (Parameter* p : layer->parameters()) all.push_back(p);
  return all;
}

int64_t Network::parameter_count() {
  int64_t n = 0;
  for (Parameter* p : parameters()) n += p->value.numel();
  return n;
}

int64_t Network::forward_macs() const {
  Shape shape = input_shape(1);
  int64_t macs = 0;
  for (const auto& layer : layers_) {
    macs += layer->forward_macs(shape);
    shape = layer->output_shape(shape);
  }
  return macs;
}

std::vector<std::pair<std::string, const Tensor*>> Network::state() {
  std::vector<std::pair<std::string, const Tensor*>> all;
  for (auto& layer : layers_) {
    for (Parameter* p : layer->parameters()) all.emplace_back(p->name, &p->value);
    for (auto& [name, t] : layer->buffers()) all.emplace_back(name, t);
  }
  return all;
}

std::vector<std::pair<std::string, Tensor>> Network::copy_state() {
  std::vector<std::pair<std::string, Tensor>> copy;
  for (auto& [name, t] : state()) copy.emplace_back(name, t->clone());
  return copy;
}

void Network::load_state(const std::vector<std::pair<std::string, Tensor>>& tensors) {
  std::vector<std::pair<std::string, Tensor*>> targets;
  for (auto& layer : layers_) {
    for (Parameter* p : layer->parameters()) targets.emplace_back(p->name, &p->value);
    for (auto& b : layer->buffers()) targets.push_back(b);
  }
  std::vector<const Tensor*> sources;
  for (auto& [name, target] : targets) {  // check everything before changing anything
    auto it = std::find_if(tensors.begin(), tensors.end(),
                           [&](const auto& entry) { return entry.first == name; });
    if (it == tensors.end()) throw std::invalid_argument("missing tensor '" + name + "'");
    if (it->second.shape() != target->shape())
      throw std::invalid_argument("tensor '" + name + "' has shape " + it->second.shape().str() +
                                  ", the model needs " + target->shape().str());
    sources.push_back(&it->second);
  }
  if (tensors.size() != targets.size())
    throw std::invalid_argument("the file holds " + std::to_string(tensors.size()) +
                                " tensors, the model has " + std::to_string(targets.size()));
  for (size_t i = 0; i < targets.size(); ++i)
    std::copy_n(sources[i]->data(), targets[i].second->numel(), targets[i].second->data());
}

void Network::prepare_input(std::span<const uint8_t> pixels, int64_t count, Tensor& x) const {
  const Shape shape = input_shape(count);
  if (static_cast<int64_t>(pixels.size()) != shape.numel())
    throw std::invalid_argument("prepare_input: " + std::to_string(pixels.size()) +
                                " pixels for " + std::to_string(count) + " images of " +
                                input_shape(1).str());
  x.resize(shape);
  const float scale = 1.0f / (255.0f * normalization_.std);
  const float shift = -normalization_.mean / normalization_.std;
  float* out = x.data();
  parallel_chunks(x.numel(), 1 << 16, [=](int64_t begin, int64_t end) {
    float* __restrict o = out;
    const uint8_t* __restrict in = pixels.data();
    for (int64_t i = begin; i < end; ++i) o[i] = static_cast<float>(in[i]) * scale + shift;
  });
}

}  // namespace digitflow::kernels

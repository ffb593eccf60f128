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
  steps_ = inference_steps();
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
  if (!ctx.training) return run_inference(0, x);
  const Tensor* in = &x;
  for (size_t i = 0; i < layers_.size(); ++i) {
    layers_[i]->forward(*in, activations_[i], ctx);
    in = &activations_[i];
  }
  return activations_.back();
}

const Tensor& Network::forward_from(size_t first, const Tensor& x) {
  if (first >= layers_.size())
    throw std::invalid_argument("Network::forward_from: layer " + std::to_string(first) + " of " +
                                std::to_string(layers_.size()));
  const Shape expected = layer_input_shape(first, x.shape().rank() ? x.dim(0) : 0);
  if (x.shape() != expected)
    throw std::invalid_argument("Network::forward_from(" + std::to_string(first) + "): input " + x.shape().str() +
                                ", expected " + expected.str());
  if (std::none_of(steps_.begin(), steps_.end(), [&](const InferenceStep& s) { return s.first == first; }))
    throw std::invalid_argument("Network::forward_from: layer " + std::to_string(first) +
                                " is inside a convolution's folded batchnorm and ReLU, not where a step starts");
  input_ = nullptr;
  return run_inference(first, x);
}

std::vector<InferenceStep> Network::inference_steps() const {
  if (!steps_.empty()) return steps_;
  std::vector<InferenceStep> steps;
  std::vector<float> scale, shift;
  for (size_t i = 0; i < layers_.size();) {
    InferenceStep step{i, i, layers_[i]->kind(), false, false};
    if (step.kind == LayerKind::conv2d) {
      if (i + 1 < layers_.size() && layers_[i + 1]->channel_affine(scale, shift)) {
        step.affine = true;
        ++step.last;
      }
      if (step.last + 1 < layers_.size() && layers_[step.last + 1]->kind() == LayerKind::relu) {
        step.relu = true;
        ++step.last;
      }
    }
    steps.push_back(step);
    i = step.last + 1;
  }
  return steps;
}

std::vector<float> Network::folded_parameters(const InferenceStep& step) const {
  std::vector<float> scale, shift, folded;
  if (step.affine) layers_.at(step.first + 1)->channel_affine(scale, shift);
  if (!layers_.at(step.first)->folded_parameters(scale, shift, folded))
    throw std::invalid_argument("layer " + std::to_string(step.first) + " has no weights to fold");
  return folded;
}

Shape Network::layer_input_shape(size_t i, int64_t batch) const {
  Shape shape = input_shape(batch);
  for (size_t k = 0; k < i && k < layers_.size(); ++k) shape = layers_[k]->output_shape(shape);
  return shape;
}

// Outside training a convolution and the batchnorm and ReLU after it run as one
// convolution; the step's output lands in the slot of its last layer.
const Tensor& Network::run_inference(size_t first, const Tensor& x) {
  const Tensor* in = &x;
  std::vector<float> scale, shift;
  const ForwardContext ctx{false, 0, 0};
  for (const InferenceStep& step : steps_) {
    if (step.first < first) continue;
    if (step.kind == LayerKind::conv2d) {
      scale.clear();
      shift.clear();
      if (step.affine) layers_[step.first + 1]->channel_affine(scale, shift);
      if (layers_[step.first]->forward_folded(*in, scale, shift, step.relu, activations_[step.last])) {
        in = &activations_[step.last];
        continue;
      }
    }
    for (size_t i = step.first; i <= step.last; ++i) {
      layers_[i]->forward(*in, activations_[i], ctx);
      in = &activations_[i];
    }
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

std::vector<std::pair<Tensor*, const Tensor*>> Network::match_state(
    const std::vector<std::pair<std::string, Tensor>>& tensors) {
  std::vector<std::pair<std::string, Tensor*>> targets;
  for (auto& layer : layers_) {
    for (Parameter* p : layer->parameters()) targets.emplace_back(p->name, &p->value);
    for (auto& b : layer->buffers()) targets.push_back(b);
  }
  std::vector<std::pair<Tensor*, const Tensor*>> matched;
  for (auto& [name, target] : targets) {
    auto it = std::find_if(tensors.begin(), tensors.end(),
                           [&](const auto& entry) { return entry.first == name; });
    if (it == tensors.end()) throw std::invalid_argument("missing tensor '" + name + "'");
    if (it->second.shape() != target->shape())
      throw std::invalid_argument("tensor '" + name + "' has shape " + it->second.shape().str() +
                                  ", the model needs " + target->shape().str());
    matched.emplace_back(target, &it->second);
  }
  if (tensors.size() != targets.size())
    throw std::invalid_argument("the file holds " + std::to_string(tensors.size()) +
                                " tensors, the model has " + std::to_string(targets.size()));
  return matched;
}

void Network::check_state(const std::vector<std::pair<std::string, Tensor>>& tensors) { match_state(tensors); }

void Network::load_state(const std::vector<std::pair<std::string, Tensor>>& tensors) {
  for (const auto& [target, source] : match_state(tensors))  // everything checked before anything changes
    std::copy_n(source->data(), target->numel(), target->data());
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

// DeviceNetwork, DeviceOptimizer, the device training loop and batch inference: host code
// that queues the kernels of ops.hpp. Layer shapes come from the host layers (make_layer),
// so a model the CPU accepts is a model the GPU accepts, with the same checks and messages.
#include "digitflow/kernels/cuda/network.hpp"

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <numeric>

#include "check.hpp"
#include "digitflow/kernels/cuda/ops.hpp"
#include "training_loop.hpp"

namespace digitflow::kernels::cuda {

struct DeviceNetwork::LayerState {
  LayerSpec spec;
  int index = 0;
  std::unique_ptr<Layer> host_shape;  // the host layer, for output_shape only
  bool has_weight = false, has_bias = false;
  DeviceParameter weight, bias;
  DeviceTensor running_mean, running_var, mean, invstd, variance, mask;
  DeviceArray<int32_t> argmax;
  bool dropout_active = false;

  Conv2dShape conv_shape(const Shape& in) const {
    return {static_cast<int>(in[0]),
            static_cast<int>(in[1]),
            static_cast<int>(in[2]),
            static_cast<int>(in[3]),
            spec.out,
            spec.kernel,
            spec.stride,
            spec.padding};
  }
  DenseShape dense_shape(const Shape& in) const {
    return {static_cast<int>(in[0]), static_cast<int>(in[1]), spec.out};
  }
  BatchNormShape batchnorm_shape(const Shape& in) const {
    return {static_cast<int>(in[0]), static_cast<int>(in[1]),
            in.rank() == 4 ? static_cast<int>(in[2] * in[3]) : 1};
  }
  MaxPoolShape maxpool_shape(const Shape& in) const {
    return {static_cast<int>(in[0]),
            static_cast<int>(in[1]),
            static_cast<int>(in[2]),
            static_cast<int>(in[3]),
            spec.kernel,
            spec.stride};
  }

  void forward(Backend backend, const DeviceTensor& x, DeviceTensor& y, const ForwardContext& ctx) {
    y.resize(host_shape->output_shape(x.shape()));
    const float* b = has_bias ? bias.value.data() : nullptr;
    switch (spec.kind) {
      case LayerKind::conv2d:
#if DIGITFLOW_HAVE_CUDNN
        if (backend == Backend::cudnn) {
          cudnn_path::conv2d_forward(conv_shape(x.shape()), x.data(), weight.value.data(), b,
                                     y.data());
          break;
        }
#endif
        cuda::conv2d_forward(conv_shape(x.shape()), x.data(), weight.value.data(), b, y.data());
        break;
      case LayerKind::dense:
        cuda::dense_forward(dense_shape(x.shape()), x.data(), weight.value.data(), b, y.data());
        break;
      case LayerKind::batchnorm2d: {
        const BatchNormShape s = batchnorm_shape(x.shape());
        if (!ctx.training) {
          cuda::batchnorm2d_forward_infer(s, x.data(), weight.value.data(), bias.value.data(),
                                          running_mean.data(), running_var.data(), spec.eps,
                                          y.data());
          break;
        }
        cuda::batchnorm2d_forward_train(s, x.data(), weight.value.data(), bias.value.data(),
                                        spec.eps, y.data(), mean.data(), invstd.data(),
                                        variance.data());
        batchnorm2d_update_running(s, spec.momentum, mean.data(), variance.data(),
                                   running_mean.data(), running_var.data());
        break;
      }
      case LayerKind::relu:
        relu_forward(x.numel(), x.data(), y.data());
        break;
      case LayerKind::dropout: {
        dropout_active = ctx.training && spec.rate > 0.0f;
        if (!dropout_active) {
          copy_on_device(y.data(), x.data(), sizeof(float) * static_cast<size_t>(x.numel()));
          break;
        }
        mask.resize(x.shape());
        const uint64_t seed =
            ctx.seed * 0x100000001B3ull ^ (ctx.step << 8) ^ static_cast<uint64_t>(index);
        cuda::dropout_forward(x.numel(), spec.rate, seed, x.data(), y.data(), mask.data());
        break;
      }
      case LayerKind::flatten:
        copy_on_device(y.data(), x.data(), sizeof(float) * static_cast<size_t>(x.numel()));
        break;
      case LayerKind::maxpool:
        argmax.resize(y.numel());
        cuda::maxpool_forward(maxpool_shape(x.shape()), x.data(), y.data(), argmax.data());
        break;
    }
  }

  // dx is null for the first layer.
  void backward(Backend backend, const DeviceTensor& x, const DeviceTensor& y,
                const DeviceTensor& dy, DeviceTensor* dx) {
    if (dx) dx->resize(x.shape());
    float* dxp = dx ? dx->data() : nullptr;
    float* db = has_bias ? bias.grad.data() : nullptr;
    switch (spec.kind) {
      case LayerKind::conv2d:
#if DIGITFLOW_HAVE_CUDNN
        if (backend == Backend::cudnn) {
          cudnn_path::conv2d_backward(conv_shape(x.shape()), x.data(), weight.value.data(),
                                      dy.data(), dxp, weight.grad.data(), db);
          break;
        }
#endif
        cuda::conv2d_backward(conv_shape(x.shape()), x.data(), weight.value.data(), dy.data(), dxp,
                              weight.grad.data(), db);
        break;
      case LayerKind::dense:
        cuda::dense_backward(dense_shape(x.shape()), x.data(), weight.value.data(), dy.data(), dxp,
                             weight.grad.data(), db);
        break;
      case LayerKind::batchnorm2d:
        cuda::batchnorm2d_backward(batchnorm_shape(x.shape()), x.data(), weight.value.data(),
                                   mean.data(), invstd.data(), dy.data(), dxp, weight.grad.data(),
                                   bias.grad.data());
        break;
      case LayerKind::relu:
        if (dxp) cuda::relu_backward(x.numel(), y.data(), dy.data(), dxp);
        break;
      case LayerKind::dropout:
        if (!dxp) break;
        if (dropout_active)
          cuda::dropout_backward(x.numel(), mask.data(), dy.data(), dxp);
        else
          copy_on_device(dxp, dy.data(), sizeof(float) * static_cast<size_t>(x.numel()));
        break;
      case LayerKind::flatten:
        if (dxp) copy_on_device(dxp, dy.data(), sizeof(float) * static_cast<size_t>(x.numel()));
        break;
      case LayerKind::maxpool:
        if (dxp) cuda::maxpool_backward(maxpool_shape(x.shape()), dy.data(), argmax.data(), dxp);
        break;
    }
  }
};

namespace {
std::string tensor_name(int index, const char* what) {
  std::string name = "layers.";
  name += std::to_string(index);
  name += '.';
  name += what;
  return name;
}
}  // namespace

DeviceNetwork::DeviceNetwork(Network& net, Backend backend)
    : spec_(net.spec()), backend_(backend), normalization_(net.normalization()) {
  if (backend != Backend::cuda && backend != Backend::cudnn)
    throw std::invalid_argument("DeviceNetwork: backend must be cuda or cudnn, not " +
                                to_string(backend));
  std::map<std::string, Parameter*> host_parameters;
  for (Parameter* p : net.parameters()) host_parameters[p->name] = p;
  Shape shape = net.input_shape(1);
  for (size_t i = 0; i < spec_.layers.size(); ++i) {
    auto layer = std::make_unique<LayerState>();
    layer->spec = spec_.layers[i];
    layer->index = static_cast<int>(i);
    layer->host_shape = make_layer(layer->spec, shape, layer->index);
    shape = layer->host_shape->output_shape(shape);
    auto take = [&](const char* what, DeviceParameter& target) {
      auto it = host_parameters.find(tensor_name(layer->index, what));
      if (it == host_parameters.end()) return false;
      target.name = it->second->name;
      target.decay = it->second->decay;
      target.value.resize(it->second->value.shape());
      target.grad.resize(it->second->value.shape());
      return true;
    };
    layer->has_weight = take("weight", layer->weight);
    layer->has_bias = take("bias", layer->bias);
    if (layer->spec.kind == LayerKind::batchnorm2d) {
      Shape c{layer->weight.value.numel()};
      for (DeviceTensor* t : {&layer->running_mean, &layer->running_var, &layer->mean,
                              &layer->invstd, &layer->variance})
        t->resize(c);
    }
    layers_.push_back(std::move(layer));
  }
  activations_.resize(layers_.size());
  grads_.resize(layers_.size());
  upload(net);
}

DeviceNetwork::DeviceNetwork(DeviceNetwork&&) noexcept = default;
DeviceNetwork& DeviceNetwork::operator=(DeviceNetwork&&) noexcept = default;
DeviceNetwork::~DeviceNetwork() = default;

namespace {
// Every device tensor of the state with its name: parameters, then batchnorm's running
// statistics, as Network::state() orders them.
template <typename Layers, typename Body>
void for_each_state_tensor(Layers& layers, Body&& body) {
  for (auto& layer : layers) {
    if (layer->has_weight) body(layer->weight.name, layer->weight.value);
    if (layer->has_bias) body(layer->bias.name, layer->bias.value);
    if (layer->spec.kind == LayerKind::batchnorm2d) {
      body(tensor_name(layer->index, "running_mean"), layer->running_mean);
      body(tensor_name(layer->index, "running_var"), layer->running_var);
    }
  }
}
}  // namespace

void DeviceNetwork::upload(Network& net) {
  std::map<std::string, const Tensor*> host;
  for (auto& [name, t] : net.state()) host[name] = t;
  for_each_state_tensor(layers_, [&](const std::string& name, DeviceTensor& t) {
    auto it = host.find(name);
    if (it == host.end() || it->second->shape() != t.shape())
      throw std::invalid_argument("DeviceNetwork: the host network has no tensor '" + name +
                                  "' of shape " + t.shape().str());
    t.upload(*it->second);
  });
}

void DeviceNetwork::download(Network& net) {
  std::vector<std::pair<std::string, Tensor>> state;
  for_each_state_tensor(layers_, [&](const std::string& name, DeviceTensor& t) {
    state.emplace_back(name, t.to_host());
  });
  net.load_state(state);
}

const DeviceTensor& DeviceNetwork::forward(const DeviceTensor& x, const ForwardContext& ctx) {
  const Shape expected{x.shape().rank() ? x.dim(0) : 0, spec_.input_channels, spec_.input_height,
                       spec_.input_width};
  if (x.shape() != expected)
    throw std::invalid_argument("DeviceNetwork::forward: input " + x.shape().str() + ", expected " +
                                expected.str());
  input_ = ctx.training ? &x : nullptr;
  const DeviceTensor* in = &x;
  for (size_t i = 0; i < layers_.size(); ++i) {
    layers_[i]->forward(backend_, *in, activations_[i], ctx);
    in = &activations_[i];
  }
  return activations_.back();
}

void DeviceNetwork::backward(const DeviceTensor& dlogits) {
  if (!input_)
    throw std::logic_error("DeviceNetwork::backward needs a training forward just before");
  const DeviceTensor* dy = &dlogits;
  for (size_t i = layers_.size(); i-- > 0;) {
    const DeviceTensor& x = i == 0 ? *input_ : activations_[i - 1];
    DeviceTensor* dx = i == 0 ? nullptr : &grads_[i - 1];
    layers_[i]->backward(backend_, x, activations_[i], *dy, dx);
    dy = dx;
  }
}

std::vector<DeviceParameter*> DeviceNetwork::parameters() {
  std::vector<DeviceParameter*> all;
  for (auto& layer : layers_) {
    if (layer->has_weight) all.push_back(&layer->weight);
    if (layer->has_bias) all.push_back(&layer->bias);
  }
  return all;
}

DeviceOptimizer::DeviceOptimizer(const TrainConfig& config,
                                 std::vector<DeviceParameter*> parameters)
    : config_(config), parameters_(std::move(parameters)) {
  for (DeviceParameter* p : parameters_) {
    first_.emplace_back(p->value.shape());
    first_.back().zero();
    if (config_.optimizer == "adamw") {
      second_.emplace_back(p->value.shape());
      second_.back().zero();
    }
  }
}

void DeviceOptimizer::step(float lr) {
  ++steps_;
  const float wd = config_.weight_decay, b1 = config_.momentum, b2 = config_.beta2;
  if (config_.optimizer == "adamw") {
    const float c1 = 1.0f - std::pow(b1, static_cast<float>(steps_));
    const float c2 = 1.0f - std::pow(b2, static_cast<float>(steps_));
    const float step_size = lr / c1, eps = 1e-8f, inv_sqrt_c2 = 1.0f / std::sqrt(c2);
    for (size_t k = 0; k < parameters_.size(); ++k) {
      DeviceParameter& p = *parameters_[k];
      adamw_step(p.value.numel(), p.value.data(), p.grad.data(), first_[k].data(),
                 second_[k].data(), b1, b2, p.decay ? 1.0f - lr * wd : 1.0f, step_size, inv_sqrt_c2,
                 eps);
    }
    return;
  }
  for (size_t k = 0; k < parameters_.size(); ++k) {
    DeviceParameter& p = *parameters_[k];
    sgd_step(p.value.numel(), p.value.data(), p.grad.data(), first_[k].data(), lr, b1,
             p.decay ? wd : 0.0f, config_.nesterov);
  }
}

namespace {

std::vector<int32_t> to_int32(const std::vector<int64_t>& indices) {
  return {indices.begin(), indices.end()};
}

// Training images and labels resident on the device.
struct DeviceData {
  DeviceArray<uint8_t> images, labels;
  BatchSource source;
  explicit DeviceData(const LabelledImages& data) {
    images.upload(data.pixels.data(), static_cast<int64_t>(data.pixels.size()));
    labels.upload(data.labels.data(), static_cast<int64_t>(data.labels.size()));
    source = {images.data(), labels.data(), data.rows, data.cols};
  }
};

// evaluate_subset on the device: the images at `indices` (on the device), `count` of them.
EvalResult evaluate_indices(DeviceNetwork& net, const BatchSource& source, const int32_t* indices,
                            int64_t count, int batch_size) {
  const int classes = net.spec().classes;
  EvalResult r;
  r.count = count;
  r.confusion.assign(static_cast<size_t>(classes),
                     std::vector<int64_t>(static_cast<size_t>(classes), 0));
  const int batch = static_cast<int>(std::min<int64_t>(batch_size, std::max<int64_t>(count, 1)));
  DeviceTensor x, probs({batch, classes});
  DeviceArray<uint8_t> labels(batch);
  DeviceArray<float> row_loss(batch);
  DeviceArray<int32_t> predicted(batch);
  std::vector<uint8_t> host_labels(static_cast<size_t>(batch));
  std::vector<float> host_loss(static_cast<size_t>(batch));
  std::vector<int32_t> host_predicted(static_cast<size_t>(batch));
  double loss_sum = 0.0;
  const InputNormalization norm = net.normalization();
  for (int64_t start = 0; start < count; start += batch) {
    const int n = static_cast<int>(std::min<int64_t>(batch, count - start));
    x.resize({n, 1, source.rows, source.cols});
    gather_batch(source, indices + start, n, false, AugmentConfig{}, 0, 0, norm.mean, norm.std,
                 x.data(), labels.data());
    const DeviceTensor& logits = net.forward(x, {false, 0, 0});
    softmax_xent(n, classes, logits.data(), labels.data(), 0.0f, probs.data(), nullptr,
                 row_loss.data(), predicted.data());
    copy_to_host(host_labels.data(), labels.data(), static_cast<size_t>(n));
    copy_to_host(host_loss.data(), row_loss.data(), sizeof(float) * static_cast<size_t>(n));
    copy_to_host(host_predicted.data(), predicted.data(), sizeof(int32_t) * static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) {
      loss_sum += host_loss[static_cast<size_t>(i)];
      ++r.confusion[host_labels[static_cast<size_t>(i)]]
                   [static_cast<size_t>(host_predicted[static_cast<size_t>(i)])];
    }
  }
  detail::finish_evaluation(r, loss_sum);
  return r;
}

}  // namespace

TrainResult train_on_device(Network& net, const LabelledImages& data, const TrainConfig& config,
                            const TrainCallbacks& callbacks, Backend backend,
                            std::span<const uint8_t> repeats, int progress_every) {
  const detail::TrainingPlan plan = detail::plan_training(config, data, net, repeats);
  DeviceNetwork device_net(net, backend);
  DeviceOptimizer optimizer(config, device_net.parameters());
  const DeviceData resident(data);
  DeviceArray<int32_t> order, validation;
  validation.upload(to_int32(plan.validation).data(), static_cast<int64_t>(plan.validation.size()));

  const int batch = config.batch_size, classes = net.spec().classes;
  const InputNormalization norm = device_net.normalization();
  DeviceTensor x({batch, 1, data.rows, data.cols}), probs({batch, classes}),
      dlogits({batch, classes});
  DeviceArray<uint8_t> labels(batch);
  DeviceArray<float> row_loss(batch);
  DeviceArray<int32_t> predicted(batch);
  DeviceArray<double> totals(2);
  double host_totals[2] = {0.0, 0.0};

  detail::EpochBook book(config, plan, callbacks);
  int64_t step = 0;
  for (int epoch = 1; epoch <= config.epochs; ++epoch) {
    book.start_epoch(epoch);
    const std::vector<int32_t> epoch_order = to_int32(detail::epoch_order(plan, config, epoch));
    order.upload(epoch_order.data(), static_cast<int64_t>(epoch_order.size()));
    const uint64_t seed_base = detail::augment_seed_base(config, epoch);
    totals.zero();
    float lr = 0.0f;
    bool stop = false;
    for (int64_t b = 0; b < plan.batches; ++b, ++step) {
      if (callbacks.should_stop && callbacks.should_stop()) {
        stop = true;
        break;
      }
      gather_batch(resident.source, order.data() + b * batch, batch, config.augment.enabled,
                   config.augment, seed_base, static_cast<uint64_t>(b * batch), norm.mean, norm.std,
                   x.data(), labels.data());
      const DeviceTensor& logits =
          device_net.forward(x, {true, config.seed, static_cast<uint64_t>(step)});
      softmax_xent(batch, classes, logits.data(), labels.data(), config.label_smoothing,
                   probs.data(), dlogits.data(), row_loss.data(), predicted.data());
      accumulate_batch_totals(batch, row_loss.data(), predicted.data(), labels.data(),
                              totals.data());
      device_net.backward(dlogits);
      lr = learning_rate(config, step, plan.total_steps);
      optimizer.step(lr);
      if (callbacks.on_batch &&
          ((b + 1) % std::max(progress_every, 1) == 0 || b + 1 == plan.batches)) {
        totals.download(host_totals);
        book.batch_done(b, step, host_totals[0], static_cast<int64_t>(host_totals[1]),
                        (b + 1) * batch, lr);
      }
    }
    if (stop) {
      book.stopped();
      break;
    }
    totals.download(host_totals);
    device_net.download(net);
    const bool go_on = book.finish_epoch(
        net, host_totals[0], static_cast<int64_t>(host_totals[1]), plan.batches * batch, lr, [&] {
          return evaluate_indices(device_net, resident.source, validation.data(), validation.size(),
                                  8192);
        });
    if (!go_on) break;
  }
  return book.finish(net);
}

EvalResult evaluate_on_device(Network& net, const LabelledImages& data, Backend backend,
                              int batch_size) {
  detail::check_data(data, net);
  DeviceNetwork device_net(net, backend);
  const DeviceData resident(data);
  std::vector<int32_t> all(static_cast<size_t>(data.count));
  std::iota(all.begin(), all.end(), 0);
  DeviceArray<int32_t> indices;
  indices.upload(all.data(), data.count);
  return evaluate_indices(device_net, resident.source, indices.data(), data.count, batch_size);
}

// Two slots, so that batch k + 1 is copied in while batch k computes and batch k - 1's
// probabilities are copied out; three streams (upload, compute, download) ordered by events.
struct DeviceInference::State {
  DeviceNetwork net;
  int batch;
  int64_t image_size;
  int classes;
  cudaStream_t upload = nullptr, compute = nullptr, download = nullptr;
  struct Slot {
    uint8_t* host_in = nullptr;
    float* host_out = nullptr;
    DeviceArray<uint8_t> device_in;
    DeviceTensor probs;
    cudaEvent_t uploaded = nullptr, computed = nullptr, downloaded = nullptr;
    int64_t start = -1;  // first image of the batch in flight, -1 when idle
    int count = 0;
  } slots[2];
  DeviceTensor x;

  State(Network& host, Backend backend, int batch_size)
      : net(host, backend),
        batch(std::max(batch_size, 1)),
        image_size(int64_t{host.spec().input_channels} * host.spec().input_height *
                   host.spec().input_width),
        classes(host.spec().classes) {
    CUDA_CHECK(cudaStreamCreateWithFlags(&upload, cudaStreamNonBlocking));
    CUDA_CHECK(cudaStreamCreateWithFlags(&compute, cudaStreamNonBlocking));
    CUDA_CHECK(cudaStreamCreateWithFlags(&download, cudaStreamNonBlocking));
    for (Slot& s : slots) {
      CUDA_CHECK(cudaHostAlloc(reinterpret_cast<void**>(&s.host_in),
                               static_cast<size_t>(batch * image_size), cudaHostAllocDefault));
      CUDA_CHECK(cudaHostAlloc(reinterpret_cast<void**>(&s.host_out),
                               sizeof(float) * static_cast<size_t>(batch) * classes,
                               cudaHostAllocDefault));
      s.device_in.resize(batch * image_size);
      s.probs.resize({batch, classes});
      for (cudaEvent_t* e : {&s.uploaded, &s.computed, &s.downloaded})
        CUDA_CHECK(cudaEventCreateWithFlags(e, cudaEventDisableTiming));
    }
  }
  ~State() {
    for (Slot& s : slots) {
      cudaFreeHost(s.host_in);
      cudaFreeHost(s.host_out);
      for (cudaEvent_t e : {s.uploaded, s.computed, s.downloaded}) cudaEventDestroy(e);
    }
    for (cudaStream_t s : {upload, compute, download}) cudaStreamDestroy(s);
  }
  State(const State&) = delete;
  State& operator=(const State&) = delete;

  // Waits for the slot's batch, if any, and hands its probabilities to out.
  void drain(Slot& s, float* out) {
    if (s.start < 0) return;
    CUDA_CHECK(cudaEventSynchronize(s.downloaded));
    std::memcpy(out + s.start * classes, s.host_out,
                sizeof(float) * static_cast<size_t>(s.count) * classes);
    s.start = -1;
  }

  void run(std::span<const uint8_t> pixels, int64_t count, float* out) {
    for (Slot& s : slots) {  // a batch left in flight by a call that threw is dropped
      if (s.start >= 0) CUDA_CHECK(cudaEventSynchronize(s.downloaded));
      s.start = -1;
    }
    int64_t k = 0;
    for (int64_t start = 0; start < count; start += batch, ++k) {
      Slot& s = slots[k % 2];
      drain(s, out);
      const int n = static_cast<int>(std::min<int64_t>(batch, count - start));
      std::memcpy(s.host_in, pixels.data() + start * image_size,
                  static_cast<size_t>(n * image_size));
      CUDA_CHECK(cudaMemcpyAsync(s.device_in.data(), s.host_in, static_cast<size_t>(n * image_size),
                                 cudaMemcpyHostToDevice, upload));
      CUDA_CHECK(cudaEventRecord(s.uploaded, upload));
      {
        ScopedStream on(compute);
        CUDA_CHECK(cudaStreamWaitEvent(compute, s.uploaded, 0));
        x.resize({n, net.spec().input_channels, net.spec().input_height, net.spec().input_width});
        normalize_pixels(n * image_size, s.device_in.data(), net.normalization().mean,
                         net.normalization().std, x.data());
        const DeviceTensor& logits = net.forward(x, {false, 0, 0});
        softmax_xent(n, classes, logits.data(), nullptr, 0.0f, s.probs.data(), nullptr, nullptr,
                     nullptr);
        CUDA_CHECK(cudaEventRecord(s.computed, compute));
      }
      CUDA_CHECK(cudaStreamWaitEvent(download, s.computed, 0));
      CUDA_CHECK(cudaMemcpyAsync(s.host_out, s.probs.data(),
                                 sizeof(float) * static_cast<size_t>(n) * classes,
                                 cudaMemcpyDeviceToHost, download));
      CUDA_CHECK(cudaEventRecord(s.downloaded, download));
      s.start = start;
      s.count = n;
    }
    drain(slots[k % 2], out);
    drain(slots[(k + 1) % 2], out);
  }
};

DeviceInference::DeviceInference(Network& net, Backend backend, int batch_size)
    : state_(std::make_unique<State>(net, backend, batch_size)) {}
DeviceInference::DeviceInference(DeviceInference&&) noexcept = default;
DeviceInference& DeviceInference::operator=(DeviceInference&&) noexcept = default;
DeviceInference::~DeviceInference() = default;

DeviceNetwork& DeviceInference::network() { return state_->net; }

void DeviceInference::probabilities(std::span<const uint8_t> pixels, int64_t count, float* out) {
  if (count < 0 || static_cast<int64_t>(pixels.size()) != count * state_->image_size)
    throw std::invalid_argument("DeviceInference: " + std::to_string(pixels.size()) +
                                " pixels for " + std::to_string(count) + " images of " +
                                std::to_string(state_->image_size) + " pixels");
  state_->run(pixels, count, out);
}

Tensor DeviceInference::probabilities(std::span<const uint8_t> pixels, int64_t count) {
  Tensor out({count, state_->classes});
  probabilities(pixels, count, out.data());
  return out;
}

}  // namespace digitflow::kernels::cuda

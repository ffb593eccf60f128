// The layers of a network: each pairs forward and backward over the CPU ops and owns its
// parameters. Shapes are checked when the network is built, not per batch.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <stdexcept>

#include "digitflow/kernels/network.hpp"
#include "digitflow/kernels/ops/batchnorm2d.hpp"
#include "digitflow/kernels/ops/conv2d.hpp"
#include "digitflow/kernels/ops/dense.hpp"
#include "digitflow/kernels/ops/elementwise.hpp"
#include "digitflow/kernels/ops/maxpool.hpp"

namespace digitflow::kernels {

namespace {

std::string layer_name(int index, const char* what) {
  return "layers." + std::to_string(index) + "." + what;
}

void he_normal(Tensor& w, int64_t fan_in, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> dist(0.0f, std::sqrt(2.0f / static_cast<float>(fan_in)));
  for (int64_t i = 0; i < w.numel(); ++i) w[i] = dist(rng);
}

class Conv2dLayer final : public Layer {
 public:
  Conv2dLayer(const LayerSpec& spec, const Shape& in, int index) : spec_(spec) {
    if (in.rank() != 4) throw std::invalid_argument("conv2d needs an (N, C, H, W) input");
    c_in_ = static_cast<int>(in[1]);
    if (spec.out <= 0 || spec.kernel <= 0 || spec.stride <= 0 || spec.padding < 0)
      throw std::invalid_argument("conv2d: out, kernel and stride must be positive");
    if (in[2] + 2 * spec.padding < spec.kernel || in[3] + 2 * spec.padding < spec.kernel)
      throw std::invalid_argument("conv2d: kernel " + std::to_string(spec.kernel) +
                                  " is larger than its input " + in.str());
    weight_ = {layer_name(index, "weight"),
               Tensor({spec.out, c_in_, spec.kernel, spec.kernel}),
               Tensor({spec.out, c_in_, spec.kernel, spec.kernel}), true};
    if (spec.bias) bias_ = {layer_name(index, "bias"), Tensor({spec.out}), Tensor({spec.out}), false};
  }
  LayerKind kind() const override { return LayerKind::conv2d; }
  Conv2dShape geometry(const Shape& in) const {
    return {static_cast<int>(in[0]), c_in_, static_cast<int>(in[2]), static_cast<int>(in[3]),
            spec_.out, spec_.kernel, spec_.stride, spec_.padding};
  }
  Shape output_shape(const Shape& in) const override {
    auto g = geometry(in);
    return {in[0], spec_.out, g.out_h(), g.out_w()};
  }
  void forward(const Tensor& x, Tensor& y, const ForwardContext&) override {
    y.resize(output_shape(x.shape()));
    conv2d_forward(geometry(x.shape()), x.data(), weight_.value.data(),
                   spec_.bias ? bias_.value.data() : nullptr, y.data());
  }
  bool folded_parameters(const std::vector<float>& scale, const std::vector<float>& shift,
                         std::vector<float>& folded) const override {
    const int64_t per_out = int64_t{c_in_} * spec_.kernel * spec_.kernel;
    folded.resize(static_cast<size_t>(spec_.out * per_out + spec_.out));
    float* w = folded.data();
    float* b = w + spec_.out * per_out;
    for (int o = 0; o < spec_.out; ++o) {
      const float* from = weight_.value.data() + o * per_out;
      const float s = scale.empty() ? 1.0f : scale[static_cast<size_t>(o)];
      for (int64_t k = 0; k < per_out; ++k) w[o * per_out + k] = from[k] * s;
      b[o] = (spec_.bias ? bias_.value[o] : 0.0f) * s + (shift.empty() ? 0.0f : shift[static_cast<size_t>(o)]);
    }
    return true;
  }
  bool forward_folded(const Tensor& x, const std::vector<float>& scale, const std::vector<float>& shift, bool relu,
                      Tensor& y) override {
    folded_parameters(scale, shift, folded_);
    const float* w = folded_.data();
    const float* b = w + spec_.out * int64_t{c_in_} * spec_.kernel * spec_.kernel;
    y.resize(output_shape(x.shape()));
    conv2d_forward_inference(geometry(x.shape()), x.data(), w, b, relu, y.data());
    return true;
  }
  void backward(const Tensor& x, const Tensor&, const Tensor& dy, Tensor* dx) override {
    if (dx) dx->resize(x.shape());
    conv2d_backward(geometry(x.shape()), x.data(), weight_.value.data(), dy.data(),
                    dx ? dx->data() : nullptr, weight_.grad.data(),
                    spec_.bias ? bias_.grad.data() : nullptr);
  }
  std::vector<Parameter*> parameters() override {
    if (spec_.bias) return {&weight_, &bias_};
    return {&weight_};
  }
  void initialize(uint64_t seed) override {
    he_normal(weight_.value, int64_t{c_in_} * spec_.kernel * spec_.kernel, seed);
    if (spec_.bias) bias_.value.fill(0.0f);
  }
  int64_t forward_macs(const Shape& in) const override {
    auto g = geometry(in);
    return int64_t{g.out_h()} * g.out_w() * spec_.out * g.col_rows();
  }

 private:
  LayerSpec spec_;
  int c_in_ = 0;
  Parameter weight_, bias_;
  std::vector<float> folded_;  // forward_folded's weights, then its bias
};

class DenseLayer final : public Layer {
 public:
  DenseLayer(const LayerSpec& spec, const Shape& in, int index) : spec_(spec) {
    if (in.rank() != 2) throw std::invalid_argument("dense needs an (N, features) input: add flatten");
    if (spec.out <= 0) throw std::invalid_argument("dense: out must be positive");
    in_ = static_cast<int>(in[1]);
    weight_ = {layer_name(index, "weight"), Tensor({spec.out, in_}), Tensor({spec.out, in_}), true};
    if (spec.bias) bias_ = {layer_name(index, "bias"), Tensor({spec.out}), Tensor({spec.out}), false};
  }
  LayerKind kind() const override { return LayerKind::dense; }
  Shape output_shape(const Shape& in) const override { return {in[0], spec_.out}; }
  DenseShape geometry(const Shape& in) const { return {static_cast<int>(in[0]), in_, spec_.out}; }
  void forward(const Tensor& x, Tensor& y, const ForwardContext&) override {
    y.resize(output_shape(x.shape()));
    dense_forward(geometry(x.shape()), x.data(), weight_.value.data(),
                  spec_.bias ? bias_.value.data() : nullptr, y.data());
  }
  void backward(const Tensor& x, const Tensor&, const Tensor& dy, Tensor* dx) override {
    if (dx) dx->resize(x.shape());
    dense_backward(geometry(x.shape()), x.data(), weight_.value.data(), dy.data(),
                   dx ? dx->data() : nullptr, weight_.grad.data(),
                   spec_.bias ? bias_.grad.data() : nullptr);
  }
  std::vector<Parameter*> parameters() override {
    if (spec_.bias) return {&weight_, &bias_};
    return {&weight_};
  }
  void initialize(uint64_t seed) override {
    he_normal(weight_.value, in_, seed);
    if (spec_.bias) bias_.value.fill(0.0f);
  }
  int64_t forward_macs(const Shape&) const override { return int64_t{in_} * spec_.out; }
  // The weights then the bias (zeros without one); nothing to fold into a dense layer.
  bool folded_parameters(const std::vector<float>& scale, const std::vector<float>& shift,
                         std::vector<float>& folded) const override {
    if (!scale.empty() || !shift.empty()) return false;
    const float* w = weight_.value.data();
    folded.assign(w, w + weight_.value.numel());
    folded.resize(folded.size() + static_cast<size_t>(spec_.out), 0.0f);
    if (spec_.bias) std::copy(bias_.value.data(), bias_.value.data() + spec_.out, folded.end() - spec_.out);
    return true;
  }

 private:
  LayerSpec spec_;
  int in_ = 0;
  Parameter weight_, bias_;
};

class BatchNorm2dLayer final : public Layer {
 public:
  BatchNorm2dLayer(const LayerSpec& spec, const Shape& in, int index) : spec_(spec) {
    if (in.rank() != 4 && in.rank() != 2)
      throw std::invalid_argument("batchnorm2d needs an (N, C, H, W) or (N, C) input");
    channels_ = static_cast<int>(in[1]);
    Shape c{channels_};
    gamma_ = {layer_name(index, "weight"), Tensor(c), Tensor(c), false};
    beta_ = {layer_name(index, "bias"), Tensor(c), Tensor(c), false};
    running_mean_ = Tensor(c);
    running_var_ = Tensor(c);
    mean_ = Tensor(c);
    invstd_ = Tensor(c);
    variance_ = Tensor(c);
    mean_name_ = layer_name(index, "running_mean");
    var_name_ = layer_name(index, "running_var");
  }
  LayerKind kind() const override { return LayerKind::batchnorm2d; }
  Shape output_shape(const Shape& in) const override { return in; }
  BatchNormShape geometry(const Shape& in) const {
    int hw = in.rank() == 4 ? static_cast<int>(in[2] * in[3]) : 1;
    return {static_cast<int>(in[0]), channels_, hw};
  }
  void forward(const Tensor& x, Tensor& y, const ForwardContext& ctx) override {
    y.resize(x.shape());
    auto g = geometry(x.shape());
    if (!ctx.training) {
      batchnorm2d_forward_infer(g, x.data(), gamma_.value.data(), beta_.value.data(),
                                running_mean_.data(), running_var_.data(), spec_.eps, y.data());
      return;
    }
    batchnorm2d_forward_train(g, x.data(), gamma_.value.data(), beta_.value.data(), spec_.eps,
                              y.data(), mean_.data(), invstd_.data(), variance_.data());
    const double count = static_cast<double>(g.n) * g.hw;
    const float m = spec_.momentum;
    for (int c = 0; c < channels_; ++c) {
      double var = variance_[c];
      double unbiased = count > 1 ? var * count / (count - 1) : var;
      running_mean_[c] = (1 - m) * running_mean_[c] + m * mean_[c];
      running_var_[c] = (1 - m) * running_var_[c] + m * static_cast<float>(unbiased);
    }
  }
  void backward(const Tensor& x, const Tensor&, const Tensor& dy, Tensor* dx) override {
    Tensor scratch;
    Tensor& out = dx ? *dx : scratch;
    out.resize(x.shape());
    batchnorm2d_backward(geometry(x.shape()), x.data(), gamma_.value.data(), mean_.data(),
                         invstd_.data(), dy.data(), out.data(), gamma_.grad.data(),
                         beta_.grad.data());
  }
  std::vector<Parameter*> parameters() override { return {&gamma_, &beta_}; }
  std::vector<std::pair<std::string, Tensor*>> buffers() override {
    return {{mean_name_, &running_mean_}, {var_name_, &running_var_}};
  }
  bool channel_affine(std::vector<float>& scale, std::vector<float>& shift) const override {
    scale.resize(static_cast<size_t>(channels_));
    shift.resize(static_cast<size_t>(channels_));
    for (int c = 0; c < channels_; ++c) {  // as batchnorm2d_forward_infer computes them
      scale[static_cast<size_t>(c)] = gamma_.value[c] / std::sqrt(running_var_[c] + spec_.eps);
      shift[static_cast<size_t>(c)] = beta_.value[c] - running_mean_[c] * scale[static_cast<size_t>(c)];
    }
    return true;
  }
  void initialize(uint64_t) override {
    gamma_.value.fill(1.0f);
    beta_.value.fill(0.0f);
    running_mean_.fill(0.0f);
    running_var_.fill(1.0f);
  }

 private:
  LayerSpec spec_;
  int channels_ = 0;
  Parameter gamma_, beta_;
  Tensor running_mean_, running_var_, mean_, invstd_, variance_;
  std::string mean_name_, var_name_;
};

class ReluLayer final : public Layer {
 public:
  LayerKind kind() const override { return LayerKind::relu; }
  Shape output_shape(const Shape& in) const override { return in; }
  void forward(const Tensor& x, Tensor& y, const ForwardContext&) override {
    y.resize(x.shape());
    relu_forward(x.numel(), x.data(), y.data());
  }
  void backward(const Tensor& x, const Tensor& y, const Tensor& dy, Tensor* dx) override {
    if (!dx) return;
    dx->resize(x.shape());
    relu_backward(x.numel(), y.data(), dy.data(), dx->data());
  }
};

class DropoutLayer final : public Layer {
 public:
  DropoutLayer(const LayerSpec& spec, int index) : rate_(spec.rate), index_(index) {
    if (!(rate_ >= 0.0f && rate_ < 1.0f))
      throw std::invalid_argument("dropout: rate must be in [0, 1)");
  }
  LayerKind kind() const override { return LayerKind::dropout; }
  Shape output_shape(const Shape& in) const override { return in; }
  void forward(const Tensor& x, Tensor& y, const ForwardContext& ctx) override {
    y.resize(x.shape());
    training_ = ctx.training && rate_ > 0.0f;
    if (!training_) {
      std::memcpy(y.data(), x.data(), sizeof(float) * static_cast<size_t>(x.numel()));
      return;
    }
    mask_.resize(x.shape());
    uint64_t seed = ctx.seed * 0x100000001B3ull ^ (ctx.step << 8) ^ static_cast<uint64_t>(index_);
    dropout_forward(x.numel(), rate_, seed, x.data(), y.data(), mask_.data());
  }
  void backward(const Tensor& x, const Tensor&, const Tensor& dy, Tensor* dx) override {
    if (!dx) return;
    dx->resize(x.shape());
    if (training_)
      dropout_backward(x.numel(), mask_.data(), dy.data(), dx->data());
    else
      std::memcpy(dx->data(), dy.data(), sizeof(float) * static_cast<size_t>(x.numel()));
  }

 private:
  float rate_;
  int index_;
  bool training_ = false;
  Tensor mask_;
};

class FlattenLayer final : public Layer {
 public:
  LayerKind kind() const override { return LayerKind::flatten; }
  Shape output_shape(const Shape& in) const override { return {in[0], in.numel() / in[0]}; }
  void forward(const Tensor& x, Tensor& y, const ForwardContext&) override {
    y.resize(output_shape(x.shape()));
    std::memcpy(y.data(), x.data(), sizeof(float) * static_cast<size_t>(x.numel()));
  }
  void backward(const Tensor& x, const Tensor&, const Tensor& dy, Tensor* dx) override {
    if (!dx) return;
    dx->resize(x.shape());
    std::memcpy(dx->data(), dy.data(), sizeof(float) * static_cast<size_t>(x.numel()));
  }
};

class MaxPoolLayer final : public Layer {
 public:
  MaxPoolLayer(const LayerSpec& spec, const Shape& in) : spec_(spec) {
    if (in.rank() != 4) throw std::invalid_argument("maxpool needs an (N, C, H, W) input");
    if (spec.kernel <= 0 || spec.stride <= 0 || in[2] < spec.kernel || in[3] < spec.kernel)
      throw std::invalid_argument("maxpool: kernel " + std::to_string(spec.kernel) +
                                  " does not fit its input " + in.str());
  }
  LayerKind kind() const override { return LayerKind::maxpool; }
  MaxPoolShape geometry(const Shape& in) const {
    return {static_cast<int>(in[0]), static_cast<int>(in[1]), static_cast<int>(in[2]),
            static_cast<int>(in[3]), spec_.kernel, spec_.stride};
  }
  Shape output_shape(const Shape& in) const override {
    auto g = geometry(in);
    return {in[0], in[1], g.out_h(), g.out_w()};
  }
  void forward(const Tensor& x, Tensor& y, const ForwardContext& ctx) override {
    y.resize(output_shape(x.shape()));
    // Only a training forward is followed by backward (Network::backward refuses others).
    if (!ctx.training) {
      maxpool_forward(geometry(x.shape()), x.data(), y.data(), nullptr);
      return;
    }
    argmax_.resize(static_cast<size_t>(y.numel()));
    maxpool_forward(geometry(x.shape()), x.data(), y.data(), argmax_.data());
  }
  void backward(const Tensor& x, const Tensor&, const Tensor& dy, Tensor* dx) override {
    if (!dx) return;
    dx->resize(x.shape());
    maxpool_backward(geometry(x.shape()), dy.data(), argmax_.data(), dx->data());
  }

 private:
  LayerSpec spec_;
  std::vector<int32_t> argmax_;
};

}  // namespace

std::unique_ptr<Layer> make_layer(const LayerSpec& spec, const Shape& input, int index) {
  switch (spec.kind) {
    case LayerKind::conv2d: return std::make_unique<Conv2dLayer>(spec, input, index);
    case LayerKind::dense: return std::make_unique<DenseLayer>(spec, input, index);
    case LayerKind::batchnorm2d: return std::make_unique<BatchNorm2dLayer>(spec, input, index);
    case LayerKind::relu: return std::make_unique<ReluLayer>();
    case LayerKind::dropout: return std::make_unique<DropoutLayer>(spec, index);
    case LayerKind::flatten: return std::make_unique<FlattenLayer>();
    case LayerKind::maxpool: return std::make_unique<MaxPoolLayer>(spec, input);
  }
  throw std::invalid_argument("unknown layer kind");
}

}  // namespace digitflow::kernels

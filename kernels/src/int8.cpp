// Int8 inference (int8.hpp): the plan is read off the network's inference steps once; for
// each batch shape the oneDNN primitives, the weights in the layouts they chose and the
// activation buffers are made once and kept. Activations between the int8 layers stay
// unsigned 8-bit in NHWC, which every int8 primitive here takes directly.
#include "digitflow/kernels/int8.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <unordered_map>
#include <utility>
#include <vector>

#include "digitflow/kernels/ops/softmax_xent.hpp"
#include "digitflow/kernels/parallel.hpp"

#if DIGITFLOW_HAVE_ONEDNN
#include <omp.h>

#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace digitflow::kernels {

namespace {

// Sums of two u8 x s8 products must fit in int16 where the processor has no VNNI.
constexpr int kWeightLevels = 63;

// The steps that run in int8: the first convolution (fp32, its output quantized), then
// convolutions and poolings up to the first other layer. `head` is the first layer after.
// Where the head starts with a dense layer and its ReLU (flatten and dropout between them
// do nothing in inference), that layer runs in int8 too, taking the u8 activations as they
// are: `dense` is its step, and the fp32 layers start at `fp32_from`.
struct Prefix {
  std::vector<InferenceStep> steps;
  size_t head = 0;
  int int8_convolutions = 0;
  std::optional<InferenceStep> dense;
  size_t fp32_from = 0;
};

Prefix find_prefix(const Network& net, std::string& why) {
  Prefix prefix;
  const std::vector<InferenceStep> steps = net.inference_steps();
  if (steps.empty() || steps[0].kind != LayerKind::conv2d || !steps[0].relu) {
    why = "the model does not start with a convolution followed by a ReLU";
    return prefix;
  }
  for (const InferenceStep& step : steps) {
    const bool conv = step.kind == LayerKind::conv2d && step.relu;
    if (!conv && step.kind != LayerKind::maxpool) break;
    if (step.kind == LayerKind::conv2d && !prefix.steps.empty()) ++prefix.int8_convolutions;
    prefix.steps.push_back(step);
  }
  prefix.head = prefix.steps.back().last + 1;
  prefix.fp32_from = prefix.head;
  for (size_t i = prefix.steps.size(); i < steps.size(); ++i) {
    if (steps[i].kind == LayerKind::flatten || steps[i].kind == LayerKind::dropout) continue;
    // (Not when that ReLU ends the model: the fp32 part would have no layer to run.)
    if (steps[i].kind == LayerKind::dense && i + 2 < steps.size() && steps[i + 1].kind == LayerKind::relu) {
      prefix.dense = steps[i];
      prefix.fp32_from = steps[i + 1].last + 1;
    }
    break;
  }
  if (prefix.int8_convolutions == 0)
    why = "int8 runs the convolutions that follow the first one's ReLU directly or through poolings, and this "
          "model has none";
  else if (prefix.head >= net.spec().layers.size())
    why = "the model ends in a convolution or pooling, not in dense layers";
  return prefix;
}

}  // namespace

Int8Calibration calibrate_int8(Network& net, std::span<const uint8_t> pixels, int64_t count) {
  const int64_t image = net.input_shape(1).numel();
  if (count <= 0 || static_cast<int64_t>(pixels.size()) != count * image)
    throw std::invalid_argument("calibrate_int8: " + std::to_string(pixels.size()) + " pixels for " +
                                std::to_string(count) + " images of " + net.input_shape(1).str());
  Int8Calibration calibration;
  calibration.images = count;
  const std::vector<InferenceStep> steps = net.inference_steps();
  for (const InferenceStep& step : steps)
    if (step.kind == LayerKind::conv2d) calibration.output_max[static_cast<int>(step.first)] = 0.0f;
  Tensor x;
  for (int64_t start = 0; start < count; start += 256) {
    const int64_t n = std::min<int64_t>(256, count - start);
    net.prepare_input(pixels.subspan(static_cast<size_t>(start * image), static_cast<size_t>(n * image)), n, x);
    net.forward(x, {false, 0, 0});
    for (const InferenceStep& step : steps) {
      if (step.kind != LayerKind::conv2d) continue;
      const Tensor& y = net.step_output(step.last);
      float& top = calibration.output_max[static_cast<int>(step.first)];
      top = std::max(top, *std::max_element(y.data(), y.data() + y.numel()));
    }
  }
  return calibration;
}

Int8Calibration calibrate_int8(Network& net, const LabelledImages& images, int64_t max_images) {
  const int64_t image = int64_t{images.rows} * images.cols;
  const int64_t n = std::min(images.count, std::max<int64_t>(max_images, 1));
  if (n == images.count) return calibrate_int8(net, images.pixels, n);  // every image: no copy
  std::vector<uint8_t> pixels;
  pixels.reserve(static_cast<size_t>(n * image));
  for (int64_t i = 0; i < n; ++i) {
    const int64_t from = i * images.count / n;
    pixels.insert(pixels.end(), images.pixels.begin() + from * image, images.pixels.begin() + (from + 1) * image);
  }
  return calibrate_int8(net, pixels, n);
}

std::string int8_unsupported(const Network& net) {
#if !DIGITFLOW_HAVE_ONEDNN
  (void)net;
  return "this build has no oneDNN (int8 inference runs through its int8 primitives)";
#else
  std::string why;
  const Prefix prefix = find_prefix(net, why);
  if (!why.empty()) return why;
  const Int8Calibration& calibration = net.int8_calibration();
  if (calibration.empty()) return "the model file holds no int8 calibration (digitflow calibrate adds one)";
  for (const InferenceStep& step : prefix.steps) {
    if (step.kind != LayerKind::conv2d) continue;
    auto it = calibration.output_max.find(static_cast<int>(step.first));
    if (it == calibration.output_max.end() || !std::isfinite(it->second) || it->second <= 0.0f)
      return "the int8 calibration has no usable range for layer " + std::to_string(step.first);
  }
  return "";
#endif
}

#if DIGITFLOW_HAVE_ONEDNN

namespace {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

memory::dims dims_of(const Shape& s) {
  memory::dims d;
  for (size_t i = 0; i < s.rank(); ++i) d.push_back(s[i]);
  return d;
}

// One planned step, independent of the batch size.
struct Planned {
  InferenceStep step;
  Shape in, out;                        // batch 1
  int kernel = 0, stride = 1, padding = 0;
  std::vector<float> weights_f32, bias;  // the first convolution: fp32; int8 ones: bias in the accumulator's units
  std::vector<int8_t> weights_s8;
  std::vector<float> output_scales;  // int8 convolutions: per output channel, accumulator -> output u8
  float out_scale = 1.0f;            // one unit of this step's u8 output, in the fp32 network's units
};

// Weights `folded` (outputs x per_out, then the bias) to 7 bits per output; the bias into
// the accumulator's units and the scales from the accumulator to the output's (one unit of
// the output: out_scale; 1 for an fp32 output).
void quantize_weights(Planned& p, const std::vector<float>& folded, int outputs, size_t per_out, float in_scale,
                      float out_scale) {
  p.weights_s8.resize(folded.size() - static_cast<size_t>(outputs));
  p.output_scales.resize(static_cast<size_t>(outputs));
  for (int o = 0; o < outputs; ++o) {
    const float* w = folded.data() + static_cast<size_t>(o) * per_out;
    float top = 0.0f;
    for (size_t k = 0; k < per_out; ++k) top = std::max(top, std::fabs(w[k]));
    const float w_scale = top > 0.0f ? top / kWeightLevels : 1.0f;
    for (size_t k = 0; k < per_out; ++k)
      p.weights_s8[static_cast<size_t>(o) * per_out + k] =
          static_cast<int8_t>(std::clamp(std::lround(w[k] / w_scale), -long{kWeightLevels}, long{kWeightLevels}));
    const float acc_scale = in_scale * w_scale;  // one accumulator unit in fp32 units
    p.bias[static_cast<size_t>(o)] /= acc_scale;
    p.output_scales[static_cast<size_t>(o)] = acc_scale / out_scale;
  }
}

}  // namespace

struct Int8Network::Impl {
  Network* net;
  Prefix prefix;
  std::vector<Planned> planned;
  Planned dense;  // when prefix.dense
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  std::mutex mutex;  // the kept buffers are shared by every call

  // What one batch shape needs, made on first use.
  struct Compiled {
    dnnl::stream stream;
    memory input;                  // fp32 NCHW, bound to the prepared input
    std::vector<dnnl::primitive> primitives;
    std::vector<std::unordered_map<int, memory>> args;
    memory output;                 // fp32 NCHW: the head's input
    Tensor head_input;
  };
  std::map<std::pair<int64_t, int>, std::unique_ptr<Compiled>> compiled;

  explicit Impl(Network& network) : net(&network) {
    const std::string why = int8_unsupported(network);
    if (!why.empty()) throw std::invalid_argument("int8 inference: " + why);
    std::string ignored;
    prefix = find_prefix(network, ignored);
    const Int8Calibration& calibration = network.int8_calibration();
    const std::vector<LayerSpec>& layers = network.spec().layers;
    float in_scale = 1.0f;
    for (const InferenceStep& step : prefix.steps) {
      Planned p;
      p.step = step;
      p.in = network.layer_input_shape(step.first, 1);
      p.out = network.layer_input_shape(step.last + 1, 1);
      const LayerSpec& spec = layers[step.first];
      p.kernel = spec.kernel;
      p.stride = spec.stride;
      p.padding = step.kind == LayerKind::conv2d ? spec.padding : 0;
      if (step.kind == LayerKind::maxpool) {
        p.out_scale = in_scale;
      } else {
        const std::vector<float> folded = network.folded_parameters(step);
        const int c_out = static_cast<int>(p.out[1]);
        const size_t per_out = (folded.size() - static_cast<size_t>(c_out)) / static_cast<size_t>(c_out);
        p.out_scale = calibration.output_max.at(static_cast<int>(step.first)) / 255.0f;
        p.bias.assign(folded.end() - c_out, folded.end());
        if (planned.empty())
          p.weights_f32.assign(folded.begin(), folded.end() - c_out);
        else
          quantize_weights(p, folded, c_out, per_out, in_scale, p.out_scale);
      }
      in_scale = p.out_scale;
      planned.push_back(std::move(p));
    }
    if (prefix.dense) {
      // The dense layer: u8 input, 7-bit weights per output, fp32 output with its ReLU.
      const std::vector<float> folded = network.folded_parameters(*prefix.dense);
      dense.step = *prefix.dense;
      dense.in = network.layer_input_shape(prefix.head, 1);  // before flatten: (1, C, H, W)
      dense.out = network.layer_input_shape(prefix.dense->last + 1, 1);
      const int outputs = static_cast<int>(dense.out[1]);
      const size_t per_out = (folded.size() - static_cast<size_t>(outputs)) / static_cast<size_t>(outputs);
      dense.bias.assign(folded.end() - outputs, folded.end());
      quantize_weights(dense, folded, outputs, per_out, in_scale, 1.0f);
    }
  }

  Compiled& for_batch(int64_t n, int threads) {
    if (threads <= 0) threads = thread_count();
    omp_set_num_threads(threads);
    auto key = std::make_pair(n, threads);
    auto it = compiled.find(key);
    if (it != compiled.end()) return *it->second;
    if (compiled.size() >= 16) compiled.clear();
    auto c = std::make_unique<Compiled>();
    c->stream = dnnl::stream(engine);
    auto with_batch = [&](const Shape& s) {
      memory::dims d = dims_of(s);
      d[0] = n;
      return d;
    };
    // A convolution whose weights are reordered once, into the layout it chose; its output.
    auto add_convolution = [&](const dnnl::convolution_forward::primitive_desc& pd, memory plain_weights,
                               const memory& src, const memory& bias) {
      memory w(pd.weights_desc(), engine);
      dnnl::reorder(plain_weights, w).execute(c->stream, plain_weights, w);
      memory y(pd.dst_desc(), engine);
      c->primitives.push_back(dnnl::convolution_forward(pd));
      c->args.push_back({{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_BIAS, bias}, {DNNL_ARG_DST, y}});
      return y;
    };
    memory current;  // the previous step's output
    for (const Planned& p : planned) {
      const memory::dims in = with_batch(p.in), out = with_batch(p.out);
      const memory::dims strides{p.stride, p.stride}, pad{p.padding, p.padding};
      if (p.step.kind == LayerKind::maxpool) {
        const memory::desc src(in, dt::u8, tag::nhwc), dst(out, dt::u8, tag::nhwc);
        memory::dims pad_r;
        for (int a = 2; a < 4; ++a) pad_r.push_back((out[a] - 1) * p.stride + p.kernel - in[a]);
        const dnnl::pooling_forward::desc desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::pooling_max, src,
                                               dst, strides, {p.kernel, p.kernel}, {0, 0}, pad_r);
        const dnnl::pooling_forward::primitive_desc pd(desc, engine);
        memory y(pd.dst_desc(), engine);
        c->primitives.push_back(dnnl::pooling_forward(pd));
        c->args.push_back({{DNNL_ARG_SRC, current}, {DNNL_ARG_DST, y}});
        if (pd.workspace_desc().get_size() > 0) c->args.back().insert({DNNL_ARG_WORKSPACE, memory(pd.workspace_desc(), engine)});
        current = y;
        continue;
      }
      const memory::dims w_dims{out[1], in[1], p.kernel, p.kernel}, b_dims{out[1]};
      const memory::desc bias_desc(b_dims, dt::f32, tag::x);
      memory bias(bias_desc, engine);
      std::copy(p.bias.begin(), p.bias.end(), static_cast<float*>(bias.get_data_handle()));
      if (!p.weights_f32.empty()) {  // the first convolution, fp32, then quantized to u8 NHWC
        c->input = memory(memory::desc(in, dt::f32, tag::nchw), engine, DNNL_MEMORY_NONE);
        const dnnl::convolution_forward::desc desc(
            dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, c->input.get_desc(),
            memory::desc(w_dims, dt::f32, tag::any), bias_desc, memory::desc(out, dt::f32, tag::any), strides, pad, pad);
        dnnl::primitive_attr attr;
        dnnl::post_ops ops;
        ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
        attr.set_post_ops(ops);
        const memory y = add_convolution(
            {desc, attr, engine},
            memory(memory::desc(w_dims, dt::f32, tag::oihw), engine, const_cast<float*>(p.weights_f32.data())),
            c->input, bias);
        memory q(memory::desc(out, dt::u8, tag::nhwc), engine);
        dnnl::primitive_attr scale;
        scale.set_output_scales(0, {1.0f / p.out_scale});
        c->primitives.push_back(dnnl::reorder(dnnl::reorder::primitive_desc(y, q, scale)));
        c->args.push_back({{DNNL_ARG_FROM, y}, {DNNL_ARG_TO, q}});
        current = q;
        continue;
      }
      const dnnl::convolution_forward::desc desc(
          dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, memory::desc(in, dt::u8, tag::nhwc),
          memory::desc(w_dims, dt::s8, tag::any), bias_desc, memory::desc(out, dt::u8, tag::nhwc), strides, pad, pad);
      dnnl::primitive_attr attr;
      attr.set_output_scales(1 << 1, p.output_scales);  // per output channel; u8 saturation is the ReLU
      current = add_convolution(
          {desc, attr, engine},
          memory(memory::desc(w_dims, dt::s8, tag::oihw), engine, const_cast<int8_t*>(p.weights_s8.data())), current,
          bias);
    }
    const Shape head_shape = net->layer_input_shape(prefix.fp32_from, n);
    c->head_input.resize(head_shape);
    if (prefix.dense) {
      // The dense layer reads the u8 NHWC activations as they are; its weights are laid out
      // as the fp32 layer reads the flattened NCHW ones, which oneDNN maps to either.
      const memory::dims in = with_batch(dense.in);
      const memory::dims w_dims{dense.out[1], in[1], in[2], in[3]};
      const memory::desc bias_desc({dense.out[1]}, dt::f32, tag::x);
      memory bias(bias_desc, engine);
      std::copy(dense.bias.begin(), dense.bias.end(), static_cast<float*>(bias.get_data_handle()));
      c->output = memory(memory::desc(dims_of(head_shape), dt::f32, tag::nc), engine, c->head_input.data());
      const dnnl::inner_product_forward::desc desc(dnnl::prop_kind::forward_inference, current.get_desc(),
                                                   memory::desc(w_dims, dt::s8, tag::any), bias_desc,
                                                   c->output.get_desc());
      dnnl::primitive_attr attr;
      attr.set_output_scales(1 << 1, dense.output_scales);
      dnnl::post_ops ops;
      ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
      attr.set_post_ops(ops);
      const dnnl::inner_product_forward::primitive_desc pd(desc, attr, engine);
      memory plain(memory::desc(w_dims, dt::s8, tag::oihw), engine, const_cast<int8_t*>(dense.weights_s8.data()));
      memory w(pd.weights_desc(), engine);
      dnnl::reorder(plain, w).execute(c->stream, plain, w);
      c->primitives.push_back(dnnl::inner_product_forward(pd));
      c->args.push_back({{DNNL_ARG_SRC, current}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_BIAS, bias}, {DNNL_ARG_DST, c->output}});
    } else {
      // Back to fp32 NCHW for the dense head.
      c->output = memory(memory::desc(dims_of(head_shape), dt::f32, tag::nchw), engine, c->head_input.data());
      dnnl::primitive_attr scale;
      scale.set_output_scales(0, {planned.back().out_scale});
      c->primitives.push_back(dnnl::reorder(dnnl::reorder::primitive_desc(current, c->output, scale)));
      c->args.push_back({{DNNL_ARG_FROM, current}, {DNNL_ARG_TO, c->output}});
    }
    c->stream.wait();
    return *compiled.emplace(key, std::move(c)).first->second;
  }
};

Int8Network::Int8Network(Network& net) : impl_(std::make_unique<Impl>(net)) {}
Int8Network::Int8Network(Int8Network&&) noexcept = default;
Int8Network& Int8Network::operator=(Int8Network&&) noexcept = default;
Int8Network::~Int8Network() = default;

int Int8Network::int8_layers() const {
  return static_cast<int>(impl_->planned.size()) - 1 + (impl_->prefix.dense ? 1 : 0);
}

Tensor Int8Network::probabilities(std::span<const uint8_t> pixels, int64_t count, int batch_size, int threads) {
  Network& net = *impl_->net;
  const int classes = net.spec().classes;
  const int64_t image = net.input_shape(1).numel();
  if (static_cast<int64_t>(pixels.size()) != count * image)
    throw std::invalid_argument("Int8Network::probabilities: " + std::to_string(pixels.size()) + " pixels for " +
                                std::to_string(count) + " images of " + net.input_shape(1).str());
  std::lock_guard<std::mutex> lock(impl_->mutex);
  Tensor out({count, classes}), x;
  for (int64_t start = 0; start < count; start += std::max(batch_size, 1)) {
    const int64_t n = std::min<int64_t>(std::max(batch_size, 1), count - start);
    net.prepare_input(pixels.subspan(static_cast<size_t>(start * image), static_cast<size_t>(n * image)), n, x);
    Impl::Compiled& c = impl_->for_batch(n, threads);
    c.input.set_data_handle(x.data());
    for (size_t i = 0; i < c.primitives.size(); ++i) c.primitives[i].execute(c.stream, c.args[i]);
    c.stream.wait();
    const Tensor& logits = net.forward_from(impl_->prefix.fp32_from, c.head_input);
    softmax(static_cast<int>(n), classes, logits.data(), out.data() + start * classes);
  }
  return out;
}

#else

struct Int8Network::Impl {};

Int8Network::Int8Network(Network& net) {
  throw std::invalid_argument("int8 inference: " + int8_unsupported(net));
}
Int8Network::Int8Network(Int8Network&&) noexcept = default;
Int8Network& Int8Network::operator=(Int8Network&&) noexcept = default;
Int8Network::~Int8Network() = default;
int Int8Network::int8_layers() const { return 0; }
Tensor Int8Network::probabilities(std::span<const uint8_t>, int64_t, int, int) {
  throw std::logic_error("int8 inference is not in this build");
}

#endif

}  // namespace digitflow::kernels

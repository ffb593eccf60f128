// Convolution through oneDNN's direct convolution primitives (forward, backward data,
// backward weights), which measured 1.3-2x faster than our im2col + GEMM on this machine
// kind (benchmarks/RESULTS.md). Tensors stay NCHW/OIHW for the rest of the engine; each call
// reorders into the blocked layouts oneDNN chose. Primitives are built once per shape and
// thread count and kept per calling thread. Compiled only where oneDNN is found; elsewhere
// conv2d_cpu.cpp's im2col + GEMM path runs.
#include <omp.h>

#include <unordered_map>

#include <map>
#include <memory>
#include <oneapi/dnnl/dnnl.hpp>
#include <optional>
#include <tuple>

#include "digitflow/kernels/ops/conv2d.hpp"
#include "digitflow/kernels/parallel.hpp"

namespace digitflow::kernels {

namespace {

using dnnl::memory;
using tag = memory::format_tag;

// A plain (NCHW / OIHW) memory whose data pointer changes per call, the memory in the
// layout a primitive chose (the same object when it chose the plain one), and reorders. The
// chosen layout's copy is the Linked's own, or (`lent`) a buffer the caller lends to bind().
struct Linked {
  memory plain, chosen;
  std::optional<dnnl::reorder> to_chosen, to_plain;
  size_t lent_floats = 0;  // the size of the buffer bind() needs; 0 when none

  Linked() = default;
  Linked(const memory::desc& plain_desc, const memory::desc& chosen_desc,
         const dnnl::engine& engine, bool lent = false)
      : plain(plain_desc, engine, DNNL_MEMORY_NONE), chosen(plain) {
    if (chosen_desc == plain_desc) return;
    chosen = lent ? memory(chosen_desc, engine, DNNL_MEMORY_NONE) : memory(chosen_desc, engine);
    if (lent) lent_floats = (chosen_desc.get_size() + sizeof(float) - 1) / sizeof(float);
    to_chosen = dnnl::reorder(plain, chosen);
    to_plain = dnnl::reorder(chosen, plain);
  }
  void bind(const float* data) { plain.set_data_handle(const_cast<float*>(data)); }
  void bind(const float* data, std::vector<float>& copy) {
    bind(data);
    if (lent_floats == 0) return;
    if (copy.size() < lent_floats) copy.resize(lent_floats);
    chosen.set_data_handle(copy.data());
  }
  void load(dnnl::stream& stream) {
    if (to_chosen) to_chosen->execute(stream, plain, chosen);
  }
  void store(dnnl::stream& stream) {
    if (to_plain) to_plain->execute(stream, chosen, plain);
  }
};

// The dimensions of a convolution and the memory descriptors that let oneDNN choose layouts.
struct ConvDescs {
  memory::dims x_dims, y_dims, w_dims, b_dims, strides, padding;
  memory::desc x_any, y_any, w_any, b_plain, x_plain, y_plain, w_plain;

  explicit ConvDescs(const Conv2dShape& s)
      : x_dims{s.n, s.c_in, s.h, s.w},
        y_dims{s.n, s.c_out, s.out_h(), s.out_w()},
        w_dims{s.c_out, s.c_in, s.kernel, s.kernel},
        b_dims{s.c_out},
        strides{s.stride, s.stride},
        padding{s.padding, s.padding},
        x_any(x_dims, memory::data_type::f32, tag::any),
        y_any(y_dims, memory::data_type::f32, tag::any),
        w_any(w_dims, memory::data_type::f32, tag::any),
        b_plain(b_dims, memory::data_type::f32, tag::x),
        x_plain(x_dims, memory::data_type::f32, tag::nchw),
        y_plain(y_dims, memory::data_type::f32, tag::nchw),
        w_plain(w_dims, memory::data_type::f32, tag::oihw) {}
};

class OnednnConv {
 public:
  OnednnConv(const Conv2dShape& s, bool bias) : bias_(bias) {
    const ConvDescs d(s);
    const auto algo = dnnl::algorithm::convolution_direct;
    const auto forward_desc =
        bias ? dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, algo, d.x_any,
                                               d.w_any, d.b_plain, d.y_any, d.strides, d.padding, d.padding)
             : dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, algo, d.x_any,
                                               d.w_any, d.y_any, d.strides, d.padding, d.padding);
    forward_pd_ = dnnl::convolution_forward::primitive_desc(forward_desc, engine_);
    forward_ = dnnl::convolution_forward(forward_pd_);
    const auto data_desc = dnnl::convolution_backward_data::desc(algo, d.x_any, d.w_any, d.y_any,
                                                                 d.strides, d.padding, d.padding);
    data_pd_ = dnnl::convolution_backward_data::primitive_desc(data_desc, engine_, forward_pd_);
    backward_data_ = dnnl::convolution_backward_data(data_pd_);
    const auto weights_desc =
        bias ? dnnl::convolution_backward_weights::desc(algo, d.x_any, d.w_any, d.b_plain, d.y_any,
                                                        d.strides, d.padding, d.padding)
             : dnnl::convolution_backward_weights::desc(algo, d.x_any, d.w_any, d.y_any, d.strides,
                                                        d.padding, d.padding);
    weights_pd_ =
        dnnl::convolution_backward_weights::primitive_desc(weights_desc, engine_, forward_pd_);
    backward_weights_ = dnnl::convolution_backward_weights(weights_pd_);

    x_ = Linked(d.x_plain, forward_pd_.src_desc(), engine_);
    w_ = Linked(d.w_plain, forward_pd_.weights_desc(), engine_);
    y_ = Linked(d.y_plain, forward_pd_.dst_desc(), engine_);
    b_ = memory(d.b_plain, engine_, DNNL_MEMORY_NONE);
    w_data_ = Linked(d.w_plain, data_pd_.weights_desc(), engine_);
    dy_data_ = Linked(d.y_plain, data_pd_.diff_dst_desc(), engine_);
    dx_ = Linked(d.x_plain, data_pd_.diff_src_desc(), engine_);
    x_weights_ = Linked(d.x_plain, weights_pd_.src_desc(), engine_);
    dy_weights_ = Linked(d.y_plain, weights_pd_.diff_dst_desc(), engine_);
    dw_ = Linked(d.w_plain, weights_pd_.diff_weights_desc(), engine_);
    db_ = memory(d.b_plain, engine_, DNNL_MEMORY_NONE);
  }

  void forward(const float* x, const float* weight, const float* bias, float* y) {
    x_.bind(x);
    w_.bind(weight);
    y_.bind(y);
    x_.load(stream_);
    w_.load(stream_);
    std::unordered_map<int, memory> args{
        {DNNL_ARG_SRC, x_.chosen}, {DNNL_ARG_WEIGHTS, w_.chosen}, {DNNL_ARG_DST, y_.chosen}};
    if (bias_) {
      b_.set_data_handle(const_cast<float*>(bias));
      args.insert({DNNL_ARG_BIAS, b_});
    }
    forward_.execute(stream_, args);
    y_.store(stream_);
    stream_.wait();
  }

  void backward(const float* x, const float* weight, const float* dy, float* dx, float* dweight,
                float* dbias) {
    if (dx) {
      w_data_.bind(weight);
      dy_data_.bind(dy);
      dx_.bind(dx);
      w_data_.load(stream_);
      dy_data_.load(stream_);
      backward_data_.execute(stream_, {{DNNL_ARG_DIFF_DST, dy_data_.chosen},
                                       {DNNL_ARG_WEIGHTS, w_data_.chosen},
                                       {DNNL_ARG_DIFF_SRC, dx_.chosen}});
      dx_.store(stream_);
    }
    x_weights_.bind(x);
    dy_weights_.bind(dy);
    dw_.bind(dweight);
    x_weights_.load(stream_);
    dy_weights_.load(stream_);
    std::unordered_map<int, memory> args{{DNNL_ARG_SRC, x_weights_.chosen},
                                         {DNNL_ARG_DIFF_DST, dy_weights_.chosen},
                                         {DNNL_ARG_DIFF_WEIGHTS, dw_.chosen}};
    if (bias_) {
      db_.set_data_handle(dbias);
      args.insert({DNNL_ARG_DIFF_BIAS, db_});
    }
    backward_weights_.execute(stream_, args);
    dw_.store(stream_);
    stream_.wait();
  }

 private:
  bool bias_;
  dnnl::engine engine_{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream_{engine_};
  dnnl::convolution_forward::primitive_desc forward_pd_;
  dnnl::convolution_backward_data::primitive_desc data_pd_;
  dnnl::convolution_backward_weights::primitive_desc weights_pd_;
  dnnl::convolution_forward forward_;
  dnnl::convolution_backward_data backward_data_;
  dnnl::convolution_backward_weights backward_weights_;
  Linked x_, w_, y_, w_data_, dy_data_, dx_, x_weights_, dy_weights_, dw_;
  memory b_, db_;
};

// The inference primitive: bias, an optional ReLU post-op. The copies of input, weights and
// output in the layouts it chose live in buffers of the calling thread that every inference
// primitive shares (a call runs to its end before the next), so that a primitive kept per
// batch shape holds no activation-sized memory of its own.
class OnednnInferenceConv {
 public:
  OnednnInferenceConv(const Conv2dShape& s, bool relu) {
    const ConvDescs d(s);
    const auto desc = dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference,
                                                      dnnl::algorithm::convolution_direct, d.x_any, d.w_any,
                                                      d.b_plain, d.y_any, d.strides, d.padding, d.padding);
    dnnl::primitive_attr attr;
    if (relu) {
      dnnl::post_ops ops;
      ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
      attr.set_post_ops(ops);
    }
    pd_ = dnnl::convolution_forward::primitive_desc(desc, attr, engine_);
    forward_ = dnnl::convolution_forward(pd_);
    x_ = Linked(d.x_plain, pd_.src_desc(), engine_, true);
    w_ = Linked(d.w_plain, pd_.weights_desc(), engine_, true);
    y_ = Linked(d.y_plain, pd_.dst_desc(), engine_, true);
    b_ = memory(d.b_plain, engine_, DNNL_MEMORY_NONE);
  }

  void forward(const float* x, const float* weight, const float* bias, float* y) {
    thread_local std::vector<float> x_copy, w_copy, y_copy;
    x_.bind(x, x_copy);
    w_.bind(weight, w_copy);
    y_.bind(y, y_copy);
    b_.set_data_handle(const_cast<float*>(bias));
    x_.load(stream_);
    w_.load(stream_);
    forward_.execute(stream_, {{DNNL_ARG_SRC, x_.chosen},
                               {DNNL_ARG_WEIGHTS, w_.chosen},
                               {DNNL_ARG_BIAS, b_},
                               {DNNL_ARG_DST, y_.chosen}});
    y_.store(stream_);
    stream_.wait();
  }

 private:
  dnnl::engine engine_{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream_{engine_};
  dnnl::convolution_forward::primitive_desc pd_;
  dnnl::convolution_forward forward_;
  Linked x_, w_, y_;
  memory b_;
};

// Primitives (OnednnConv or OnednnInferenceConv) for one shape, flag (bias; ReLU) and thread
// count, kept per calling thread.
template <class Primitives>
Primitives& kept_for(const Conv2dShape& s, bool flag) {
  using Key = std::tuple<int, int, int, int, int, int, int, int, bool, int>;
  thread_local std::map<Key, std::unique_ptr<Primitives>> cache;
  const int threads = thread_count();
  omp_set_num_threads(threads);
  Key key{s.n, s.c_in, s.h, s.w, s.c_out, s.kernel, s.stride, s.padding, flag, threads};
  auto it = cache.find(key);
  if (it == cache.end()) {
    if (cache.size() >= 64) cache.clear();  // batch sizes rarely vary; keep memory bounded
    it = cache.emplace(key, std::make_unique<Primitives>(s, flag)).first;
  }
  return *it->second;
}

}  // namespace

namespace onednn_path {

void conv2d_forward_inference(const Conv2dShape& s, const float* x, const float* weight,
                              const float* bias, bool relu, float* y) {
  kept_for<OnednnInferenceConv>(s, relu).forward(x, weight, bias, y);
}

void conv2d_forward(const Conv2dShape& s, const float* x, const float* weight, const float* bias,
                    float* y) {
  kept_for<OnednnConv>(s, bias != nullptr).forward(x, weight, bias, y);
}

void conv2d_backward(const Conv2dShape& s, const float* x, const float* weight, const float* dy,
                     float* dx, float* dweight, float* dbias) {
  kept_for<OnednnConv>(s, dbias != nullptr).backward(x, weight, dy, dx, dweight, dbias);
}

}  // namespace onednn_path

}  // namespace digitflow::kernels

// The training loop. Batches are drawn from a seeded permutation per epoch; each image's
// augmentation is seeded by (seed, epoch, position), so any thread may warp any image and
// the run is still reproducible. The last incomplete batch of an epoch is dropped.
#include "digitflow/kernels/trainer.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <stdexcept>

#include "digitflow/kernels/ops/elementwise.hpp"
#include "digitflow/kernels/ops/softmax_xent.hpp"
#include "digitflow/kernels/parallel.hpp"
#if DIGITFLOW_HAVE_CUDA
#include "digitflow/kernels/cuda/network.hpp"
#endif
#include "digitflow/kernels/seed_mix.hpp"
#include "training_loop.hpp"

namespace digitflow::kernels {

namespace detail {

// Images must have the model's size and labels must be below its class count: both are
// read as raw bytes into buffers sized by the model.
void check_data(const LabelledImages& data, const Network& net) {
  if (data.rows != net.spec().input_height || data.cols != net.spec().input_width ||
      net.spec().input_channels != 1)
    throw std::invalid_argument("images are " + std::to_string(data.rows) + "x" +
                                std::to_string(data.cols) + ", the model takes " +
                                std::to_string(net.spec().input_channels) + "x" +
                                std::to_string(net.spec().input_height) + "x" +
                                std::to_string(net.spec().input_width));
  if (data.pixels.size() != static_cast<size_t>(data.count) * data.rows * data.cols ||
      data.labels.size() != static_cast<size_t>(data.count))
    throw std::invalid_argument("image or label count disagrees with the stated count");
  for (uint8_t label : data.labels)
    if (label >= net.spec().classes)
      throw std::invalid_argument("label " + std::to_string(label) + " is not below the " +
                                  std::to_string(net.spec().classes) + " classes of the model");
}

}  // namespace detail

namespace {

using detail::check_data;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

int argmax_row(const float* p, int classes) {
  return static_cast<int>(std::max_element(p, p + classes) - p);
}

void validate(const TrainConfig& c, const LabelledImages& data, const Network& net) {
  if (c.epochs <= 0) throw std::invalid_argument("train: epochs must be positive");
  if (c.batch_size < 2) throw std::invalid_argument("train: batch_size must be at least 2");
  if (c.optimizer != "adamw" && c.optimizer != "sgd")
    throw std::invalid_argument("train: optimizer must be adamw or sgd, not '" + c.optimizer + "'");
  learning_rate(c, 0, 2);  // refuses an unknown schedule before any work
  if (c.validation_images < 0 || c.validation_images >= data.count)
    throw std::invalid_argument("train: validation_images must be between 0 and the image count");
  if (c.early_stop_patience > 0 && c.validation_images == 0)
    throw std::invalid_argument("train: early stopping needs a validation split (validation_images > 0)");
  try {
    check_data(data, net);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string("train: ") + e.what());
  }
  if (data.count - c.validation_images < c.batch_size)
    throw std::invalid_argument("train: " + std::to_string(data.count) + " images leave fewer than one batch after holding out " +
                                std::to_string(c.validation_images) + " for validation");
}

}  // namespace

float learning_rate(const TrainConfig& c, int64_t step, int64_t total_steps) {
  if (c.schedule == "constant" || total_steps <= 1) return c.lr;
  const double pct = static_cast<double>(step) / static_cast<double>(total_steps - 1);
  const double warm = std::clamp<double>(c.warmup_fraction, 0.0, 1.0);
  const double pi = 3.14159265358979323846;
  if (c.schedule == "onecycle") {
    const double start = c.lr / 25.0, end = c.lr / 1e4;
    if (pct < warm) return static_cast<float>(start + (c.lr - start) * pct / warm);
    double t = warm < 1.0 ? (pct - warm) / (1.0 - warm) : 1.0;
    return static_cast<float>(end + (c.lr - end) * 0.5 * (1.0 + std::cos(pi * t)));
  }
  if (c.schedule == "cosine") {
    const double first = 1.0 / static_cast<double>(total_steps);  // step 0 already learns
    if (pct < warm) return static_cast<float>(c.lr * std::max(pct, first) / warm);
    double t = warm < 1.0 ? (pct - warm) / (1.0 - warm) : 1.0;
    return static_cast<float>(c.lr * 0.5 * (1.0 + std::cos(pi * t)));
  }
  throw std::invalid_argument("unknown learning-rate schedule '" + c.schedule +
                              "' (known: onecycle, cosine, constant)");
}

void random_affine(const uint8_t* src, int rows, int cols, const AugmentConfig& a, uint64_t seed,
                   uint8_t* dst) {
  const double deg = 3.14159265358979323846 / 180.0;
  auto uniform = [&](uint64_t i, double range) {
    return (2.0 * hash_uniform(seed, i) - 1.0) * range;
  };
  const double angle = uniform(0, a.rotation_deg) * deg;
  const double shear = uniform(1, a.shear_deg) * deg;
  const double scale = 1.0 + uniform(2, a.scale);
  const double tx = uniform(3, a.shift), ty = uniform(4, a.shift);
  // Forward map M = R(angle) * Shear(shear) * scale; we sample with its inverse.
  const double c = std::cos(angle), s = std::sin(angle), sh = std::tan(shear);
  const double m00 = c * scale, m01 = (c * sh - s) * scale;
  const double m10 = s * scale, m11 = (s * sh + c) * scale;
  const double det = m00 * m11 - m01 * m10;
  const double i00 = m11 / det, i01 = -m01 / det, i10 = -m10 / det, i11 = m00 / det;
  const double cx = (cols - 1) / 2.0, cy = (rows - 1) / 2.0;
  for (int y = 0; y < rows; ++y)
    for (int x = 0; x < cols; ++x) {
      double dx = x - cx - tx, dy = y - cy - ty;
      double sx = i00 * dx + i01 * dy + cx, sy = i10 * dx + i11 * dy + cy;
      int x0 = static_cast<int>(std::floor(sx)), y0 = static_cast<int>(std::floor(sy));
      double fx = sx - x0, fy = sy - y0;
      auto at = [&](int yy, int xx) -> double {
        return (yy >= 0 && yy < rows && xx >= 0 && xx < cols) ? src[yy * cols + xx] : 0.0;
      };
      double v = (1 - fy) * ((1 - fx) * at(y0, x0) + fx * at(y0, x0 + 1)) +
                 fy * ((1 - fx) * at(y0 + 1, x0) + fx * at(y0 + 1, x0 + 1));
      dst[y * cols + x] = static_cast<uint8_t>(std::clamp(std::lround(v), 0L, 255L));
    }
}

Optimizer::Optimizer(const TrainConfig& config, std::vector<Parameter*> parameters)
    : config_(config), parameters_(std::move(parameters)) {
  for (Parameter* p : parameters_) {
    first_.emplace_back(p->value.shape());
    if (config_.optimizer == "adamw") second_.emplace_back(p->value.shape());
  }
}

OptimizerState Optimizer::state() const {
  OptimizerState s;
  for (const Tensor& t : first_) s.first.push_back(t.clone());
  for (const Tensor& t : second_) s.second.push_back(t.clone());
  s.steps = steps_;
  return s;
}

void Optimizer::restore(const OptimizerState& s) {
  auto fits = [](const std::vector<Tensor>& mine, const std::vector<Tensor>& theirs) {
    if (mine.size() != theirs.size()) return false;
    for (size_t i = 0; i < mine.size(); ++i)
      if (mine[i].shape() != theirs[i].shape()) return false;
    return true;
  };
  if (!fits(first_, s.first) || !fits(second_, s.second) || s.steps < 0)
    throw std::invalid_argument("train: the checkpoint's optimizer state is not this optimizer's (" + config_.optimizer +
                                ", " + std::to_string(first_.size()) + " parameters)");
  for (size_t i = 0; i < first_.size(); ++i) first_[i] = s.first[i].clone();
  for (size_t i = 0; i < second_.size(); ++i) second_[i] = s.second[i].clone();
  steps_ = s.steps;
}

void Optimizer::step(float lr) {
  ++steps_;
  const float wd = config_.weight_decay, b1 = config_.momentum, b2 = config_.beta2;
  if (config_.optimizer == "adamw") {
    const float c1 = 1.0f - std::pow(b1, static_cast<float>(steps_));
    const float c2 = 1.0f - std::pow(b2, static_cast<float>(steps_));
    const float step_size = lr / c1, eps = 1e-8f, inv_sqrt_c2 = 1.0f / std::sqrt(c2);
    for (size_t k = 0; k < parameters_.size(); ++k) {
      Parameter& p = *parameters_[k];
      float* __restrict w = p.value.data();
      float* __restrict m = first_[k].data();
      float* __restrict v = second_[k].data();
      const float* __restrict g = p.grad.data();
      const float decay = p.decay ? 1.0f - lr * wd : 1.0f;
      parallel_chunks(p.value.numel(), 1 << 15, [=](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
          m[i] = b1 * m[i] + (1.0f - b1) * g[i];
          v[i] = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
          w[i] = w[i] * decay - step_size * m[i] / (std::sqrt(v[i]) * inv_sqrt_c2 + eps);
        }
      });
    }
    return;
  }
  for (size_t k = 0; k < parameters_.size(); ++k) {
    Parameter& p = *parameters_[k];
    float* __restrict w = p.value.data();
    float* __restrict buf = first_[k].data();
    const float* __restrict g = p.grad.data();
    const float decay = p.decay ? wd : 0.0f;
    const bool nesterov = config_.nesterov;
    parallel_chunks(p.value.numel(), 1 << 15, [=](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        float gi = g[i] + decay * w[i];
        buf[i] = b1 * buf[i] + gi;
        w[i] -= lr * (nesterov ? gi + b1 * buf[i] : buf[i]);
      }
    });
  }
}

TrainResult train(Network& net, const LabelledImages& data, const TrainConfig& config,
                  const TrainCallbacks& callbacks, Backend backend, std::span<const uint8_t> repeats,
                  const TrainCheckpoint* resume) {
  backend = start_backend(backend);
  if (resume && backend != Backend::cpu)
    throw std::invalid_argument("train: going on from a checkpoint is done on the CPU only, not on " +
                                to_string(backend));
#if DIGITFLOW_HAVE_CUDA
  if (backend != Backend::cpu)
    return cuda::train_on_device(net, data, config, callbacks, backend, repeats);
#endif
  const detail::TrainingPlan plan = detail::plan_training(config, data, net, repeats);
  const int rows = data.rows, cols = data.cols, classes = net.spec().classes;
  const int64_t image_size = int64_t{rows} * cols;
  const int batch = config.batch_size;
  Optimizer optimizer(config, net.parameters());

  std::vector<uint8_t> pixels(static_cast<size_t>(batch * image_size));
  std::vector<uint8_t> labels(static_cast<size_t>(batch));
  Tensor x, probs({batch, classes}), dlogits({batch, classes});

  detail::EpochBook book(config, plan, callbacks);
  int first_epoch = 1;
  if (resume) {
    if (resume->epochs_done() < 1) throw std::invalid_argument("train: the checkpoint holds no finished epoch");
    optimizer.restore(resume->optimizer);
    if (!resume->best.empty()) net.check_state(resume->best);  // throws, naming the tensor, for another network
    net.load_state(resume->weights);
    first_epoch = book.resume(*resume);
  }
  int64_t step = static_cast<int64_t>(first_epoch - 1) * plan.batches;
  for (int epoch = first_epoch; epoch <= config.epochs; ++epoch) {
    book.start_epoch(epoch);
    const std::vector<int64_t> order = detail::epoch_order(plan, config, epoch);
    const uint64_t seed_base = detail::augment_seed_base(config, epoch);
    double loss_sum = 0.0;
    int64_t correct = 0, seen = 0;
    float lr = 0.0f;
    bool stop = false;
    for (int64_t b = 0; b < plan.batches; ++b, ++step) {
      if (callbacks.should_stop && callbacks.should_stop()) {
        stop = true;
        break;
      }
      parallel_chunks(batch, 8, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
          int64_t src = order[static_cast<size_t>(b * batch + i)];
          const uint8_t* image = data.pixels.data() + src * image_size;
          uint8_t* out = pixels.data() + i * image_size;
          if (config.augment.enabled)
            random_affine(image, rows, cols, config.augment,
                          mix_seed(seed_base, static_cast<uint64_t>(b * batch + i)), out);
          else
            std::memcpy(out, image, static_cast<size_t>(image_size));
          labels[static_cast<size_t>(i)] = data.labels[static_cast<size_t>(src)];
        }
      });
      net.prepare_input(pixels, batch, x);
      const Tensor& logits = net.forward(x, {true, config.seed, static_cast<uint64_t>(step)});
      float loss = softmax_xent_forward(batch, classes, logits.data(), labels.data(),
                                        config.label_smoothing, probs.data());
      softmax_xent_backward(batch, classes, probs.data(), labels.data(), config.label_smoothing,
                            dlogits.data());
      net.backward(dlogits);
      lr = learning_rate(config, step, plan.total_steps);
      optimizer.step(lr);

      loss_sum += double{loss} * batch;
      for (int i = 0; i < batch; ++i)
        correct += argmax_row(probs.data() + i * classes, classes) == labels[static_cast<size_t>(i)];
      seen += batch;
      book.batch_done(b, step, loss_sum, correct, seen, lr);
    }
    if (stop) {
      book.stopped();
      break;
    }
    const bool go_on =
        book.finish_epoch(net, loss_sum, correct, seen, lr, [&] { return evaluate_subset(net, data, plan.validation); });
    book.checkpoint(net, [&] { return optimizer.state(); });
    if (!go_on) break;
  }
  return book.finish(net);
}

namespace detail {

TrainingPlan plan_training(const TrainConfig& config, const LabelledImages& data, const Network& net,
                           std::span<const uint8_t> repeats) {
  validate(config, data, net);
  if (!repeats.empty() && static_cast<int64_t>(repeats.size()) != data.count)
    throw std::invalid_argument("train: " + std::to_string(repeats.size()) + " repeat counts for " +
                                std::to_string(data.count) + " images");
  // Validation split: the first validation_images of a seeded permutation.
  std::vector<int64_t> all(static_cast<size_t>(data.count));
  std::iota(all.begin(), all.end(), 0);
  std::shuffle(all.begin(), all.end(), std::mt19937_64(mix_seed(config.seed, 0x5eed)));
  TrainingPlan plan;
  plan.validation.assign(all.begin(), all.begin() + config.validation_images);
  if (repeats.empty()) {
    plan.training.assign(all.begin() + config.validation_images, all.end());
  } else {
    for (auto it = all.begin() + config.validation_images; it != all.end(); ++it)
      plan.training.insert(plan.training.end(), repeats[static_cast<size_t>(*it)], *it);
  }
  std::sort(plan.validation.begin(), plan.validation.end());
  plan.batches = static_cast<int64_t>(plan.training.size()) / config.batch_size;
  if (plan.batches == 0)
    throw std::invalid_argument("train: the repeat counts leave " + std::to_string(plan.training.size()) +
                                " training images, fewer than one batch of " +
                                std::to_string(config.batch_size));
  plan.total_steps = plan.batches * config.epochs;
  return plan;
}

std::vector<int64_t> epoch_order(const TrainingPlan& plan, const TrainConfig& config, int epoch) {
  std::vector<int64_t> order = plan.training;
  std::shuffle(order.begin(), order.end(),
               std::mt19937_64(mix_seed(config.seed, static_cast<uint64_t>(epoch))));
  return order;
}

uint64_t augment_seed_base(const TrainConfig& config, int epoch) {
  return mix_seed(config.seed, static_cast<uint64_t>(epoch));
}

void finish_evaluation(EvalResult& r, double loss_sum) {
  const size_t classes = r.confusion.size();
  int64_t correct = 0;
  r.per_class.assign(classes, 0.0);
  for (size_t c = 0; c < classes; ++c) {
    int64_t row_total = 0;
    for (size_t p = 0; p < classes; ++p) row_total += r.confusion[c][p];
    correct += r.confusion[c][c];
    r.per_class[c] = row_total ? static_cast<double>(r.confusion[c][c]) / static_cast<double>(row_total) : 0.0;
  }
  r.accuracy = r.count ? static_cast<double>(correct) / static_cast<double>(r.count) : 0.0;
  r.loss = r.count ? loss_sum / static_cast<double>(r.count) : 0.0;
}

EpochBook::EpochBook(const TrainConfig& config, const TrainingPlan& plan,
                     const TrainCallbacks& callbacks)
    : config_(config), plan_(plan), callbacks_(callbacks), run_start_(Clock::now()) {}

void EpochBook::start_epoch(int epoch) {
  epoch_ = epoch;
  epoch_start_ = Clock::now();
}

void EpochBook::batch_done(int64_t batch, int64_t step, double loss_sum, int64_t correct,
                           int64_t seen, float lr) {
  if (!callbacks_.on_batch) return;
  TrainProgress p;
  p.epoch = epoch_;
  p.epochs = config_.epochs;
  p.batch = batch + 1;
  p.batches = plan_.batches;
  double elapsed = seconds_since(epoch_start_);
  p.images_per_s = static_cast<double>(seen) / std::max(elapsed, 1e-9);
  p.loss = loss_sum / static_cast<double>(std::max<int64_t>(seen, 1));
  p.accuracy = static_cast<double>(correct) / static_cast<double>(std::max<int64_t>(seen, 1));
  p.eta_s = static_cast<double>(plan_.total_steps - step - 1) * config_.batch_size /
            std::max(p.images_per_s, 1e-9);
  p.lr = lr;
  callbacks_.on_batch(p);
}

bool EpochBook::finish_epoch(Network& net, double loss_sum, int64_t correct, int64_t seen,
                             float lr, const std::function<EvalResult()>& validate_epoch) {
  EpochMetrics m;
  m.epoch = epoch_;
  m.lr = lr;
  m.train_loss = loss_sum / static_cast<double>(std::max<int64_t>(seen, 1));
  m.train_accuracy = static_cast<double>(correct) / static_cast<double>(std::max<int64_t>(seen, 1));
  m.seconds = seconds_since(epoch_start_);
  m.images_per_s = static_cast<double>(seen) / std::max(m.seconds, 1e-9);
  if (!plan_.validation.empty()) {
    EvalResult v = validate_epoch();
    m.val_loss = v.loss;
    m.val_accuracy = v.accuracy;
    m.improved = result_.best_epoch == 0 || v.accuracy > result_.best_val_accuracy;
  } else {
    m.improved = true;
  }
  if (m.improved) {
    result_.best_epoch = epoch_;
    result_.best_val_accuracy = m.val_accuracy;
    if (!plan_.validation.empty()) best_state_ = net.copy_state();
    stale_epochs_ = 0;
  } else {
    ++stale_epochs_;
  }
  result_.epochs.push_back(m);
  if (callbacks_.on_epoch) callbacks_.on_epoch(m, net);
  return !early_stopped();
}

TrainResult EpochBook::finish(Network& net) {
  if (!best_state_.empty()) net.load_state(best_state_);
  result_.seconds = seconds_before_ + seconds_since(run_start_);
  return result_;
}

int EpochBook::resume(const TrainCheckpoint& from) {
  result_ = from.done;
  result_.stopped = false;
  seconds_before_ = from.done.seconds;
  stale_epochs_ = from.stale_epochs;
  best_state_.clear();
  for (const auto& [name, t] : from.best) best_state_.emplace_back(name, t.clone());
  // A run that had ended (every epoch, or early stopping) trains no further.
  return early_stopped() ? config_.epochs + 1 : from.epochs_done() + 1;
}

void EpochBook::checkpoint(Network& net, const std::function<OptimizerState()>& optimizer) {
  if (!callbacks_.on_checkpoint) return;
  TrainCheckpoint c;
  c.done = result_;
  c.done.seconds = seconds_before_ + seconds_since(run_start_);
  c.stale_epochs = stale_epochs_;
  c.weights = net.copy_state();
  for (const auto& [name, t] : best_state_) c.best.emplace_back(name, t.clone());
  c.optimizer = optimizer();
  callbacks_.on_checkpoint(std::move(c));
}

}  // namespace detail

EvalResult evaluate_subset(Network& net, const LabelledImages& data,
                           const std::vector<int64_t>& indices, int batch_size) {
  check_data(data, net);
  const int classes = net.spec().classes;
  const int64_t image_size = int64_t{data.rows} * data.cols;
  EvalResult r;
  r.count = static_cast<int64_t>(indices.size());
  r.confusion.assign(static_cast<size_t>(classes), std::vector<int64_t>(static_cast<size_t>(classes), 0));
  std::vector<uint8_t> pixels(static_cast<size_t>(batch_size * image_size));
  Tensor x, probs;
  double loss_sum = 0.0;
  for (int64_t start = 0; start < r.count; start += batch_size) {
    const int n = static_cast<int>(std::min<int64_t>(batch_size, r.count - start));
    std::vector<uint8_t> labels(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) {
      int64_t src = indices[static_cast<size_t>(start + i)];
      std::memcpy(pixels.data() + i * image_size, data.pixels.data() + src * image_size,
                  static_cast<size_t>(image_size));
      labels[static_cast<size_t>(i)] = data.labels[static_cast<size_t>(src)];
    }
    net.prepare_input(std::span<const uint8_t>(pixels).first(static_cast<size_t>(n * image_size)), n, x);
    const Tensor& logits = net.forward(x, {false, 0, 0});
    probs.resize({n, classes});
    loss_sum += double{softmax_xent_forward(n, classes, logits.data(), labels.data(), 0.0f, probs.data())} * n;
    for (int i = 0; i < n; ++i) {
      int predicted = argmax_row(probs.data() + i * classes, classes);
      ++r.confusion[labels[static_cast<size_t>(i)]][static_cast<size_t>(predicted)];
    }
  }
  detail::finish_evaluation(r, loss_sum);
  return r;
}

EvalResult evaluate_probabilities(const LabelledImages& data, const Tensor& probabilities) {
  if (probabilities.shape().rank() != 2 || probabilities.dim(0) != data.count || probabilities.dim(1) < 1)
    throw std::invalid_argument("evaluate_probabilities: probabilities " + probabilities.shape().str() + " for " +
                                std::to_string(data.count) + " images");
  const int classes = static_cast<int>(probabilities.dim(1));
  EvalResult r;
  r.count = data.count;
  r.confusion.assign(static_cast<size_t>(classes), std::vector<int64_t>(static_cast<size_t>(classes), 0));
  double loss_sum = 0.0;
  for (int64_t i = 0; i < data.count; ++i) {
    const float* row = probabilities.data() + i * classes;
    const uint8_t label = data.labels[static_cast<size_t>(i)];
    if (label >= classes)
      throw std::invalid_argument("evaluate_probabilities: label " + std::to_string(label) + " of image " +
                                  std::to_string(i) + " is not one of the " + std::to_string(classes) + " classes");
    loss_sum -= std::log(std::max(row[label], 1e-30f));
    ++r.confusion[label][static_cast<size_t>(argmax_row(row, classes))];
  }
  detail::finish_evaluation(r, loss_sum);
  return r;
}

EvalResult evaluate(Network& net, const LabelledImages& data, int batch_size, Backend backend) {
  backend = start_backend(backend);
#if DIGITFLOW_HAVE_CUDA
  if (backend != Backend::cpu) return cuda::evaluate_on_device(net, data, backend, std::max(batch_size, 8192));
#endif
  std::vector<int64_t> all(static_cast<size_t>(data.count));
  std::iota(all.begin(), all.end(), 0);
  return evaluate_subset(net, data, all, batch_size);
}

Tensor infer_probabilities(Network& net, std::span<const uint8_t> pixels, int64_t count,
                           int batch_size) {
  const int classes = net.spec().classes;
  const int64_t image_size = int64_t{net.spec().input_channels} * net.spec().input_height * net.spec().input_width;
  if (static_cast<int64_t>(pixels.size()) != count * image_size)
    throw std::invalid_argument("infer_probabilities: " + std::to_string(pixels.size()) +
                                " pixels for " + std::to_string(count) + " images of " +
                                net.input_shape(1).str());
  Tensor out({count, classes}), x;
  for (int64_t start = 0; start < count; start += batch_size) {
    const int n = static_cast<int>(std::min<int64_t>(batch_size, count - start));
    net.prepare_input(pixels.subspan(static_cast<size_t>(start * image_size), static_cast<size_t>(n * image_size)), n, x);
    const Tensor& logits = net.forward(x, {false, 0, 0});
    softmax(n, classes, logits.data(), out.data() + start * classes);
  }
  return out;
}

}  // namespace digitflow::kernels

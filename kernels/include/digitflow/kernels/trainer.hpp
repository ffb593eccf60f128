// Training and evaluation on labelled images: mini-batch SGD / AdamW with a learning-rate
// schedule, random affine augmentation, a held-out validation split and best-checkpoint
// keeping. For a fixed seed the result is bit-identical run to run: shuffles, augmentation
// and dropout are pure functions of (seed, epoch, position), and every reduction runs in a
// fixed order.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <span>
#include <vector>

#include "digitflow/kernels/backend.hpp"
#include "digitflow/kernels/idx.hpp"
#include "digitflow/kernels/network.hpp"
#include "digitflow/kernels/train_config.hpp"

namespace digitflow::kernels {

struct TrainProgress {
  int epoch = 0;  // 1-based
  int epochs = 0;
  int64_t batch = 0;  // batches done in this epoch
  int64_t batches = 0;
  double images_per_s = 0;
  double loss = 0;      // running mean over this epoch
  double accuracy = 0;  // running mean over this epoch (augmented training images)
  double eta_s = 0;     // whole run
  double lr = 0;
};

struct EpochMetrics {
  int epoch = 0;
  double lr = 0;  // at the end of the epoch
  double train_loss = 0, train_accuracy = 0;
  double val_loss = 0, val_accuracy = 0;  // 0 when no validation split
  double seconds = 0, images_per_s = 0;
  bool improved = false;  // best validation accuracy so far
};

struct TrainResult {
  std::vector<EpochMetrics> epochs;
  int best_epoch = 0;
  double best_val_accuracy = 0;
  double seconds = 0;
  // Ended by TrainCallbacks::should_stop before its last epoch (the epoch it was in is lost;
  // `epochs` holds those finished). The network then holds the best finished epoch's weights.
  bool stopped = false;
};

// What an optimizer carries from step to step: its moment buffers, one per parameter in
// Network::parameters() order (AdamW: first then second moments; SGD: the momentum
// buffers), and the count of steps taken.
struct OptimizerState {
  std::vector<Tensor> first, second;
  int64_t steps = 0;
};

// Everything a run needs to go on after its last finished epoch as if it had never stopped:
// train() from a checkpoint gives weights bit-identical to the run that was not stopped (the
// same data, config and thread count).
struct TrainCheckpoint {
  TrainResult done;  // the finished epochs, the best so far, the seconds they took
  int stale_epochs = 0;
  std::vector<std::pair<std::string, Tensor>> weights;  // Network::copy_state() after the last epoch
  std::vector<std::pair<std::string, Tensor>> best;     // the best epoch's (empty: no validation split)
  OptimizerState optimizer;
  int epochs_done() const { return static_cast<int>(done.epochs.size()); }
};

struct TrainCallbacks {
  std::function<void(const TrainProgress&)> on_batch;
  // Called after each epoch; the network holds that epoch's weights.
  std::function<void(const EpochMetrics&, Network&)> on_epoch;
  // Called after each epoch, after on_epoch, with what train() needs to go on from there
  // (the callee's to keep: it may move from it).
  std::function<void(TrainCheckpoint&&)> on_checkpoint;
  // Asked before each batch; true ends the run there (TrainResult::stopped).
  std::function<bool()> should_stop;
};

// Trains `net` on `data` (the validation split is taken out of it) and leaves the best
// epoch's weights in `net` (the last epoch's without a validation split). With a GPU
// backend (cuda, cudnn; auto resolves through start_backend) the same run happens on the
// device (cuda/network.hpp: train_on_device); a backend that cannot start throws
// BackendUnavailable.
// `repeats`, when not empty, holds one count per image: a training image is drawn that many
// times per epoch (each time with its own augmentation), to weigh one part of a mixed set
// more. The validation split is drawn from the images first, so no image is on both sides
// of it; a count of 0 leaves an image out of training. Throws std::invalid_argument when
// its size is not data.count or the counts leave less than one batch.
// `resume`, when given, is a checkpoint of this run (TrainCallbacks::on_checkpoint): training
// goes on from the epoch after its last (none when the run had ended: every epoch, or early
// stopping; the result is then the checkpoint's); std::invalid_argument when it does not fit
// the network or the optimizer. On the CPU only: a GPU backend throws std::invalid_argument.
TrainResult train(Network& net, const LabelledImages& data, const TrainConfig& config,
                  const TrainCallbacks& callbacks = {}, Backend backend = Backend::cpu,
                  std::span<const uint8_t> repeats = {}, const TrainCheckpoint* resume = nullptr);

struct EvalResult {
  int64_t count = 0;
  double accuracy = 0;  // 0..1
  double loss = 0;
  std::vector<double> per_class;              // accuracy per true class
  std::vector<std::vector<int64_t>> confusion;  // [true][predicted]
};
EvalResult evaluate(Network& net, const LabelledImages& data, int batch_size = 500,
                    Backend backend = Backend::cpu);
// The same figures from class probabilities (count, classes) already computed for `data`,
// in its order (by Int8Network, say); the loss is the mean of -log p(label).
EvalResult evaluate_probabilities(const LabelledImages& data, const Tensor& probabilities);
EvalResult evaluate_subset(Network& net, const LabelledImages& data,
                           const std::vector<int64_t>& indices, int batch_size = 500);

// Class probabilities (count, classes) for raw 0..255 pixels (count, H, W); throws
// std::invalid_argument when `pixels` does not hold count images of the model's size.
Tensor infer_probabilities(Network& net, std::span<const uint8_t> pixels, int64_t count,
                           int batch_size = 256);

// The learning rate at `step` of `total_steps` under the config's schedule.
float learning_rate(const TrainConfig& config, int64_t step, int64_t total_steps);

// A random affine warp (shift, rotation, scale, shear about the centre, bilinear) of one
// rows x cols image; the transform is a pure function of `seed`.
void random_affine(const uint8_t* src, int rows, int cols, const AugmentConfig& config,
                   uint64_t seed, uint8_t* dst);

// Parameter updates: AdamW (decoupled weight decay) or SGD with (Nesterov) momentum.
class Optimizer {
 public:
  Optimizer(const TrainConfig& config, std::vector<Parameter*> parameters);
  void step(float lr);
  OptimizerState state() const;
  // Throws std::invalid_argument when `state` has other buffers than this optimizer's.
  void restore(const OptimizerState& state);

 private:
  TrainConfig config_;
  std::vector<Parameter*> parameters_;
  std::vector<Tensor> first_, second_;
  int64_t steps_ = 0;
};

}  // namespace digitflow::kernels

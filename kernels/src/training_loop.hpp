// The parts of a training run that do not depend on where the arithmetic happens, shared by
// the CPU loop (trainer.cpp) and the device loop (cuda/trainer.cpp) so that both draw the
// same validation split, the same shuffles and keep the best epoch the same way.
#pragma once

#include <chrono>
#include <functional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "digitflow/kernels/trainer.hpp"

namespace digitflow::kernels::detail {

// Images of the model's size, labels below its class count; throws std::invalid_argument.
void check_data(const LabelledImages& data, const Network& net);

struct TrainingPlan {
  std::vector<int64_t> validation;  // sorted
  std::vector<int64_t> training;
  int64_t batches = 0;  // per epoch (the last incomplete batch is dropped)
  int64_t total_steps = 0;
};
// Checks the config and data (std::invalid_argument) and draws the validation split; each
// training image is listed repeats[i] times (once when `repeats` is empty; see train()).
TrainingPlan plan_training(const TrainConfig& config, const LabelledImages& data,
                           const Network& net, std::span<const uint8_t> repeats = {});
// The training images of `epoch` in the order they are drawn.
std::vector<int64_t> epoch_order(const TrainingPlan& plan, const TrainConfig& config, int epoch);
// The seed of batch position `position` of `epoch` is mix_seed(augment_seed_base(...), position).
uint64_t augment_seed_base(const TrainConfig& config, int epoch);

// Accuracy, per-class accuracy and mean loss from a filled confusion matrix.
void finish_evaluation(EvalResult& r, double loss_sum);

// Running figures of one epoch and the run's best-epoch bookkeeping.
class EpochBook {
 public:
  using Clock = std::chrono::steady_clock;
  EpochBook(const TrainConfig& config, const TrainingPlan& plan, const TrainCallbacks& callbacks);

  void start_epoch(int epoch);
  // After each batch: the progress callback, from the epoch's running totals.
  void batch_done(int64_t batch, int64_t step, double loss_sum, int64_t correct, int64_t seen,
                  float lr);
  // Closes the epoch: validation (through `validate`, when there is a split), best-state
  // keeping, the epoch callback. Returns false when early stopping ends the run.
  bool finish_epoch(Network& net, double loss_sum, int64_t correct, int64_t seen, float lr,
                    const std::function<EvalResult()>& validate);
  // Leaves the best epoch's weights in `net` and returns the result.
  TrainResult finish(Network& net);

  // A run going on from `from` (its epochs, its best, its seconds): the epoch to start with
  // (past the last when the run had ended).
  int resume(const TrainCheckpoint& from);
  // When a checkpoint callback is set, calls it with the run as it stands after an epoch.
  void checkpoint(Network& net, const std::function<OptimizerState()>& optimizer);
  // The run is ended before its last epoch by should_stop.
  void stopped() { result_.stopped = true; }

 private:
  bool early_stopped() const { return config_.early_stop_patience > 0 && stale_epochs_ >= config_.early_stop_patience; }

  const TrainConfig& config_;
  const TrainingPlan& plan_;
  const TrainCallbacks& callbacks_;
  Clock::time_point run_start_, epoch_start_;
  int epoch_ = 0;
  int stale_epochs_ = 0;
  TrainResult result_;
  double seconds_before_ = 0;  // of the epochs a resumed run brought
  std::vector<std::pair<std::string, Tensor>> best_state_;
};

}  // namespace digitflow::kernels::detail

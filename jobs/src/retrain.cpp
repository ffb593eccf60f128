// Retraining: the existing trainer runs one pass over an in-memory set made here (MNIST digits,
// half redrawn as a page draws them, generated negatives and the oversampled samples, as the
// shipped model was trained), inside a task arena of its own so that a web server's workers
// keep their cores. Promotion compares counts of right answers, not rounded percentages.
#include "digitflow/jobs/retrain.hpp"

#include <tbb/task_arena.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <numeric>
#include <optional>
#include <random>
#include <set>

#include "digitflow/jobs/sample_image.hpp"
#include "digitflow/kernels/inference.hpp"
#include "digitflow/kernels/int8.hpp"
#include "digitflow/kernels/model_file.hpp"
#include "digitflow/kernels/seed_mix.hpp"
#include "digitflow/kernels/trainer.hpp"
#include "digitflow/pipeline/negatives.hpp"
#include "ticker.hpp"

namespace digitflow::jobs {

namespace fs = std::filesystem;
namespace k = digitflow::kernels;

namespace {

using Clock = std::chrono::steady_clock;

// Fixed forever: changing it would move samples between the training and held-out shares.
constexpr uint64_t kHeldOutSeed = 0x484f4c444f5554ull;

class RetrainCancelled : public std::runtime_error {
 public:
  RetrainCancelled() : std::runtime_error("cancelled before it finished") {}
};

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::string percent(double share) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f%%", 100 * share);
  return text;
}

int64_t right_answers(const k::EvalResult& r) {
  return std::llround(r.accuracy * static_cast<double>(r.count));
}

k::LabelledImages empty_images() {
  k::LabelledImages images;
  images.rows = kSampleSide;
  images.cols = kSampleSide;
  return images;
}

void append_image(k::LabelledImages& to, const uint8_t* pixels, uint8_t label) {
  to.pixels.insert(to.pixels.end(), pixels, pixels + kSampleSide * kSampleSide);
  to.labels.push_back(label);
  ++to.count;
}

// The reviewed samples as images, split into training and held-out shares.
struct SampleSets {
  k::LabelledImages training = empty_images(), held_out = empty_images();
  int64_t total = 0, skipped = 0;
  std::string first_problem;  // why the first skipped sample was skipped
};

SampleSets load_samples(JobStore& store, const StateDir& state, int classes,
                        double held_out_share) {
  std::vector<Sample> samples = store.samples();
  std::sort(samples.begin(), samples.end(),
            [](const Sample& a, const Sample& b) { return a.id < b.id; });
  SampleSets sets;
  sets.total = static_cast<int64_t>(samples.size());
  for (const Sample& sample : samples) {
    try {
      if (sample.label < 0 || sample.label >= classes)
        throw std::runtime_error(std::string("sample ")
                                     .append(std::to_string(sample.id))
                                     .append(": label ")
                                     .append(std::to_string(sample.label))
                                     .append(" is not a class of the model (0..")
                                     .append(std::to_string(classes - 1))
                                     .append(")"));
      const SamplePixels pixels = load_sample_image(state.root / sample.image);
      append_image(held_out_sample(sample.id, held_out_share) ? sets.held_out : sets.training,
                   pixels.data(), static_cast<uint8_t>(sample.label));
    } catch (const std::exception& e) {
      if (sets.skipped++ == 0) sets.first_problem = e.what();
    }
  }
  return sets;
}

// The images of one run: MNIST digits (half redrawn as the page pipeline draws them) and
// generated negatives in the shipped model's proportions, then the samples' copies.
struct MixedSet {
  k::LabelledImages images = empty_images();
  int64_t digits = 0, negatives = 0, sample_images = 0;
  int copies = 0;
};

MixedSet mix_training_set(const k::LabelledImages& mnist_train, const k::LabelledImages& samples,
                          int classes, const RetrainOptions& o) {
  MixedSet mixed;
  const int64_t total = int64_t{o.steps} * o.batch_size;
  const double wanted =
      o.sample_share * static_cast<double>(total) / static_cast<double>(samples.count);
  mixed.copies =
      static_cast<int>(std::clamp<int64_t>(std::llround(wanted), 1, std::max(1, o.max_copies)));
  mixed.sample_images = samples.count * mixed.copies;
  // MNIST and negatives stay at least half the run, whatever the number of samples.
  const int64_t rest = std::max(total - mixed.sample_images, (total + 1) / 2);
  mixed.negatives =
      classes == pipeline::kClassesWithNotDigit
          ? std::llround(static_cast<double>(rest) * std::clamp(o.negative_share, 0.0, 1.0))
          : 0;
  mixed.digits = std::min(rest - mixed.negatives, mnist_train.count);

  std::vector<int64_t> order(static_cast<size_t>(mnist_train.count));
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), std::mt19937_64(k::mix_seed(o.seed, 0x4d4e495354)));
  k::LabelledImages digits = empty_images();
  const size_t image_size = kSampleSide * kSampleSide;
  for (int64_t i = 0; i < mixed.digits; ++i) {
    const size_t src = static_cast<size_t>(order[static_cast<size_t>(i)]);
    append_image(digits, mnist_train.pixels.data() + src * image_size, mnist_train.labels[src]);
  }
  k::append_images(mixed.images, pipeline::digits_through_page(digits, o.seed, 0.5));
  if (mixed.negatives > 0)
    k::append_images(mixed.images, pipeline::make_negatives(mixed.negatives,
                                                      k::mix_seed(o.seed, 0x4e4547), &mnist_train));
  for (int c = 0; c < mixed.copies; ++c) k::append_images(mixed.images, samples);
  return mixed;
}

k::TrainConfig fine_tune_config(const nlohmann::json& base, const RetrainOptions& o) {
  k::TrainConfig config = base.is_object() ? k::train_config_from_json(base) : k::TrainConfig{};
  config.epochs = 1;
  config.batch_size = o.batch_size;
  config.lr = o.lr;
  config.schedule = "onecycle";
  config.validation_images = 0;
  config.early_stop_patience = 0;
  config.seed = o.seed;
  config.threads = o.threads;
  return config;
}

nlohmann::json accuracy_json(const k::EvalResult& r) {
  if (r.count == 0) return {{"accuracy", nullptr}, {"loss", nullptr}, {"right", 0}};
  return {{"accuracy", r.accuracy}, {"loss", r.loss}, {"right", right_answers(r)}};
}

fs::path new_model_path(JobStore& store, const StateDir& state) {
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &utc);
  std::set<std::string> taken;
  for (const ModelVersion& v : store.model_versions()) taken.insert(v.path);
  for (int n = 1;; ++n) {
    std::string name = std::string("digits-").append(stamp);
    if (n > 1) name.append("-").append(std::to_string(n));
    const fs::path path = state.root / "models" / name.append(".safetensors");
    if (!taken.contains(path.string()) && !fs::exists(path)) return path;
  }
}

struct Outcome {
  bool promoted = false;
  std::string note;
  nlohmann::json metrics;
};

Outcome fine_tune_and_evaluate(JobStore& store, const ModelVersion& version,
                               const RetrainPaths& paths, const RetrainOptions& o,
                               const RetrainProgressFn& progress, const std::atomic<bool>* cancel,
                               const std::atomic<bool>* hold_lost) {
  const Clock::time_point t0 = Clock::now();
  auto report = [&](RetrainProgress p) {
    if (progress) progress(p);
  };
  auto check_cancel = [&] {
    if (cancel && cancel->load()) throw RetrainCancelled();
    if (hold_lost->load()) throw RetrainError("its hold on the version lapsed: recorded as abandoned");
  };
  if (o.steps < 1) throw std::invalid_argument("retrain: steps must be at least 1");
  if (o.batch_size < 2) throw std::invalid_argument("retrain: batch_size must be at least 2");
  report({"preparing"});

  const fs::path base = default_model(store, paths.configured_model);
  k::LoadedModel current = k::load_model(base);
  k::LoadedModel fresh = k::load_model(base);
  const int classes = current.network.spec().classes;
  // The configured model is read beside its screen and partner; a retrained one alone.
  const bool configured = is_configured_model(base, paths.configured_model);
  std::optional<k::LoadedModel> screen, partner;
  if (configured && !paths.screen_model.empty()) screen = k::load_model(paths.screen_model);
  if (configured && !paths.partner_model.empty()) partner = k::load_model(paths.partner_model);

  const SampleSets samples = load_samples(store, paths.state, classes, o.held_out_share);
  if (samples.training.count == 0) {
    std::string why = std::string("no reviewed sample to train on (")
                          .append(std::to_string(samples.total))
                          .append(" samples, ")
                          .append(std::to_string(samples.held_out.count))
                          .append(" held out for evaluation");
    if (samples.skipped > 0)
      why.append(", ")
          .append(std::to_string(samples.skipped))
          .append(" unreadable: ")
          .append(samples.first_problem);
    throw RetrainError(why.append(")"));
  }
  check_cancel();
  const k::LabelledImages mnist_train = k::load_mnist(paths.mnist_dir, k::MnistSplit::train);
  k::LabelledImages mnist_test = k::load_mnist(paths.mnist_dir, k::MnistSplit::test);
  if (o.mnist_test_images > 0 && o.mnist_test_images < mnist_test.count) {
    mnist_test.count = o.mnist_test_images;
    mnist_test.pixels.resize(static_cast<size_t>(mnist_test.count) * kSampleSide * kSampleSide);
    mnist_test.labels.resize(static_cast<size_t>(mnist_test.count));
  }
  const MixedSet mixed = mix_training_set(mnist_train, samples.training, classes, o);
  check_cancel();

  const k::TrainConfig config = fine_tune_config(current.train_config, o);
  k::TrainCallbacks callbacks;
  callbacks.on_batch = [&](const k::TrainProgress& p) {
    check_cancel();
    report({"training", p.batch, p.batches, p.loss, p.accuracy, p.eta_s});
  };
  const k::TrainResult trained = k::train(fresh.network, mixed.images, config, callbacks);
  check_cancel();

  report({"evaluating"});
  // Batches of the training size: each network keeps its activations for the largest batch
  // it has seen, and at 500 two of them held 1.7 GB.
  const int eval_batch = config.batch_size;
  // The current model as the workers read it (in fp32: int8 reads the same within a string
  // or two in a thousand); the new one alone, as it will be read.
  auto as_read = [&](const k::LabelledImages& data) {
    if ((!screen && !partner) || data.count == 0) return k::evaluate(current.network, data, eval_batch);
    k::Inference reader(current.network, k::Backend::cpu, eval_batch);
    if (screen) reader.set_screen(screen->network, paths.screen_confidence);
    if (partner) reader.set_partner(partner->network);
    return k::evaluate_probabilities(data, reader.probabilities(data.pixels, data.count));
  };
  const k::EvalResult test_new = k::evaluate(fresh.network, mnist_test, eval_batch);
  check_cancel();
  const k::EvalResult test_current = as_read(mnist_test);
  check_cancel();
  const k::EvalResult held_new = k::evaluate(fresh.network, samples.held_out, eval_batch);
  const k::EvalResult held_current = as_read(samples.held_out);
  nlohmann::json current_reads_with = nlohmann::json::array();
  if (screen) current_reads_with.push_back(paths.screen_model.filename().string());
  if (partner) current_reads_with.push_back(paths.partner_model.filename().string());
  // Not promoted on it, but shown: whether the fine-tune kept rejecting what is not a digit,
  // on the held-out negatives `digitflow train` and `digitflow eval` report (a fifth of the
  // test images' count when fewer than all are evaluated).
  nlohmann::json negatives = nullptr;
  if (classes == pipeline::kClassesWithNotDigit) {
    const k::LabelledImages held_out_negatives = pipeline::make_negatives(
        std::min<int64_t>(pipeline::kHeldOutNegatives, mnist_test.count / 5),
        pipeline::kHeldOutNegativesSeed, &mnist_test);
    negatives = {{"count", held_out_negatives.count},
                 {"new",
                  {{"rejected", pipeline::rejected_share(
                                    k::evaluate(fresh.network, held_out_negatives, eval_batch))}}},
                 {"current", {{"rejected", pipeline::rejected_share(as_read(held_out_negatives))}}}};
  }
  check_cancel();

  const int64_t required =
      std::llround(o.required_margin * static_cast<double>(test_current.count));
  Outcome out;
  out.promoted = right_answers(test_new) >= right_answers(test_current) + required;
  std::string margin;
  if (required != 0) margin.append(" + required margin ").append(percent(o.required_margin));
  out.note.append("MNIST test ")
      .append(percent(test_new.accuracy))
      .append(out.promoted ? " >= current " : " < current ")
      .append(percent(test_current.accuracy))
      .append(partner && screen ? " (with its screen and partner)"
              : partner         ? " (with its partner)"
              : screen          ? " (with its screen)"
                                : "")
      .append(margin);
  if (held_new.count > 0)
    out.note.append("; held-out samples ")
        .append(percent(held_new.accuracy))
        .append(" (current ")
        .append(percent(held_current.accuracy))
        .append(", ")
        .append(std::to_string(held_new.count))
        .append(" samples)");
  else
    out.note.append("; no held-out samples yet");

  const k::EpochMetrics& epoch = trained.epochs.back();
  nlohmann::json history = nlohmann::json::array();
  history.push_back({{"epoch", 1},
                     {"train_loss", epoch.train_loss},
                     {"train_accuracy", epoch.train_accuracy},
                     {"val_loss", 0},
                     {"val_accuracy", 0},
                     {"seconds", epoch.seconds}});
  // test_accuracy, per_class, confusion and history as `digitflow train` writes them, so that
  // a retrained model file reads like a trained one; the comparison under "retrain".
  out.metrics = {{"test_accuracy", test_new.accuracy},
                 {"test_loss", test_new.loss},
                 {"per_class", test_new.per_class},
                 {"confusion", test_new.confusion},
                 {"history", history},
                 {"retrain",
                  {{"base_model", base.string()},
                   {"current_reads_with", current_reads_with},
                   {"promoted", out.promoted},
                   {"required_margin", o.required_margin},
                   {"mnist_test",
                    {{"count", test_new.count},
                     {"new", accuracy_json(test_new)},
                     {"current", accuracy_json(test_current)}}},
                   {"held_out_samples",
                    {{"count", held_new.count},
                     {"new", accuracy_json(held_new)},
                     {"current", accuracy_json(held_current)}}},
                   {"held_out_negatives", negatives},
                   {"samples",
                    {{"total", samples.total},
                     {"training", samples.training.count},
                     {"held_out", samples.held_out.count},
                     {"skipped", samples.skipped},
                     {"first_skipped", samples.first_problem},
                     {"copies", mixed.copies}}},
                   {"training",
                    {{"images", mixed.images.count},
                     {"mnist_digits", mixed.digits},
                     {"negatives", mixed.negatives},
                     {"sample_images", mixed.sample_images},
                     {"steps", static_cast<int64_t>(mixed.images.count / config.batch_size)},
                     {"batch_size", config.batch_size},
                     {"lr", config.lr},
                     {"loss", epoch.train_loss},
                     {"accuracy", epoch.train_accuracy},
                     {"seconds", trained.seconds}}},
                   {"seconds", 0.0}}}};

  report({"saving"});
  out.metrics["retrain"]["seconds"] = seconds_since(t0);
  fresh.network.set_int8_calibration(k::calibrate_int8(fresh.network, mixed.images, 12000));  // for runtime.int8
  k::save_model(version.path, fresh.network, k::to_json(config), out.metrics);
  return out;
}

}  // namespace

bool is_configured_model(const fs::path& model, const fs::path& configured) {
  std::error_code ec;
  return model == configured || fs::equivalent(model, configured, ec);
}

fs::path default_model(JobStore& store, const fs::path& configured) {
  for (const ModelVersion& v : store.model_versions())
    if (v.is_default) return v.path;
  return configured;
}

bool held_out_sample(int64_t sample_id, double held_out_share) {
  return k::hash_uniform_inline(kHeldOutSeed, static_cast<uint64_t>(sample_id)) < held_out_share;
}

int64_t fail_abandoned_versions(JobStore& store) {
  return store.fail_abandoned_model_versions(
      "stopped before it finished: its trainer (digitflow retrain or the server) ended without a word");
}

ModelVersion start_retrain(JobStore& store, const RetrainPaths& paths,
                           const RetrainOptions& options) {
  fail_abandoned_versions(store);
  const std::vector<Sample> samples = store.samples();
  if (samples.empty())
    throw RetrainError("no reviewed samples: review some uncertain digits first, then retrain");
  const auto training = std::count_if(samples.begin(), samples.end(), [&](const Sample& s) {
    return !held_out_sample(s.id, options.held_out_share);
  });
  if (training == 0)
    throw RetrainError(
        std::string("all ")
            .append(std::to_string(samples.size()))
            .append(
                " reviewed samples are in the share held out for evaluation; review more digits"));
  ModelVersion version;
  version.path = new_model_path(store, paths.state).string();
  version.status = "training";
  version.metrics_json = "{}";
  version.created_ms = now_ms();
  version.id = store.add_model_version(version);
  return version;
}

RetrainResult run_retrain(JobStore& store, const ModelVersion& version, const RetrainPaths& paths,
                          const RetrainOptions& options, const RetrainProgressFn& progress,
                          const std::atomic<bool>* cancel) {
  RetrainResult result;
  result.version = version;
  result.version.is_default = false;
  // The hold on the version, renewed while this runs (from a thread of its own: the training
  // and the evaluation say nothing for long stretches). Where it has lapsed, another process
  // has recorded the version failed as abandoned: the run stops and promotes nothing.
  std::atomic<bool> hold_lost{false};
  auto hold = [&] {
    try {
      if (!store.hold_model_version(version.id, options.lease_ms)) hold_lost = true;
    } catch (const std::exception&) {  // the store is away for a moment: the hold is longer
    }
  };
  hold();
  detail::Ticker holder(std::chrono::milliseconds(std::max<int64_t>(options.lease_ms / 4, 10)), hold);
  try {
    Outcome outcome;
    tbb::task_arena arena(options.threads > 0 ? options.threads : tbb::task_arena::automatic);
    arena.execute([&] {
      outcome = fine_tune_and_evaluate(store, version, paths, options, progress, cancel, &hold_lost);
    });
    result.promoted = outcome.promoted;
    result.metrics = std::move(outcome.metrics);
    result.version.status = outcome.promoted ? "ready" : "rejected";
    result.version.is_default = outcome.promoted;
    result.version.note = outcome.note;
  } catch (const std::exception& e) {
    result.version.status = "failed";
    result.version.note = e.what();
    result.metrics = nlohmann::json::object();
  }
  result.version.metrics_json = result.metrics.dump();
  hold();  // the last word: is the version still this run's?
  if (hold_lost) {
    result.promoted = false;
    result.version.is_default = false;
    result.version.status = "failed";
    result.version.note = "its hold lapsed while it trained (the trainer was paused or the store out of reach), "
                          "and it was recorded as abandoned; not used";
  }
  if (!store.update_model_version(result.version))
    throw StoreError(std::string("retrain: model version ")
                         .append(std::to_string(version.id))
                         .append(" is no longer in the store"));
  return result;
}

RetrainResult retrain(JobStore& store, const RetrainPaths& paths, const RetrainOptions& options,
                      const RetrainProgressFn& progress, const std::atomic<bool>* cancel) {
  return run_retrain(store, start_retrain(store, paths, options), paths, options, progress, cancel);
}

}  // namespace digitflow::jobs

// Retraining on reviewed samples, with tiny runs (a few steps, 500 MNIST test images): a
// version is recorded with both evaluations and a model file that loads; it becomes the
// default only when not worse on MNIST (a model with its output layer zeroed is beaten, a
// required margin forces the rejection); no samples is an error that records nothing; a
// missing model or a cancel is recorded as failed; an unreadable sample is skipped. Sample images
// are MNIST test digits written as the PNGs the review page stores, plus some label-10 noise.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "digitflow/jobs/retrain.hpp"
#include "digitflow/jobs/sample_image.hpp"
#include "digitflow/kernels/idx.hpp"
#include "digitflow/kernels/model_file.hpp"
#include "digitflow/pipeline/normalize.hpp"
#include "test_support.hpp"

namespace digitflow::jobs {
namespace {

namespace fs = std::filesystem;
namespace k = digitflow::kernels;
namespace t = digitflow::testing;

fs::path shipped_model() { return t::source_dir() / "models" / "digits.safetensors"; }

const k::LabelledImages& mnist_test() {
  static const k::LabelledImages images = k::load_mnist(t::mnist_dir(), k::MnistSplit::test);
  return images;
}

class RetrainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!t::mnist_available())
      GTEST_SKIP() << "MNIST is not fetched (scripts/fetch-mnist.sh): nothing to train on";
    state_.root = dir_ / "state";
    store_ = open_sqlite_store(state_.sqlite_file());
    User ana;
    ana.name = "ana";
    user_ = store_->add_user(ana);
    NewJob job;
    job.owner = user_;
    job.name = "checks";
    job.input_dir = state_.inputs() / "checks";
    job_ = store_->create_job(job);
    paths_.state = state_;
    paths_.configured_model = shipped_model();
    paths_.mnist_dir = t::mnist_dir();
  }

  // `digits` MNIST test digits from `first` on, with their labels, then `noise` images of
  // random specks labelled 10.
  void add_samples(int digits, int noise, int first = 0) {
    std::mt19937 rng(static_cast<unsigned>(first + 1));
    for (int i = 0; i < digits + noise; ++i) {
      SamplePixels pixels{};
      uint8_t label = 10;
      if (i < digits) {
        const size_t at = static_cast<size_t>(first + i);
        std::copy_n(mnist_test().pixels.begin() + static_cast<std::ptrdiff_t>(at * pixels.size()),
                    pixels.size(), pixels.begin());
        label = mnist_test().labels[at];
      } else {
        for (uint8_t& p : pixels) p = rng() % 9 == 0 ? static_cast<uint8_t>(rng() % 256) : 0;
      }
      Sample s;
      s.user = user_;
      s.job = job_;
      s.page_key = std::string("page-").append(std::to_string(first + i)).append(".png#0");
      s.guess = label == 10 ? 1 : label;
      s.confidence = 0.5;
      s.label = label;
      s.image = (fs::path("samples") / std::to_string(job_) / std::to_string(first + i))
                    .string()
                    .append(".png");
      save_sample_image(state_.root / s.image, pixels);
      store_->put_sample(s);
    }
  }

  static RetrainOptions tiny() {
    RetrainOptions o;
    o.steps = 6;
    o.batch_size = 32;
    o.mnist_test_images = 300;
    o.held_out_share = 0.3;
    return o;
  }

  // The shipped model with its output layer's tensors changed by `edit` (given "weight" or
  // "bias" and the tensor), saved as `file` under the test's folder.
  fs::path shipped_with_output(const std::string& file, const std::function<void(const std::string&, k::Tensor&)>& edit) {
    k::LoadedModel model = k::load_model(shipped_model());
    std::vector<std::pair<std::string, k::Tensor>> state = model.network.copy_state();
    std::string last;
    for (const auto& [name, tensor] : state)
      if (tensor.shape().rank() == 2) last = name.substr(0, name.rfind('.'));
    for (auto& [name, tensor] : state)
      if (name.starts_with(last + ".")) edit(name.substr(last.size() + 1), tensor);
    model.network.load_state(state);
    const fs::path path = dir_ / file;
    k::save_model(path, model.network, model.train_config, nullptr);
    return path;
  }
  // Its output layer zeroed: every image scores class 0 alike.
  fs::path zeroed_head_model() {
    return shipped_with_output("zeroed.safetensors", [](const std::string&, k::Tensor& t) {
      std::fill(t.span().begin(), t.span().end(), 0.0f);
    });
  }
  // Made to read every image as 0: its output bias for class 0 raised.
  fs::path zero_reader_model() {
    return shipped_with_output("zero-reader.safetensors", [](const std::string& kind, k::Tensor& t) {
      if (kind == "bias") t.span()[0] = 60.0f;
    });
  }

  t::TempDir dir_;
  StateDir state_;
  std::unique_ptr<JobStore> store_;
  int64_t user_ = 0, job_ = 0;
  RetrainPaths paths_;
};

TEST(SampleImage, RoundTripsAndNamesAMissingFile) {
  t::TempDir dir;
  SamplePixels pixels{};
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<uint8_t>(i * 7);
  save_sample_image(dir / "a/b/c.png", pixels);
  EXPECT_EQ(load_sample_image(dir / "a/b/c.png"), pixels);
  EXPECT_TRUE(t::throws_with_message<pipeline::ImageError>(
      [&] { load_sample_image(dir / "none.png"); }, {"none.png", "no such file"}));
}

TEST(HeldOutSample, DependsOnTheIdAloneAndKeepsTheShare) {
  int held = 0;
  for (int64_t id = 1; id <= 10000; ++id) {
    held += held_out_sample(id, 0.2);
    EXPECT_EQ(held_out_sample(id, 0.2), held_out_sample(id, 0.2));
    EXPECT_FALSE(held_out_sample(id, 0.0));
    EXPECT_TRUE(held_out_sample(id, 1.0));
    if (held_out_sample(id, 0.1)) {
      EXPECT_TRUE(held_out_sample(id, 0.2)) << "a larger share keeps the smaller's";
    }
  }
  EXPECT_NEAR(held / 10000.0, 0.2, 0.02);
}

TEST_F(RetrainTest, NoSamplesIsAnErrorAndNothingIsRecorded) {
  EXPECT_TRUE(t::throws_with_message<RetrainError>([&] { retrain(*store_, paths_, tiny()); },
                                                   {"no reviewed samples"}));
  EXPECT_TRUE(store_->model_versions().empty());
  EXPECT_FALSE(fs::exists(state_.root / "models"));
  EXPECT_EQ(default_model(*store_, shipped_model()), shipped_model());
}

TEST_F(RetrainTest, RecordsAVersionWithBothEvaluationsAndAModelThatLoads) {
  add_samples(30, 6);
  fs::remove(state_.root / "samples" / std::to_string(job_) / "0.png");  // skipped, not fatal
  std::vector<std::string> stages;
  int64_t steps_seen = 0;
  const RetrainResult r = retrain(*store_, paths_, tiny(), [&](const RetrainProgress& p) {
    if (stages.empty() || stages.back() != p.stage) stages.push_back(p.stage);
    if (p.stage == "training") steps_seen = p.step;
  });
  ASSERT_NE(r.version.status, "failed") << r.version.note;
  EXPECT_EQ(stages, (std::vector<std::string>{"preparing", "training", "evaluating", "saving"}));

  const nlohmann::json& m = r.metrics["retrain"];
  EXPECT_EQ(m["base_model"], shipped_model().string());
  EXPECT_EQ(m["mnist_test"]["count"], 300);
  const int64_t right_new = m["mnist_test"]["new"]["right"],
                right_current = m["mnist_test"]["current"]["right"];
  EXPECT_GT(right_current, 290) << "the shipped model on MNIST test";
  EXPECT_GT(right_new, 270);
  EXPECT_EQ(m["samples"]["total"], 36);
  EXPECT_EQ(m["samples"]["skipped"], 1);
  EXPECT_NE(m["samples"]["first_skipped"].get<std::string>().find("0.png"), std::string::npos);
  const int64_t held_out = m["samples"]["held_out"];
  EXPECT_GT(held_out, 0);
  EXPECT_EQ(m["samples"]["training"].get<int64_t>() + held_out, 35);
  EXPECT_EQ(m["held_out_samples"]["count"], held_out);
  EXPECT_TRUE(m["held_out_samples"]["new"]["accuracy"].is_number());
  EXPECT_TRUE(m["held_out_samples"]["current"]["accuracy"].is_number());
  EXPECT_EQ(m["held_out_negatives"]["count"], 60);
  EXPECT_GT(m["held_out_negatives"]["current"]["rejected"].get<double>(), 0.8);
  EXPECT_TRUE(m["held_out_negatives"]["new"]["rejected"].is_number());
  EXPECT_EQ(m["training"]["steps"], steps_seen);
  EXPECT_GE(steps_seen, 6);
  EXPECT_DOUBLE_EQ(r.metrics["test_accuracy"].get<double>(),
                   m["mnist_test"]["new"]["accuracy"].get<double>());

  // Promoted exactly when not worse on MNIST test; the store and default_model agree.
  EXPECT_EQ(r.promoted, right_new >= right_current);
  EXPECT_EQ(r.version.status, r.promoted ? "ready" : "rejected");
  const std::vector<ModelVersion> versions = store_->model_versions();
  ASSERT_EQ(versions.size(), 1u);
  EXPECT_EQ(versions[0].status, r.version.status);
  EXPECT_EQ(versions[0].is_default, r.promoted);
  EXPECT_EQ(versions[0].note, r.version.note);
  EXPECT_EQ(nlohmann::json::parse(versions[0].metrics_json), r.metrics);
  EXPECT_EQ(default_model(*store_, shipped_model()),
            r.promoted ? fs::path(versions[0].path) : shipped_model());

  // The model file: under the state dir, loads, carries the same metrics and its config.
  const fs::path file = versions[0].path;
  EXPECT_EQ(file.parent_path(), state_.root / "models");
  EXPECT_TRUE(file.filename().string().starts_with("digits-")) << file;
  k::LoadedModel loaded = k::load_model(file);
  EXPECT_EQ(loaded.network.spec().classes, 11);
  EXPECT_EQ(loaded.metrics, r.metrics);
  EXPECT_EQ(loaded.train_config["epochs"], 1);
  // Calibrated for int8 inference (runtime.int8), one range per convolution.
  EXPECT_GT(loaded.network.int8_calibration().images, 0);
  EXPECT_EQ(loaded.network.int8_calibration().output_max.size(), 4u);
}

TEST_F(RetrainTest, WorseThanRequiredIsKeptButNotPromoted) {
  add_samples(20, 4);
  RetrainOptions options = tiny();
  options.required_margin = 0.5;
  const RetrainResult r = retrain(*store_, paths_, options);
  EXPECT_EQ(r.version.status, "rejected") << r.version.note;
  EXPECT_FALSE(r.promoted);
  EXPECT_NE(r.version.note.find("MNIST test "), std::string::npos) << r.version.note;
  EXPECT_NE(r.version.note.find(" < current "), std::string::npos) << r.version.note;
  EXPECT_NE(r.version.note.find("+ required margin 50.00%"), std::string::npos) << r.version.note;
  EXPECT_FALSE(store_->model_versions().at(0).is_default);
  EXPECT_TRUE(fs::exists(r.version.path)) << "a rejected model is kept";
  EXPECT_EQ(default_model(*store_, shipped_model()), shipped_model());
}

TEST_F(RetrainTest, BetterThanABadDefaultIsPromotedAndIsTheNextBase) {
  add_samples(20, 4);
  paths_.configured_model = zeroed_head_model();
  RetrainOptions options = tiny();
  options.lr = 3e-3f;
  const RetrainResult first = retrain(*store_, paths_, options);
  ASSERT_EQ(first.version.status, "ready") << first.version.note;
  std::printf("over a zeroed output layer: %s\n", first.version.note.c_str());
  EXPECT_TRUE(first.promoted);
  EXPECT_NE(first.version.note.find(" >= current "), std::string::npos) << first.version.note;
  EXPECT_EQ(default_model(*store_, paths_.configured_model), fs::path(first.version.path));

  options.required_margin = 0.5;  // quick, and the first stays the default
  const RetrainResult second = retrain(*store_, paths_, options);
  EXPECT_EQ(second.version.status, "rejected") << second.version.note;
  EXPECT_EQ(second.metrics["retrain"]["base_model"], first.version.path);
  EXPECT_NE(second.version.path, first.version.path);
  const std::vector<ModelVersion> versions = store_->model_versions();
  ASSERT_EQ(versions.size(), 2u);
  EXPECT_TRUE(versions[0].is_default);
  EXPECT_FALSE(versions[1].is_default);
}

TEST_F(RetrainTest, TheCurrentModelIsWeighedAsTheWorkersReadIt) {
  // model.default is read beside its partner: one that reads every image as 0 makes the pair
  // read 0 always (the mean of p and a sure 0 leans to 0), so the current model as it is read
  // gets only the 0s right, and the new one, read alone, is better.
  add_samples(20, 4);
  paths_.partner_model = zero_reader_model();
  const RetrainResult first = retrain(*store_, paths_, tiny());
  ASSERT_NE(first.version.status, "failed") << first.version.note;
  const nlohmann::json& m = first.metrics["retrain"];
  int64_t zeros = 0;
  for (int64_t i = 0; i < 300; ++i) zeros += mnist_test().labels[static_cast<size_t>(i)] == 0 ? 1 : 0;
  EXPECT_EQ(m["mnist_test"]["current"]["right"], zeros) << m.dump();
  EXPECT_EQ(m["current_reads_with"], nlohmann::json::array({"zero-reader.safetensors"}));
  EXPECT_TRUE(first.promoted) << first.version.note;
  EXPECT_NE(first.version.note.find("(with its partner)"), std::string::npos) << first.version.note;
  // The retrained default is read alone, and weighed so.
  RetrainOptions options = tiny();
  options.required_margin = 0.5;
  const RetrainResult second = retrain(*store_, paths_, options);
  EXPECT_EQ(second.metrics["retrain"]["current_reads_with"], nlohmann::json::array());
  EXPECT_GT(second.metrics["retrain"]["mnist_test"]["current"]["right"].get<int64_t>(), 250);
  EXPECT_EQ(second.version.note.find("with its"), std::string::npos) << second.version.note;
}

TEST_F(RetrainTest, TheScreenIsPartOfTheCurrentReadingToo) {
  // A screen sure of a 0 everywhere keeps its own reading for every image.
  add_samples(20, 4);
  paths_.screen_model = zero_reader_model();
  paths_.screen_confidence = 0.9f;
  const RetrainResult r = retrain(*store_, paths_, tiny());
  ASSERT_NE(r.version.status, "failed") << r.version.note;
  int64_t zeros = 0;
  for (int64_t i = 0; i < 300; ++i) zeros += mnist_test().labels[static_cast<size_t>(i)] == 0 ? 1 : 0;
  EXPECT_EQ(r.metrics["retrain"]["mnist_test"]["current"]["right"], zeros);
  EXPECT_EQ(r.metrics["retrain"]["current_reads_with"], nlohmann::json::array({"zero-reader.safetensors"}));
  EXPECT_NE(r.version.note.find("(with its screen)"), std::string::npos) << r.version.note;
}

TEST_F(RetrainTest, AMissingModelIsRecordedAsFailed) {
  add_samples(10, 2);
  paths_.configured_model = dir_ / "gone.safetensors";
  const RetrainResult r = retrain(*store_, paths_, tiny());
  EXPECT_EQ(r.version.status, "failed");
  EXPECT_NE(r.version.note.find("gone.safetensors"), std::string::npos) << r.version.note;
  const std::vector<ModelVersion> versions = store_->model_versions();
  ASSERT_EQ(versions.size(), 1u);
  EXPECT_EQ(versions[0].status, "failed");
  EXPECT_EQ(versions[0].note, r.version.note);
  EXPECT_FALSE(versions[0].is_default);
  EXPECT_FALSE(fs::exists(versions[0].path));
}

TEST_F(RetrainTest, ACancelIsRecordedAsFailed) {
  add_samples(10, 2);
  std::atomic<bool> cancel{false};
  const RetrainResult r = retrain(
      *store_, paths_, tiny(),
      [&](const RetrainProgress& p) {
        if (p.stage == "training" && p.step >= 2) cancel = true;
      },
      &cancel);
  EXPECT_EQ(r.version.status, "failed");
  EXPECT_NE(r.version.note.find("cancelled"), std::string::npos) << r.version.note;
  EXPECT_FALSE(store_->model_versions().at(0).is_default);
  EXPECT_FALSE(fs::exists(r.version.path));
}

// A version left "training" by a trainer that was killed (its hold lapsed) is recorded as
// failed when the next retrain starts; one whose trainer runs is held all along, though its
// hold is far shorter than the run and abandoned versions are swept all the while.
TEST_F(RetrainTest, AVersionItsKilledTrainerLeftIsRecordedFailedAndARunningOneIsHeld) {
  add_samples(10, 2);
  ModelVersion left;
  left.path = (dir_ / "left.safetensors").string();
  left.status = "training";
  const int64_t left_id = store_->add_model_version(left);
  EXPECT_EQ(fail_abandoned_versions(*store_), 0) << "held for kTrainingLeaseMs when added";
  ASSERT_TRUE(store_->hold_model_version(left_id, 0));  // its trainer's last word, long ago

  RetrainOptions options = tiny();
  options.steps = 60;
  options.lease_ms = 600;  // renewed every 150 ms
  const ModelVersion started = start_retrain(*store_, paths_, options);
  ASSERT_EQ(store_->model_versions().at(0).status, "failed");
  std::atomic<bool> running{true};
  std::atomic<int64_t> swept{0};
  std::unique_ptr<JobStore> other = open_sqlite_store(state_.sqlite_file());
  std::thread sweeper([&] {
    while (running) {
      swept += fail_abandoned_versions(*other);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  const auto t0 = std::chrono::steady_clock::now();
  const RetrainResult r = run_retrain(*store_, started, paths_, options);
  const auto took = std::chrono::steady_clock::now() - t0;
  running = false;
  sweeper.join();
  EXPECT_GT(took, std::chrono::milliseconds(options.lease_ms)) << "the run must outlast one hold to test its renewal";
  EXPECT_NE(r.version.status, "failed") << r.version.note;
  EXPECT_EQ(swept.load(), 0) << "the running version was taken for abandoned";
  const std::vector<ModelVersion> versions = store_->model_versions();
  ASSERT_EQ(versions.size(), 2u);
  EXPECT_NE(versions[0].note.find("stopped before it finished"), std::string::npos) << versions[0].note;
  EXPECT_EQ(versions[1].status, r.version.status);
  EXPECT_FALSE(store_->hold_model_version(left_id, 1000)) << "a failed version is no longer held";
}

// A run whose hold lapsed (its trainer paused past it) was recorded abandoned by another
// process: it stops, promotes nothing, and stays failed.
TEST_F(RetrainTest, ARunWhoseHoldLapsedPromotesNothing) {
  add_samples(10, 2);
  paths_.configured_model = zeroed_head_model();  // any retrain would beat it
  const ModelVersion started = start_retrain(*store_, paths_, tiny());
  ASSERT_TRUE(store_->hold_model_version(started.id, 0));
  ASSERT_EQ(fail_abandoned_versions(*store_), 1);
  const RetrainResult r = run_retrain(*store_, started, paths_, tiny());
  EXPECT_EQ(r.version.status, "failed");
  EXPECT_FALSE(r.promoted);
  EXPECT_NE(r.version.note.find("hold lapsed"), std::string::npos) << r.version.note;
  EXPECT_FALSE(store_->model_versions().at(0).is_default);
  EXPECT_EQ(default_model(*store_, paths_.configured_model), paths_.configured_model);
}

}  // namespace
}  // namespace digitflow::jobs

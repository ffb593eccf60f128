// Network building, model files (round trip bit-exact, refusals) and training: a tiny run
// that must learn, and the same seed giving the same weights.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>
#include <optional>
#include <span>
#include <vector>
#include <iostream>
#include <fstream>
#include <nlohmann/json.hpp>

#include "digitflow/kernels/model_file.hpp"
#include "digitflow/kernels/parallel.hpp"
#include "digitflow/kernels/trainer.hpp"
#include "test_support.hpp"
#include "training_loop.hpp"

namespace digitflow::kernels {
namespace {

ModelSpec small_spec() {
  ModelSpec spec;
  spec.name = "small";
  auto layer = [](LayerKind k) { return LayerSpec{k}; };
  LayerSpec conv{LayerKind::conv2d};
  conv.out = 8, conv.kernel = 3, conv.padding = 1, conv.bias = false;
  LayerSpec pool{LayerKind::maxpool};
  pool.kernel = 2, pool.stride = 2;
  LayerSpec conv2 = conv;
  conv2.out = 16;
  LayerSpec drop{LayerKind::dropout};
  drop.rate = 0.25f;
  LayerSpec dense{LayerKind::dense};
  dense.out = 10;
  spec.layers = {conv, layer(LayerKind::batchnorm2d), layer(LayerKind::relu), pool,
                 conv2, layer(LayerKind::batchnorm2d), layer(LayerKind::relu), pool,
                 layer(LayerKind::flatten), drop, dense};
  return spec;
}

TEST(Network, ShapesAndCounts) {
  Network net(small_spec());
  // conv 8*1*9 + bn 2*8 + conv 16*8*9 + bn 2*16 + dense 10*784 + 10
  EXPECT_EQ(net.parameter_count(), 72 + 16 + 1152 + 32 + 7840 + 10);
  Tensor x = testing::random_tensor(net.input_shape(5), 1);
  const Tensor& logits = net.forward(x, {});
  EXPECT_EQ(logits.shape(), (Shape{5, 10}));
  Tensor wrong({5, 1, 27, 28});
  EXPECT_THROW(net.forward(wrong, {}), std::invalid_argument);
}

// The logits of `net`'s layers run one by one (a convolution, then its batchnorm, then the
// ReLU), from copies of its tensors: what forward() folds into fewer passes.
Tensor layer_by_layer(Network& net, const Tensor& x) {
  std::map<std::string, const Tensor*> state;
  for (const auto& [name, tensor] : net.state()) state[name] = tensor;
  Tensor in = x.clone(), out;
  for (size_t i = 0; i < net.spec().layers.size(); ++i) {
    auto layer = make_layer(net.spec().layers[i], in.shape(), static_cast<int>(i));
    for (Parameter* p : layer->parameters()) std::memcpy(p->value.data(), state.at(p->name)->data(), p->value.numel() * sizeof(float));
    for (auto& [name, buffer] : layer->buffers()) std::memcpy(buffer->data(), state.at(name)->data(), buffer->numel() * sizeof(float));
    layer->forward(in, out, {});
    in = out.clone();
  }
  return in;
}

TEST(Network, InferenceFoldsBatchnormAndReluIntoTheConvolution) {
  ModelSpec with_bias = small_spec();
  with_bias.layers[0].bias = true;                                  // a convolution with a bias too
  with_bias.layers.erase(with_bias.layers.begin() + 6);             // and one batchnorm without a ReLU
  ModelSpec no_batchnorm = small_spec();                            // convolution and ReLU, as the seed model
  no_batchnorm.layers.erase(no_batchnorm.layers.begin() + 5);
  no_batchnorm.layers.erase(no_batchnorm.layers.begin() + 1);
  no_batchnorm.layers[0].bias = true;
  for (const ModelSpec& spec : {small_spec(), with_bias, no_batchnorm}) {
    Network net(spec, 3);
    // Batchnorm statistics and scales far from their initial (0, 1) values.
    std::vector<std::pair<std::string, Tensor>> state = net.copy_state();
    uint64_t seed = 10;
    for (auto& [name, tensor] : state) {
      tensor = testing::random_tensor(tensor.shape(), seed++);
      if (name.find("running_var") != std::string::npos)
        for (int64_t i = 0; i < tensor.numel(); ++i) tensor[i] = 0.2f + std::abs(tensor[i]);
    }
    net.load_state(state);
    const Tensor x = testing::random_tensor(net.input_shape(6), 2);
    const Tensor want = layer_by_layer(net, x);
    const Tensor& got = net.forward(x, {});
    ASSERT_EQ(got.shape(), want.shape());
    for (int64_t i = 0; i < got.numel(); ++i)
      EXPECT_NEAR(got[i], want[i], 1e-4f * (1.0f + std::abs(want[i]))) << spec.layers.size() << " layers, logit " << i;
  }
}

TEST(Network, RefusesAModelThatDoesNotEndInClasses) {
  ModelSpec spec = small_spec();
  spec.layers.back().out = 7;
  try {
    Network net(spec);
    FAIL() << "expected a refusal";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("last layer must be dense"), std::string::npos) << e.what();
  }
  ModelSpec no_flatten = small_spec();
  no_flatten.layers.erase(no_flatten.layers.begin() + 8);
  EXPECT_THROW(Network{no_flatten}, std::invalid_argument);
}

TEST(ModelFile, RoundTripIsBitExact) {
  testing::TempDir dir;
  Network net(small_spec(), 42);
  // Change batchnorm running statistics too, so buffers are covered.
  Tensor x = testing::random_tensor(net.input_shape(4), 2);
  net.forward(x, {true, 1, 0});
  save_model(dir / "m.safetensors", net, to_json(TrainConfig{}), {{"test_accuracy", 0.5}});
  LoadedModel loaded = load_model(dir / "m.safetensors");
  auto a = net.state(), b = loaded.network.state();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].first, b[i].first);
    ASSERT_EQ(a[i].second->shape(), b[i].second->shape());
    EXPECT_EQ(0, std::memcmp(a[i].second->data(), b[i].second->data(),
                             sizeof(float) * static_cast<size_t>(a[i].second->numel())))
        << a[i].first;
  }
  EXPECT_EQ(loaded.metrics["test_accuracy"], 0.5);
  EXPECT_EQ(train_config_from_json(loaded.train_config).epochs, TrainConfig{}.epochs);
  EXPECT_EQ(to_json(loaded.network.spec()), to_json(net.spec()));
  // Same inputs, same outputs.
  Tensor y1 = net.forward(x, {}).clone();
  const Tensor& y2 = loaded.network.forward(x, {});
  EXPECT_TRUE(testing::all_close(y2, y1, 0.0f, 0.0f));
}

TEST(ModelFile, RefusesForeignAndMismatchedFiles) {
  testing::TempDir dir;
  Tensor t({2, 2});
  save_safetensors(dir / "foreign.safetensors", {{"w", &t}}, {{"producer", "someone else"}});
  try {
    load_model(dir / "foreign.safetensors");
    FAIL();
  } catch (const ModelFileError& e) {
    EXPECT_NE(std::string(e.what()).find("not a digitflow model"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("foreign.safetensors"), std::string::npos) << e.what();
  }
  std::map<std::string, std::string> newer{{"format", kModelFormat}, {"format_version", "99"}};
  save_safetensors(dir / "newer.safetensors", {{"w", &t}}, newer);
  try {
    load_model(dir / "newer.safetensors");
    FAIL();
  } catch (const ModelFileError& e) {
    EXPECT_NE(std::string(e.what()).find("newer"), std::string::npos) << e.what();
  }
  Network net(small_spec());
  std::map<std::string, std::string> ours{{"format", kModelFormat},
                                          {"format_version", "1"},
                                          {"model", to_json(net.spec()).dump()},
                                          {"normalization", R"({"mean":0.1,"std":0.3})"}};
  save_safetensors(dir / "missing.safetensors", {{"layers.0.weight", &t}}, ours);
  try {
    load_model(dir / "missing.safetensors");
    FAIL();
  } catch (const ModelFileError& e) {
    EXPECT_NE(std::string(e.what()).find("layers.0.weight"), std::string::npos) << e.what();
  }
}

TEST(Network, BackwardNeedsATrainingForward) {
  Network net(small_spec());
  Tensor x = testing::random_tensor(net.input_shape(2), 1);
  Tensor dlogits({2, 10});
  net.forward(x, {});  // inference
  EXPECT_THROW(net.backward(dlogits), std::logic_error);
  net.forward(x, {true, 1, 0});
  EXPECT_NO_THROW(net.backward(dlogits));
}

TEST(Network, PrepareInputChecksThePixelCount) {
  Network net(small_spec());
  std::vector<uint8_t> pixels(2 * 784, 255);
  Tensor x;
  net.prepare_input(pixels, 2, x);
  EXPECT_EQ(x.shape(), (Shape{2, 1, 28, 28}));
  EXPECT_NEAR(x[0], (1.0f - 0.1307f) / 0.3081f, 1e-5);
  EXPECT_THROW(net.prepare_input(pixels, 3, x), std::invalid_argument);
  EXPECT_THROW(infer_probabilities(net, std::span<const uint8_t>(pixels).first(700), 1),
               std::invalid_argument);
}

TEST(Network, BatchnormRunningStatistics) {
  // One channel, values 1..8: mean 4.5, unbiased variance 6. Momentum 0.1 from (0, 1).
  LayerSpec bn{LayerKind::batchnorm2d};
  auto layer = make_layer(bn, {2, 1, 2, 2}, 0);
  layer->initialize(0);
  Tensor x = Tensor::from({2, 1, 2, 2}, std::vector<float>{1, 2, 3, 4, 5, 6, 7, 8}), y;
  layer->forward(x, y, {true, 0, 0});
  auto buffers = layer->buffers();
  ASSERT_EQ(buffers.size(), 2u);
  EXPECT_NEAR((*buffers[0].second)[0], 0.45f, 1e-6);
  EXPECT_NEAR((*buffers[1].second)[0], 0.9f + 0.1f * 6.0f, 1e-5);
  // Training output is normalised with the batch statistics.
  EXPECT_NEAR(y[0], (1 - 4.5f) / std::sqrt(5.25f + 1e-5f), 1e-5);
}

TEST(Evaluate, RefusesDataThatDoesNotFitTheModel) {
  Network net(small_spec());
  LabelledImages wrong_size;
  wrong_size.count = 2, wrong_size.rows = 32, wrong_size.cols = 32;
  wrong_size.pixels.resize(2 * 32 * 32);
  wrong_size.labels = {1, 2};
  EXPECT_THROW(evaluate(net, wrong_size), std::invalid_argument);
  LabelledImages bad_label;
  bad_label.count = 2, bad_label.rows = 28, bad_label.cols = 28;
  bad_label.pixels.resize(2 * 784);
  bad_label.labels = {1, 12};
  try {
    evaluate(net, bad_label);
    FAIL() << "label 12 accepted by a 10-class model";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("label 12"), std::string::npos) << e.what();
  }
}

TEST(ModelFile, RefusesBadVersionAndNormalization) {
  testing::TempDir dir;
  Network net(small_spec());
  Tensor t({2, 2});
  auto meta = [&](const std::string& version, const std::string& norm) {
    return std::map<std::string, std::string>{{"format", kModelFormat},
                                              {"format_version", version},
                                              {"model", to_json(net.spec()).dump()},
                                              {"normalization", norm}};
  };
  save_safetensors(dir / "v.safetensors", net.state(), meta("1abc", R"({"mean":0.1,"std":0.3})"));
  EXPECT_TRUE(testing::throws_with_message<ModelFileError>(
      [&] { load_model(dir / "v.safetensors"); }, {"v.safetensors", "format_version"}));
  save_safetensors(dir / "n.safetensors", net.state(), meta("1", R"({"mean":0.1,"std":0})"));
  EXPECT_TRUE(testing::throws_with_message<ModelFileError>(
      [&] { load_model(dir / "n.safetensors"); }, {"n.safetensors", "std > 0"}));
  nlohmann::json rgb = to_json(net.spec());
  rgb["input"]["channels"] = 3;
  EXPECT_THROW(model_spec_from_json(rgb), std::invalid_argument);
}

TEST(ModelFile, TruncatedModelIsRefused) {
  testing::TempDir dir;
  Network net(small_spec());
  save_model(dir / "m.safetensors", net, nullptr, nullptr);
  auto size = std::filesystem::file_size(dir / "m.safetensors");
  std::filesystem::resize_file(dir / "m.safetensors", size - 100);
  EXPECT_THROW(load_model(dir / "m.safetensors"), ModelFileError);
}

// A training checkpoint comes back from disk as it was written, figures bit-exact; a model
// file, a truncated checkpoint, one without an optimizer buffer or with a stray tensor is
// refused, naming the file.
TEST(ModelFile, CheckpointRoundTripAndRefusals) {
  testing::TempDir dir;
  Network net(small_spec(), 3);
  TrainConfig config;
  Optimizer optimizer(config, net.parameters());
  for (Parameter* p : net.parameters()) p->grad.fill(0.25f);
  optimizer.step(0.01f);
  TrainCheckpoint c;
  EpochMetrics m;
  m.epoch = 1, m.lr = 0.1 + 0.2, m.train_loss = 1.0 / 3.0, m.val_accuracy = 0.9123456789, m.improved = true;
  c.done.epochs = {m};
  c.done.best_epoch = 1, c.done.best_val_accuracy = m.val_accuracy, c.done.seconds = 12.5;
  c.stale_epochs = 0;
  c.weights = net.copy_state();
  c.best = net.copy_state();
  c.optimizer = optimizer.state();
  const auto path = dir / "run.checkpoint";
  save_checkpoint(path, c, {{"run", "quick"}});
  LoadedCheckpoint back = load_checkpoint(path);
  EXPECT_EQ(back.run, nlohmann::json({{"run", "quick"}}));
  ASSERT_EQ(back.checkpoint.epochs_done(), 1);
  EXPECT_EQ(back.checkpoint.done.epochs[0].lr, m.lr);
  EXPECT_EQ(back.checkpoint.done.epochs[0].train_loss, m.train_loss);
  EXPECT_EQ(back.checkpoint.done.epochs[0].val_accuracy, m.val_accuracy);
  EXPECT_TRUE(back.checkpoint.done.epochs[0].improved);
  EXPECT_EQ(back.checkpoint.done.seconds, 12.5);
  EXPECT_EQ(back.checkpoint.optimizer.steps, 1);
  ASSERT_EQ(back.checkpoint.optimizer.first.size(), c.optimizer.first.size());
  ASSERT_EQ(back.checkpoint.optimizer.second.size(), c.optimizer.second.size());
  for (size_t i = 0; i < c.optimizer.second.size(); ++i)
    EXPECT_EQ(0, std::memcmp(back.checkpoint.optimizer.second[i].data(), c.optimizer.second[i].data(),
                             sizeof(float) * static_cast<size_t>(c.optimizer.second[i].numel())));
  ASSERT_EQ(back.checkpoint.weights.size(), c.weights.size());
  EXPECT_EQ(back.checkpoint.weights[0].first, c.weights[0].first);
  Optimizer other(config, net.parameters());
  EXPECT_NO_THROW(other.restore(back.checkpoint.optimizer));

  save_model(dir / "m.safetensors", net, nullptr, nullptr);
  try {
    load_checkpoint(dir / "m.safetensors");
    ADD_FAILURE() << "a model file was read as a checkpoint";
  } catch (const ModelFileError& e) {
    EXPECT_NE(std::string(e.what()).find("m.safetensors: not a digitflow training checkpoint"), std::string::npos) << e.what();
  }
  // Without one optimizer buffer; with a tensor of no part.
  SafetensorsContent content = load_safetensors(path);
  auto rewrite = [&](const std::string& drop, const std::string& add) {
    std::vector<std::pair<std::string, const Tensor*>> tensors;
    for (const auto& [name, t] : content.tensors)
      if (name != drop) tensors.emplace_back(name, &t);
    if (!add.empty()) tensors.emplace_back(add, &content.tensors[0].second);
    save_safetensors(dir / "bad.checkpoint", tensors, content.metadata);
  };
  rewrite("optimizer/second/0", "");
  EXPECT_THROW(load_checkpoint(dir / "bad.checkpoint"), ModelFileError);
  rewrite("", "optimizer/first/999");
  EXPECT_THROW(load_checkpoint(dir / "bad.checkpoint"), ModelFileError);
  rewrite("", "stray");
  EXPECT_THROW(load_checkpoint(dir / "bad.checkpoint"), ModelFileError);
  std::filesystem::resize_file(path, std::filesystem::file_size(path) - 100);
  EXPECT_THROW(load_checkpoint(path), ModelFileError);
}

LabelledImages first_images(const LabelledImages& all, int64_t count) {
  LabelledImages d;
  d.count = count, d.rows = all.rows, d.cols = all.cols;
  d.pixels.assign(all.pixels.begin(), all.pixels.begin() + count * all.rows * all.cols);
  d.labels.assign(all.labels.begin(), all.labels.begin() + count);
  return d;
}

TrainConfig quick_config() {
  TrainConfig c;
  c.epochs = 4;
  c.batch_size = 64;
  c.lr = 0.004f;
  c.validation_images = 500;
  c.seed = 3;
  return c;
}

// 4,000 MNIST images, 4 epochs of the small model: at least 93% on 2,000 test images
// (it reaches about 96%; chance is 10%).
TEST(Training, TinyRunLearnsMnist) {
  if (!testing::mnist_available()) GTEST_SKIP() << "MNIST not in " << testing::mnist_dir() << ": run scripts/fetch-mnist.sh";
  LabelledImages train_set = first_images(load_mnist(testing::mnist_dir(), MnistSplit::train), 4000);
  LabelledImages test_set = first_images(load_mnist(testing::mnist_dir(), MnistSplit::test), 2000);
  Network net(small_spec(), 1);
  int epochs_seen = 0;
  TrainCallbacks callbacks;
  callbacks.on_epoch = [&](const EpochMetrics& m, Network&) {
    ++epochs_seen;
    EXPECT_GT(m.val_accuracy, 0.5) << "epoch " << m.epoch;
  };
  TrainResult result = train(net, train_set, quick_config(), callbacks);
  EXPECT_EQ(epochs_seen, 4);
  EXPECT_GE(result.best_epoch, 1);
  EvalResult eval = evaluate(net, test_set);
  std::cout << "tiny run: " << eval.accuracy * 100 << "% on 2,000 test images\n";
  EXPECT_GE(eval.accuracy, 0.93);
  EXPECT_EQ(eval.count, 2000);
  int64_t total = 0;
  for (auto& row : eval.confusion)
    for (int64_t v : row) total += v;
  EXPECT_EQ(total, 2000);
}

// Every tensor of two network states equal, bit for bit.
void expect_same_state(const std::vector<std::pair<std::string, Tensor>>& a,
                       const std::vector<std::pair<std::string, Tensor>>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].first, b[i].first);
    ASSERT_EQ(a[i].second.numel(), b[i].second.numel()) << a[i].first;
    EXPECT_EQ(0, std::memcmp(a[i].second.data(), b[i].second.data(), sizeof(float) * static_cast<size_t>(a[i].second.numel())))
        << a[i].first;
  }
}

// The same seed and thread count give bit-identical weights; another seed does not.
TEST(Training, DeterministicForAFixedSeed) {
  if (!testing::mnist_available()) GTEST_SKIP() << "MNIST not in " << testing::mnist_dir() << ": run scripts/fetch-mnist.sh";
  LabelledImages train_set = first_images(load_mnist(testing::mnist_dir(), MnistSplit::train), 1200);
  TrainConfig c = quick_config();
  c.epochs = 1;
  c.validation_images = 200;
  auto run = [&](int threads) {
    set_threads(threads);
    Network net(small_spec(), 9);
    train(net, train_set, c);
    set_threads(0);
    return net.copy_state();
  };
  auto a = run(2), b = run(2);
  expect_same_state(a, b);
  c.seed = 4;
  Network other(small_spec(), 9);
  train(other, train_set, c);
  auto d = other.copy_state();
  EXPECT_NE(0, std::memcmp(a[0].second.data(), d[0].second.data(), sizeof(float) * 8));
}

// A run stopped in its last epoch goes on from the checkpoint of the one before (its best
// epoch behind it, a stale count above 0), in a network made afresh, and ends with the
// weights, the best epoch and the per-epoch figures of the run that was never stopped. A
// checkpoint that does not fit is refused.
TEST(Training, AStoppedRunGoesOnFromItsCheckpointAsIfNeverStopped) {
  if (!testing::mnist_available()) GTEST_SKIP() << "MNIST not in " << testing::mnist_dir() << ": run scripts/fetch-mnist.sh";
  LabelledImages train_set = first_images(load_mnist(testing::mnist_dir(), MnistSplit::train), 1200);
  TrainConfig c = quick_config();
  c.epochs = 5;
  c.validation_images = 40;  // ties in validation accuracy: epochs that are not the best
  c.early_stop_patience = 3;  // its count of stale epochs travels with the checkpoint
  set_threads(2);

  Network whole(small_spec(), 9);
  int checkpoints = 0;
  TrainCallbacks counting;
  counting.on_checkpoint = [&](TrainCheckpoint&& cp) { EXPECT_EQ(cp.epochs_done(), ++checkpoints); };
  const TrainResult straight = train(whole, train_set, c, counting);
  EXPECT_EQ(checkpoints, c.epochs);
  EXPECT_FALSE(straight.stopped);

  Network first(small_spec(), 9);
  std::optional<TrainCheckpoint> saved;
  int batches_in_last_epoch = 0;
  TrainCallbacks stopping;
  stopping.on_checkpoint = [&](TrainCheckpoint&& cp) { saved = std::move(cp); };
  stopping.on_batch = [&](const TrainProgress& p) { batches_in_last_epoch += p.epoch == c.epochs; };
  stopping.should_stop = [&] { return batches_in_last_epoch == 5; };
  const TrainResult cut = train(first, train_set, c, stopping);
  EXPECT_TRUE(cut.stopped);
  ASSERT_EQ(cut.epochs.size(), static_cast<size_t>(c.epochs - 1));
  ASSERT_TRUE(saved.has_value());
  ASSERT_EQ(saved->epochs_done(), c.epochs - 1);
  // What the test is about: a checkpoint whose best epoch is behind it and whose stale count
  // is not 0 (each must travel for the end to be the same).
  ASSERT_LT(saved->done.best_epoch, saved->epochs_done());
  ASSERT_GT(saved->stale_epochs, 0);

  Network second(small_spec(), 77);  // other starting weights: the checkpoint's must win
  const TrainResult resumed = train(second, train_set, c, {}, Backend::cpu, {}, &*saved);
  set_threads(0);
  EXPECT_FALSE(resumed.stopped);
  ASSERT_EQ(resumed.epochs.size(), straight.epochs.size());
  for (size_t e = 0; e < straight.epochs.size(); ++e) {
    EXPECT_EQ(resumed.epochs[e].val_accuracy, straight.epochs[e].val_accuracy) << "epoch " << e + 1;
    EXPECT_EQ(resumed.epochs[e].train_loss, straight.epochs[e].train_loss) << "epoch " << e + 1;
  }
  EXPECT_EQ(resumed.best_epoch, straight.best_epoch);
  expect_same_state(whole.copy_state(), second.copy_state());

  // Another config's optimizer, another network, a finished run: refused before any work.
  TrainConfig sgd = c;
  sgd.optimizer = "sgd";
  Network third(small_spec(), 9);
  EXPECT_THROW(train(third, train_set, sgd, {}, Backend::cpu, {}, &*saved), std::invalid_argument);
  ModelSpec wider = small_spec();
  wider.layers[0].out = 12;
  Network other(wider, 9);
  EXPECT_THROW(train(other, train_set, c, {}, Backend::cpu, {}, &*saved), std::invalid_argument);
  // The checkpoint of a run that had ended (every epoch trained, or early stopping) trains
  // no further: its result, its best epoch's weights.
  TrainConfig every = c, patient = c;
  every.epochs = saved->epochs_done();
  patient.early_stop_patience = saved->stale_epochs;
  for (const TrainConfig& ended_config : {every, patient}) {
    Network ended(small_spec(), 5);
    int batches = 0;
    TrainCallbacks counting_batches;
    counting_batches.on_batch = [&](const TrainProgress&) { ++batches; };
    const TrainResult again = train(ended, train_set, ended_config, counting_batches, Backend::cpu, {}, &*saved);
    EXPECT_EQ(batches, 0);
    ASSERT_EQ(again.epochs.size(), static_cast<size_t>(saved->epochs_done()));
    EXPECT_EQ(again.best_epoch, saved->done.best_epoch);
    expect_same_state(ended.copy_state(), saved->best);
  }
}

TEST(Training, RefusesBadSettings) {
  LabelledImages tiny;
  tiny.count = 10, tiny.rows = 28, tiny.cols = 28;
  tiny.pixels.resize(7840);
  tiny.labels.resize(10);
  Network net(small_spec());
  TrainConfig c = quick_config();
  EXPECT_THROW(train(net, tiny, c), std::invalid_argument);  // fewer images than a batch
  c.validation_images = 0;
  c.batch_size = 4;
  c.optimizer = "adagrad";
  EXPECT_THROW(train(net, tiny, c), std::invalid_argument);
}

// Repeat counts: an image is drawn that many times an epoch, and the validation split is
// drawn from the images before they are repeated, so none is on both sides of it.
TEST(Training, RepeatCountsWeighImagesOutsideTheValidationSplit) {
  LabelledImages set;
  set.count = 200, set.rows = 28, set.cols = 28;
  set.pixels.resize(200u * 784);
  for (size_t i = 0; i < set.pixels.size(); ++i) set.pixels[i] = static_cast<uint8_t>((i * 2654435761u) >> 24);
  for (int i = 0; i < 200; ++i) set.labels.push_back(static_cast<uint8_t>(i % 10));
  TrainConfig c = quick_config();
  c.epochs = 1;
  c.batch_size = 16;
  c.validation_images = 40;
  auto batches_and_weights = [&](std::vector<uint8_t> repeats) {
    Network net(small_spec(), 9);
    int64_t batches = 0;
    TrainCallbacks callbacks;
    callbacks.on_batch = [&](const TrainProgress& p) { batches = p.batches; };
    train(net, set, c, callbacks, Backend::cpu, repeats);
    return std::make_pair(batches, net.copy_state());
  };
  const auto [plain_batches, plain] = batches_and_weights({});
  EXPECT_EQ(plain_batches, 160 / 16);
  const auto [once_batches, once] = batches_and_weights(std::vector<uint8_t>(200, 1));
  EXPECT_EQ(once_batches, plain_batches);
  for (size_t i = 0; i < plain.size(); ++i)
    EXPECT_EQ(0, std::memcmp(plain[i].second.data(), once[i].second.data(),
                             sizeof(float) * static_cast<size_t>(plain[i].second.numel())))
        << "every count 1 trains as no counts: " << plain[i].first;
  // 160 training images twice: 20 batches. Repeated before the split, 400 - 40 = 360 would be 22.
  EXPECT_EQ(batches_and_weights(std::vector<uint8_t>(200, 2)).first, 320 / 16);
  // Uneven counts: each training image listed as often as its count says, no validation image.
  std::vector<uint8_t> uneven(200);
  for (size_t i = 0; i < 200; ++i) uneven[i] = static_cast<uint8_t>(i % 3);
  Network net(small_spec(), 9);
  const detail::TrainingPlan plan = detail::plan_training(c, set, net, uneven);
  ASSERT_EQ(plan.validation.size(), 40u);
  std::vector<int> listed(200, 0);
  for (int64_t i : plan.training) ++listed[static_cast<size_t>(i)];
  std::vector<bool> validation(200, false);
  for (int64_t i : plan.validation) validation[static_cast<size_t>(i)] = true;
  size_t total = 0;
  for (size_t i = 0; i < 200; ++i) {
    EXPECT_EQ(listed[i], validation[i] ? 0 : uneven[i]) << "image " << i << (validation[i] ? ", held out" : "");
    total += validation[i] ? 0 : uneven[i];
  }
  EXPECT_EQ(plan.training.size(), total);
  EXPECT_EQ(plan.validation, detail::plan_training(c, set, net).validation) << "the counts do not move the split";
  EXPECT_THROW(train(net, set, c, {}, Backend::cpu, std::vector<uint8_t>(199, 1)), std::invalid_argument);
  EXPECT_THROW(train(net, set, c, {}, Backend::cpu, std::vector<uint8_t>(200, 0)), std::invalid_argument)
      << "no training image left";
}

TEST(Schedule, OneCycleAndCosine) {
  TrainConfig c;
  c.lr = 0.01f;
  c.warmup_fraction = 0.25f;
  c.schedule = "onecycle";
  EXPECT_NEAR(learning_rate(c, 0, 101), 0.01f / 25, 1e-7);
  EXPECT_NEAR(learning_rate(c, 25, 101), 0.01f, 1e-7);
  EXPECT_NEAR(learning_rate(c, 100, 101), 0.01f / 1e4, 1e-8);
  c.schedule = "cosine";
  EXPECT_GT(learning_rate(c, 0, 101), 0.0f) << "the first step learns";
  EXPECT_LT(learning_rate(c, 0, 101), 0.001f);
  EXPECT_NEAR(learning_rate(c, 25, 101), 0.01f, 1e-7);
  EXPECT_NEAR(learning_rate(c, 100, 101), 0.0f, 1e-8);
  c.schedule = "constant";
  EXPECT_EQ(learning_rate(c, 50, 101), 0.01f);
  c.schedule = "sometimes";
  EXPECT_THROW(learning_rate(c, 1, 10), std::invalid_argument);
}

TEST(Augment, IdentityWhenDisabledRangesAreZeroAndMovesInkOtherwise) {
  std::vector<uint8_t> src(784, 0), dst(784);
  for (int y = 10; y < 18; ++y)
    for (int x = 12; x < 16; ++x) src[static_cast<size_t>(y * 28 + x)] = 255;
  AugmentConfig none{true, 0, 0, 0, 0};
  random_affine(src.data(), 28, 28, none, 5, dst.data());
  EXPECT_EQ(src, dst);
  AugmentConfig shift{true, 3, 0, 0, 0};
  int moved = 0;
  for (uint64_t seed = 0; seed < 10; ++seed) {
    random_affine(src.data(), 28, 28, shift, seed, dst.data());
    moved += src != dst;
    std::vector<uint8_t> again(784);
    random_affine(src.data(), 28, 28, shift, seed, again.data());
    EXPECT_EQ(dst, again) << "same seed, same warp";
  }
  EXPECT_GE(moved, 8);
}

TEST(Optimizer, SgdAndAdamwStepAgainstHandComputedValues) {
  Parameter p{"w", Tensor::from({2}, std::vector<float>{1.0f, -2.0f}),
              Tensor::from({2}, std::vector<float>{0.5f, 0.25f}), true};
  TrainConfig c;
  c.optimizer = "sgd";
  c.momentum = 0.9f;
  c.nesterov = false;
  c.weight_decay = 0.1f;
  Optimizer sgd(c, {&p});
  sgd.step(0.1f);  // g = 0.5 + 0.1*1 = 0.6 -> w = 1 - 0.06
  EXPECT_NEAR(p.value[0], 0.94f, 1e-6);
  EXPECT_NEAR(p.value[1], -2.0f - 0.1f * (0.25f - 0.2f), 1e-6);
  Parameter q{"w", Tensor::from({1}, std::vector<float>{1.0f}),
              Tensor::from({1}, std::vector<float>{0.5f}), true};
  c.optimizer = "adamw";
  c.weight_decay = 0.01f;
  Optimizer adam(c, {&q});
  adam.step(0.1f);  // first Adam step moves by lr * sign(g); decay multiplies by 1 - lr*wd
  EXPECT_NEAR(q.value[0], 1.0f * (1 - 0.001f) - 0.1f, 1e-5);
}

}  // namespace
}  // namespace digitflow::kernels

// Tests of digitflow::config: the shipped YAML files load to the documented values, overrides
// apply in order, and every kind of mistake (unknown key, wrong type, bad range, malformed
// YAML, bad model) is a ConfigError that names the file or --set, the line and the key.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

#include "digitflow/config/config.hpp"
#include "test_support.hpp"

namespace digitflow::config {
namespace {

using digitflow::testing::source_dir;
using digitflow::testing::TempDir;
using kernels::LayerKind;

std::filesystem::path defaults_file() { return source_dir() / "config" / "digitflow.yaml"; }

std::filesystem::path write_file(const TempDir& dir, const std::string& name,
                                 const std::string& text) {
  const auto path = dir / name;
  std::ofstream(path) << text;
  return path;
}

// Runs `body`, which must throw ConfigError, and returns the error for further checks.
template <class Body>
ConfigError config_error(Body&& body) {
  try {
    body();
  } catch (const ConfigError& error) {
    return error;
  }
  ADD_FAILURE() << "expected a ConfigError";
  return ConfigError("(none)", 0, "", "no error");
}

bool mentions(const ConfigError& error, const std::string& text) {
  return std::string(error.what()).find(text) != std::string::npos;
}

// Unsets DIGITFLOW_DATA for a test and puts back what was there.
class DataVariableGuard {
 public:
  DataVariableGuard() {
    if (const char* value = std::getenv("DIGITFLOW_DATA")) saved_ = value;
    unsetenv("DIGITFLOW_DATA");
  }
  ~DataVariableGuard() {
    if (saved_) {
      setenv("DIGITFLOW_DATA", saved_->c_str(), 1);
    } else {
      unsetenv("DIGITFLOW_DATA");
    }
  }
  DataVariableGuard(const DataVariableGuard&) = delete;
  DataVariableGuard& operator=(const DataVariableGuard&) = delete;

 private:
  std::optional<std::string> saved_;
};

// ---- settings ----

TEST(Settings, ShippedDefaultsEqualBuiltInDefaults) {
  DataVariableGuard guard;
  const Settings settings = load_settings(defaults_file());
  EXPECT_EQ(settings_to_yaml(settings), settings_to_yaml(Settings{}));
  EXPECT_EQ(settings.data.dir, "data/mnist");
  EXPECT_EQ(settings.data.negatives, 0);
  EXPECT_EQ(settings.model.default_model, "models/digits.safetensors");
  EXPECT_EQ(settings.model.spec, "config/models/default.yaml");
  EXPECT_EQ(settings.train.epochs, 15);
  EXPECT_EQ(settings.train.optimizer, "adamw");
  EXPECT_FLOAT_EQ(settings.train.lr, 0.003f);
  EXPECT_EQ(settings.train.schedule, "onecycle");
  EXPECT_TRUE(settings.train.augment.enabled);
  EXPECT_FLOAT_EQ(settings.train.augment.shear_deg, 8.0f);
  EXPECT_EQ(settings.runtime.threads, 0);
  EXPECT_EQ(settings.runtime.backend, "cpu");
}

TEST(Settings, ShippedFilesDocumentEveryKey) {
  std::ifstream in(defaults_file());
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string text = buffer.str();
  for (const auto& key : setting_keys()) {
    const std::string leaf = key.substr(key.rfind('.') + 1);
    EXPECT_NE(text.find(leaf + ":"), std::string::npos) << key << " missing from digitflow.yaml";
  }
}

TEST(Settings, ShippedTrainConfigOverridesTrainKeys) {
  DataVariableGuard guard;
  const Settings settings =
      load_settings(defaults_file(), {source_dir() / "config" / "train.yaml"});
  EXPECT_FLOAT_EQ(settings.train.label_smoothing, 0.05f);
  EXPECT_EQ(settings.train.epochs, 20);  // digitflow.yaml says 15
  EXPECT_EQ(settings.data.negatives, 12000);  // the shipped model has class 10
  EXPECT_EQ(settings.model.spec, "config/models/default.yaml");
}

TEST(Settings, OverrideFilesThenSetApplyInOrder) {
  DataVariableGuard guard;
  TempDir dir;
  const auto first = write_file(dir, "first.yaml", "train:\n  epochs: 3\n  lr: 0.01\n");
  const auto second =
      write_file(dir, "second.yaml", "train:\n  lr: 0.02\n  augment:\n    enabled: false\n");

  Settings settings = load_settings(defaults_file(), {first, second});
  EXPECT_EQ(settings.train.epochs, 3);                  // only in the first file
  EXPECT_FLOAT_EQ(settings.train.lr, 0.02f);            // the later file wins
  EXPECT_FALSE(settings.train.augment.enabled);         // nested key replaced alone...
  EXPECT_FLOAT_EQ(settings.train.augment.shift, 2.5f);  // ...its siblings kept

  settings = load_settings(defaults_file(), {second, first});
  EXPECT_FLOAT_EQ(settings.train.lr, 0.01f);

  settings = load_settings(defaults_file(), {first, second},
                           {"train.lr=0.05", "train.augment.enabled=true", "train.lr = 0.07",
                            "runtime.backend=auto", "data.dir='my data'"});
  EXPECT_FLOAT_EQ(settings.train.lr, 0.07f);  // --set beats files; the last --set wins
  EXPECT_TRUE(settings.train.augment.enabled);
  EXPECT_EQ(settings.train.epochs, 3);
  EXPECT_EQ(settings.runtime.backend, "auto");
  EXPECT_EQ(settings.data.dir, "my data");
}

TEST(Settings, EmptyOverrideFileChangesNothing) {
  DataVariableGuard guard;
  TempDir dir;
  const auto empty = write_file(dir, "empty.yaml", "");
  const auto comments = write_file(dir, "comments.yaml", "# nothing yet\ntrain:\n");
  EXPECT_EQ(settings_to_yaml(load_settings(defaults_file(), {empty, comments})),
            settings_to_yaml(load_settings(defaults_file())));
}

TEST(Settings, DataVariableBeatsDefaultsButNotTheUser) {
  DataVariableGuard guard;
  setenv("DIGITFLOW_DATA", "/srv/mnist", 1);
  EXPECT_EQ(load_settings(defaults_file()).data.dir, "/srv/mnist");

  TempDir dir;
  const auto file = write_file(dir, "data.yaml", "data:\n  dir: /from/file\n");
  EXPECT_EQ(load_settings(defaults_file(), {file}).data.dir, "/from/file");
  EXPECT_EQ(load_settings(defaults_file(), {}, {"data.dir=/from/set"}).data.dir, "/from/set");

  setenv("DIGITFLOW_DATA", "", 1);
  EXPECT_EQ(load_settings(defaults_file()).data.dir, "data/mnist");
}

TEST(Settings, TrainThreadsFollowRuntimeThreadsWhenZero) {
  DataVariableGuard guard;
  EXPECT_EQ(load_settings(defaults_file(), {}, {"runtime.threads=2"}).train.threads, 2);
  EXPECT_EQ(
      load_settings(defaults_file(), {}, {"runtime.threads=2", "train.threads=1"}).train.threads,
      1);
}

TEST(Settings, YamlRoundTripKeepsEveryValue) {
  DataVariableGuard guard;
  const Settings changed = load_settings(defaults_file(), {},
                                         {"data.dir=/d",
                                          "data.negatives=250",
                                          "model.default=m.safetensors",
                                          "model.spec=s.yaml",
                                          "model.screen=",
                                          "model.partner=p.safetensors",
                                          "pipeline.screen_confidence=0.8",
                                          "train.epochs=7",
                                          "train.batch_size=64",
                                          "train.optimizer=sgd",
                                          "train.lr=0.1",
                                          "train.momentum=0.8",
                                          "train.nesterov=false",
                                          "train.beta2=0.99",
                                          "train.weight_decay=1e-4",
                                          "train.schedule=cosine",
                                          "train.warmup_fraction=0.05",
                                          "train.label_smoothing=0.1",
                                          "train.seed=18446744073709551615",
                                          "train.threads=3",
                                          "train.validation_images=0",
                                          "train.early_stop_patience=4",
                                          "train.augment.enabled=no",
                                          "train.augment.shift=1.5",
                                          "train.augment.rotation_deg=12.5",
                                          "train.augment.scale=0.15",
                                          "train.augment.shear_deg=0.3",
                                          "runtime.threads=5",
                                          "runtime.backend=cudnn"});
  EXPECT_EQ(changed.train.seed, 18446744073709551615ull);
  EXPECT_EQ(changed.model.partner, "p.safetensors");
  const std::string yaml = settings_to_yaml(changed);
  TempDir dir;
  const auto file = write_file(dir, "shown.yaml", yaml);
  EXPECT_EQ(settings_to_yaml(load_settings(file)), yaml);
  EXPECT_NE(yaml, settings_to_yaml(Settings{}));
}

TEST(Settings, UnknownKeyInFileNamesFileLineAndKey) {
  TempDir dir;
  const auto file = write_file(dir, "typo.yaml", "train:\n  epochs: 3\n  lrr: 0.1\n");
  const ConfigError error = config_error([&] { load_settings(defaults_file(), {file}); });
  EXPECT_EQ(error.source(), file.string());
  EXPECT_EQ(error.line(), 3);
  EXPECT_EQ(error.key(), "train.lrr");
  EXPECT_TRUE(mentions(error, file.string() + ":3: train.lrr")) << error.what();
  EXPECT_TRUE(mentions(error, "did you mean 'lr'")) << error.what();
  EXPECT_TRUE(mentions(error, "batch_size")) << error.what();  // the valid keys are listed
}

TEST(Settings, UnknownSectionAndNestedKey) {
  TempDir dir;
  const auto section = write_file(dir, "section.yaml", "runtime:\n  threads: 1\ntrainer:\n");
  ConfigError error = config_error([&] { load_settings(section); });
  EXPECT_EQ(error.line(), 3);
  EXPECT_EQ(error.key(), "trainer");
  EXPECT_TRUE(mentions(error, "did you mean 'train'")) << error.what();

  const auto nested =
      write_file(dir, "nested.yaml", "train:\n  augment:\n    enabled: true\n    rotation: 5\n");
  error = config_error([&] { load_settings(defaults_file(), {nested}); });
  EXPECT_EQ(error.line(), 4);
  EXPECT_EQ(error.key(), "train.augment.rotation");
  EXPECT_TRUE(mentions(error, "did you mean 'rotation_deg'")) << error.what();
  EXPECT_TRUE(mentions(error, "nested.yaml:4")) << error.what();
}

TEST(Settings, UnknownKeyInSet) {
  ConfigError error = config_error([&] { load_settings(defaults_file(), {}, {"train.lrr=0.1"}); });
  EXPECT_EQ(error.key(), "train.lrr");
  EXPECT_TRUE(mentions(error, "--set train.lrr=0.1")) << error.what();
  EXPECT_TRUE(mentions(error, "did you mean 'lr'")) << error.what();

  error = config_error([&] { load_settings(defaults_file(), {}, {"trian.lr=0.1"}); });
  EXPECT_TRUE(mentions(error, "did you mean 'train'")) << error.what();

  error = config_error([&] { load_settings(defaults_file(), {}, {"train.augment.sheer=1"}); });
  EXPECT_TRUE(mentions(error, "shear_deg")) << error.what();

  error = config_error([&] { load_settings(defaults_file(), {}, {"train.augment=false"}); });
  EXPECT_TRUE(mentions(error, "is a section")) << error.what();

  error = config_error([&] { load_settings(defaults_file(), {}, {"train.lr"}); });
  EXPECT_TRUE(mentions(error, "KEY=VALUE")) << error.what();

  error = config_error([&] { load_settings(defaults_file(), {}, {"=2"}); });
  EXPECT_TRUE(mentions(error, "no KEY before '='")) << error.what();
}

TEST(Settings, WrongTypeNamesLineAndKey) {
  TempDir dir;
  const auto words = write_file(dir, "words.yaml", "# comment\ntrain:\n  epochs: ten\n");
  ConfigError error = config_error([&] { load_settings(defaults_file(), {words}); });
  EXPECT_EQ(error.line(), 3);
  EXPECT_EQ(error.key(), "train.epochs");
  EXPECT_TRUE(mentions(error, "integer")) << error.what();
  EXPECT_TRUE(mentions(error, "'ten'")) << error.what();

  const auto fraction = write_file(dir, "fraction.yaml", "train:\n  batch_size: 12.5\n");
  EXPECT_EQ(config_error([&] { load_settings(defaults_file(), {fraction}); }).key(),
            "train.batch_size");

  const auto boolean = write_file(dir, "bool.yaml", "train:\n  nesterov: maybe\n");
  EXPECT_TRUE(
      mentions(config_error([&] { load_settings(defaults_file(), {boolean}); }), "true or false"));

  const auto list = write_file(dir, "list.yaml", "train:\n  lr: [0.1, 0.2]\n");
  error = config_error([&] { load_settings(defaults_file(), {list}); });
  EXPECT_EQ(error.key(), "train.lr");
  EXPECT_TRUE(mentions(error, "a list")) << error.what();

  const auto scalar_section = write_file(dir, "scalar.yaml", "train: fast\n");
  error = config_error([&] { load_settings(defaults_file(), {scalar_section}); });
  EXPECT_EQ(error.key(), "train");
  EXPECT_EQ(error.line(), 1);

  error = config_error([&] { load_settings(defaults_file(), {}, {"train.seed=-1"}); });
  EXPECT_EQ(error.key(), "train.seed");
}

TEST(Settings, OutOfRangeValuesAreErrors) {
  const auto rejects = [](const std::string& assignment, const std::string& key) {
    const ConfigError error =
        config_error([&] { load_settings(defaults_file(), {}, {assignment}); });
    EXPECT_EQ(error.key(), key) << assignment;
    EXPECT_TRUE(mentions(error, "expects")) << error.what();
  };
  rejects("train.lr=-0.1", "train.lr");
  rejects("train.lr=0", "train.lr");
  rejects("train.epochs=0", "train.epochs");
  rejects("train.momentum=1", "train.momentum");
  rejects("train.warmup_fraction=1.0", "train.warmup_fraction");
  rejects("train.label_smoothing=-0.1", "train.label_smoothing");
  rejects("train.augment.scale=1", "train.augment.scale");
  rejects("train.optimizer=adam", "train.optimizer");
  rejects("train.schedule=linear", "train.schedule");
  rejects("runtime.backend=tpu", "runtime.backend");
  rejects("runtime.threads=-2", "runtime.threads");
  rejects("runtime.int8=maybe", "runtime.int8");
  rejects("model.spec=", "model.spec");
  rejects("pipeline.screen_confidence=0", "pipeline.screen_confidence");
  rejects("pipeline.screen_confidence=1.5", "pipeline.screen_confidence");
  EXPECT_EQ(load_settings(defaults_file(), {}, {"model.screen="}).model.screen, "");  // "" turns the screen off
  rejects("data.negatives=-1", "data.negatives");
  rejects("data.negatives=1.5", "data.negatives");

  TempDir dir;
  const auto file = write_file(dir, "range.yaml", "train:\n  optimizer: adam\n");
  const ConfigError error = config_error([&] { load_settings(defaults_file(), {file}); });
  EXPECT_EQ(error.line(), 2);
  EXPECT_TRUE(mentions(error, "adamw, sgd")) << error.what();
}

TEST(Settings, MalformedYamlNamesFileAndLine) {
  TempDir dir;
  const auto file = write_file(dir, "broken.yaml", "train:\n  epochs: 3\n  lr: [0.1, 0.2\n");
  const ConfigError error = config_error([&] { load_settings(defaults_file(), {file}); });
  EXPECT_EQ(error.source(), file.string());
  EXPECT_GT(error.line(), 0);
  EXPECT_TRUE(mentions(error, "malformed YAML")) << error.what();

  const auto duplicate = write_file(dir, "dup.yaml", "train:\n  lr: 0.1\n  lr: 0.2\n");
  const ConfigError twice = config_error([&] { load_settings(defaults_file(), {duplicate}); });
  EXPECT_EQ(twice.line(), 3);
  EXPECT_TRUE(mentions(twice, "duplicate")) << twice.what();
}

TEST(Settings, MissingFileIsNamed) {
  TempDir dir;
  const ConfigError error =
      config_error([&] { load_settings(defaults_file(), {dir / "absent.yaml"}); });
  EXPECT_TRUE(mentions(error, "absent.yaml")) << error.what();
}

// ---- model files ----

TEST(ModelSpec, SeedYamlParsesToTheSeedModel) {
  const kernels::ModelSpec spec = load_model_spec(source_dir() / "config/models/seed.yaml");
  EXPECT_EQ(spec.name, "seed");
  EXPECT_EQ(spec.input_channels, 1);
  EXPECT_EQ(spec.input_height, 28);
  EXPECT_EQ(spec.input_width, 28);
  EXPECT_EQ(spec.classes, 10);
  const std::vector<LayerKind> kinds{LayerKind::conv2d,  LayerKind::relu,    LayerKind::conv2d,
                                     LayerKind::relu,    LayerKind::maxpool, LayerKind::dropout,
                                     LayerKind::flatten, LayerKind::dense,   LayerKind::relu,
                                     LayerKind::dropout, LayerKind::dense};
  ASSERT_EQ(spec.layers.size(), kinds.size());
  for (size_t i = 0; i < kinds.size(); ++i) EXPECT_EQ(spec.layers[i].kind, kinds[i]) << i;
  const auto& conv = spec.layers[0];
  EXPECT_EQ(conv.out, 32);
  EXPECT_EQ(conv.kernel, 3);
  EXPECT_EQ(conv.stride, 1);
  EXPECT_EQ(conv.padding, 0);
  EXPECT_TRUE(conv.bias);
  EXPECT_EQ(spec.layers[2].out, 64);
  EXPECT_EQ(spec.layers[4].kernel, 2);
  EXPECT_EQ(spec.layers[4].stride, 2);  // maxpool stride defaults to its kernel
  EXPECT_FLOAT_EQ(spec.layers[5].rate, 0.25f);
  EXPECT_EQ(spec.layers[7].out, 64);
  EXPECT_FLOAT_EQ(spec.layers[9].rate, 0.5f);
  EXPECT_EQ(spec.layers[10].out, 10);
}

TEST(ModelSpec, DefaultYamlParses) {
  const kernels::ModelSpec spec = load_model_spec(source_dir() / "config/models/default.yaml");
  EXPECT_EQ(spec.name, "default");
  ASSERT_FALSE(spec.layers.empty());
  EXPECT_EQ(spec.layers[0].kind, LayerKind::conv2d);
  EXPECT_EQ(spec.layers[0].padding, 1);
  EXPECT_FALSE(spec.layers[0].bias);
  EXPECT_EQ(spec.layers[1].kind, LayerKind::batchnorm2d);
  EXPECT_FLOAT_EQ(spec.layers[1].momentum, 0.1f);
  EXPECT_EQ(spec.layers.back().kind, LayerKind::dense);
  EXPECT_EQ(spec.classes, 11);  // digits and "not a digit"
  EXPECT_EQ(spec.layers.back().out, 11);
}

TEST(ModelSpec, OptionalFieldsAndParameters) {
  TempDir dir;
  const auto file = write_file(dir, "tiny.yaml",
                               "layers:\n"
                               "  - conv2d: {out: 4, kernel: 5, stride: 2, padding: 2}\n"
                               "  - batchnorm2d: {momentum: 0.01, eps: 1e-3}\n"
                               "  - relu:\n"
                               "  - maxpool: {kernel: 3, stride: 1}\n"
                               "  - flatten\n"
                               "  - dense: {out: 10, bias: false}\n");
  const kernels::ModelSpec spec = load_model_spec(file);
  EXPECT_EQ(spec.name, "tiny");  // the file's stem
  EXPECT_EQ(spec.layers[0].stride, 2);
  EXPECT_FLOAT_EQ(spec.layers[1].momentum, 0.01f);
  EXPECT_FLOAT_EQ(spec.layers[1].eps, 1e-3f);
  EXPECT_EQ(spec.layers[3].kernel, 3);
  EXPECT_EQ(spec.layers[3].stride, 1);
  EXPECT_FALSE(spec.layers[5].bias);
}

TEST(ModelSpec, UnknownLayerNamesFileLineAndIndex) {
  TempDir dir;
  const auto file = write_file(dir, "bad.yaml",
                               "name: bad\nlayers:\n  - conv2d: {out: 8}\n  - relu\n"
                               "  - convv2d: {out: 8}\n  - flatten\n  - dense: {out: 10}\n");
  const ConfigError error = config_error([&] { load_model_spec(file); });
  EXPECT_EQ(error.source(), file.string());
  EXPECT_EQ(error.line(), 5);
  EXPECT_EQ(error.key(), "layers[2].convv2d");
  EXPECT_TRUE(mentions(error, "did you mean 'conv2d'")) << error.what();
  EXPECT_TRUE(mentions(error, "batchnorm2d")) << error.what();
}

TEST(ModelSpec, UnknownTopLevelOrLayerKey) {
  TempDir dir;
  const auto top = write_file(dir, "top.yaml", "classes: 10\nlayer:\n  - flatten\n");
  ConfigError error = config_error([&] { load_model_spec(top); });
  EXPECT_EQ(error.key(), "layer");
  EXPECT_EQ(error.line(), 2);
  EXPECT_TRUE(mentions(error, "did you mean 'layers'")) << error.what();

  const auto param =
      write_file(dir, "param.yaml", "layers:\n  - flatten\n  - dense: {out: 10, units: 3}\n");
  error = config_error([&] { load_model_spec(param); });
  EXPECT_EQ(error.key(), "layers[1].dense.units");
  EXPECT_EQ(error.line(), 3);

  const auto relu = write_file(dir, "relu.yaml", "layers:\n  - relu: {inplace: true}\n");
  EXPECT_EQ(config_error([&] { load_model_spec(relu); }).key(), "layers[0].relu.inplace");
}

TEST(ModelSpec, BadValuesAndShapes) {
  TempDir dir;
  const auto check = [&](const std::string& layers, const std::string& key,
                         const std::string& text) {
    const auto file = write_file(dir, "m.yaml", "classes: 10\nlayers:\n" + layers);
    const ConfigError error = config_error([&] { load_model_spec(file); });
    EXPECT_EQ(error.key(), key) << error.what();
    EXPECT_TRUE(mentions(error, text)) << error.what();
  };
  check("  - flatten\n  - dropout: {rate: 1.0}\n  - dense: {out: 10}\n", "layers[1].dropout.rate",
        "< 1");
  check("  - conv2d: {kernel: 3}\n", "layers[0].conv2d", "needs 'out'");
  check("  - conv2d: {out: ten}\n", "layers[0].conv2d.out", "'ten'");
  check("  - flatten\n  - dense: {out: 64}\n", "layers[1].dense.out", "classes is 10");
  check("  - conv2d: {out: 8}\n  - dense: {out: 10}\n", "layers[1].dense", "flatten");
  check("  - flatten\n  - batchnorm2d\n  - dense: {out: 10}\n", "layers[1].batchnorm2d", "flatten");
  check("  - conv2d: {out: 8, kernel: 29}\n  - flatten\n  - dense: {out: 10}\n", "layers[0].conv2d",
        "does not fit");
  check("  - conv2d: {out: 8}\n  - relu\n", "layers", "no dense layer");
  check("  - conv2d: {out: 8}\n    relu:\n", "layers[0]", "expects a layer");
}

TEST(ModelSpec, EmptyOrMissingLayersIsAnError) {
  TempDir dir;
  const auto empty = write_file(dir, "empty.yaml", "");
  ConfigError error = config_error([&] { load_model_spec(empty); });
  EXPECT_EQ(error.source(), empty.string());
  EXPECT_TRUE(mentions(error, "empty")) << error.what();

  const auto no_layers = write_file(dir, "nolayers.yaml", "name: x\nclasses: 10\n");
  EXPECT_EQ(config_error([&] { load_model_spec(no_layers); }).key(), "layers");

  const auto empty_list = write_file(dir, "emptylist.yaml", "layers: []\n");
  EXPECT_EQ(config_error([&] { load_model_spec(empty_list); }).key(), "layers");

  const auto malformed = write_file(dir, "malformed.yaml", "layers:\n  - conv2d: {out: 8\n");
  EXPECT_TRUE(mentions(config_error([&] { load_model_spec(malformed); }), "malformed YAML"));
}

}  // namespace
}  // namespace digitflow::config

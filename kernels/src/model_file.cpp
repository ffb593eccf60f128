// Model files: our metadata on top of safetensors, checked field by field on load.
#include "digitflow/kernels/model_file.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>

namespace digitflow::kernels {

void save_model(const std::filesystem::path& path, Network& net,
                const nlohmann::json& train_config, const nlohmann::json& metrics) {
  std::map<std::string, std::string> meta;
  meta["format"] = kModelFormat;
  meta["format_version"] = std::to_string(kModelFormatVersion);
  meta["model"] = to_json(net.spec()).dump();
  meta["normalization"] =
      nlohmann::json{{"mean", net.normalization().mean}, {"std", net.normalization().std}}.dump();
  if (!train_config.is_null()) meta["train"] = train_config.dump();
  if (!metrics.is_null()) meta["metrics"] = metrics.dump();
  if (!net.int8_calibration().empty()) {
    nlohmann::json ranges = nlohmann::json::object();
    for (const auto& [layer, top] : net.int8_calibration().output_max) ranges[std::to_string(layer)] = top;
    meta["int8_calibration"] = nlohmann::json{{"images", net.int8_calibration().images}, {"output_max", ranges}}.dump();
  }
  save_safetensors(path, net.state(), meta);
}

LoadedModel load_model(const std::filesystem::path& path) {
  SafetensorsContent content = load_safetensors(path);
  const std::string where = path.string() + ": ";
  auto& meta = content.metadata;
  if (meta.find("format") == meta.end() || meta["format"] != kModelFormat)
    throw ModelFileError(where + "not a digitflow model (safetensors without digitflow metadata)");
  int version = 0;
  const std::string& version_text = meta["format_version"];
  size_t used = 0;
  try {
    version = std::stoi(version_text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != version_text.size() || version < 1)
    throw ModelFileError(where + "bad format_version '" + version_text + "'");
  if (version > kModelFormatVersion)
    throw ModelFileError(where + "model format version " + std::to_string(version) +
                         " is newer than this build understands (" +
                         std::to_string(kModelFormatVersion) + "); upgrade digitflow");
  auto parse = [&](const char* key, bool required) -> nlohmann::json {
    auto it = meta.find(key);
    if (it == meta.end()) {
      if (required) throw ModelFileError(where + "metadata has no '" + key + "'");
      return nullptr;
    }
    try {
      return nlohmann::json::parse(it->second);
    } catch (const nlohmann::json::exception&) {
      throw ModelFileError(where + "metadata '" + key + "' is not valid JSON");
    }
  };
  try {
    ModelSpec spec = model_spec_from_json(parse("model", true));
    Network net(spec);
    nlohmann::json norm = parse("normalization", true);
    const float mean = norm.at("mean").get<float>(), stdev = norm.at("std").get<float>();
    if (!std::isfinite(mean) || !std::isfinite(stdev) || !(stdev > 0.0f))
      throw ModelFileError(where + "input normalization needs a finite mean and std > 0");
    net.set_normalization({mean, stdev});
    net.load_state(content.tensors);
    if (nlohmann::json calibration = parse("int8_calibration", false); !calibration.is_null()) {
      const std::string bad = where + "metadata 'int8_calibration' ";
      if (!calibration.is_object() || !calibration.contains("images") || !calibration["images"].is_number_integer() ||
          calibration["images"].get<int64_t>() <= 0 || !calibration.contains("output_max") ||
          !calibration["output_max"].is_object())
        throw ModelFileError(bad + "needs {\"images\": a count > 0, \"output_max\": {layer: range}}");
      Int8Calibration c;
      c.images = calibration["images"].get<int64_t>();
      for (const auto& [layer, top] : calibration["output_max"].items()) {
        int index = -1;
        const auto [end, error] = std::from_chars(layer.data(), layer.data() + layer.size(), index);
        const bool a_conv = error == std::errc() && end == layer.data() + layer.size() && index >= 0 &&
                            index < static_cast<int>(spec.layers.size()) &&
                            spec.layers[static_cast<size_t>(index)].kind == LayerKind::conv2d;
        if (!a_conv || !top.is_number() || !std::isfinite(top.get<double>()) || top.get<double>() < 0.0)
          throw ModelFileError(bad + "gives " + top.dump() + " for layer '" + layer +
                               "', which is not a convolution of this model with a finite range >= 0");
        c.output_max[index] = top.get<float>();
      }
      net.set_int8_calibration(std::move(c));
    }
    return {std::move(net), parse("train", false), parse("metrics", false)};
  } catch (const ModelFileError&) {
    throw;
  } catch (const std::exception& e) {
    throw ModelFileError(where + "does not describe a usable model: " + e.what());
  }
}

namespace {

nlohmann::json epoch_json(const EpochMetrics& m) {
  return {{"epoch", m.epoch},           {"lr", m.lr},           {"train_loss", m.train_loss},
          {"train_accuracy", m.train_accuracy}, {"val_loss", m.val_loss}, {"val_accuracy", m.val_accuracy},
          {"seconds", m.seconds},       {"images_per_s", m.images_per_s}, {"improved", m.improved}};
}

EpochMetrics epoch_from_json(const nlohmann::json& j) {
  EpochMetrics m;
  m.epoch = j.at("epoch").get<int>();
  m.lr = j.at("lr").get<double>();
  m.train_loss = j.at("train_loss").get<double>();
  m.train_accuracy = j.at("train_accuracy").get<double>();
  m.val_loss = j.at("val_loss").get<double>();
  m.val_accuracy = j.at("val_accuracy").get<double>();
  m.seconds = j.at("seconds").get<double>();
  m.images_per_s = j.at("images_per_s").get<double>();
  m.improved = j.at("improved").get<bool>();
  return m;
}

}  // namespace

// Tensors are named "weights/<name>", "best/<name>", "optimizer/first/<i>" and
// "optimizer/second/<i>"; doubles go through JSON, which writes them exactly.
void save_checkpoint(const std::filesystem::path& path, const TrainCheckpoint& c, const nlohmann::json& run) {
  std::vector<std::pair<std::string, const Tensor*>> tensors;
  for (const auto& [name, t] : c.weights) tensors.emplace_back("weights/" + name, &t);
  for (const auto& [name, t] : c.best) tensors.emplace_back("best/" + name, &t);
  for (size_t i = 0; i < c.optimizer.first.size(); ++i)
    tensors.emplace_back("optimizer/first/" + std::to_string(i), &c.optimizer.first[i]);
  for (size_t i = 0; i < c.optimizer.second.size(); ++i)
    tensors.emplace_back("optimizer/second/" + std::to_string(i), &c.optimizer.second[i]);
  nlohmann::json epochs = nlohmann::json::array();
  for (const EpochMetrics& m : c.done.epochs) epochs.push_back(epoch_json(m));
  std::map<std::string, std::string> meta;
  meta["format"] = kCheckpointFormat;
  meta["format_version"] = "1";
  meta["progress"] = nlohmann::json{{"epochs", epochs},
                                    {"best_epoch", c.done.best_epoch},
                                    {"best_val_accuracy", c.done.best_val_accuracy},
                                    {"seconds", c.done.seconds},
                                    {"stale_epochs", c.stale_epochs},
                                    {"optimizer_steps", c.optimizer.steps},
                                    {"optimizer_first", c.optimizer.first.size()},
                                    {"optimizer_second", c.optimizer.second.size()}}
                         .dump();
  meta["run"] = run.dump();
  save_safetensors(path, tensors, meta);
}

LoadedCheckpoint load_checkpoint(const std::filesystem::path& path) {
  SafetensorsContent content = load_safetensors(path);
  const std::string where = path.string() + ": ";
  auto& meta = content.metadata;
  if (meta.find("format") == meta.end() || meta["format"] != kCheckpointFormat)
    throw ModelFileError(where + "not a digitflow training checkpoint");
  if (meta["format_version"] != "1")
    throw ModelFileError(where + "checkpoint format version '" + meta["format_version"] +
                         "' is not one this build reads (1)");
  LoadedCheckpoint out;
  TrainCheckpoint& c = out.checkpoint;
  try {
    const nlohmann::json progress = nlohmann::json::parse(meta["progress"]);
    out.run = nlohmann::json::parse(meta["run"]);
    for (const nlohmann::json& e : progress.at("epochs")) c.done.epochs.push_back(epoch_from_json(e));
    c.done.best_epoch = progress.at("best_epoch").get<int>();
    c.done.best_val_accuracy = progress.at("best_val_accuracy").get<double>();
    c.done.seconds = progress.at("seconds").get<double>();
    c.stale_epochs = progress.at("stale_epochs").get<int>();
    c.optimizer.steps = progress.at("optimizer_steps").get<int64_t>();
    const size_t first = progress.at("optimizer_first").get<size_t>(), second = progress.at("optimizer_second").get<size_t>();
    c.optimizer.first.resize(first);
    c.optimizer.second.resize(second);
    std::vector<bool> seen(first + second, false);
    for (auto& [name, t] : content.tensors) {
      auto slot = [&](const std::string& prefix, std::vector<Tensor>& into, size_t offset) {
        if (name.rfind(prefix, 0) != 0) return false;
        const std::string index = name.substr(prefix.size());
        size_t i = 0;
        const auto [end, error] = std::from_chars(index.data(), index.data() + index.size(), i);
        if (error != std::errc() || end != index.data() + index.size() || i >= into.size() || seen[offset + i])
          throw ModelFileError(where + "unexpected tensor '" + name + "'");
        seen[offset + i] = true;
        into[i] = std::move(t);
        return true;
      };
      if (name.rfind("weights/", 0) == 0)
        c.weights.emplace_back(name.substr(8), std::move(t));
      else if (name.rfind("best/", 0) == 0)
        c.best.emplace_back(name.substr(5), std::move(t));
      else if (!slot("optimizer/first/", c.optimizer.first, 0) && !slot("optimizer/second/", c.optimizer.second, first))
        throw ModelFileError(where + "unexpected tensor '" + name + "'");
    }
    if (std::find(seen.begin(), seen.end(), false) != seen.end())
      throw ModelFileError(where + "optimizer buffers are missing");
  } catch (const nlohmann::json::exception& e) {
    throw ModelFileError(where + "bad checkpoint metadata (" + e.what() + ")");
  }
  if (c.done.epochs.empty() || c.weights.empty())
    throw ModelFileError(where + "holds no finished epoch");
  return out;
}

}  // namespace digitflow::kernels

// Model files: our metadata on top of safetensors, checked field by field on load.
#include "digitflow/kernels/model_file.hpp"

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

}  // namespace digitflow::kernels

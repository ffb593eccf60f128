// ModelSpec and TrainConfig to and from JSON, the form they take in model files.
#include "digitflow/kernels/model_spec.hpp"

#include <nlohmann/json.hpp>
#include <stdexcept>

#include "digitflow/kernels/train_config.hpp"

namespace digitflow::kernels {

namespace {
constexpr std::pair<LayerKind, const char*> kNames[] = {
    {LayerKind::conv2d, "conv2d"},   {LayerKind::batchnorm2d, "batchnorm2d"},
    {LayerKind::relu, "relu"},       {LayerKind::maxpool, "maxpool"},
    {LayerKind::dropout, "dropout"}, {LayerKind::flatten, "flatten"},
    {LayerKind::dense, "dense"}};

template <typename T>
T get(const nlohmann::json& j, const char* key, const std::string& where) {
  if (!j.contains(key)) throw std::invalid_argument(where + ": missing key '" + key + "'");
  try {
    return j.at(key).get<T>();
  } catch (const nlohmann::json::exception&) {
    throw std::invalid_argument(where + ": key '" + key + "' has the wrong type");
  }
}
}  // namespace

std::string to_string(LayerKind kind) {
  for (auto& [k, name] : kNames)
    if (k == kind) return name;
  return "?";
}

LayerKind layer_kind_from_string(const std::string& name) {
  for (auto& [k, n] : kNames)
    if (name == n) return k;
  throw std::invalid_argument("unknown layer '" + name +
                              "' (known: conv2d, batchnorm2d, relu, maxpool, dropout, flatten, dense)");
}

nlohmann::json to_json(const ModelSpec& spec) {
  nlohmann::json layers = nlohmann::json::array();
  for (const LayerSpec& l : spec.layers) {
    nlohmann::json j = {{"type", to_string(l.kind)}};
    switch (l.kind) {
      case LayerKind::conv2d:
        j.update({{"out", l.out}, {"kernel", l.kernel}, {"stride", l.stride},
                  {"padding", l.padding}, {"bias", l.bias}});
        break;
      case LayerKind::dense: j.update({{"out", l.out}, {"bias", l.bias}}); break;
      case LayerKind::maxpool: j.update({{"kernel", l.kernel}, {"stride", l.stride}}); break;
      case LayerKind::dropout: j["rate"] = l.rate; break;
      case LayerKind::batchnorm2d: j.update({{"momentum", l.momentum}, {"eps", l.eps}}); break;
      default: break;
    }
    layers.push_back(j);
  }
  return {{"name", spec.name},
          {"input", {{"channels", spec.input_channels}, {"height", spec.input_height},
                     {"width", spec.input_width}}},
          {"classes", spec.classes},
          {"layers", layers}};
}

ModelSpec model_spec_from_json(const nlohmann::json& j) {
  if (!j.is_object()) throw std::invalid_argument("model description is not a JSON object");
  ModelSpec spec;
  spec.name = get<std::string>(j, "name", "model");
  const auto& input = j.contains("input") ? j.at("input") : nlohmann::json::object();
  spec.input_channels = get<int>(input, "channels", "model input");
  spec.input_height = get<int>(input, "height", "model input");
  spec.input_width = get<int>(input, "width", "model input");
  spec.classes = get<int>(j, "classes", "model");
  if (spec.input_channels != 1)
    throw std::invalid_argument("model input has " + std::to_string(spec.input_channels) +
                                " channels; only 1 (grey pixels) is supported");
  if (spec.input_height < 1 || spec.input_height > 4096 || spec.input_width < 1 ||
      spec.input_width > 4096)
    throw std::invalid_argument("model input size out of range (1..4096)");
  if (spec.classes < 2 || spec.classes > 256)
    throw std::invalid_argument("model classes out of range (2..256)");
  if (!j.contains("layers") || !j.at("layers").is_array())
    throw std::invalid_argument("model: 'layers' must be a list");
  int index = 0;
  for (const auto& lj : j.at("layers")) {
    std::string where = "model layer " + std::to_string(index++);
    LayerSpec l;
    l.kind = layer_kind_from_string(get<std::string>(lj, "type", where));
    switch (l.kind) {
      case LayerKind::conv2d:
        l.out = get<int>(lj, "out", where);
        l.kernel = get<int>(lj, "kernel", where);
        l.stride = get<int>(lj, "stride", where);
        l.padding = get<int>(lj, "padding", where);
        l.bias = get<bool>(lj, "bias", where);
        break;
      case LayerKind::dense:
        l.out = get<int>(lj, "out", where);
        l.bias = get<bool>(lj, "bias", where);
        break;
      case LayerKind::maxpool:
        l.kernel = get<int>(lj, "kernel", where);
        l.stride = get<int>(lj, "stride", where);
        break;
      case LayerKind::dropout: l.rate = get<float>(lj, "rate", where); break;
      case LayerKind::batchnorm2d:
        l.momentum = get<float>(lj, "momentum", where);
        l.eps = get<float>(lj, "eps", where);
        if (!(l.eps > 0.0f) || !(l.momentum > 0.0f && l.momentum <= 1.0f))
          throw std::invalid_argument(where + ": batchnorm needs eps > 0 and momentum in (0, 1]");
        break;
      default: break;
    }
    spec.layers.push_back(l);
  }
  return spec;
}

nlohmann::json to_json(const TrainConfig& c) {
  return {{"epochs", c.epochs},
          {"batch_size", c.batch_size},
          {"optimizer", c.optimizer},
          {"lr", c.lr},
          {"momentum", c.momentum},
          {"nesterov", c.nesterov},
          {"beta2", c.beta2},
          {"weight_decay", c.weight_decay},
          {"schedule", c.schedule},
          {"warmup_fraction", c.warmup_fraction},
          {"label_smoothing", c.label_smoothing},
          {"seed", c.seed},
          {"threads", c.threads},
          {"validation_images", c.validation_images},
          {"early_stop_patience", c.early_stop_patience},
          {"augment",
           {{"enabled", c.augment.enabled}, {"shift", c.augment.shift},
            {"rotation_deg", c.augment.rotation_deg}, {"scale", c.augment.scale},
            {"shear_deg", c.augment.shear_deg}}}};
}

TrainConfig train_config_from_json(const nlohmann::json& j) {
  TrainConfig c;
  const std::string w = "training config";
  c.epochs = get<int>(j, "epochs", w);
  c.batch_size = get<int>(j, "batch_size", w);
  c.optimizer = get<std::string>(j, "optimizer", w);
  c.lr = get<float>(j, "lr", w);
  c.momentum = get<float>(j, "momentum", w);
  c.nesterov = get<bool>(j, "nesterov", w);
  c.beta2 = get<float>(j, "beta2", w);
  c.weight_decay = get<float>(j, "weight_decay", w);
  c.schedule = get<std::string>(j, "schedule", w);
  c.warmup_fraction = get<float>(j, "warmup_fraction", w);
  c.label_smoothing = get<float>(j, "label_smoothing", w);
  c.seed = get<uint64_t>(j, "seed", w);
  c.threads = get<int>(j, "threads", w);
  c.validation_images = get<int>(j, "validation_images", w);
  c.early_stop_patience = get<int>(j, "early_stop_patience", w);
  const auto& a = j.contains("augment") ? j.at("augment") : nlohmann::json::object();
  c.augment.enabled = get<bool>(a, "enabled", w + " augment");
  c.augment.shift = get<float>(a, "shift", w + " augment");
  c.augment.rotation_deg = get<float>(a, "rotation_deg", w + " augment");
  c.augment.scale = get<float>(a, "scale", w + " augment");
  c.augment.shear_deg = get<float>(a, "shear_deg", w + " augment");
  return c;
}

}  // namespace digitflow::kernels

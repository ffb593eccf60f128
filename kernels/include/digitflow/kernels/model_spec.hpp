// ModelSpec: a model as a plain list of layer specs, independent of YAML. `config` builds
// it from config/models/*.yaml; the model file stores it as JSON in its metadata.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

namespace digitflow::kernels {

enum class LayerKind { conv2d, batchnorm2d, relu, maxpool, dropout, flatten, dense };

struct LayerSpec {
  LayerKind kind = LayerKind::relu;
  // conv2d: out_channels, kernel, stride, padding, bias. dense: units, bias.
  int out = 0;
  int kernel = 3;
  int stride = 1;
  int padding = 0;
  bool bias = true;
  // maxpool: kernel (size) and stride (defaults to kernel).
  // dropout: rate in [0, 1).
  float rate = 0.0f;
  // batchnorm2d: momentum of the running statistics and epsilon.
  float momentum = 0.1f;
  float eps = 1e-5f;
};

struct ModelSpec {
  std::string name;
  int input_channels = 1;
  int input_height = 28;
  int input_width = 28;
  int classes = 10;
  std::vector<LayerSpec> layers;
};

std::string to_string(LayerKind kind);
LayerKind layer_kind_from_string(const std::string& name);  // throws std::invalid_argument

// JSON round trip (the form stored in model files). from_json throws std::invalid_argument
// with the offending key on malformed input.
nlohmann::json to_json(const ModelSpec& spec);
ModelSpec model_spec_from_json(const nlohmann::json& json);

}  // namespace digitflow::kernels

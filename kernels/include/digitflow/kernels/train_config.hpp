// Training settings, plain data: `config` fills them from YAML and --set overrides, the
// trainer reads them, and the model file keeps them (as JSON) in its metadata.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>

namespace digitflow::kernels {

struct AugmentConfig {
  bool enabled = true;
  float shift = 2.5f;          // pixels, uniform in [-shift, shift] on each axis
  float rotation_deg = 10.0f;  // uniform in [-rotation, rotation]
  float scale = 0.10f;         // uniform factor in [1 - scale, 1 + scale]
  float shear_deg = 8.0f;      // uniform in [-shear, shear]
};

struct TrainConfig {
  int epochs = 15;
  int batch_size = 128;
  std::string optimizer = "adamw";  // "adamw" | "sgd"
  float lr = 0.003f;                // peak learning rate
  float momentum = 0.9f;            // sgd momentum; adamw beta1
  bool nesterov = true;             // sgd only
  float beta2 = 0.999f;             // adamw
  float weight_decay = 5e-4f;       // decoupled for adamw, L2 for sgd
  std::string schedule = "onecycle";  // "onecycle" | "cosine" | "constant"
  float warmup_fraction = 0.2f;       // share of steps rising to the peak (onecycle, cosine)
  float label_smoothing = 0.0f;
  uint64_t seed = 1;
  int threads = 0;                      // 0: every core
  int validation_images = 5000;         // held out of the training set
  int early_stop_patience = 0;          // epochs without a better validation score; 0: off
  AugmentConfig augment;
};

nlohmann::json to_json(const TrainConfig& config);
TrainConfig train_config_from_json(const nlohmann::json& json);  // throws std::invalid_argument

}  // namespace digitflow::kernels

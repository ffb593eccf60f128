// A model on disk: a safetensors file whose tensors are the network's state and whose
// "__metadata__" holds the ModelSpec, the input normalisation, the training config and the
// final metrics (each as JSON text), the int8 calibration when the model has one, plus a
// format name and version.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>

#include "digitflow/kernels/network.hpp"
#include "digitflow/kernels/safetensors.hpp"
#include "digitflow/kernels/trainer.hpp"

namespace digitflow::kernels {

inline constexpr const char* kModelFormat = "digitflow.model";
inline constexpr int kModelFormatVersion = 1;

struct LoadedModel {
  Network network;
  nlohmann::json train_config;  // null when absent
  nlohmann::json metrics;       // null when absent
};

// Atomic save (see safetensors.hpp). train_config and metrics may be null.
void save_model(const std::filesystem::path& path, Network& net,
                const nlohmann::json& train_config, const nlohmann::json& metrics);
// Throws ModelFileError naming the file: not safetensors, not ours, newer version, a
// description that does not match its tensors.
LoadedModel load_model(const std::filesystem::path& path);

// A training checkpoint on disk (digitflow train writes one after each epoch): safetensors
// holding the network's weights, the best epoch's and the optimizer's buffers, with the
// finished epochs' figures and `run` (what the run was: the caller's JSON, compared before
// going on) in the metadata. Atomic save.
inline constexpr const char* kCheckpointFormat = "digitflow.checkpoint";
void save_checkpoint(const std::filesystem::path& path, const TrainCheckpoint& checkpoint, const nlohmann::json& run);
struct LoadedCheckpoint {
  TrainCheckpoint checkpoint;
  nlohmann::json run;
};
// Throws ModelFileError naming the file: not a checkpoint, truncated, inconsistent.
LoadedCheckpoint load_checkpoint(const std::filesystem::path& path);

}  // namespace digitflow::kernels

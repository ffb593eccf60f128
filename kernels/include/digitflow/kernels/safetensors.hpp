// The safetensors format: 8-byte little-endian header length, a JSON header naming each
// tensor's dtype, shape and byte range, then the raw little-endian data. We write F32
// only and store our own metadata as strings under "__metadata__". Saves are atomic
// (temp file, fsync, rename); loads refuse truncated, corrupt or foreign files.
#pragma once

#include <filesystem>
#include <map>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "digitflow/kernels/tensor.hpp"

namespace digitflow::kernels {

class ModelFileError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct SafetensorsContent {
  std::map<std::string, std::string> metadata;
  std::vector<std::pair<std::string, Tensor>> tensors;  // in file order
};

void save_safetensors(const std::filesystem::path& path,
                      const std::vector<std::pair<std::string, const Tensor*>>& tensors,
                      const std::map<std::string, std::string>& metadata);
SafetensorsContent load_safetensors(const std::filesystem::path& path);  // throws ModelFileError

}  // namespace digitflow::kernels

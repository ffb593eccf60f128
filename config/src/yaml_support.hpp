// Small pieces shared by the YAML readers of this folder (settings, templates): reading a
// file, the line of a node for error messages, and lists joined for "expected one of ...".
#pragma once

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "digitflow/config/config.hpp"

namespace digitflow::config::detail {

// 1-based line of `node` in its file, 0 when unknown.
inline int line_of(const YAML::Node& node) {
  const YAML::Mark mark = node.Mark();
  return mark.is_null() ? 0 : mark.line + 1;
}

// "a, b, c".
inline std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) {
    if (!out.empty()) out += ", ";
    out += item;
  }
  return out;
}

// Reads and parses a YAML file; a missing file or malformed YAML is a ConfigError.
inline YAML::Node load_yaml(const std::filesystem::path& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw ConfigError(path.string(), 0, "", "is a folder, not a YAML file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(path.string(), 0, "", std::string("cannot open the file: ") + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  try {
    return YAML::Load(text.str());
  } catch (const YAML::Exception& error) {
    const int line = error.mark.is_null() ? 0 : error.mark.line + 1;
    throw ConfigError(path.string(), line, "", "malformed YAML: " + error.msg);
  }
}

}  // namespace digitflow::config::detail

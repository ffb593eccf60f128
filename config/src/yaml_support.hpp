// Small pieces shared by the YAML readers of this folder (settings, templates): the line of a
// node for error messages, and lists joined for "expected one of ..." messages.
#pragma once

#include <yaml-cpp/yaml.h>

#include <string>
#include <vector>

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

}  // namespace digitflow::config::detail

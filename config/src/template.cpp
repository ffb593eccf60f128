// YAML -> pipeline::Template. The file is small and its keys few, so it is read by hand with
// yaml-cpp, each node checked where it is read so that an error points at its own line.
#include "digitflow/config/template.hpp"

#include "yaml_support.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace digitflow::config {

namespace {

using pipeline::FieldRule;
using pipeline::FieldSpec;

using detail::join;
using detail::line_of;

std::string describe(const YAML::Node& node) {
  if (node.IsNull()) return "no value";
  if (node.IsMap()) return "a map";
  if (node.IsSequence()) return "a list";
  return "'" + node.Scalar() + "'";
}

class TemplateReader {
 public:
  explicit TemplateReader(std::string source) : source_(std::move(source)) {}

  const std::string& source() const { return source_; }

  [[noreturn]] void fail(const YAML::Node& node, const std::string& key,
                         const std::string& problem) const {
    throw ConfigError(source_, line_of(node), key, problem);
  }

  // The entries of a map of known, unique keys, each with its key node (for its line).
  struct Entry {
    std::string name;
    YAML::Node key;
    YAML::Node value;
  };
  std::vector<Entry> entries(const YAML::Node& map, const std::string& prefix,
                             const std::vector<std::string>& valid) const {
    std::vector<Entry> out;
    for (auto it = map.begin(); it != map.end(); ++it) {
      const std::string name = it->first.IsScalar() ? it->first.Scalar() : "?";
      const std::string key = prefix.empty() ? name : prefix + "." + name;
      if (std::find(valid.begin(), valid.end(), name) == valid.end())
        fail(it->first, key,
             "unknown key. Valid keys" +
                 (prefix.empty() ? std::string() : " under '" + prefix + "'") + ": " + join(valid));
      for (const Entry& seen : out)
        if (seen.name == name) fail(it->first, key, "duplicate key");
      if (it->second.IsNull()) fail(it->first, key, "has no value");
      out.push_back({name, it->first, it->second});
    }
    return out;
  }

  std::string scalar(const YAML::Node& node, const std::string& key) const {
    if (!node.IsScalar()) fail(node, key, "expects a single value, got " + describe(node));
    return node.Scalar();
  }

  double number(const YAML::Node& node, const std::string& key, const std::string& expects) const {
    const std::string text = scalar(node, key);
    std::string_view view = text;
    if (!view.empty() && view.front() == '+') view.remove_prefix(1);
    double value = 0;
    const auto [end, error] = std::from_chars(view.data(), view.data() + view.size(), value);
    if (view.empty() || error != std::errc() || end != view.data() + view.size() ||
        !std::isfinite(value))
      fail(node, key, "expects " + expects + ", got '" + text + "'");
    return value;
  }

 private:
  std::string source_;
};

using detail::load_yaml;

std::array<double, 4> read_zone(const TemplateReader& reader, const YAML::Node& node,
                                const std::string& key) {
  constexpr const char* kExpects = "a list of 4 numbers [x, y, width, height] between 0 and 1";
  if (!node.IsSequence() || node.size() != 4)
    reader.fail(node, key, std::string("expects ") + kExpects + ", got " + describe(node));
  std::array<double, 4> zone{};
  static constexpr const char* kNames[4] = {"x", "y", "width", "height"};
  for (size_t i = 0; i < 4; ++i) {
    zone[i] = reader.number(node[i], key, "a number between 0 and 1 for " + std::string(kNames[i]));
    if (zone[i] < 0 || zone[i] > 1)
      reader.fail(node[i], key,
                  std::string(kNames[i]) + " must lie between 0 and 1, got " + node[i].Scalar());
  }
  if (zone[2] <= 0 || zone[3] <= 0) reader.fail(node, key, "width and height must be above 0");
  constexpr double kSlack = 1e-9;  // 0.7 + 0.3 is not exactly 1 in binary
  if (zone[0] + zone[2] > 1 + kSlack)
    reader.fail(node, key,
                "x + width = " + node[0].Scalar() + " + " + node[2].Scalar() +
                    " runs past the right edge of the page (1)");
  if (zone[1] + zone[3] > 1 + kSlack)
    reader.fail(node, key,
                "y + height = " + node[1].Scalar() + " + " + node[3].Scalar() +
                    " runs past the bottom of the page (1)");
  return zone;
}

// A length the rule can never accept is a mistake in the template, not in the page.
void check_length(const TemplateReader& reader, const YAML::Node& node, const std::string& key,
                  const FieldSpec& field) {
  const int n = field.length;
  std::string allowed;
  switch (field.rule) {
    case FieldRule::aba_routing:
      if (n != 9) allowed = "9 digits";
      break;
    case FieldRule::luhn:
      if (n < 2) allowed = "at least 2 digits";
      break;
    case FieldRule::amount:
      if (n < 3 || n > 12) allowed = "3 to 12 digits";
      break;
    case FieldRule::date:
      if (n != static_cast<int>(field.date_format.size()))
        allowed = std::to_string(field.date_format.size()) + " digits (" + field.date_format + ")";
      break;
    case FieldRule::none:
      break;
  }
  if (!allowed.empty())
    reader.fail(node, key,
                "length " + std::to_string(n) + " does not fit rule " +
                    pipeline::rule_name(field.rule) + ", which takes " + allowed);
}

FieldSpec read_field(const TemplateReader& reader, const YAML::Node& item, size_t index) {
  const std::string at = "fields[" + std::to_string(index) + "]";
  if (!item.IsMap())
    reader.fail(item, at,
                "expects a field: a map with name, zone and optionally length, rule, format; got " +
                    describe(item));
  FieldSpec field;
  YAML::Node length_node, format_node;
  bool has_name = false, has_zone = false, has_length = false, has_format = false;
  for (const auto& entry : reader.entries(item, at, {"name", "zone", "length", "rule", "format"})) {
    const std::string key = at + "." + entry.name;
    const YAML::Node& value = entry.value;
    if (entry.name == "name") {
      field.name = reader.scalar(value, key);
      if (field.name.empty()) reader.fail(value, key, "expects a non-empty name");
      has_name = true;
    } else if (entry.name == "zone") {
      field.zone = read_zone(reader, value, key);
      has_zone = true;
    } else if (entry.name == "length") {
      const double n = reader.number(value, key, "an integer from 1 to 64");
      if (n != std::floor(n) || n < 1 || n > 64)
        reader.fail(value, key, "expects an integer from 1 to 64, got " + value.Scalar());
      field.length = static_cast<int>(n);
      length_node.reset(value);
      has_length = true;
    } else if (entry.name == "rule") {
      const std::string name = reader.scalar(value, key);
      const auto rule = pipeline::rule_from_name(name);
      if (!rule)
        reader.fail(value, key,
                    "unknown rule '" + name + "'. Valid rules: " + join(pipeline::rule_names()));
      field.rule = *rule;
    } else if (entry.name == "format") {
      field.date_format = reader.scalar(value, key);
      const auto& formats = pipeline::date_formats();
      if (std::find(formats.begin(), formats.end(), field.date_format) == formats.end())
        reader.fail(
            value, key,
            "unknown date format '" + field.date_format + "'. Valid formats: " + join(formats));
      format_node.reset(value);
      has_format = true;
    }
  }
  if (!has_name) reader.fail(item, at + ".name", "is missing; every field needs a name");
  if (!has_zone)
    reader.fail(item, at + ".zone",
                "is missing; field '" + field.name + "' needs a zone [x, y, width, height]");
  if (has_format && field.rule != FieldRule::date)
    reader.fail(format_node, at + ".format",
                "applies to rule date only; field '" + field.name + "' has rule " +
                    pipeline::rule_name(field.rule));
  if (has_length) check_length(reader, length_node, at + ".length", field);
  return field;
}

}  // namespace

pipeline::Template load_template(const std::filesystem::path& yaml) {
  const TemplateReader reader(yaml.string());
  const YAML::Node root = load_yaml(yaml);
  if (root.IsNull())
    throw ConfigError(reader.source(), 0, "", "the file is empty; a template needs 'fields'");
  if (!root.IsMap())
    reader.fail(root, "", "expects a map with 'name' and 'fields', got " + describe(root));
  pipeline::Template form;
  form.name = yaml.stem().string();
  YAML::Node fields;
  bool has_fields = false;
  for (const auto& entry : reader.entries(root, "", {"name", "fields"})) {
    if (entry.name == "name") {
      form.name = reader.scalar(entry.value, "name");
    } else {
      fields.reset(entry.value);
      has_fields = true;
      if (!fields.IsSequence() || fields.size() == 0)
        reader.fail(fields, "fields",
                    "expects a non-empty list of fields, got " +
                        (fields.IsSequence() ? std::string("an empty list") : describe(fields)));
    }
  }
  if (!has_fields) reader.fail(root, "fields", "is missing; a template needs at least one field");
  std::map<std::string, int> first_line;
  for (size_t i = 0; i < fields.size(); ++i) {
    const YAML::Node item = fields[i];
    FieldSpec field = read_field(reader, item, i);
    const auto [seen, fresh] = first_line.emplace(field.name, line_of(item));
    if (!fresh)
      reader.fail(item["name"], "fields[" + std::to_string(i) + "].name",
                  "duplicate field name '" + field.name + "' (first at line " +
                      std::to_string(seen->second) + ")");
    form.fields.push_back(std::move(field));
  }
  return form;
}

}  // namespace digitflow::config

// YAML -> Settings and YAML -> ModelSpec. Every accepted key is one row of a table (dotted
// key, accessor, parser with its range), so files, --set and settings_to_yaml share one list
// and an unknown key can be answered with the valid keys at its level and the closest one.
#include "digitflow/config/config.hpp"

#include "digitflow/pipeline/score.hpp"
#include "yaml_support.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <limits>
#include <set>
#include <sstream>
#include <string_view>
#include <utility>

namespace digitflow::config {

namespace {

// Thrown by the scalar parsers; the caller adds source, line and key.
struct BadValue {
  std::string problem;
};

std::string compose(const std::string& source, int line, const std::string& key,
                    const std::string& problem) {
  std::string message = source;
  if (line > 0) message += ":" + std::to_string(line);
  message += ": ";
  if (!key.empty()) message += key + ": ";
  return message + problem;
}

using detail::join;
using detail::line_of;

// "unknown key; did you mean 'lr'? Valid keys under 'train': ..."
std::string unknown_problem(const std::string& what, const std::string& name,
                            const std::vector<std::string>& valid, const std::string& level) {
  std::string problem = "unknown " + what;
  size_t best = std::numeric_limits<size_t>::max();
  std::string closest;
  for (const auto& candidate : valid) {
    const size_t distance = pipeline::levenshtein(name, candidate);
    if (distance < best) best = distance, closest = candidate;
  }
  for (const auto& candidate : valid) {  // "rotation" -> "rotation_deg"
    if (best > 2 && name.size() >= 3 && candidate.compare(0, name.size(), name) == 0) {
      closest = candidate;
      best = 0;
    }
  }
  if (!closest.empty() && best <= std::max<size_t>(2, name.size() / 3)) {
    problem += "; did you mean '" + closest + "'?";
  } else {
    problem += ".";
  }
  problem +=
      (level.empty() ? " Valid " + what + "s: " : " Valid " + what + "s under '" + level + "': ") +
      join(valid);
  return problem;
}

// ---- scalar parsers: text -> value, or BadValue saying what was expected ----

std::string quoted(const std::string& text) { return "'" + text + "'"; }

long long parse_integer(const std::string& text, const std::string& expects) {
  std::string_view view = text;
  if (!view.empty() && view.front() == '+') view.remove_prefix(1);
  long long value = 0;
  const auto [end, error] = std::from_chars(view.data(), view.data() + view.size(), value);
  if (view.empty() || error != std::errc() || end != view.data() + view.size()) {
    throw BadValue{"expects " + expects + ", got " + quoted(text)};
  }
  return value;
}

double parse_real(const std::string& text, const std::string& expects) {
  std::string_view view = text;
  if (!view.empty() && view.front() == '+') view.remove_prefix(1);
  double value = 0;
  const auto [end, error] = std::from_chars(view.data(), view.data() + view.size(), value);
  if (view.empty() || error != std::errc() || end != view.data() + view.size() ||
      !std::isfinite(value)) {
    throw BadValue{"expects " + expects + ", got " + quoted(text)};
  }
  return value;
}

bool parse_bool(const std::string& text) {
  std::string lower = text;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (lower == "true" || lower == "yes" || lower == "on") return true;
  if (lower == "false" || lower == "no" || lower == "off") return false;
  throw BadValue{"expects true or false, got " + quoted(text)};
}

std::string format_real(float value) {
  char buffer[64];
  const auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
  return std::string(buffer, result.ptr);
}

// A closed or half-open range for messages and checks.
struct Range {
  double lo;
  double hi;
  bool lo_open = false;
  bool hi_open = false;

  bool contains(double v) const {
    return (lo_open ? v > lo : v >= lo) && (hi_open ? v < hi : v <= hi);
  }
  std::string describe() const {
    const bool no_hi = hi == std::numeric_limits<double>::max();
    std::ostringstream out;
    out << (lo_open ? "> " : ">= ") << lo;
    if (!no_hi) out << (hi_open ? " and < " : " and <= ") << hi;
    return out.str();
  }
};

constexpr double kNoLimit = std::numeric_limits<double>::max();

int checked_int(const std::string& text, const Range& range) {
  const std::string expects = "an integer " + range.describe();
  const long long value = parse_integer(text, expects);
  if (!range.contains(static_cast<double>(value)) || value > std::numeric_limits<int>::max()) {
    throw BadValue{"expects " + expects + ", got " + text};
  }
  return static_cast<int>(value);
}

float checked_real(const std::string& text, const Range& range) {
  const std::string expects = "a number " + range.describe();
  const double value = parse_real(text, expects);
  if (!range.contains(value)) throw BadValue{"expects " + expects + ", got " + text};
  return static_cast<float>(value);
}

std::string checked_choice(const std::string& text, const std::vector<std::string>& choices) {
  if (std::find(choices.begin(), choices.end(), text) == choices.end()) {
    throw BadValue{"expects one of " + join(choices) + ", got " + quoted(text)};
  }
  return text;
}

// ---- the settings table ----

struct Field {
  std::string key;  // dotted
  std::function<void(Settings&, const std::string&)> set;
  std::function<std::string(const Settings&)> get;
};

// `ref` is a generic lambda returning a reference to the member, for const and non-const.
template <class Ref>
Field int_field(std::string key, Ref ref, Range range) {
  return {std::move(key),
          [=](Settings& s, const std::string& t) { ref(s) = checked_int(t, range); },
          [=](const Settings& s) { return std::to_string(ref(s)); }};
}

template <class Ref>
Field real_field(std::string key, Ref ref, Range range) {
  return {std::move(key),
          [=](Settings& s, const std::string& t) { ref(s) = checked_real(t, range); },
          [=](const Settings& s) { return format_real(ref(s)); }};
}

template <class Ref>
Field bool_field(std::string key, Ref ref) {
  return {std::move(key), [=](Settings& s, const std::string& t) { ref(s) = parse_bool(t); },
          [=](const Settings& s) { return std::string(ref(s) ? "true" : "false"); }};
}

template <class Ref>
Field choice_field(std::string key, Ref ref, std::vector<std::string> choices) {
  return {std::move(key),
          [=](Settings& s, const std::string& t) { ref(s) = checked_choice(t, choices); },
          [=](const Settings& s) { return ref(s); }};
}

template <class Ref>
Field path_field(std::string key, Ref ref) {
  return {std::move(key),
          [=](Settings& s, const std::string& t) {
            if (t.empty()) throw BadValue{"expects a non-empty path"};
            ref(s) = t;
          },
          [=](const Settings& s) { return ref(s); }};
}

// The job store: empty (SQLite in the state directory) or a PostgreSQL URL.
template <typename Ref>
Field store_field(std::string key, Ref ref) {
  return {std::move(key),
          [=](Settings& s, const std::string& t) {
            if (!t.empty() && !t.starts_with("postgres://") && !t.starts_with("postgresql://"))
              throw BadValue{"expects \"\" (SQLite in jobs.state_dir) or a postgres:// URL, got " + quoted(t)};
            ref(s) = t;
          },
          [=](const Settings& s) { return ref(s); }};
}

// Any text, also empty.
template <typename Ref>
Field text_field(std::string key, Ref ref) {
  return {std::move(key), [=](Settings& s, const std::string& t) { ref(s) = t; },
          [=](const Settings& s) { return ref(s); }};
}

// HOST:PORT with a port in 1..65535.
template <typename Ref>
Field listen_field(std::string key, Ref ref) {
  return {std::move(key),
          [=](Settings& s, const std::string& t) {
            const size_t colon = t.rfind(':');
            bool valid = colon != std::string::npos && colon > 0 && colon + 1 < t.size() &&
                         t.find_first_not_of("0123456789", colon + 1) == std::string::npos &&
                         t.size() - colon - 1 <= 5;
            if (valid) {
              const int port = std::stoi(t.substr(colon + 1));
              valid = port >= 1 && port <= 65535;
            }
            if (!valid) throw BadValue{"expects HOST:PORT (port 1..65535), got " + quoted(t)};
            ref(s) = t;
          },
          [=](const Settings& s) { return ref(s); }};
}

const std::vector<Field>& fields() {
  static const std::vector<Field> table = [] {
    const Range at_least_0{0, kNoLimit};
    const Range at_least_1{1, kNoLimit};
    const Range threads{0, static_cast<double>(kMaxThreads)};
    const Range unit_open{0, 1, false, true};  // [0, 1)
    return std::vector<Field>{
        path_field(
            "data.dir", [](auto& s) -> auto& { return s.data.dir; }),
        int_field(
            "data.negatives", [](auto& s) -> auto& { return s.data.negatives; }, at_least_0),
        text_field(  // a folder, or "" to train on MNIST (and the negatives) alone
            "data.pages", [](auto& s) -> auto& { return s.data.pages; }),
        int_field(
            "data.mnist_repeats", [](auto& s) -> auto& { return s.data.mnist_repeats; }, Range{1, 8}),
        path_field(
            "model.default", [](auto& s) -> auto& { return s.model.default_model; }),
        path_field(
            "model.spec", [](auto& s) -> auto& { return s.model.spec; }),
        text_field(  // a path, or "" to read every digit with the model alone
            "model.screen", [](auto& s) -> auto& { return s.model.screen; }),
        text_field(  // a path, or "" to read with model.default alone
            "model.partner", [](auto& s) -> auto& { return s.model.partner; }),
        int_field(
            "train.epochs", [](auto& s) -> auto& { return s.train.epochs; }, at_least_1),
        int_field(
            "train.batch_size", [](auto& s) -> auto& { return s.train.batch_size; },
            Range{2, 65536}),
        choice_field("train.optimizer", [](auto& s) -> auto& { return s.train.optimizer; },
                     {"adamw", "sgd"}),
        real_field(
            "train.lr", [](auto& s) -> auto& { return s.train.lr; }, Range{0, 10, true, false}),
        real_field(
            "train.momentum", [](auto& s) -> auto& { return s.train.momentum; }, unit_open),
        bool_field(
            "train.nesterov", [](auto& s) -> auto& { return s.train.nesterov; }),
        real_field(
            "train.beta2", [](auto& s) -> auto& { return s.train.beta2; }, unit_open),
        real_field(
            "train.weight_decay", [](auto& s) -> auto& { return s.train.weight_decay; },
            Range{0, 1}),
        choice_field("train.schedule", [](auto& s) -> auto& { return s.train.schedule; },
                     {"onecycle", "cosine", "constant"}),
        real_field(
            "train.warmup_fraction", [](auto& s) -> auto& { return s.train.warmup_fraction; },
            unit_open),
        real_field(
            "train.label_smoothing", [](auto& s) -> auto& { return s.train.label_smoothing; },
            unit_open),
        Field{"train.seed",
              [](Settings& s, const std::string& t) {
                std::string_view view = t;
                uint64_t value = 0;
                const auto [end, error] =
                    std::from_chars(view.data(), view.data() + view.size(), value);
                if (view.empty() || error != std::errc() || end != view.data() + view.size()) {
                  throw BadValue{"expects an integer >= 0 (64 bits), got " + quoted(t)};
                }
                s.train.seed = value;
              },
              [](const Settings& s) { return std::to_string(s.train.seed); }},
        int_field(
            "train.threads", [](auto& s) -> auto& { return s.train.threads; }, threads),
        int_field(
            "train.validation_images", [](auto& s) -> auto& { return s.train.validation_images; },
            at_least_0),
        int_field(
            "train.early_stop_patience",
            [](auto& s) -> auto& { return s.train.early_stop_patience; }, at_least_0),
        bool_field(
            "train.augment.enabled", [](auto& s) -> auto& { return s.train.augment.enabled; }),
        real_field(
            "train.augment.shift", [](auto& s) -> auto& { return s.train.augment.shift; },
            Range{0, 14}),
        real_field(
            "train.augment.rotation_deg",
            [](auto& s) -> auto& { return s.train.augment.rotation_deg; }, Range{0, 180}),
        real_field(
            "train.augment.scale", [](auto& s) -> auto& { return s.train.augment.scale; },
            unit_open),
        real_field(
            "train.augment.shear_deg", [](auto& s) -> auto& { return s.train.augment.shear_deg; },
            Range{0, 90, false, true}),
        int_field(
            "runtime.threads", [](auto& s) -> auto& { return s.runtime.threads; }, threads),
        choice_field("runtime.backend", [](auto& s) -> auto& { return s.runtime.backend; },
                     {"cpu", "cuda", "cudnn", "auto"}),
        bool_field(
            "runtime.int8", [](auto& s) -> auto& { return s.runtime.int8; }),
        int_field(
            "pipeline.max_page_pixels", [](auto& s) -> auto& { return s.pipeline.max_page_pixels; },
            Range{10000, 1e9}),
        int_field(
            "pipeline.pdf_dpi", [](auto& s) -> auto& { return s.pipeline.pdf_dpi; }, Range{50, 1200}),
        int_field(
            "pipeline.assume_dpi", [](auto& s) -> auto& { return s.pipeline.assume_dpi; }, Range{0, 1200}),
        int_field(
            "pipeline.pages_in_flight", [](auto& s) -> auto& { return s.pipeline.pages_in_flight; },
            Range{0, 4096}),
        int_field(
            "pipeline.batch_digits", [](auto& s) -> auto& { return s.pipeline.batch_digits; },
            Range{1, 65536}),
        int_field(
            "pipeline.min_digit_height", [](auto& s) -> auto& { return s.pipeline.min_digit_height; },
            Range{4, 4096}),
        int_field(
            "pipeline.max_digit_height", [](auto& s) -> auto& { return s.pipeline.max_digit_height; },
            Range{4, 4096}),
        int_field(
            "pipeline.min_string_digits", [](auto& s) -> auto& { return s.pipeline.min_string_digits; },
            Range{1, 64}),
        real_field(
            "pipeline.low_confidence", [](auto& s) -> auto& { return s.pipeline.low_confidence; },
            Range{0, 1}),
        real_field(
            "pipeline.temperature", [](auto& s) -> auto& { return s.pipeline.temperature; },
            Range{0, 10, true, false}),
        real_field(
            "pipeline.screen_confidence", [](auto& s) -> auto& { return s.pipeline.screen_confidence; },
            Range{0, 1, true, false}),
        path_field(
            "jobs.state_dir", [](auto& s) -> auto& { return s.jobs.state_dir; }),
        store_field(
            "jobs.db", [](auto& s) -> auto& { return s.jobs.db; }),
        int_field(
            "jobs.lease_seconds", [](auto& s) -> auto& { return s.jobs.lease_seconds; }, Range{5, 86400}),
        int_field(
            "jobs.heartbeat_seconds", [](auto& s) -> auto& { return s.jobs.heartbeat_seconds; }, Range{1, 3600}),
        bool_field(
            "jobs.overlays", [](auto& s) -> auto& { return s.jobs.overlays; }),
        listen_field(
            "web.listen", [](auto& s) -> auto& { return s.web.listen; }),
        int_field(
            "web.workers", [](auto& s) -> auto& { return s.web.workers; }, Range{0, 256}),
        text_field(
            "web.assets", [](auto& s) -> auto& { return s.web.assets; }),
        bool_field(
            "web.registration_open", [](auto& s) -> auto& { return s.web.registration_open; }),
        int_field(
            "web.session_hours", [](auto& s) -> auto& { return s.web.session_hours; }, Range{1, 8760}),
        int_field(
            "web.max_file_mb", [](auto& s) -> auto& { return s.web.max_file_mb; }, Range{1, 65536}),
        int_field(
            "web.max_job_mb", [](auto& s) -> auto& { return s.web.max_job_mb; }, Range{1, 1048576}),
        int_field(
            "web.max_files", [](auto& s) -> auto& { return s.web.max_files; }, Range{1, 10000000}),
        real_field(
            "web.review_confidence", [](auto& s) -> auto& { return s.web.review_confidence; }, Range{0, 1}),
        int_field(
            "web.argon2_ops", [](auto& s) -> auto& { return s.web.argon2_ops; }, Range{1, 100}),
        int_field(
            "web.argon2_memory_mb", [](auto& s) -> auto& { return s.web.argon2_memory_mb; }, Range{8, 4096}),
    };
  }();
  return table;
}

const Field* find_field(const std::string& key) {
  for (const auto& field : fields()) {
    if (field.key == key) return &field;
  }
  return nullptr;
}

// The names one level below `prefix` ("" is the top): keys and sections, in table order.
std::vector<std::string> children_of(const std::string& prefix) {
  std::vector<std::string> names;
  const std::string lead = prefix.empty() ? "" : prefix + ".";
  for (const auto& field : fields()) {
    if (field.key.compare(0, lead.size(), lead) != 0) continue;
    const std::string rest = field.key.substr(lead.size());
    const std::string name = rest.substr(0, rest.find('.'));
    if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
  }
  return names;
}

bool is_section(const std::string& key) { return !key.empty() && !children_of(key).empty(); }

std::string dotted(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

using detail::load_yaml;

void apply_map(const YAML::Node& map, const std::string& prefix, const std::string& source,
               Settings& settings) {
  if (map.IsNull()) return;  // an empty file or an empty section changes nothing
  if (!map.IsMap()) {
    const std::string expects = prefix.empty()
                                    ? "a map of sections (" + join(children_of("")) + ")"
                                    : "a map of keys (" + join(children_of(prefix)) + ")";
    throw ConfigError(source, line_of(map), prefix, "expects " + expects);
  }
  std::set<std::string> seen;
  for (auto it = map.begin(); it != map.end(); ++it) {
    const YAML::Node& key_node = it->first;
    const YAML::Node& value = it->second;
    if (!key_node.IsScalar()) {
      throw ConfigError(source, line_of(key_node), prefix, "keys must be plain names");
    }
    const std::string key = dotted(prefix, key_node.Scalar());
    if (!seen.insert(key).second) {
      throw ConfigError(source, line_of(key_node), key, "duplicate key");
    }
    if (is_section(key)) {
      apply_map(value, key, source, settings);
    } else if (const Field* field = find_field(key)) {
      if (!value.IsScalar()) {
        const std::string got = value.IsNull() ? "no value" : value.IsMap() ? "a map" : "a list";
        const int line = value.IsNull() ? line_of(key_node) : line_of(value);
        throw ConfigError(source, line, key, "expects a single value, got " + got);
      }
      try {
        field->set(settings, value.Scalar());
      } catch (const BadValue& bad) {
        throw ConfigError(source, line_of(value), key, bad.problem);
      }
    } else {
      throw ConfigError(source, line_of(key_node), key,
                        unknown_problem("key", key_node.Scalar(), children_of(prefix), prefix));
    }
  }
}

std::string trim(std::string_view text) {
  const auto first = text.find_first_not_of(" \t");
  if (first == std::string_view::npos) return {};
  const auto last = text.find_last_not_of(" \t");
  return std::string(text.substr(first, last - first + 1));
}

void apply_set(const std::string& assignment, Settings& settings) {
  const std::string source = "--set " + assignment;
  const auto equals = assignment.find('=');
  if (equals == std::string::npos) {
    throw ConfigError(source, 0, "", "expects KEY=VALUE, e.g. runtime.threads=4");
  }
  const std::string key = trim(std::string_view(assignment).substr(0, equals));
  if (key.empty()) throw ConfigError(source, 0, "", "no KEY before '=': expects KEY=VALUE, e.g. runtime.threads=4");
  std::string value = trim(std::string_view(assignment).substr(equals + 1));
  if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') &&
      value.back() == value.front()) {
    value = value.substr(1, value.size() - 2);
  }
  if (is_section(key)) {
    throw ConfigError(source, 0, key,
                      "is a section, not a key; set one of: " + join(children_of(key)));
  }
  const Field* field = find_field(key);
  if (field == nullptr) {
    // Walk down the known sections to report the valid keys at the level that failed.
    std::string prefix;
    std::string rest = key;
    for (;;) {
      const auto dot = rest.find('.');
      const std::string head = rest.substr(0, dot);
      if (dot == std::string::npos || !is_section(dotted(prefix, head))) {
        throw ConfigError(source, 0, key,
                          unknown_problem("key", head, children_of(prefix), prefix));
      }
      prefix = dotted(prefix, head);
      rest = rest.substr(dot + 1);
    }
  }
  try {
    field->set(settings, value);
  } catch (const BadValue& bad) {
    throw ConfigError(source, 0, key, bad.problem);
  }
}

}  // namespace

ConfigError::ConfigError(std::string source, int line, std::string key, const std::string& problem)
    : std::runtime_error(compose(source, line, key, problem)),
      source_(std::move(source)),
      line_(line),
      key_(std::move(key)) {}

Settings load_settings(const std::filesystem::path& defaults_file,
                       const std::vector<std::filesystem::path>& override_files,
                       const std::vector<std::string>& set_overrides) {
  Settings settings;
  apply_map(load_yaml(defaults_file), "", defaults_file.string(), settings);
  if (const char* data = std::getenv("DIGITFLOW_DATA"); data != nullptr && *data != '\0') {
    settings.data.dir = data;
  }
  for (const auto& file : override_files) {
    apply_map(load_yaml(file), "", file.string(), settings);
  }
  for (const auto& assignment : set_overrides) apply_set(assignment, settings);
  if (settings.train.threads == 0) settings.train.threads = settings.runtime.threads;
  return settings;
}

std::vector<std::string> setting_keys() {
  std::vector<std::string> keys;
  for (const auto& field : fields()) keys.push_back(field.key);
  return keys;
}

std::string settings_to_yaml(const Settings& settings) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  std::vector<std::string> open;  // sections currently open, outermost first
  for (const auto& field : fields()) {
    std::vector<std::string> path;
    std::stringstream parts(field.key);
    for (std::string part; std::getline(parts, part, '.');) path.push_back(part);
    const std::string leaf = path.back();
    path.pop_back();
    size_t common = 0;
    while (common < open.size() && common < path.size() && open[common] == path[common]) ++common;
    for (; open.size() > common; open.pop_back()) out << YAML::EndMap;
    for (size_t i = common; i < path.size(); ++i) {
      out << YAML::Key << path[i] << YAML::Value << YAML::BeginMap;
      open.push_back(path[i]);
    }
    out << YAML::Key << leaf << YAML::Value << field.get(settings);
  }
  for (; !open.empty(); open.pop_back()) out << YAML::EndMap;
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

// ---- model files ----

namespace {

using kernels::LayerKind;
using kernels::LayerSpec;

struct LayerSyntax {
  std::string name;
  LayerKind kind;
  std::vector<std::string> keys;
};

// The YAML names match kernels::to_string(LayerKind).
const std::vector<LayerSyntax>& layer_syntax() {
  static const std::vector<LayerSyntax> table{
      {"conv2d", LayerKind::conv2d, {"out", "kernel", "stride", "padding", "bias"}},
      {"batchnorm2d", LayerKind::batchnorm2d, {"momentum", "eps"}},
      {"relu", LayerKind::relu, {}},
      {"maxpool", LayerKind::maxpool, {"kernel", "stride"}},
      {"dropout", LayerKind::dropout, {"rate"}},
      {"flatten", LayerKind::flatten, {}},
      {"dense", LayerKind::dense, {"out", "bias"}},
  };
  return table;
}

std::string layer_name(LayerKind kind) {
  for (const auto& syntax : layer_syntax()) {
    if (syntax.kind == kind) return syntax.name;
  }
  return "?";
}

// One model file being read: the source name for errors and typed accessors on nodes.
class ModelReader {
 public:
  explicit ModelReader(std::string source) : source_(std::move(source)) {}

  [[noreturn]] void fail(const YAML::Node& node, const std::string& key,
                         const std::string& problem) const {
    throw ConfigError(source_, line_of(node), key, problem);
  }

  const YAML::Node& scalar(const YAML::Node& node, const std::string& key) const {
    if (!node.IsScalar()) {
      fail(node, key,
           std::string("expects a single value, got ") + (node.IsNull()  ? "no value"
                                                          : node.IsMap() ? "a map"
                                                                         : "a list"));
    }
    return node;
  }

  int integer(const YAML::Node& node, const std::string& key, const Range& range) const {
    try {
      return checked_int(scalar(node, key).Scalar(), range);
    } catch (const BadValue& bad) {
      fail(node, key, bad.problem);
    }
  }

  float real(const YAML::Node& node, const std::string& key, const Range& range) const {
    try {
      return checked_real(scalar(node, key).Scalar(), range);
    } catch (const BadValue& bad) {
      fail(node, key, bad.problem);
    }
  }

  bool boolean(const YAML::Node& node, const std::string& key) const {
    try {
      return parse_bool(scalar(node, key).Scalar());
    } catch (const BadValue& bad) {
      fail(node, key, bad.problem);
    }
  }

  // Checks that `map` is a map (or empty) of known, unique keys; returns them with nodes.
  std::vector<std::pair<std::string, YAML::Node>> entries(
      const YAML::Node& map, const std::string& key, const YAML::Node& owner,
      const std::vector<std::string>& valid) const {
    std::vector<std::pair<std::string, YAML::Node>> out;
    if (map.IsNull()) return out;
    if (!map.IsMap()) {
      fail(map.Mark().is_null() ? owner : map, key,
           valid.empty() ? "takes no parameters"
                         : "expects a map of parameters (" + join(valid) + ")");
    }
    for (auto it = map.begin(); it != map.end(); ++it) {
      const std::string name = it->first.IsScalar() ? it->first.Scalar() : "?";
      const std::string full = key.empty() ? name : key + "." + name;
      if (std::find(valid.begin(), valid.end(), name) == valid.end()) {
        fail(it->first, full,
             valid.empty() ? "this layer takes no parameters"
                           : unknown_problem("key", name, valid, key));
      }
      for (const auto& [seen, node] : out) {
        if (seen == name) fail(it->first, full, "duplicate key");
      }
      out.emplace_back(name, it->second);
    }
    return out;
  }

 private:
  std::string source_;
};

LayerSpec read_layer(const ModelReader& reader, const YAML::Node& item, int index) {
  const std::string at = "layers[" + std::to_string(index) + "]";
  std::string name;
  YAML::Node params;
  if (item.IsScalar()) {
    name = item.Scalar();
  } else if (item.IsMap() && item.size() == 1) {
    const auto entry = *item.begin();
    if (!entry.first.IsScalar()) reader.fail(item, at, "expects a layer name");
    name = entry.first.Scalar();
    params.reset(entry.second);
  } else {
    reader.fail(item, at,
                "expects a layer: a name (relu) or one name with its parameters "
                "(conv2d: {out: 32, kernel: 3})");
  }
  std::vector<std::string> names;
  for (const auto& syntax : layer_syntax()) names.push_back(syntax.name);
  const auto syntax = std::find_if(layer_syntax().begin(), layer_syntax().end(),
                                   [&](const LayerSyntax& s) { return s.name == name; });
  if (syntax == layer_syntax().end()) {
    reader.fail(item, at + "." + name, unknown_problem("layer", name, names, ""));
  }
  const std::string key = at + "." + name;
  LayerSpec layer;
  layer.kind = syntax->kind;
  bool has_out = false;
  bool has_kernel = false;
  bool has_stride = false;
  for (const auto& [param, node] : reader.entries(params, key, item, syntax->keys)) {
    const std::string full = key + "." + param;
    if (param == "out") {
      layer.out = reader.integer(node, full, Range{1, 1 << 20});
      has_out = true;
    } else if (param == "kernel") {
      layer.kernel = reader.integer(node, full, Range{1, 64});
      has_kernel = true;
    } else if (param == "stride") {
      layer.stride = reader.integer(node, full, Range{1, 64});
      has_stride = true;
    } else if (param == "padding") {
      layer.padding = reader.integer(node, full, Range{0, 64});
    } else if (param == "bias") {
      layer.bias = reader.boolean(node, full);
    } else if (param == "rate") {
      layer.rate = reader.real(node, full, Range{0, 1, false, true});
    } else if (param == "momentum") {
      layer.momentum = reader.real(node, full, Range{0, 1, true, false});
    } else if (param == "eps") {
      layer.eps = reader.real(node, full, Range{0, 1, true, false});
    }
  }
  if ((layer.kind == LayerKind::conv2d || layer.kind == LayerKind::dense) && !has_out) {
    reader.fail(item, key, "needs 'out' (the number of output channels or units)");
  }
  if (layer.kind == LayerKind::maxpool) {
    if (!has_kernel) layer.kernel = 2;
    if (!has_stride) layer.stride = layer.kernel;
  }
  return layer;
}

// Follows the activation shape through the layers; a layer that cannot take its input, or
// a last dense layer that does not output `classes` values, is an error at that layer.
void check_shapes(const ModelReader& reader, const kernels::ModelSpec& spec,
                  const YAML::Node& layers) {
  int channels = spec.input_channels;
  int height = spec.input_height;
  int width = spec.input_width;
  bool flat = false;
  int last_dense = -1;
  for (int i = 0; i < static_cast<int>(spec.layers.size()); ++i) {
    const LayerSpec& layer = spec.layers[static_cast<size_t>(i)];
    const YAML::Node item = layers[static_cast<size_t>(i)];
    const std::string key = "layers[" + std::to_string(i) + "]." + layer_name(layer.kind);
    const std::string shape = flat ? std::to_string(channels) + " values"
                                   : std::to_string(channels) + "x" + std::to_string(height) + "x" +
                                         std::to_string(width);
    switch (layer.kind) {
      case LayerKind::conv2d:
      case LayerKind::maxpool: {
        if (flat) reader.fail(item, key, "needs an image input (C x H x W), but it is flat here");
        const int padding = layer.kind == LayerKind::conv2d ? layer.padding : 0;
        const int out_h = (height + 2 * padding - layer.kernel) / layer.stride + 1;
        const int out_w = (width + 2 * padding - layer.kernel) / layer.stride + 1;
        if (height + 2 * padding < layer.kernel || width + 2 * padding < layer.kernel) {
          reader.fail(
              item, key,
              "kernel " + std::to_string(layer.kernel) + " does not fit its input " + shape);
        }
        height = out_h;
        width = out_w;
        if (layer.kind == LayerKind::conv2d) channels = layer.out;
        break;
      }
      case LayerKind::batchnorm2d:
        if (flat) {
          reader.fail(item, key,
                      "batchnorm2d normalises channels of an image; it cannot follow "
                      "flatten or dense");
        }
        break;
      case LayerKind::flatten:
        if (flat) reader.fail(item, key, "the input is already flat");
        channels = channels * height * width;
        flat = true;
        break;
      case LayerKind::dense:
        if (!flat) {
          reader.fail(item, key,
                      "needs a flat input, but gets " + shape + "; put '- flatten' before it");
        }
        channels = layer.out;
        last_dense = i;
        break;
      case LayerKind::relu:
      case LayerKind::dropout:
        break;
    }
  }
  if (last_dense < 0) {
    reader.fail(layers, "layers",
                "has no dense layer; the last one must output 'classes' (" +
                    std::to_string(spec.classes) + ") values");
  }
  const int out = spec.layers[static_cast<size_t>(last_dense)].out;
  if (out != spec.classes) {
    reader.fail(layers[static_cast<size_t>(last_dense)],
                "layers[" + std::to_string(last_dense) + "].dense.out",
                "the last dense layer outputs " + std::to_string(out) + " values but classes is " +
                    std::to_string(spec.classes) + "; they must be equal");
  }
}

}  // namespace

kernels::ModelSpec load_model_spec(const std::filesystem::path& yaml) {
  const std::string source = yaml.string();
  const ModelReader reader(source);
  const YAML::Node root = load_yaml(yaml);
  if (root.IsNull()) {
    throw ConfigError(source, 0, "", "the file is empty; a model needs at least 'layers'");
  }
  kernels::ModelSpec spec;
  spec.name = yaml.stem().string();
  YAML::Node layers;
  for (const auto& [key, node] :
       reader.entries(root, "", root, {"name", "input", "classes", "layers"})) {
    if (key == "name") {
      spec.name = reader.scalar(node, key).Scalar();
    } else if (key == "classes") {
      spec.classes = reader.integer(node, key, Range{2, 256});
    } else if (key == "input") {
      for (const auto& [dim, value] :
           reader.entries(node, "input", node, {"channels", "height", "width"})) {
        // One channel of 8-bit pixels is what the data sets and the pipeline provide.
        const int size = dim == "channels" ? reader.integer(value, "input." + dim, Range{1, 1})
                                           : reader.integer(value, "input." + dim, Range{1, 4096});
        (dim == "channels" ? spec.input_channels
         : dim == "height" ? spec.input_height
                           : spec.input_width) = size;
      }
    } else if (key == "layers") {
      layers.reset(node);
    }
  }
  if (!layers.IsDefined() || layers.IsNull()) {
    throw ConfigError(source, 0, "layers", "is missing; a model needs a list of layers");
  }
  if (!layers.IsSequence() || layers.size() == 0) {
    reader.fail(layers, "layers", "expects a non-empty list of layers");
  }
  for (size_t i = 0; i < layers.size(); ++i) {
    spec.layers.push_back(read_layer(reader, layers[i], static_cast<int>(i)));
  }
  check_shapes(reader, spec, layers);
  return spec;
}

}  // namespace digitflow::config

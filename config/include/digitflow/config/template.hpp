// Form templates from YAML (config/templates/*.yaml): named fields, each a zone of the page,
// an optional expected length and a rule. Every mistake is a ConfigError naming the file,
// the line and the key (fields[2].zone), like the settings and model files.
#pragma once

#include <filesystem>

#include "digitflow/config/config.hpp"
#include "digitflow/pipeline/fields.hpp"

namespace digitflow::config {

// Reads a template:
//
//   name: synthetic form          # optional; defaults to the file's stem
//   fields:                       # at least one
//     - name: routing             # unique within the template
//       zone: [0.10, 0.20, 0.40, 0.06]   # x, y, width, height as fractions of the page
//       length: 9                 # optional, 1..64 digits
//       rule: aba_routing         # optional: none | aba_routing | luhn | amount | date
//       format: DDMMYYYY          # rule date only: DDMMYYYY | MMDDYYYY | YYYYMMDD | DDMMYY |
//       MMDDYY
//
// Throws ConfigError for a missing or unknown key, a zone that is not 4 numbers in [0, 1]
// with a positive size inside the page, an unknown rule or date format, a length the rule
// cannot have, a duplicate field name, or no fields.
pipeline::Template load_template(const std::filesystem::path& yaml);

}  // namespace digitflow::config

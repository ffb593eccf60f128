// What a run reads off a page, and its on-disk form: one JSON object per page in
// results.jsonl (the contract of DESIGN.md; keys may be added, never changed), one CSV row
// per string in results.csv. The same shape is used for the truth of generated pages.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <iosfwd>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace digitflow::pipeline {

// A results line that does not have the contract's shape; the message names the key.
class ResultsFormatError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// [x, y, width, height] in pixels of the page as stored on disk.
struct Box {
  int x = 0, y = 0, w = 0, h = 0;
  int right() const { return x + w; }
  int bottom() const { return y + h; }
  int64_t area() const { return static_cast<int64_t>(w) * h; }
  bool operator==(const Box&) const = default;
};
Box unite(const Box& a, const Box& b);
double iou(const Box& a, const Box& b);  // intersection over union, 0 when either is empty

struct Candidate {
  int digit = 0;
  float confidence = 0;
};

struct DigitResult {
  int digit = 0;
  Box box;
  float confidence = 0;              // the model's probability of `digit`
  std::vector<Candidate> top;        // best first, up to 3
  float not_digit = 0;               // its probability of "not a digit" (not written; 0 when unknown)
};

struct StringResult {
  std::string text;
  Box box;
  double confidence = 0;             // estimate that the whole string is right
  std::vector<DigitResult> digits;
};

// A template field: the string found in its zone, checked by its rule.
struct FieldResult {
  std::string name;
  std::string rule;                  // "" when the field has none
  std::string text;                  // as read, after any correction from the top 3
  bool found = false;                // a string was read in the zone
  bool valid = false;                // the rule (and the expected length) holds
  bool corrected = false;            // text differs from the best digits
  double confidence = 0;
  Box box;
};

struct PageResult {
  std::string page;                  // path relative to the job folder, '/' separated
  int page_index = 0;                // page inside a multi-page file (TIFF, PDF), else 0
  int width = 0, height = 0;
  std::vector<StringResult> strings;
  std::vector<FieldResult> fields;   // only when a template is used
  std::optional<std::string> error;  // a page that could not be read
};

nlohmann::json to_json(const PageResult& page);
// Throws ResultsFormatError naming the missing or mistyped key.
PageResult page_from_json(const nlohmann::json& object);
// One line of results.jsonl; ResultsFormatError says what is wrong with it ("not JSON (at
// column 5: ...)", a missing key), without the file and line, which the caller adds.
PageResult parse_results_line(const std::string& line);
// A probability as results.jsonl writes it (4 decimals): what a threshold is compared with.
double as_written(double probability);

// Reads a whole results.jsonl (or truth.jsonl); throws ResultsFormatError naming the file
// and line of a malformed line.
std::vector<PageResult> read_results(const std::string& path);
// Whether `pages` read like a truth file rather than a run's results: strings there are,
// and every one is at confidence 1 with no digit carrying other candidates (top 3).
bool looks_like_truth(const std::vector<PageResult>& pages);

// Removes OUT_DIR/overlays where an earlier output in `out_dir` (its results.jsonl is there)
// left them: they go with the results they drew. Not when `pages` (the folder being read)
// lies inside them. Throws std::runtime_error naming the folder when it cannot be removed.
void remove_earlier_overlays(const std::filesystem::path& out_dir, const std::filesystem::path& pages = {});

// results.csv: a header, then one row per string (page, page_index, string index, text,
// confidence, box, field) and one row per failed page (its error, no text).
void write_csv_header(std::ostream& out);
void write_csv_rows(std::ostream& out, const PageResult& page);

}  // namespace digitflow::pipeline

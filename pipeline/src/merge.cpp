// Merging shard outputs. Each shard's results.jsonl and results.csv are already in page
// order, so the join is a k-way merge of streams: memory does not grow with the job, and a
// page given twice shows up as two equal keys next to each other. Lines are copied as read;
// the JSON lines are parsed only to check them and learn their page.
#include "digitflow/pipeline/merge.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <queue>
#include <set>
#include <sstream>
#include <utility>

#include "digitflow/pipeline/decode.hpp"
#include "digitflow/pipeline/results.hpp"

namespace digitflow::pipeline {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

template <typename... Parts>
std::string cat(const Parts&... parts) {
  std::string text;
  (text += ... += parts);
  return text;
}

[[noreturn]] void refuse(const std::string& message) { throw MergeError(message); }

// A page's place in run_job's order: its path (byte order), then its page inside the file.
// (A name that was not UTF-8 is stored with U+FFFD in results.jsonl, so its place there may
// differ from its file's; results.csv keeps the raw bytes and is ordered by those.)
using PageKey = std::pair<std::string, int>;

std::string describe(const PageKey& key) {
  return cat("page \"", key.first, "\" (page_index ", std::to_string(key.second), ")");
}

struct Input {
  fs::path dir;
  json summary;
  Shard shard;
};

int64_t count_in(const Input& input, const char* key) {
  auto it = input.summary.find(key);
  if (it == input.summary.end() || !it->is_number_integer() || it->get<int64_t>() < 0)
    refuse(cat((input.dir / "summary.json").string(), ": \"", key, "\" is missing or not a count"));
  return it->get<int64_t>();
}

double seconds_in(const json& object, const std::string& key, const Input& input) {
  auto it = object.find(key);
  if (it == object.end() || !it->is_number())
    refuse(
        cat((input.dir / "summary.json").string(), ": \"", key, "\" is missing or not a number"));
  return it->get<double>();
}

Input read_summary(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    refuse(cat(dir.string(), fs::exists(dir, ec) ? ": not a folder" : ": no such folder"));
  const fs::path file = dir / "summary.json";
  std::ifstream in(file, std::ios::binary);
  if (!in)
    refuse(cat(dir.string(),
               ": no summary.json, so not the output of a finished digitflow run "
               "(a run still going, or one that ended with an error, has none)"));
  Input input{dir, {}, {}};
  try {
    input.summary = json::parse(in);
  } catch (const json::exception& e) {
    refuse(cat(file.string(), ": not JSON (", e.what(), ")"));
  }
  if (!input.summary.is_object()) refuse(cat(file.string(), ": not a JSON object"));
  auto cancelled = input.summary.find("cancelled");
  if (cancelled != input.summary.end() && cancelled->is_boolean() && cancelled->get<bool>())
    refuse(cat(dir.string(), ": the run was stopped before its last page; run that shard again"));
  auto shard = input.summary.find("shard");
  if (shard == input.summary.end() || !shard->is_object() || !shard->contains("index") ||
      !shard->contains("count") || !(*shard)["index"].is_number_integer() ||
      !(*shard)["count"].is_number_integer())
    refuse(cat(file.string(),
               ": no \"shard\" {index, count}: not written by digitflow run, or by one older than "
               "--shard"));
  const int64_t index = (*shard)["index"].get<int64_t>(), count = (*shard)["count"].get<int64_t>();
  if (count < 1 || count > kMaxShards || index < 0 || index >= count)
    refuse(cat(file.string(), ": \"shard\" is not K/N with 0 <= K < N"));
  input.shard = {static_cast<int>(index), static_cast<int>(count)};
  return input;
}

// Every shard of one split, each once.
void check_shards(const std::vector<Input>& inputs) {
  const int count = inputs.front().shard.count;
  std::vector<const Input*> by_index(static_cast<size_t>(count), nullptr);
  for (const Input& input : inputs) {
    if (input.shard.count != count)
      refuse(cat(inputs.front().dir.string(), " is shard ", to_string(inputs.front().shard),
                 " but ", input.dir.string(), " is shard ", to_string(input.shard),
                 ": outputs of different splits cannot be merged"));
    const Input*& slot = by_index[static_cast<size_t>(input.shard.index)];
    if (slot)
      refuse(cat(slot->dir.string(), " and ", input.dir.string(), " are both shard ",
                 to_string(input.shard)));
    slot = &input;
  }
  std::string missing;
  int missing_count = 0;
  for (int i = 0; i < count; ++i)
    if (!by_index[static_cast<size_t>(i)] && ++missing_count <= 5)
      missing += cat(missing.empty() ? "" : ", ", to_string(Shard{i, count}));
  if (missing_count > 0)
    refuse(cat(missing_count == 1 ? "shard " : "shards ", missing,
               missing_count > 5 ? " and more" : "", missing_count == 1 ? " is" : " are",
               " missing (", std::to_string(inputs.size()), " of ", std::to_string(count),
               " given): every shard is needed, or pages would be left out"));
}

double round3(double v) { return std::round(v * 1000) / 1000; }

// summary.json of the whole job. Counts and stage seconds add up; the shards ran side by
// side, so the wall time is the longest shard's.
json merge_summaries(const std::vector<Input>& inputs, MergeReport& report) {
  json out = json::object();
  for (const char* key : {"pages", "failed_pages", "strings", "digits", "low_confidence_strings",
                          "fields", "valid_fields", "images_scored", "images_read_in_full", "pages_listed",
                          "pages_without_resolution"}) {
    int64_t sum = 0;
    for (const Input& input : inputs) sum += count_in(input, key);
    out[key] = sum;
  }
  bool int8 = !inputs.empty();  // every shard read through int8
  for (const Input& input : inputs) {
    auto it = input.summary.find("int8");
    int8 = int8 && it != input.summary.end() && it->is_boolean() && it->get<bool>();
  }
  out["int8"] = int8;
  std::vector<std::string> reasons;  // each shard's reasons for reading in fp32 ("; "-joined), once
  for (const Input& input : inputs) {
    auto it = input.summary.find("int8_fallback");
    if (it == input.summary.end() || !it->is_string()) continue;
    const std::string why = it->get<std::string>();
    for (size_t at = 0; at < why.size();) {
      const size_t end = std::min(why.find("; ", at), why.size());
      const std::string one = why.substr(at, end - at);
      if (!one.empty() && std::find(reasons.begin(), reasons.end(), one) == reasons.end()) reasons.push_back(one);
      at = end + 2;
    }
  }
  std::string fallback;
  for (const std::string& one : reasons) fallback += (fallback.empty() ? "" : "; ") + one;
  out["int8_fallback"] = fallback;
  double seconds = 0;
  json stages = json::object();
  std::set<std::string> skipped;
  for (const Input& input : inputs) {
    seconds = std::max(seconds, seconds_in(input.summary, "seconds", input));
    auto it = input.summary.find("stage_seconds");
    if (it == input.summary.end() || !it->is_object())
      refuse(cat((input.dir / "summary.json").string(),
                 ": \"stage_seconds\" is missing or not an object"));
    for (const auto& stage : it->items())
      stages[stage.key()] = stages.value(stage.key(), 0.0) + seconds_in(*it, stage.key(), input);
    auto files = input.summary.find("skipped_files");
    if (files != input.summary.end()) {
      if (!files->is_array() ||
          !std::all_of(files->begin(), files->end(), [](const json& f) { return f.is_string(); }))
        refuse(cat((input.dir / "summary.json").string(),
                   ": \"skipped_files\" is not a list of names"));
      for (const json& f : *files) skipped.insert(f.get<std::string>());
    }
  }
  for (json& value : stages) value = round3(value.get<double>());
  const int64_t pages = out["pages"].get<int64_t>();
  out["seconds"] = round3(seconds);
  out["pages_per_s"] = seconds > 0 ? round3(static_cast<double>(pages) / seconds) : 0.0;
  out["stage_seconds"] = stages;
  out["cancelled"] = false;
  out["skipped_files"] = skipped;  // byte order, as one run lists them

  const json job = inputs.front().summary.value("job", json());
  for (const Input& input : inputs)
    if (input.summary.value("job", json()) != job) {
      report.warnings.push_back(
          cat("the shards name different job folders (", inputs.front().dir.string(), ": ",
              job.dump(), ", ", input.dir.string(), ": ", input.summary.value("job", json()).dump(),
              "); summary.json keeps the first"));
      break;
    }
  out["job"] = job;
  out["shard"] = {{"index", 0}, {"count", 1}};  // the whole folder
  json from = json::array();
  for (const Input& input : inputs) from.push_back(input.dir.string());
  out["merged"] = {{"shards", inputs.front().shard.count},
                   {"from", from},
                   {"timing",
                    "stage_seconds: sums over the shards; seconds: the longest shard; pages_per_s: "
                    "pages / seconds"}};
  report.shards = inputs.front().shard.count;
  report.pages = pages;
  report.failed_pages = out["failed_pages"].get<int64_t>();
  report.strings = out["strings"].get<int64_t>();
  return out;
}

// One input's results.jsonl, a page at a time; each line is checked against the results
// contract, the order run_job writes and the input's shard.
class ResultsLines {
 public:
  ResultsLines(const fs::path& dir, const Shard& shard)
      : path_(dir / "results.jsonl"), shard_(shard), in_(path_, std::ios::binary) {
    if (!in_) refuse(cat(dir.string(), ": no results.jsonl, or it cannot be read"));
  }

  bool next() {
    while (std::getline(in_, line_)) {
      ++number_;
      if (line_.find_first_not_of(" \t\r") == std::string::npos) continue;
      PageResult page;
      try {
        page = page_from_json(json::parse(line_));
      } catch (const json::exception& e) {
        refuse(cat(where(), ": not JSON (", e.what(), ")"));
      } catch (const ResultsFormatError& e) {
        refuse(cat(where(), ": ", e.what()));
      }
      PageKey key{std::move(page.page), page.page_index};
      // U+FFFD: a name that was not UTF-8, whose stored bytes are not the file's.
      if (key.first.find("\xEF\xBF\xBD") == std::string::npos) {
        const int home = shard_of(key.first, shard_.count);
        if (home != shard_.index)
          refuse(cat(where(), ": ", describe(key), " belongs to shard ",
                     to_string(Shard{home, shard_.count}), ", not to this output's ",
                     to_string(shard_), " (outputs of different job folders?)"));
      }
      if (pages_ > 0 && key == key_) refuse(cat(where(), ": ", describe(key), " again"));
      if (pages_ > 0 && key < key_)
        refuse(cat(where(), ": ", describe(key), " after ", describe(key_),
                   ": not in the order digitflow run writes (by path, then page_index)"));
      key_ = std::move(key);
      ++pages_;
      csv_rows_ +=
          page.error ? 1
                     : static_cast<int64_t>(page.strings.size());  // as write_csv_rows writes them
      return true;
    }
    if (in_.bad()) refuse(cat(path_.string(), ": read error"));
    return false;
  }

  const PageKey& key() const { return key_; }
  const std::string& line() const { return line_; }
  std::string where() const { return cat(path_.string(), ":", std::to_string(number_)); }
  const fs::path& path() const { return path_; }
  int64_t pages() const { return pages_; }
  int64_t csv_rows() const { return csv_rows_; }  // the rows results.csv holds for the pages read

 private:
  fs::path path_;
  Shard shard_;
  std::ifstream in_;
  std::string line_;
  PageKey key_;
  int64_t number_ = 0, pages_ = 0, csv_rows_ = 0;
};

std::string csv_header() {
  std::ostringstream header;
  write_csv_header(header);
  return header.str();
}

// One input's results.csv, one page's rows at a time (a page's rows are consecutive; a page
// without strings has none). A record may span lines: a quoted field can hold a newline.
class CsvPages {
 public:
  explicit CsvPages(const fs::path& dir)
      : path_(dir / "results.csv"), in_(path_, std::ios::binary) {
    if (!in_) refuse(cat(dir.string(), ": no results.csv, or it cannot be read"));
    std::string header;
    const std::string expected = csv_header();
    if (!read_record(header) || header != expected)
      refuse(cat(path_.string(), ":1: not the results.csv header (",
                 std::string_view(expected).substr(0, expected.size() - 1), ")"));
    ahead_ = read_record(ahead_record_);
    if (ahead_) ahead_key_ = key_of(ahead_record_);
  }

  bool next() {
    if (!ahead_) return false;
    key_ = std::move(ahead_key_);
    first_line_ = record_line_;
    rows_ = std::move(ahead_record_);
    ++rows_read_;
    while ((ahead_ = read_record(ahead_record_))) {
      ahead_key_ = key_of(ahead_record_);
      if (ahead_key_ != key_) break;
      rows_ += ahead_record_;
      ++rows_read_;
    }
    if (ahead_ && ahead_key_ < key_)
      refuse(cat(path_.string(), ":", std::to_string(record_line_), ": ", describe(ahead_key_),
                 " after ", describe(key_),
                 ": not in the order digitflow run writes (by path, then page_index)"));
    return true;
  }

  const PageKey& key() const { return key_; }
  const std::string& text() const { return rows_; }  // the current page's rows
  std::string where() const { return cat(path_.string(), ":", std::to_string(first_line_)); }
  const fs::path& path() const { return path_; }
  int64_t rows() const { return rows_read_; }

 private:
  // The next non-blank record, with its final newline; record_line_ is its first line.
  bool read_record(std::string& record) {
    std::string line;
    do {
      record.clear();
      record_line_ = line_ + 1;
      bool quoted = false;
      while (std::getline(in_, line)) {
        ++line_;
        record += line;
        record += '\n';
        if (std::count(line.begin(), line.end(), '"') % 2 == 1) quoted = !quoted;
        if (!quoted) break;
      }
      if (in_.bad()) refuse(cat(path_.string(), ": read error"));
      if (quoted)
        refuse(cat(path_.string(), ":", std::to_string(record_line_),
                   ": a quoted field is not closed"));
    } while (!record.empty() && record.find_first_not_of(" \t\r\n") == std::string::npos);
    return !record.empty();
  }

  // The page and page_index a row starts with.
  PageKey key_of(const std::string& record) const {
    auto bad = [&]() {
      refuse(cat(path_.string(), ":", std::to_string(record_line_),
                 ": not a results.csv row (it should start with page,page_index)"));
    };
    PageKey key;
    size_t i = 0;
    if (record[0] == '"') {
      for (i = 1;; ++i) {
        if (i >= record.size()) bad();
        if (record[i] != '"') {
          key.first += record[i];
        } else if (i + 1 < record.size() && record[i + 1] == '"') {
          key.first += '"';
          ++i;
        } else {
          ++i;
          break;
        }
      }
    } else {
      i = record.find(',');
      if (i == std::string::npos) bad();
      key.first = record.substr(0, i);
    }
    if (i >= record.size() || record[i] != ',') bad();
    const size_t end = record.find(',', ++i);
    if (end == std::string::npos || end == i || end - i > 9) bad();
    for (; i < end; ++i) {
      if (record[i] < '0' || record[i] > '9') bad();
      key.second = key.second * 10 + (record[i] - '0');
    }
    return key;
  }

  fs::path path_;
  std::ifstream in_;
  int64_t line_ = 0, record_line_ = 0, first_line_ = 0, rows_read_ = 0;
  std::string rows_, ahead_record_;
  PageKey key_, ahead_key_;
  bool ahead_ = false;
};

// Hands every stream's entries to `emit` in page order; the same page in two streams is
// refused. Each stream is in order already (its reader checks that).
template <typename Stream, typename Emit>
void merge_in_order(std::vector<Stream>& streams, Emit&& emit) {
  auto later = [&](size_t a, size_t b) { return streams[b].key() < streams[a].key(); };
  std::priority_queue<size_t, std::vector<size_t>, decltype(later)> heap(later);
  for (size_t i = 0; i < streams.size(); ++i)
    if (streams[i].next()) heap.push(i);
  bool first = true;
  PageKey last;
  std::string last_where;
  while (!heap.empty()) {
    const size_t i = heap.top();
    heap.pop();
    if (!first && streams[i].key() == last)
      refuse(cat(describe(last), " is in two inputs: ", last_where, " and ", streams[i].where()));
    first = false;
    last = streams[i].key();
    last_where = streams[i].where();
    emit(streams[i]);
    if (streams[i].next()) heap.push(i);
  }
}

// A file written beside its final name and renamed into place only when complete; removed
// if never committed.
class PartFile {
 public:
  explicit PartFile(fs::path path)
      : path_(std::move(path)),
        part_(path_.string() + ".part"),
        out_(part_, std::ios::binary | std::ios::trunc) {
    if (!out_) throw std::runtime_error(cat(part_.string(), ": cannot write"));
  }
  PartFile(const PartFile&) = delete;
  PartFile& operator=(const PartFile&) = delete;
  ~PartFile() {
    if (committed_) return;
    out_.close();
    std::error_code ec;
    fs::remove(part_, ec);
  }

  std::ofstream& out() { return out_; }
  void check() {
    if (!out_) throw std::runtime_error(cat(part_.string(), ": writing failed (disk full?)"));
  }
  void commit() {
    out_.close();
    if (out_.fail()) throw std::runtime_error(cat(part_.string(), ": writing failed (disk full?)"));
    fs::rename(part_, path_);
    committed_ = true;
  }

 private:
  fs::path path_, part_;
  std::ofstream out_;
  bool committed_ = false;
};

fs::path canonical_or_absolute(const fs::path& path) {
  std::error_code ec;
  fs::path p = fs::weakly_canonical(fs::absolute(path), ec);
  return ec ? fs::absolute(path).lexically_normal() : p;
}

}  // namespace

MergeReport merge_outputs(const std::vector<fs::path>& inputs, const fs::path& out_dir) {
  if (inputs.empty()) refuse("no shard outputs to merge");
  const fs::path out_real = canonical_or_absolute(out_dir);
  std::vector<fs::path> seen;
  for (const fs::path& dir : inputs) {
    const fs::path real = canonical_or_absolute(dir);
    if (real == out_real)
      refuse(cat(out_dir.string(),
                 " is also an input: write the merged output to a folder of its own"));
    for (size_t i = 0; i < seen.size(); ++i)
      if (seen[i] == real)
        refuse(cat(inputs[i].string(), " and ", dir.string(), " are the same folder, given twice"));
    seen.push_back(real);
  }

  std::vector<Input> shards;
  for (const fs::path& dir : inputs) shards.push_back(read_summary(dir));
  check_shards(shards);
  std::sort(shards.begin(), shards.end(),
            [](const Input& a, const Input& b) { return a.shard.index < b.shard.index; });
  MergeReport report;
  const json summary = merge_summaries(shards, report);

  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec)
    throw std::runtime_error(
        cat(out_dir.string(), ": cannot create the output folder (", ec.message(), ")"));

  PartFile jsonl(out_dir / "results.jsonl");
  std::vector<int64_t> expected_rows;  // in each input's results.csv
  {
    std::vector<ResultsLines> lines;
    lines.reserve(shards.size());
    for (const Input& input : shards) lines.emplace_back(input.dir, input.shard);
    merge_in_order(lines, [&](const ResultsLines& from) {
      jsonl.out() << from.line() << '\n';
      jsonl.check();
    });
    for (size_t i = 0; i < shards.size(); ++i) {
      const int64_t counted = count_in(shards[i], "pages");
      if (lines[i].pages() != counted)
        refuse(cat(lines[i].path().string(), " has ", std::to_string(lines[i].pages()),
                   " pages but its summary.json counts ", std::to_string(counted),
                   ": a results file cut short or edited?"));
      expected_rows.push_back(lines[i].csv_rows());
    }
  }
  PartFile csv(out_dir / "results.csv");
  {
    std::vector<CsvPages> pages;
    pages.reserve(shards.size());
    for (const Input& input : shards) pages.emplace_back(input.dir);
    csv.out() << csv_header();
    merge_in_order(pages, [&](const CsvPages& from) {
      csv.out() << from.text();
      csv.check();
    });
    for (size_t i = 0; i < shards.size(); ++i)
      if (pages[i].rows() != expected_rows[i])
        refuse(cat(pages[i].path().string(), " has ", std::to_string(pages[i].rows()),
                   " rows but the pages of its results.jsonl make ",
                   std::to_string(expected_rows[i]), ": the two files are not of one run"));
  }

  // Everything is read and checked: replace the outputs, summary.json last. The overlays of
  // an earlier output here go with its results (as run_job clears them).
  fs::remove(out_dir / "summary.json", ec);
  remove_earlier_overlays(out_dir);
  jsonl.commit();
  csv.commit();
  for (const Input& input : shards) {
    const fs::path overlays = input.dir / "overlays";
    if (!fs::is_directory(overlays, ec)) continue;
    report.overlays = true;
    for (const fs::directory_entry& entry : fs::recursive_directory_iterator(overlays)) {
      if (!entry.is_regular_file()) continue;
      const fs::path to = out_dir / "overlays" / fs::relative(entry.path(), overlays);
      fs::create_directories(to.parent_path());
      fs::copy_file(entry.path(), to, fs::copy_options::overwrite_existing);
    }
  }
  PartFile summary_file(out_dir / "summary.json");
  summary_file.out() << summary.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
  summary_file.commit();
  return report;
}

}  // namespace digitflow::pipeline

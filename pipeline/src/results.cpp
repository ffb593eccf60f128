#include "digitflow/pipeline/results.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <cmath>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <ostream>

namespace digitflow::pipeline {

using nlohmann::json;

Box unite(const Box& a, const Box& b) {
  if (a.area() == 0) return b;
  if (b.area() == 0) return a;
  const int x = std::min(a.x, b.x), y = std::min(a.y, b.y);
  return {x, y, std::max(a.right(), b.right()) - x, std::max(a.bottom(), b.bottom()) - y};
}

double iou(const Box& a, const Box& b) {
  const int x0 = std::max(a.x, b.x), y0 = std::max(a.y, b.y);
  const int x1 = std::min(a.right(), b.right()), y1 = std::min(a.bottom(), b.bottom());
  if (x1 <= x0 || y1 <= y0) return 0.0;
  const double inter = static_cast<double>(x1 - x0) * (y1 - y0);
  return inter / (static_cast<double>(a.area()) + static_cast<double>(b.area()) - inter);
}

namespace {

// Probabilities written with 4 decimals: enough for any threshold, and short lines.
double round4(double v) { return std::round(v * 1e4) / 1e4; }

json box_json(const Box& b) { return json::array({b.x, b.y, b.w, b.h}); }

[[noreturn]] void bad(const std::string& what) { throw ResultsFormatError(what); }

const json& need(const json& o, const char* key, const std::string& where) {
  if (!o.is_object()) bad(where + " is not a JSON object");
  auto it = o.find(key);
  if (it == o.end()) bad(where + ": missing key \"" + key + "\"");
  return *it;
}

// A JSON number as an int (a fraction is cut, as before); one outside int's range is an
// error rather than an undefined conversion.
int to_int(const json& v, const char* key, const std::string& where) {
  const double d = v.get<double>();
  if (!(d > static_cast<double>(std::numeric_limits<int>::min()) - 1 &&
        d < static_cast<double>(std::numeric_limits<int>::max()) + 1))
    bad(where + ": \"" + key + "\" value " + v.dump() + " is out of range");
  return static_cast<int>(d);
}

Box box_from(const json& v, const std::string& where) {
  if (!v.is_array() || v.size() != 4 || !std::all_of(v.begin(), v.end(), [](const json& e) { return e.is_number(); }))
    bad(where + ": \"box\" must be [x, y, width, height]");
  Box b{to_int(v[0], "box", where), to_int(v[1], "box", where), to_int(v[2], "box", where), to_int(v[3], "box", where)};
  if (b.w < 0 || b.h < 0) bad(where + ": \"box\" has a negative width or height");
  if (static_cast<int64_t>(b.x) + b.w > std::numeric_limits<int>::max() ||
      static_cast<int64_t>(b.y) + b.h > std::numeric_limits<int>::max())
    bad(where + ": \"box\" reaches past the largest coordinate");
  return b;
}

double number(const json& o, const char* key, const std::string& where) {
  const json& v = need(o, key, where);
  if (!v.is_number()) bad(where + ": \"" + key + "\" must be a number");
  return v.get<double>();
}

int integer(const json& o, const char* key, const std::string& where) {
  const json& v = need(o, key, where);
  if (!v.is_number()) bad(where + ": \"" + key + "\" must be a number");
  return to_int(v, key, where);
}

// A probability; anything outside 0..1 is refused by name (and never reaches a float as
// a value it cannot hold).
double probability(const json& o, const char* key, const std::string& where) {
  const double p = number(o, key, where);
  if (!(p >= 0 && p <= 1)) bad(where + ": \"" + key + "\" value " + o.at(key).dump() + " is not between 0 and 1");
  return p;
}

std::string text(const json& o, const char* key, const std::string& where) {
  const json& v = need(o, key, where);
  if (!v.is_string()) bad(where + ": \"" + key + "\" must be a string");
  return v.get<std::string>();
}

std::string csv_quote(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

}  // namespace

json to_json(const PageResult& page) {
  json o = {{"page", page.page}, {"page_index", page.page_index}, {"width", page.width}, {"height", page.height}};
  json strings = json::array();
  for (const StringResult& s : page.strings) {
    json digits = json::array();
    for (const DigitResult& d : s.digits) {
      json top = json::array();
      for (const Candidate& c : d.top) top.push_back({{"digit", c.digit}, {"confidence", round4(c.confidence)}});
      digits.push_back({{"digit", d.digit}, {"box", box_json(d.box)}, {"confidence", round4(d.confidence)}, {"top3", top}});
    }
    strings.push_back({{"text", s.text}, {"box", box_json(s.box)}, {"confidence", round4(s.confidence)}, {"digits", digits}});
  }
  o["strings"] = strings;
  if (!page.fields.empty()) {
    json fields = json::array();
    for (const FieldResult& f : page.fields)
      fields.push_back({{"name", f.name}, {"rule", f.rule}, {"text", f.text}, {"found", f.found},
                        {"valid", f.valid}, {"corrected", f.corrected}, {"confidence", round4(f.confidence)},
                        {"box", box_json(f.box)}});
    o["fields"] = fields;
  }
  if (page.error) o["error"] = *page.error;
  return o;
}

PageResult page_from_json(const json& o) {
  PageResult page;
  page.page = text(o, "page", "page");
  const std::string where = "page \"" + page.page + "\"";
  if (o.contains("page_index")) page.page_index = integer(o, "page_index", where);
  if (o.contains("width")) page.width = integer(o, "width", where);
  if (o.contains("height")) page.height = integer(o, "height", where);
  if (o.contains("error")) page.error = text(o, "error", where);
  const json& strings = need(o, "strings", where);
  if (!strings.is_array()) bad(where + ": \"strings\" must be an array");
  for (size_t i = 0; i < strings.size(); ++i) {
    const std::string sw = where + " string " + std::to_string(i);
    const json& js = strings[i];
    StringResult s;
    s.text = text(js, "text", sw);
    s.box = box_from(need(js, "box", sw), sw);
    if (js.contains("confidence")) s.confidence = probability(js, "confidence", sw);
    if (js.contains("digits")) {
      const json& digits = js["digits"];
      if (!digits.is_array()) bad(sw + ": \"digits\" must be an array");
      for (size_t j = 0; j < digits.size(); ++j) {
        const std::string dw = sw + " digit " + std::to_string(j);
        DigitResult d;
        d.digit = integer(digits[j], "digit", dw);
        d.box = box_from(need(digits[j], "box", dw), dw);
        if (digits[j].contains("confidence")) d.confidence = static_cast<float>(probability(digits[j], "confidence", dw));
        if (digits[j].contains("top3") && digits[j]["top3"].is_array())
          for (const json& c : digits[j]["top3"])
            d.top.push_back({integer(c, "digit", dw), static_cast<float>(probability(c, "confidence", dw))});
        s.digits.push_back(std::move(d));
      }
    }
    page.strings.push_back(std::move(s));
  }
  if (o.contains("fields")) {
    if (!o["fields"].is_array()) bad(where + ": \"fields\" must be an array");
    for (const json& jf : o["fields"]) {
      FieldResult f;
      f.name = text(jf, "name", where + " field");
      const std::string fw = where + " field \"" + f.name + "\"";
      f.rule = jf.value("rule", "");
      f.text = text(jf, "text", fw);
      f.found = jf.value("found", !f.text.empty());
      f.valid = jf.value("valid", false);
      f.corrected = jf.value("corrected", false);
      f.confidence = jf.value("confidence", 0.0);
      if (jf.contains("box")) f.box = box_from(jf["box"], fw);
      page.fields.push_back(std::move(f));
    }
  }
  return page;
}

namespace {

// The JSON library's message, for a person: without its "[json.exception...]" tag, the
// line's own "line 1" (a results line is parsed alone), or bytes that are not text.
std::string json_problem(const json::exception& e) {
  std::string what = e.what();
  const size_t tag_end = what.find("] ");
  if (what.rfind("[json.exception.", 0) == 0 && tag_end != std::string::npos) what.erase(0, tag_end + 2);
  const std::string at_line = "parse error at line 1, ";
  if (what.rfind(at_line, 0) == 0) what = "at " + what.substr(at_line.size());
  for (char& c : what)
    if (static_cast<unsigned char>(c) < 32 || static_cast<unsigned char>(c) >= 127) c = '?';
  return what;
}

}  // namespace

PageResult parse_results_line(const std::string& line) {
  json object;
  try {
    object = json::parse(line);
  } catch (const json::exception& e) {
    throw ResultsFormatError("not JSON (" + json_problem(e) + ")");
  }
  return page_from_json(object);
}

double as_written(double probability) { return round4(probability); }

std::vector<PageResult> read_results(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    const std::filesystem::path inside = std::filesystem::path(path) / "results.jsonl";
    throw ResultsFormatError(path + ": is a folder, not a results file" +
                             (std::filesystem::exists(inside, ec) ? " (give " + inside.string() + ")" : ""));
  }
  std::ifstream in(path);
  if (!in) throw ResultsFormatError(path + ": cannot open (" + std::strerror(errno) + ")");
  std::vector<PageResult> pages;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      pages.push_back(parse_results_line(line));
    } catch (const ResultsFormatError& e) {
      throw ResultsFormatError(path + ":" + std::to_string(number) + ": " + e.what());
    }
  }
  return pages;
}

bool looks_like_truth(const std::vector<PageResult>& pages) {
  bool any = false;
  for (const PageResult& p : pages)
    for (const StringResult& s : p.strings) {
      any = true;
      if (s.confidence < 1.0) return false;
      for (const DigitResult& d : s.digits)
        if (d.top.size() > 1) return false;
    }
  return any;
}

void remove_earlier_overlays(const std::filesystem::path& out_dir, const std::filesystem::path& pages) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path overlays = out_dir / "overlays";
  if (!fs::exists(out_dir / "results.jsonl", ec) || !fs::is_directory(overlays, ec)) return;
  if (!pages.empty()) {
    const fs::path inside = fs::weakly_canonical(fs::absolute(pages), ec);
    const fs::path old = fs::weakly_canonical(fs::absolute(overlays), ec);
    if (std::mismatch(old.begin(), old.end(), inside.begin(), inside.end()).first == old.end()) return;
  }
  fs::remove_all(overlays, ec);
  if (ec)
    throw std::runtime_error(overlays.string() + ": cannot remove the overlays of the output before (" +
                             ec.message() + ")");
}

void write_csv_header(std::ostream& out) {
  out << "page,page_index,string,text,confidence,x,y,width,height,field,valid,error\n";
}

void write_csv_rows(std::ostream& out, const PageResult& page) {
  const std::string prefix = csv_quote(page.page) + "," + std::to_string(page.page_index) + ",";
  if (page.error) {
    out << prefix << ",,,,,,,,," << csv_quote(*page.error) << "\n";
    return;
  }
  for (size_t i = 0; i < page.strings.size(); ++i) {
    const StringResult& s = page.strings[i];
    const FieldResult* field = nullptr;
    for (const FieldResult& f : page.fields)
      if (f.found && f.box == s.box) field = &f;
    char conf[32];
    std::snprintf(conf, sizeof conf, "%.4f", s.confidence);
    out << prefix << i << "," << csv_quote(field ? field->text : s.text) << "," << conf << "," << s.box.x << ","
        << s.box.y << "," << s.box.w << "," << s.box.h << "," << (field ? csv_quote(field->name) : "") << ","
        << (field ? (field->valid ? "true" : "false") : "") << ",\n";
  }
}

}  // namespace digitflow::pipeline

// The routes' work: jobs, results and pages read through the store; overlays and crops from
// the job's files; recognition on the default model, beside its screen and partner as the job
// workers read, through readers kept between calls (behind a mutex); the review
// queue from the stored pages of the caller's finished jobs; samples as 28x28 PNGs under the
// state directory.
#include "digitflow/web/service.hpp"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <map>
#include <opencv2/imgcodecs.hpp>
#include <sstream>

#include "digitflow/config/template.hpp"
#include "digitflow/jobs/retrain.hpp"
#include "digitflow/jobs/sample_image.hpp"
#include "digitflow/pipeline/normalize.hpp"
#include "digitflow/pipeline/read.hpp"
#include "digitflow/pipeline/results.hpp"
#include "digitflow/web/errors.hpp"

namespace digitflow::web {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr int64_t kSlice = 500;  // pages read from the store at a time

// Every stored page of a job in page order, a slice at a time; `visit` returns false to stop.
template <typename Visit>
void each_page(jobs::JobStore& store, int64_t job, Visit&& visit) {
  for (int64_t from = 0;;) {
    const std::vector<jobs::PageRecord> slice = store.pages(job, from, kSlice);
    for (const jobs::PageRecord& p : slice)
      if (!visit(p)) return;
    if (static_cast<int64_t>(slice.size()) < kSlice) return;
    from = slice.back().seq + 1;
  }
}

std::string encode_png(const cv::Mat& image) {
  std::vector<uint8_t> bytes;
  if (!cv::imencode(".png", image, bytes)) throw std::runtime_error("encoding a PNG failed");
  return {bytes.begin(), bytes.end()};
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

pipeline::Box parse_box(const std::string& text) {
  pipeline::Box box;
  char extra = 0;
  if (std::sscanf(text.c_str(), "%d,%d,%d,%d%c", &box.x, &box.y, &box.w, &box.h, &extra) != 4 ||
      box.w <= 0 || box.h <= 0)
    throw BadRequest("box expects x,y,w,h in pixels with w and h > 0, got '" + text.substr(0, 60) +
                     "'");
  return box;
}

template <typename T>
T member(const json& body, const char* key) {
  if (!body.contains(key)) throw BadRequest(std::string("the body lacks \"") + key + "\"");
  try {
    return body.at(key).get<T>();
  } catch (const json::exception&) {
    throw BadRequest(std::string("\"") + key + "\" has the wrong type");
  }
}

// A job's template title; each job's copy is read once (job lists are polled).
std::string template_title(const std::string& path) {
  static std::mutex mutex;
  static std::map<std::string, std::string> titles;
  std::lock_guard lock(mutex);
  if (auto it = titles.find(path); it != titles.end()) return it->second;
  std::string title;
  try {
    title = config::load_template(path).name;
  } catch (const std::exception&) {
    title = fs::path(path).stem().string();
  }
  if (titles.size() > 100'000) titles.clear();
  return titles[path] = title;
}

}  // namespace

json to_json(const jobs::User& u) {
  return {{"id", u.id},
          {"name", u.name},
          {"email", u.email},
          {"role", u.role},
          {"disabled", u.disabled}};
}

json to_json(const jobs::Job& j) {
  double rate = 0;
  if (j.started_ms > 0) {
    const int64_t end = j.finished_ms > 0 ? j.finished_ms : jobs::now_ms();
    if (end > j.started_ms)
      rate = static_cast<double>(j.pages_done) * 1000.0 / static_cast<double>(end - j.started_ms);
  }
  const std::string template_name =
      j.template_path.empty() ? std::string() : template_title(j.template_path);
  return {{"id", j.id},
          {"name", j.name},
          {"owner", j.owner_name},
          {"state", jobs::to_string(j.state)},
          {"pages_total", j.pages_total},
          {"pages_done", j.pages_done},
          {"pages_failed", j.pages_failed},
          {"strings", j.strings},
          {"low_confidence", j.low_confidence},
          {"created_ms", j.created_ms},
          {"started_ms", j.started_ms},
          {"finished_ms", j.finished_ms},
          {"pages_per_s", std::round(rate * 100) / 100},
          {"error", j.error},
          {"template", template_name},
          {"cancel_requested", j.cancel_requested}};
}

Service::Service(const ServerOptions& options)
    : options_(options),
      stores_(options.store),
      passwords_(options.assets / "common-passwords.txt"),
      limits_{int64_t{options.web.max_file_mb} << 20, int64_t{options.web.max_job_mb} << 20,
              options.web.max_files},
      model_path_(jobs::default_model(*stores_.acquire(), options.model)),
      model_(kernels::load_model(model_path_)) {
  AccountOptions a;
  a.registration_open = options.web.registration_open;
  a.session_ms = int64_t{options.web.session_hours} * 3600 * 1000;
  a.argon2_ops = static_cast<uint64_t>(options.web.argon2_ops);
  a.argon2_memory_bytes = static_cast<size_t>(options.web.argon2_memory_mb) << 20;
  accounts_ = std::make_unique<Accounts>(stores_, passwords_, a);
  // Uploads a crashed server left behind; a day old, so that another server sharing the
  // state directory keeps the ones it is receiving.
  std::error_code ec;
  const auto day_ago = fs::file_time_type::clock::now() - std::chrono::hours(24);
  for (fs::directory_iterator it(uploads_dir(), ec), end; !ec && it != end; it.increment(ec))
    if (it->path().filename().string().starts_with(".upload-") && it->last_write_time(ec) < day_ago)
      fs::remove_all(it->path(), ec);
}

json Service::templates() const {
  json list = json::array();
  std::error_code ec;
  std::vector<fs::path> files;
  for (fs::directory_iterator it(options_.templates, ec), end; !ec && it != end; it.increment(ec))
    if (it->path().extension() == ".yaml") files.push_back(it->path());
  std::sort(files.begin(), files.end());
  for (const fs::path& file : files) {
    try {
      const pipeline::Template t = config::load_template(file);
      json fields = json::array();
      for (const pipeline::FieldSpec& f : t.fields)
        fields.push_back(
            {{"name", f.name}, {"rule", pipeline::rule_name(f.rule)}, {"length", f.length}});
      list.push_back({{"name", file.stem().string()}, {"title", t.name}, {"fields", fields}});
    } catch (const std::exception&) {
      // a broken template is not offered; digitflow run names its problem
    }
  }
  return {{"templates", list}};
}

int64_t Service::submit(const Caller& caller, const UploadFolder& upload, const std::string& name,
                        const std::string& template_name, const std::string& template_file) {
  if (upload.files() == 0)
    throw BadRequest("the upload holds no files: send parts named files, or one zip");
  if (name.size() > 200 ||
      std::any_of(name.begin(), name.end(), [](unsigned char c) { return c < 0x20; }))
    throw BadRequest("a job name is at most 200 characters, without control characters");
  jobs::Submission s;
  s.folder = upload.path();
  s.owner = caller.user.name;
  s.name = name.empty() ? "upload" : name;
  s.link = true;
  if (!template_name.empty()) {
    const fs::path file = options_.templates / (template_name + ".yaml");
    const bool plain = template_name.find_first_not_of(
                           "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") ==
                       std::string::npos;
    if (!plain || template_name[0] == '.' || !fs::is_regular_file(file))
      throw BadRequest("no template '" + template_name.substr(0, 60) +
                       "' (GET /api/v1/templates lists them)");
    s.template_file = file;
  }
  if (!template_file.empty()) {
    if (!template_name.empty())
      throw BadRequest("send a template or a template_file, not both");
    const fs::path file = upload.path() / safe_relative_path(template_file);
    if (!fs::is_regular_file(file))
      throw BadRequest("template_file '" + template_file.substr(0, 200) +
                       "' is not a file of the upload");
    try {
      config::load_template(file);
    } catch (const std::exception& e) {
      // The message names the upload's temporary folder; the user knows the file by its name.
      std::string why = e.what();
      for (size_t at = why.find(file.string()); at != std::string::npos; at = why.find(file.string(), at))
        why.replace(at, file.string().size(), template_file.substr(0, 200));
      throw BadRequest(why);
    }
    s.template_file = file;
  }
  auto store = stores_.acquire();
  try {
    return jobs::submit_job(*store, options_.state, s);
  } catch (const jobs::SubmitError& e) {
    throw BadRequest(e.what());
  }
}

json Service::jobs(const Caller& caller, bool mine_only) {
  const int64_t owner = caller.is_admin() && !mine_only ? 0 : caller.user.id;
  json list = json::array();
  for (const jobs::Job& j : stores_.acquire()->jobs(owner)) list.push_back(to_json(j));
  return {{"jobs", list}};
}

jobs::Job Service::job(const Caller& caller, int64_t id) {
  std::optional<jobs::Job> found = stores_.acquire()->job(id);
  if (!found || (found->owner != caller.user.id && !caller.is_admin()))
    throw NotFound("no job " + std::to_string(id));
  return *found;
}

json Service::cancel(const Caller& caller, int64_t id) {
  const jobs::Job j = job(caller, id);
  if (jobs::is_final(j.state)) return {{"state", jobs::to_string(j.state)}};
  const std::optional<jobs::JobState> after = stores_.acquire()->cancel_job(id);
  return {{"state", jobs::to_string(after.value_or(j.state))}};
}

std::string Service::results(const Caller& caller, int64_t id, const std::string& format) {
  if (format != "jsonl" && format != "csv") throw BadRequest("format is jsonl or csv");
  job(caller, id);
  std::ostringstream out;
  if (format == "csv") pipeline::write_csv_header(out);
  auto store = stores_.acquire();
  each_page(*store, id, [&](const jobs::PageRecord& p) {
    if (format == "csv")
      pipeline::write_csv_rows(out, pipeline::page_from_json(json::parse(p.result_json)));
    else
      out << p.result_json << '\n';
    return true;
  });
  return out.str();
}

json Service::pages(const Caller& caller, int64_t id, int64_t from, int64_t limit,
                    const std::string& filter) {
  if (filter != "all" && filter != "failed" && filter != "low")
    throw BadRequest("filter is all, failed or low");
  if (from < 0 || limit < 1 || limit > 1000) throw BadRequest("from >= 0 and limit 1..1000");
  job(caller, id);
  json list = json::array();
  int64_t total = 0;
  auto store = stores_.acquire();
  each_page(*store, id, [&](const jobs::PageRecord& p) {
    if ((filter == "failed" && !p.failed) || (filter == "low" && p.low_confidence == 0))
      return true;
    if (total >= from && total < from + limit)
      list.push_back({{"seq", p.seq},
                      {"key", p.key},
                      {"failed", p.failed},
                      {"strings", p.strings},
                      {"low_confidence", p.low_confidence},
                      {"result", json::parse(p.result_json)}});
    ++total;
    return true;
  });
  return {{"total", total}, {"pages", list}};
}

std::optional<jobs::PageRecord> Service::find_page(jobs::JobStore& store, int64_t job,
                                                   const std::string& key) {
  std::optional<jobs::PageRecord> found;
  each_page(store, job, [&](const jobs::PageRecord& p) {
    if (p.key == key) found = p;
    return !found;
  });
  return found;
}

std::string Service::overlay_png(const Caller& caller, int64_t id, const std::string& page_key) {
  job(caller, id);
  const auto page = find_page(*stores_.acquire(), id, page_key);
  if (!page)
    throw NotFound("job " + std::to_string(id) + " has no page '" + page_key.substr(0, 200) + "'");
  const pipeline::PageResult result = pipeline::page_from_json(json::parse(page->result_json));
  const fs::path overlays = options_.state.job_output(id) / "overlays";
  const fs::path file = (overlays / pipeline::overlay_name(result)).lexically_normal();
  if (!file.string().starts_with(overlays.lexically_normal().string()) ||
      !fs::is_regular_file(file))
    throw NotFound(
        "no overlay for this page (jobs.overlays is off, the page failed, or the job is not done)");
  return read_file(file);
}

cv::Mat Service::decode_stored_page(const jobs::Job& j, const pipeline::PageResult& page) {
  if (page.error) throw BadRequest("the page could not be read: " + *page.error);
  const fs::path file = j.input_dir / page.page;
  for (const pipeline::PageRef& ref : pipeline::probe_file(file, page.page, options_.run.limits))
    if (ref.page_index == page.page_index) {
      if (!ref.error.empty()) throw NotFound("the page cannot be read: " + ref.error);
      return pipeline::decode_page(ref, options_.run.limits);
    }
  throw NotFound("the page's file is gone");
}

std::string Service::crop_png(const Caller& caller, int64_t id, const std::string& page_key,
                              const std::string& box_text) {
  const pipeline::Box box = parse_box(box_text);
  const jobs::Job j = job(caller, id);
  const auto page = find_page(*stores_.acquire(), id, page_key);
  if (!page)
    throw NotFound("job " + std::to_string(id) + " has no page '" + page_key.substr(0, 200) + "'");
  const cv::Mat gray =
      decode_stored_page(j, pipeline::page_from_json(json::parse(page->result_json)));
  const cv::Rect rect = cv::Rect(box.x, box.y, box.w, box.h) & cv::Rect(0, 0, gray.cols, gray.rows);
  if (rect.empty()) throw BadRequest("the box lies outside the page");
  return encode_png(gray(rect));
}

json Service::recognize(std::span<const uint8_t> image, bool one_digit, bool drawn) {
  cv::Mat gray;
  double dpi = 0;  // as the image states; the pad's drawings state none
  try {
    gray = pipeline::decode_image(image, options_.run.limits, &dpi);
  } catch (const pipeline::ImageError& e) {
    throw BadRequest(e.what());
  }
  const auto start = std::chrono::steady_clock::now();
  pipeline::PageResult result;
  json models;       // the files that read it, model first
  bool int8 = false;  // whether they read it in int8
  {
    std::lock_guard lock(model_mutex_);
    refresh_model(*stores_.acquire());
    if (!page_reader_ || !digit_reader_) {
      // As the job workers read: the screen and the partner beside model.default, not beside
      // a retrained version promoted since (they were trained to read with the default).
      const bool configured = jobs::is_configured_model(model_path_, options_.model);
      if (configured && !options_.worker.screen_model.empty() && !screen_)
        screen_ = kernels::load_model(options_.worker.screen_model);
      if (configured && !options_.worker.partner_model.empty() && !partner_)
        partner_ = kernels::load_model(options_.worker.partner_model);
      kernels::Network* screen = configured && screen_ ? &screen_->network : nullptr;
      kernels::Network* partner = configured && partner_ ? &partner_->network : nullptr;
      // Set up whole before they are kept: a screen or partner that cannot read beside the
      // model throws here on every call rather than leave a reader without it.
      auto page = std::make_unique<kernels::Inference>(model_.network, kernels::Backend::cpu, 64);
      auto digit = std::make_unique<kernels::Inference>(model_.network, kernels::Backend::cpu, 1);
      if (screen) page->set_screen(*screen, options_.run.screen_confidence);
      if (partner) page->set_partner(*partner), digit->set_partner(*partner);
      page->set_int8(options_.run.int8);
      digit->set_int8(options_.run.int8);
      page_reader_ = std::move(page);
      digit_reader_ = std::move(digit);
      page_models_ = digit_models_ = {model_path_.filename().string()};
      if (screen) page_models_.push_back(options_.worker.screen_model.filename().string());
      for (json* list : {&page_models_, &digit_models_})
        if (partner) list->push_back(options_.worker.partner_model.filename().string());
    }
    models = one_digit ? digit_models_ : page_models_;
    if (one_digit) {
      try {
        pipeline::StringResult s;
        s.digits.push_back(pipeline::recognize_digit(gray, *digit_reader_));
        s.text = std::to_string(s.digits[0].digit);
        s.box = s.digits[0].box;
        s.confidence = s.digits[0].confidence;
        result.strings.push_back(s);
      } catch (const pipeline::ImageError&) {
        // no ink: no strings
      }
    } else {
      pipeline::RunOptions run = options_.run;
      run.clean.remove_lines = !drawn;
      if (drawn) run.read.min_digits = 1;  // one digit written on the pad is a string too
      result = drawn ? pipeline::recognize_drawing(gray, *page_reader_, run)
                     : pipeline::recognize_image(gray, *page_reader_, run, dpi);
    }
    // After the read: a pass size oneDNN could not build falls back to fp32 then. Each
    // reason is logged once, whenever it first appears.
    const kernels::Inference& reader = one_digit ? *digit_reader_ : *page_reader_;
    int8 = reader.int8();
    if (const std::string why = reader.int8_fallback(); !why.empty()) {
      const std::string line = "recognize: runtime.int8 is on, but these read in fp32 (slower): " + why +
                               " (reading with " + model_path_.string() + ")";
      if (int8_logged_.insert(line).second && options_.log) options_.log(line);
    }
  }
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  json answer = {{"width", gray.cols},
                 {"height", gray.rows},
                 {"ms", std::round(ms * 100) / 100},
                 {"strings", pipeline::to_json(result)["strings"]},
                 {"models", models},
                 {"int8", int8}};
  if (result.error) answer["error"] = *result.error;
  return answer;
}

json Service::review_queue(const Caller& caller, int64_t limit) {
  if (limit < 1 || limit > 500) throw BadRequest("limit is 1..500");
  json items = json::array();
  std::vector<std::pair<double, json>> found;
  auto store = stores_.acquire();
  for (const jobs::Job& j : store->jobs(caller.user.id)) {
    if (j.state != jobs::JobState::done) continue;
    const std::vector<std::string> reviewed_list = store->reviewed_digits(j.id);
    const std::set<std::string> reviewed(reviewed_list.begin(), reviewed_list.end());
    each_page(*store, j.id, [&](const jobs::PageRecord& p) {
      if (p.failed) return true;
      const json result = json::parse(p.result_json);
      const json& strings = result.value("strings", json::array());
      for (size_t si = 0; si < strings.size(); ++si) {
        const json& digits = strings[si].value("digits", json::array());
        for (size_t di = 0; di < digits.size(); ++di) {
          const double confidence = digits[di].value("confidence", 1.0);
          if (confidence >= options_.web.review_confidence) continue;
          if (reviewed.count(p.key + "/" + std::to_string(si) + "/" + std::to_string(di))) continue;
          const json& b = digits[di]["box"];
          std::string crop = "/api/v1/jobs/" + std::to_string(j.id) + "/crop?page=";
          for (unsigned char c : p.key) {  // percent-encoded
            if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
              crop += static_cast<char>(c);
            } else {
              char esc[4];
              std::snprintf(esc, sizeof esc, "%%%02X", c);
              crop += esc;
            }
          }
          crop.append("&box=").append(std::to_string(b[0].get<int>())).append(",");
          crop.append(std::to_string(b[1].get<int>()))
              .append(",")
              .append(std::to_string(b[2].get<int>()));
          crop.append(",").append(std::to_string(b[3].get<int>()));
          found.emplace_back(confidence, json{{"job", j.id},
                                              {"page", p.key},
                                              {"string_index", si},
                                              {"digit_index", di},
                                              {"guess", digits[di].value("digit", -1)},
                                              {"confidence", confidence},
                                              {"top", digits[di].value("top3", json::array())},
                                              {"box", b},
                                              {"string", strings[si].value("text", "")},
                                              {"crop_url", crop}});
        }
      }
      return true;
    });
  }
  std::stable_sort(found.begin(), found.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  for (size_t i = 0; i < found.size() && static_cast<int64_t>(i) < limit; ++i)
    items.push_back(found[i].second);
  return {{"digits", items}, {"total", found.size()}};
}

json Service::add_sample(const Caller& caller, const json& body) {
  const auto id = member<int64_t>(body, "job");
  const auto key = member<std::string>(body, "page");
  const auto si = member<int>(body, "string_index");
  const auto di = member<int>(body, "digit_index");
  const auto label = member<int>(body, "label");
  if (label < 0 || label > 10) throw BadRequest("label is 0..9, or 10 for 'not a digit'");
  const jobs::Job j = job(caller, id);
  auto store = stores_.acquire();
  const auto page = find_page(*store, id, key);
  if (!page)
    throw NotFound("job " + std::to_string(id) + " has no page '" + key.substr(0, 200) + "'");
  const pipeline::PageResult result = pipeline::page_from_json(json::parse(page->result_json));
  if (si < 0 || si >= static_cast<int>(result.strings.size()) || di < 0 ||
      di >= static_cast<int>(result.strings[static_cast<size_t>(si)].digits.size()))
    throw NotFound("the page has no digit " + std::to_string(di) + " in string " +
                   std::to_string(si));
  const pipeline::DigitResult& d =
      result.strings[static_cast<size_t>(si)].digits[static_cast<size_t>(di)];
  const cv::Mat gray = decode_stored_page(j, result);
  const cv::Rect rect =
      cv::Rect(d.box.x, d.box.y, d.box.w, d.box.h) & cv::Rect(0, 0, gray.cols, gray.rows);
  if (rect.empty()) throw BadRequest("the digit's box lies outside the page");
  pipeline::DigitPixels pixels{};
  try {
    pixels = pipeline::normalize_digit(gray(rect));
  } catch (const pipeline::ImageError&) {
    // a box without ink (a "not a digit" label may well be blank): stored black
  }
  const std::string relative =
      "samples/" + std::to_string(id) + "/" +
      sha256_hex(key + "/" + std::to_string(si) + "/" + std::to_string(di)).substr(0, 24) + ".png";
  jobs::save_sample_image(options_.state.root / relative, pixels);
  jobs::Sample s;
  s.user = caller.user.id;
  s.job = id;
  s.page_key = key;
  s.string_index = si;
  s.digit_index = di;
  s.guess = d.digit;
  s.confidence = d.confidence;
  s.label = label;
  s.image = relative;
  s.created_ms = jobs::now_ms();
  const int64_t sample = store->put_sample(s);
  return {{"sample", sample}, {"image", relative}, {"label", label}, {"guess", d.digit}};
}

void Service::refresh_model(jobs::JobStore& store) {
  const fs::path wanted = jobs::default_model(store, options_.model);
  if (wanted == model_path_) return;
  page_reader_.reset();  // they read with the weights of the model being replaced
  digit_reader_.reset();
  model_ = kernels::load_model(wanted);
  model_path_ = wanted;
}

json Service::model() {
  std::lock_guard lock(model_mutex_);
  refresh_model(*stores_.acquire());
  const json& m = model_.metrics;
  // File names only: where the server keeps its files is not for every user to see.
  json current = {{"path", model_path_.filename().string()}, {"name", model_.network.spec().name}};
  if (m.is_object()) {
    current["mnist_accuracy"] = m.value("test_accuracy", json());
    current["per_class"] = m.value("per_class", json::array());
    current["confusion"] = m.value("confusion", json::array());
    json curve = json::array();
    for (const json& e : m.value("history", json::array()))
      curve.push_back({{"epoch", e.value("epoch", 0)},
                       {"loss", e.value("train_loss", 0.0)},
                       {"accuracy", e.value("train_accuracy", 0.0)},
                       {"val_accuracy", e.value("val_accuracy", 0.0)},
                       {"val_loss", e.value("val_loss", 0.0)}});
    current["curve"] = curve;
  }
  json versions = json::array();
  auto store = stores_.acquire();
  try {
    jobs::fail_abandoned_versions(*store);  // a trainer killed while this server ran
  } catch (const std::exception& e) {  // the page still shows what there is
    if (options_.log) options_.log(std::string("model versions: cannot record abandoned ones: ") + e.what());
  }
  for (const jobs::ModelVersion& v : store->model_versions()) {
    json metrics = json::object();
    try {
      metrics = json::parse(v.metrics_json.empty() ? "{}" : v.metrics_json);
    } catch (const json::exception&) {
    }
    versions.push_back({{"id", v.id},
                        {"path", fs::path(v.path).filename().string()},
                        {"status", v.status},
                        {"default", v.is_default},
                        {"note", v.note},
                        {"metrics", metrics},
                        {"created_ms", v.created_ms}});
  }
  return {{"current", current}, {"versions", versions}, {"samples", store->samples(0, 0).size()}};
}

json Service::retrain(const Caller& admin) {
  std::lock_guard lock(retrain_mutex_);
  if (retraining_) throw Taken("a retraining is already running");
  if (retrain_thread_.joinable()) retrain_thread_.join();
  const jobs::RetrainPaths paths{options_.state, options_.model, options_.mnist, options_.worker.screen_model,
                                 options_.worker.partner_model, options_.run.screen_confidence};
  jobs::ModelVersion version;
  try {
    version = jobs::start_retrain(*stores_.acquire(), paths);
  } catch (const jobs::RetrainError& e) {
    throw Taken(e.what());
  }
  retraining_ = true;
  cancel_retrain_ = false;
  auto log = options_.log;
  const std::string who = admin.user.name;
  retrain_thread_ = std::thread([this, version, paths, log, who] {
    try {
      std::unique_ptr<jobs::JobStore> store = jobs::open_store(options_.store);
      jobs::RetrainOptions retrain_options;
      retrain_options.lease_ms = options_.worker.lease_ms;
      const jobs::RetrainResult r =
          jobs::run_retrain(*store, version, paths, retrain_options, {}, &cancel_retrain_);
      if (log)
        log("model version " + std::to_string(version.id) + " (retrain asked by " + who +
            "): " + r.version.status + (r.version.note.empty() ? "" : ", " + r.version.note));
    } catch (const std::exception& e) {
      if (log)
        log("model version " + std::to_string(version.id) + ": retraining failed: " + e.what());
    }
    retraining_ = false;
  });
  return {{"version",
           {{"id", version.id},
            {"path", fs::path(version.path).filename().string()},
            {"status", version.status},
            {"created_ms", version.created_ms}}}};
}

void Service::stop_retrain() {
  std::lock_guard lock(retrain_mutex_);
  cancel_retrain_ = true;
  if (retrain_thread_.joinable()) retrain_thread_.join();
}

Service::~Service() { stop_retrain(); }

json Service::users(const Caller&) {
  json list = json::array();
  for (const jobs::User& u : stores_.acquire()->users()) list.push_back(to_json(u));
  return {{"users", list}};
}

}  // namespace digitflow::web

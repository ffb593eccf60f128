// Jobs over HTTP: uploads of files and folders and zips, every limit and every way a name
// could reach outside the job's folder; another user's job does not exist; a job sent over
// HTTP is read by the server's own worker, and its results, pages, overlays, crops, review
// queue and samples come back through the API.
#include <zip.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <mutex>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "digitflow/jobs/store.hpp"
#include "digitflow/kernels/inference.hpp"
#include "digitflow/kernels/model_file.hpp"
#include "digitflow/pipeline/read.hpp"
#include "web_fixture.hpp"

namespace digitflow::web::testing {
namespace {

std::string read(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

// "717" as drawn on the pad: thick strokes on a white canvas, the 7s' bars as long as a form line.
cv::Mat drawn_717() {
  cv::Mat pad(320, 960, CV_8U, cv::Scalar(255));
  for (const auto& [a, b] : std::vector<std::pair<cv::Point, cv::Point>>{
           {{85, 55}, {255, 55}}, {{255, 55}, {190, 265}}, {{355, 45}, {355, 265}},
           {{470, 60}, {600, 60}}, {{600, 60}, {520, 270}}})
    cv::line(pad, a, b, cv::Scalar(0), 14, cv::LINE_AA);
  return pad;
}

// Every regular file under `root`, relative, sorted.
std::vector<std::string> files_under(const fs::path& root) {
  std::vector<std::string> names;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec))
    if (it->is_regular_file())
      names.push_back(it->path().lexically_relative(root).generic_string());
  std::sort(names.begin(), names.end());
  return names;
}

// A zip holding `entries` (name -> content); `link` entries become symbolic links.
std::string make_zip(const fs::path& file,
                     const std::vector<std::pair<std::string, std::string>>& entries,
                     const std::vector<std::string>& links = {}) {
  int error = 0;
  zip_t* z = zip_open(file.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &error);
  EXPECT_NE(z, nullptr);
  std::vector<std::string> keep;  // libzip reads the buffers at close
  keep.reserve(entries.size());
  for (const auto& [name, content] : entries) {
    keep.push_back(content);
    zip_source_t* source = zip_source_buffer(z, keep.back().data(), keep.back().size(), 0);
    const zip_int64_t index = zip_file_add(z, name.c_str(), source, ZIP_FL_OVERWRITE);
    EXPECT_GE(index, 0) << name;
    if (std::find(links.begin(), links.end(), name) != links.end())
      zip_file_set_external_attributes(z, static_cast<zip_uint64_t>(index), 0, ZIP_OPSYS_UNIX,
                                       (0120777u) << 16);
  }
  EXPECT_EQ(zip_close(z), 0);
  return read(file);
}

class JobsApiTest : public WebTest {
 protected:
  httplib::Result upload(const httplib::MultipartFormDataItems& items,
                         const httplib::Headers& headers) {
    auto r = client().Post("/api/v1/jobs", headers, items);
    EXPECT_TRUE(r) << "no answer to the upload";
    return r;
  }
  // Nothing but the store, the job inputs and outputs under the state dir, and nothing
  // outside it but the synthetic pages.
  void expect_nothing_stray() {
    EXPECT_TRUE(files_under(options_.state.root / "uploads").empty());
    for (const std::string& f : files_under(dir_.path()))
      EXPECT_TRUE(f.starts_with("state/") || f.starts_with("synth-") || f.starts_with("zips/"))
          << f;
    for (const std::string& f : files_under(dir_.path()))
      EXPECT_EQ(f.find("evil"), std::string::npos) << f;
  }
};

TEST_F(JobsApiTest, AFolderUploadKeepsItsFoldersAndAnotherUserCannotSeeTheJob) {
  const Browser ana = register_user("ana");
  auto r = upload({{"files", "page one", "batch1/a.png", "image/png"},
                   {"files", "page two", "batch2/deeper/b.png", "image/png"},
                   {"name", "nightly", "", ""}},
                  with(ana));
  ASSERT_EQ(r->status, 201) << r->body;
  const int64_t id = json::parse(r->body)["id"];
  auto store = jobs::open_store(options_.store);
  const jobs::Job job = *store->job(id);
  EXPECT_EQ(job.name, "nightly");
  EXPECT_EQ(files_under(job.input_dir),
            (std::vector<std::string>{"batch1/a.png", "batch2/deeper/b.png"}));
  EXPECT_EQ(read(job.input_dir / "batch1" / "a.png"), "page one");
  expect_nothing_stray();

  const Browser bob = register_user("bob");
  const std::string path = "/api/v1/jobs/" + std::to_string(id);
  for (const std::string& p : std::vector<std::string>{
           path, path + "/results", path + "/pages", path + "/overlay?page=batch1%2Fa.png%230",
           path + "/crop?page=batch1%2Fa.png%230&box=0,0,5,5"})
    EXPECT_EQ(get(p, with(bob))->status, 404) << p;
  EXPECT_EQ(post(path + "/cancel", json::object(), with(bob))->status, 404);
  EXPECT_EQ(json::parse(get("/api/v1/jobs", with(bob))->body)["jobs"].size(), 0u);
  EXPECT_EQ(get(path, with(ana))->status, 200);
  make_admin("bob");
  EXPECT_EQ(get(path, with(bob))->status, 200);
  EXPECT_EQ(json::parse(get("/api/v1/jobs", with(bob))->body)["jobs"].size(), 1u);
  EXPECT_EQ(json::parse(get("/api/v1/jobs?mine=1", with(bob))->body)["jobs"].size(), 0u);
  r = post(path + "/cancel", json::object(), with(ana));
  ASSERT_EQ(r->status, 200) << r->body;
}

TEST_F(JobsApiTest, FileNamesThatLeaveTheFolderAreRefused) {
  const Browser ana = register_user("ana");
  for (const std::string name :
       {"../evil.png", "a/../../evil.png", "/tmp/evil.png", "/evil.png", "a\\..\\evil.png", "..",
        "a//evil.png", "./evil.png", "C:/evil.png"}) {
    auto r = upload({{"files", "x", name, "image/png"}}, with(ana));
    EXPECT_EQ(r->status, 400) << name << " -> " << r->body;
    EXPECT_NE(r->body.find("refused"), std::string::npos) << r->body;
  }
  EXPECT_EQ(upload({{"files", "x", "a.png", ""}, {"files", "y", "a.png", ""}}, with(ana))->status,
            400);                                                            // twice
  EXPECT_EQ(upload({{"name", "nothing", "", ""}}, with(ana))->status, 400);  // no files
  EXPECT_EQ(upload({{"files", "x", "a.png", ""}, {"colour", "blue", "", ""}}, with(ana))->status,
            400);
  EXPECT_EQ(
      upload({{"files", "x", "a.png", ""}, {"template", "../../etc/passwd", "", ""}}, with(ana))
          ->status,
      400);
  EXPECT_FALSE(fs::exists(options_.state.root / "inputs") &&
               !files_under(options_.state.root / "inputs").empty());
  expect_nothing_stray();
}

TEST_F(JobsApiTest, MalformedMultipartIs400AndAMissingSessionIs401) {
  const Browser ana = register_user("ana");
  auto r = client().Post("/api/v1/jobs", with(ana),
                         "--xyz\r\nContent-Disposition: garbage\r\n\r\nnot closed",
                         "multipart/form-data; boundary=xyz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400) << r->body;
  r = client().Post("/api/v1/jobs", with(ana), "{}", "application/json");
  EXPECT_EQ(r->status, 400) << r->body;
  r = client().Post("/api/v1/jobs", with(ana), "--xyz--", "multipart/form-data");  // no boundary
  EXPECT_EQ(r->status, 400) << r->body;
  r = upload({{"files", "x", "a.png", ""}}, {});
  EXPECT_EQ(r->status, 401) << r->body;
  r = upload({{"files", "x", "a.png", ""}}, with(ana, false));
  EXPECT_EQ(r->status, 403) << r->body;
  expect_nothing_stray();
}

TEST_F(JobsApiTest, UploadsOverALimitAre413NamingIt) {
  const Browser ana = register_user("ana");
  const std::string mb(1 << 20, 'x');
  auto r = upload({{"files", mb + "x", "big.png", ""}}, with(ana));  // web.max_file_mb = 1
  EXPECT_EQ(r->status, 413);
  EXPECT_NE(r->body.find("web.max_file_mb"), std::string::npos) << r->body;
  httplib::MultipartFormDataItems many;
  for (int i = 0; i < 6; ++i)
    many.push_back({"files", "x", std::to_string(i) + ".png", ""});  // max_files = 5
  r = upload(many, with(ana));
  EXPECT_EQ(r->status, 413);
  EXPECT_NE(r->body.find("web.max_files"), std::string::npos) << r->body;
  const std::string most(900 << 10, 'y');
  r = upload({{"files", most, "1.png", ""},
              {"files", most, "2.png", ""},
              {"files", most, "3.png", ""},
              {"files", most, "4.png", ""}},
             with(ana));  // 3.6 MB in all; web.max_job_mb = 3
  EXPECT_EQ(r->status, 413);
  EXPECT_NE(r->body.find("web.max_job_mb"), std::string::npos) << r->body;
  r = client().Post("/api/v1/recognize", with(ana), mb + "x", "image/png");
  EXPECT_EQ(r->status, 413) << r->body;
  // Over the request limit itself (max_job_mb + 1 MB): answered before the handler.
  r = upload({{"files", std::string(5 << 20, 'z'), "huge.png", ""}}, with(ana));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);
  EXPECT_NE(r->body.find("web.max_job_mb"), std::string::npos) << r->body;
  expect_nothing_stray();
}

TEST_F(JobsApiTest, AZipUnpacksIntoTheJobAndZipSlipLinksAndBombsAreRefused) {
  const Browser ana = register_user("ana");
  fs::create_directories(dir_ / "zips");
  const std::string good =
      make_zip(dir_ / "zips" / "good.zip", {{"batch1/a.png", "one"}, {"batch1/sub/b.png", "two"}});
  auto r = upload({{"zip", good, "pages.zip", "application/zip"}, {"name", "zipped", "", ""}},
                  with(ana));
  ASSERT_EQ(r->status, 201) << r->body;
  auto store = jobs::open_store(options_.store);
  const jobs::Job job = *store->job(json::parse(r->body)["id"]);
  EXPECT_EQ(files_under(job.input_dir),
            (std::vector<std::string>{"batch1/a.png", "batch1/sub/b.png"}));

  for (const std::string evil :
       {"../evil.png", "a/../../evil.png", "/tmp/evil.png", "..\\evil.png"}) {
    const std::string zip =
        make_zip(dir_ / "zips" / "slip.zip", {{"fine.png", "ok"}, {evil, "escaped"}});
    r = upload({{"zip", zip, "slip.zip", ""}}, with(ana));
    EXPECT_EQ(r->status, 400) << evil << " -> " << r->body;
  }
  const std::string link =
      make_zip(dir_ / "zips" / "link.zip", {{"fine.png", "ok"}, {"evil-link", "/etc/passwd"}},
               {"evil-link"});
  r = upload({{"zip", link, "link.zip", ""}}, with(ana));
  EXPECT_EQ(r->status, 400) << r->body;
  EXPECT_NE(r->body.find("symbolic link"), std::string::npos) << r->body;
  // A bomb: 2 MB of zeros compress to a few KB, over web.max_file_mb once inflated.
  const std::string bomb =
      make_zip(dir_ / "zips" / "bomb.zip", {{"zeros.png", std::string(2 << 20, '\0')}});
  EXPECT_LT(bomb.size(), 100'000u);
  r = upload({{"zip", bomb, "bomb.zip", ""}}, with(ana));
  EXPECT_EQ(r->status, 413) << r->body;
  EXPECT_NE(r->body.find("web.max_file_mb"), std::string::npos) << r->body;
  r = upload({{"zip", "PK\x03\x04 not really", "broken.zip", ""}}, with(ana));
  EXPECT_EQ(r->status, 400) << r->body;
  r = upload({{"zip", good, "a.zip", ""}, {"files", "x", "b.png", ""}}, with(ana));
  EXPECT_EQ(r->status, 400) << r->body;
  fs::remove_all(dir_ / "zips");
  EXPECT_EQ(files_under(options_.state.root / "inputs").size(), 2u);  // only the good zip's job
  expect_nothing_stray();
}

TEST_F(JobsApiTest, AJobSentOverHttpIsReadByTheServersWorker) {
  const fs::path pages = synthetic_pages(2);
  if (pages.empty()) GTEST_SKIP() << "MNIST is not fetched: no pages to make";
  stop();
  start([](ServerOptions& o) {
    o.web.max_file_mb = 20;
    o.web.max_job_mb = 50;
  });
  register_user("ana");
  const std::string token = api_token("ana");
  httplib::MultipartFormDataItems items{{"name", "checks", "", ""}};
  for (const std::string& f : files_under(pages))
    items.push_back({"files", read(pages / f), f, "image/png"});
  auto r = upload(items, bearer(token));
  ASSERT_EQ(r->status, 201) << r->body;
  const int64_t id = json::parse(r->body)["id"];
  const std::string path = "/api/v1/jobs/" + std::to_string(id);

  json job;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(90);
  do {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    job = json::parse(get(path, bearer(token))->body);
  } while (job["state"] != "done" && job["state"] != "failed" &&
           std::chrono::steady_clock::now() < deadline);
  ASSERT_EQ(job["state"], "done") << job.dump();
  EXPECT_EQ(job["pages_total"], 2);
  EXPECT_EQ(job["pages_done"], 2);
  EXPECT_EQ(job["owner"], "ana");
  EXPECT_GT(job["strings"].get<int>(), 0);

  // The results download equals what the worker stored and wrote.
  r = get(path + "/results", bearer(token));
  ASSERT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Type"), "application/x-ndjson");
  EXPECT_EQ(r->body, read(options_.state.job_output(id) / "results.jsonl"));
  std::string stored;
  for (const jobs::PageRecord& p : jobs::open_store(options_.store)->pages(id))
    stored += p.result_json + "\n";
  EXPECT_EQ(r->body, stored);
  r = get(path + "/results?format=csv&download=1", bearer(token));
  EXPECT_EQ(r->body, read(options_.state.job_output(id) / "results.csv"));
  EXPECT_NE(r->get_header_value("Content-Disposition").find("attachment"), std::string::npos);
  EXPECT_EQ(get(path + "/results?format=xml", bearer(token))->status, 400);

  r = get(path + "/pages?from=1&limit=5", bearer(token));
  ASSERT_EQ(r->status, 200);
  json listed = json::parse(r->body);
  EXPECT_EQ(listed["total"], 2);
  ASSERT_EQ(listed["pages"].size(), 1u);
  const std::string key = listed["pages"][0]["key"];
  EXPECT_EQ(listed["pages"][0]["result"]["page"], key.substr(0, key.find('#')));
  EXPECT_EQ(json::parse(get(path + "/pages?filter=failed", bearer(token))->body)["total"], 0);
  EXPECT_EQ(get(path + "/pages?filter=odd", bearer(token))->status, 400);

  const std::string page_param = httplib::detail::encode_query_param(key);
  r = get(path + "/overlay?page=" + page_param, bearer(token));
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(r->get_header_value("Content-Type"), "image/png");
  EXPECT_FALSE(
      cv::imdecode(std::vector<uint8_t>(r->body.begin(), r->body.end()), cv::IMREAD_UNCHANGED)
          .empty());
  EXPECT_EQ(get(path + "/overlay?page=nope%230", bearer(token))->status, 404);
  r = get(path + "/crop?page=" + page_param + "&box=10,20,30,40", bearer(token));
  ASSERT_EQ(r->status, 200) << r->body;
  const cv::Mat crop =
      cv::imdecode(std::vector<uint8_t>(r->body.begin(), r->body.end()), cv::IMREAD_UNCHANGED);
  EXPECT_EQ(crop.cols, 30);
  EXPECT_EQ(crop.rows, 40);
  EXPECT_EQ(get(path + "/crop?page=" + page_param + "&box=1,2,x", bearer(token))->status, 400);

  // Recognition of a page image as uploaded, and of one crop as a digit.
  const std::string first = read(pages / files_under(pages)[0]);
  r = client().Post("/api/v1/recognize", bearer(token), first, "image/png");
  ASSERT_EQ(r->status, 200) << r->body;
  const json read_back = json::parse(r->body);
  EXPECT_GT(read_back["strings"].size(), 0u);
  EXPECT_GT(read_back["width"].get<int>(), 0);
  std::vector<uint8_t> digit_png;
  cv::Mat digit(60, 50, CV_8U, cv::Scalar(255));
  cv::line(digit, {25, 8}, {25, 52}, cv::Scalar(0), 5);  // a 1
  cv::imencode(".png", digit, digit_png);
  r = client().Post("/api/v1/recognize?digits=1", bearer(token),
                    std::string(digit_png.begin(), digit_png.end()), "image/png");
  ASSERT_EQ(r->status, 200) << r->body;
  ASSERT_EQ(json::parse(r->body)["strings"].size(), 1u);
  EXPECT_EQ(json::parse(r->body)["strings"][0]["digits"].size(), 1u);
  r = client().Post("/api/v1/recognize", bearer(token), "not an image", "image/png");
  EXPECT_EQ(r->status, 400);
  // Drawn on the pad: "717" keeps the bars of its 7s only with drawn=1.
  std::vector<uint8_t> pad_png;
  cv::imencode(".png", drawn_717(), pad_png);
  r = client().Post("/api/v1/recognize?drawn=1", bearer(token), std::string(pad_png.begin(), pad_png.end()),
                    "image/png");
  ASSERT_EQ(r->status, 200) << r->body;
  ASSERT_EQ(json::parse(r->body)["strings"].size(), 1u) << r->body;
  EXPECT_EQ(json::parse(r->body)["strings"][0]["text"], "717") << r->body;
  EXPECT_EQ(json::parse(r->body)["models"], json({"digits.safetensors"})) << r->body;  // no screen, no partner set
  cv::Mat seven(320, 960, CV_8U, cv::Scalar(255));
  cv::line(seven, {85, 55}, {255, 55}, cv::Scalar(0), 14, cv::LINE_AA);
  cv::line(seven, {255, 55}, {190, 265}, cv::Scalar(0), 14, cv::LINE_AA);
  cv::imencode(".png", seven, pad_png);
  r = client().Post("/api/v1/recognize?drawn=1", bearer(token), std::string(pad_png.begin(), pad_png.end()),
                    "image/png");
  ASSERT_EQ(r->status, 200) << r->body;
  ASSERT_EQ(json::parse(r->body)["strings"].size(), 1u) << "one digit on the pad is a string: " << r->body;
  EXPECT_EQ(json::parse(r->body)["strings"][0]["text"], "7") << r->body;

  // Review: low-confidence digits, least confident first; a reviewed digit leaves the queue.
  r = get("/api/v1/review?limit=500", bearer(token));
  ASSERT_EQ(r->status, 200) << r->body;
  const json queue = json::parse(r->body)["digits"];
  for (size_t i = 1; i < queue.size(); ++i)
    EXPECT_LE(queue[i - 1]["confidence"], queue[i]["confidence"]);
  json target = {{"job", id}, {"page", key}, {"string_index", 0}, {"digit_index", 0}, {"label", 7}};
  if (!queue.empty()) {
    target = {{"job", queue[0]["job"]},
              {"page", queue[0]["page"]},
              {"string_index", queue[0]["string_index"]},
              {"digit_index", queue[0]["digit_index"]},
              {"label", 3}};
    EXPECT_EQ(get(queue[0]["crop_url"].get<std::string>(), bearer(token))->status, 200);
  }
  r = post("/api/v1/review", target, bearer(token));
  ASSERT_EQ(r->status, 201) << r->body;
  const json sample = json::parse(r->body);
  const cv::Mat image = cv::imread(
      (options_.state.root / sample["image"].get<std::string>()).string(), cv::IMREAD_UNCHANGED);
  EXPECT_EQ(image.cols, 28);
  EXPECT_EQ(image.rows, 28);
  if (!queue.empty()) {
    EXPECT_EQ(json::parse(get("/api/v1/review?limit=500", bearer(token))->body)["digits"].size(),
              queue.size() - 1);
  }
  target["label"] = 11;
  EXPECT_EQ(post("/api/v1/review", target, bearer(token))->status, 400);
  target["label"] = 1;
  target["digit_index"] = 99;
  EXPECT_EQ(post("/api/v1/review", target, bearer(token))->status, 404);

  r = get("/api/v1/model", bearer(token));
  ASSERT_EQ(r->status, 200);
  const json model = json::parse(r->body);
  EXPECT_GT(model["current"]["mnist_accuracy"].get<double>(), 0.98);
  EXPECT_EQ(model["current"]["confusion"].size(), 11u);
  EXPECT_GT(model["current"]["curve"].size(), 0u);
  EXPECT_EQ(model["samples"], 1);
  r = get("/api/v1/templates", bearer(token));
  ASSERT_EQ(r->status, 200);
  EXPECT_GT(json::parse(r->body)["templates"].size(), 0u);
  r = post(path + "/cancel", json::object(), bearer(token));
  EXPECT_EQ(json::parse(r->body)["state"], "done");

  // Retraining on the sample starts in the background (202 and the version being trained),
  // unless the one sample is the share held out for evaluation (409, nothing to train on);
  // stopping the server cancels it.
  EXPECT_EQ(post("/api/v1/retrain", json::object(), bearer(token))->status, 403);
  make_admin("ana");
  r = post("/api/v1/retrain", json::object(), bearer(token));
  ASSERT_TRUE(r->status == 202 || r->status == 409) << r->status << " " << r->body;
  if (r->status == 202) {
    EXPECT_EQ(json::parse(r->body)["version"]["status"], "training");
    EXPECT_EQ(post("/api/v1/retrain", json::object(), bearer(token))->status,
              409);  // one at a time
    EXPECT_EQ(json::parse(get("/api/v1/model", bearer(token))->body)["versions"].size(), 1u);
  }
}

// A model that cannot read in int8 (no calibration) reads in fp32, and serve says why in
// its log, once, when it makes its readers.
TEST_F(JobsApiTest, RecognizeWithAModelThatCannotReadInInt8LogsWhyOnce) {
  kernels::LoadedModel shipped = kernels::load_model(options_.model);
  shipped.network.set_int8_calibration({});
  const fs::path bare = dir_.path() / "bare.safetensors";
  kernels::save_model(bare.string(), shipped.network, shipped.train_config, shipped.metrics);
  auto lines = std::make_shared<std::vector<std::string>>();
  auto lines_mutex = std::make_shared<std::mutex>();
  stop();
  start([&](ServerOptions& o) {
    o.model = bare;
    o.run.int8 = true;
    o.log = [lines, lines_mutex](const std::string& line) {
      std::lock_guard lock(*lines_mutex);
      lines->push_back(line);
    };
  });
  register_user("ana");
  const std::string token = api_token("ana");
  std::vector<uint8_t> png;
  cv::imencode(".png", drawn_717(), png);
  const std::string drawn(png.begin(), png.end());
  for (int call = 0; call < 2; ++call) {
    auto r = client().Post("/api/v1/recognize?drawn=1", bearer(token), drawn, "image/png");
    ASSERT_EQ(r->status, 200) << r->body;
    EXPECT_EQ(json::parse(r->body)["int8"], false) << r->body;
    EXPECT_EQ(json::parse(r->body)["strings"][0]["text"], "717") << r->body;
  }
  stop();
  const std::string expected = "recognize: runtime.int8 is on, but these read in fp32 (slower): the model: " +
                               kernels::int8_unsupported(shipped.network) + " (reading with " + bare.string() + ")";
  std::lock_guard lock(*lines_mutex);
  EXPECT_EQ(std::count(lines->begin(), lines->end(), expected), 1) << "once, though read twice";
}

// The pad and /api/v1/recognize read as the job workers do: the screen and the partner
// beside model.default, and the model alone once a retrained version is the default.
TEST_F(JobsApiTest, RecognizeReadsWithTheScreenAndPartnerOfTheDefaultModelOnly) {
  stop();
  start([](ServerOptions& o) {
    o.worker.screen_model = digitflow::testing::source_dir() / "models" / "screen.safetensors";
    o.worker.partner_model = digitflow::testing::source_dir() / "models" / "partner.safetensors";
  });
  register_user("ana");
  const std::string token = api_token("ana");
  const cv::Mat pad = drawn_717();
  std::vector<uint8_t> png;
  cv::imencode(".png", pad, png);
  const std::string drawn(png.begin(), png.end());
  auto r = client().Post("/api/v1/recognize?drawn=1", bearer(token), drawn, "image/png");
  ASSERT_EQ(r->status, 200) << r->body;
  json answer = json::parse(r->body);
  EXPECT_EQ(answer["models"], json({"digits.safetensors", "screen.safetensors", "partner.safetensors"})) << r->body;
  ASSERT_EQ(answer["strings"].size(), 1u) << r->body;
  EXPECT_EQ(answer["strings"][0]["text"], "717") << r->body;
  // Its confidence is the three models', not the default model's alone.
  kernels::LoadedModel model = kernels::load_model(options_.model);
  kernels::LoadedModel screen = kernels::load_model(options_.worker.screen_model);
  kernels::LoadedModel partner = kernels::load_model(options_.worker.partner_model);
  pipeline::RunOptions run = options_.run;
  run.clean.remove_lines = false;
  run.read.min_digits = 1;
  const pipeline::PageResult by_default = pipeline::recognize_image(pad, model.network, run);
  run.screen = &screen.network;
  run.partner = &partner.network;
  const pipeline::PageResult by_three = pipeline::recognize_image(pad, model.network, run);
  ASSERT_EQ(by_default.strings.size(), 1u);
  ASSERT_EQ(by_three.strings.size(), 1u);
  ASSERT_GT(std::abs(by_three.strings[0].confidence - by_default.strings[0].confidence), 1e-3)
      << "the readings must differ for this check";
  EXPECT_NEAR(answer["strings"][0]["confidence"].get<double>(), by_three.strings[0].confidence, 2e-4) << r->body;

  cv::Mat one(60, 50, CV_8U, cv::Scalar(255));
  cv::line(one, {25, 8}, {25, 52}, cv::Scalar(0), 5);
  cv::imencode(".png", one, png);
  const std::string digit(png.begin(), png.end());
  r = client().Post("/api/v1/recognize?digits=1", bearer(token), digit, "image/png");
  ASSERT_EQ(r->status, 200) << r->body;
  answer = json::parse(r->body);
  EXPECT_EQ(answer["models"], json({"digits.safetensors", "partner.safetensors"})) << r->body;  // no screen for one digit
  ASSERT_EQ(answer["strings"].size(), 1u) << r->body;
  EXPECT_EQ(answer["strings"][0]["text"], "1") << r->body;
  // Its confidence is the pair's, not the default model's alone.
  const double pair = pipeline::recognize_digit(one, model.network, &partner.network).confidence;
  const double alone = pipeline::recognize_digit(one, model.network).confidence;
  ASSERT_GT(std::abs(pair - alone), 1e-3) << "the two readings must differ for this check";
  EXPECT_NEAR(answer["strings"][0]["digits"][0]["confidence"].get<double>(), pair, 2e-4) << r->body;

  // With run.int8 (as serve runs by default) it reads as the job workers read: in int8,
  // through one Inference kept between calls.
  stop();
  start([](ServerOptions& o) { o.run.int8 = true; });
  r = client().Post("/api/v1/recognize?drawn=1", bearer(token), drawn, "image/png");
  ASSERT_EQ(r->status, 200) << r->body;
  kernels::Inference int8_reader(model.network, kernels::Backend::cpu, 64);
  int8_reader.set_screen(screen.network, options_.run.screen_confidence);
  int8_reader.set_partner(partner.network);
  // Where oneDNN or this processor has no int8, both fall back to fp32 and read alike.
  const bool int8_here = int8_reader.set_int8(true);
  EXPECT_EQ(json::parse(r->body)["int8"], int8_here) << r->body;
  run.screen = run.partner = nullptr;  // the Inference's own are used
  const pipeline::PageResult in_int8 = pipeline::recognize_image(pad, int8_reader, run);
  ASSERT_EQ(in_int8.strings.size(), 1u);
  EXPECT_EQ(in_int8.strings[0].text, "717");
  if (int8_here) {
    ASSERT_GT(std::abs(in_int8.strings[0].confidence - by_three.strings[0].confidence), 2e-4)
        << "int8 and fp32 must read apart for this check";
  }
  EXPECT_NEAR(json::parse(r->body)["strings"][0]["confidence"].get<double>(), in_int8.strings[0].confidence, 2e-4)
      << r->body;
  r = client().Post("/api/v1/recognize?drawn=1", bearer(token), drawn, "image/png");  // the kept reader again
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_NEAR(json::parse(r->body)["strings"][0]["confidence"].get<double>(), in_int8.strings[0].confidence, 2e-4)
      << r->body;

  // A retrained version promoted to the default reads alone: the two were trained beside
  // model.default, not beside it.
  const fs::path retrained = dir_.path() / "retrained-1.safetensors";
  fs::copy_file(options_.model, retrained);
  jobs::ModelVersion version;
  version.path = retrained.string();
  version.status = "ready";
  version.is_default = true;
  version.metrics_json = "{}";
  jobs::open_store(options_.store)->add_model_version(version);
  r = client().Post("/api/v1/recognize?drawn=1", bearer(token), drawn, "image/png");
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(json::parse(r->body)["models"], json({"retrained-1.safetensors"})) << r->body;
  // Read by the retrained model alone (here a copy of the default's weights), not by the
  // readers kept for the default with its screen and partner.
  kernels::Inference alone_reader(model.network, kernels::Backend::cpu, 64);
  alone_reader.set_int8(true);
  const pipeline::PageResult by_retrained = pipeline::recognize_image(pad, alone_reader, run);
  ASSERT_EQ(by_retrained.strings.size(), 1u);
  ASSERT_GT(std::abs(by_retrained.strings[0].confidence - in_int8.strings[0].confidence), 2e-4)
      << "the model alone and the three must read apart for this check";
  EXPECT_NEAR(json::parse(r->body)["strings"][0]["confidence"].get<double>(), by_retrained.strings[0].confidence, 2e-4)
      << r->body;
  r = client().Post("/api/v1/recognize?digits=1", bearer(token), digit, "image/png");
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(json::parse(r->body)["models"], json({"retrained-1.safetensors"})) << r->body;
}

TEST_F(JobsApiTest, StoppingTheServerPutsARunningJobBackInTheQueue) {
  const fs::path pages = synthetic_pages(16);
  if (pages.empty()) GTEST_SKIP() << "MNIST is not fetched: no pages to make";
  stop();
  start([](ServerOptions& o) {
    o.web.max_file_mb = 20;
    o.web.max_job_mb = 200;
    o.web.max_files = 100;
  });
  register_user("ana");
  const std::string token = api_token("ana");
  httplib::MultipartFormDataItems items;
  for (const std::string& f : files_under(pages))
    items.push_back({"files", read(pages / f), f, ""});
  auto r = upload(items, bearer(token));
  ASSERT_EQ(r->status, 201) << r->body;
  const int64_t id = json::parse(r->body)["id"];
  json job;
  for (const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
       std::chrono::steady_clock::now() < deadline;) {
    job = json::parse(get("/api/v1/jobs/" + std::to_string(id), bearer(token))->body);
    if (job["state"] != "queued" && job["state"] != "running") break;
    if (job["state"] == "running" && job["pages_done"].get<int>() >= 1) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_EQ(job["state"], "running") << job.dump();
  stop();
  const jobs::Job after = *jobs::open_store(options_.store)->job(id);
  EXPECT_EQ(after.state, jobs::JobState::queued);
  EXPECT_GE(after.pages_done, 1);
  EXPECT_LT(after.pages_done, 16);
}

TEST_F(JobsApiTest, ATemplateNamedInTheUploadGoesWithTheJob) {
  const Browser ana = register_user("ana");
  const json templates = json::parse(get("/api/v1/templates", with(ana))->body)["templates"];
  ASSERT_FALSE(templates.empty());
  const std::string name = templates[0]["name"];
  auto r = upload({{"files", "x", "a.png", ""}, {"template", name, "", ""}}, with(ana));
  ASSERT_EQ(r->status, 201) << r->body;
  const jobs::Job job = *jobs::open_store(options_.store)->job(json::parse(r->body)["id"]);
  EXPECT_FALSE(job.template_path.empty());
  EXPECT_EQ(
      upload({{"files", "x", "a.png", ""}, {"template", "no-such", "", ""}}, with(ana))->status,
      400);
}

TEST_F(JobsApiTest, AJobFolderCanBringItsOwnTemplate) {
  const Browser ana = register_user("ana");
  const std::string yaml =
      "name: our deposit slip\nfields:\n  - name: amount\n    zone: [0.5, 0.1, 0.4, 0.2]\n    rule: amount\n";
  auto r = upload({{"files", "x", "slips/a.png", ""},
                   {"files", yaml, "slips/template.yaml", ""},
                   {"template_file", "slips/template.yaml", "", ""}},
                  with(ana));
  ASSERT_EQ(r->status, 201) << r->body;
  const jobs::Job job = *jobs::open_store(options_.store)->job(json::parse(r->body)["id"]);
  ASSERT_FALSE(job.template_path.empty());
  std::ifstream copy(job.template_path);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(copy), {}), yaml);
  const json listed = json::parse(get("/api/v1/jobs", with(ana))->body)["jobs"];
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0]["template"], "our deposit slip");
  // From a zip too.
  fs::create_directories(dir_ / "zips");
  const std::string zip = make_zip(dir_ / "zips" / "slips.zip", {{"slips/a.png", "x"}, {"slips/template.yaml", yaml}});
  r = upload({{"zip", zip, "slips.zip", "application/zip"}, {"template_file", "slips/template.yaml", "", ""}}, with(ana));
  ASSERT_EQ(r->status, 201) << r->body;

  // Not in the upload, outside it, with a named template as well, or not a template: 400,
  // naming the file as the user sent it.
  std::vector<std::pair<httplib::MultipartFormDataItems, std::string>> refused = {
      {{{"files", "x", "a.png", ""}, {"template_file", "template.yaml", "", ""}}, "not a file of the upload"},
      {{{"files", "x", "a.png", ""}, {"template_file", "../../config/templates/check.yaml", "", ""}}, "refused"},
      {{{"files", "x", "dir/a.png", ""}, {"template_file", "dir", "", ""}}, "not a file of the upload"},
      {{{"files", "x", "a.png", ""}, {"files", yaml, "t.yaml", ""}, {"template", "check", "", ""},
        {"template_file", "t.yaml", "", ""}},
       "not both"},
      {{{"files", "x", "a.png", ""}, {"files", "fields: [1, 2", "t.yaml", ""}, {"template_file", "t.yaml", "", ""}},
       "t.yaml"},
      {{{"files", "x", "a.png", ""}, {"files", "name: x\nfields: []\n", "t.yaml", ""}, {"template_file", "t.yaml", "", ""}},
       "t.yaml"},
  };
  for (const std::string& name : std::vector<std::string>{"/etc/passwd", "a\\t.yaml", "t\x01.yaml", "../t.yaml"})
    refused.push_back({{{"files", "x", "a.png", ""}, {"files", yaml, "t.yaml", ""}, {"template_file", name, "", ""}}, "refused"});
  refused.push_back({{{"files", "x", "a.png", ""}, {"template_file", std::string(1001, 'a'), "", ""}}, "over 1000 bytes"});
  refused.push_back({{{"files", "x", "a.png", ""},
                      {"files", yaml, "t.yaml", ""},
                      {"template_file", "t.yaml", "", ""},
                      {"template_file", "t.yaml", "", ""}},
                     "sent twice"});
  // A page named as the template.
  refused.push_back({{{"files", std::string("\x89PNG\r\n\x1a\n\0\0\0\rIHDR", 16), "a.png", ""}, {"template_file", "a.png", "", ""}},
                     "a.png"});
  for (const auto& [items, says] : refused) {
    r = upload(items, with(ana));
    EXPECT_EQ(r->status, 400) << says << ": " << r->body;
    EXPECT_NE(r->body.find(says), std::string::npos) << r->body;
    EXPECT_EQ(r->body.find("upload-"), std::string::npos) << "names the server's folder: " << r->body;
  }
  expect_nothing_stray();
}

}  // namespace
}  // namespace digitflow::web::testing

// The page flow graph on a folder of good and broken files: every page accounted for, in
// input order, each failure recorded with a clear error, outputs written, cancellation clean.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <set>

#include "digitflow/kernels/idx.hpp"
#include "digitflow/kernels/int8.hpp"
#include "digitflow/kernels/model_file.hpp"
#include "digitflow/pipeline/run.hpp"
#include "test_support.hpp"

namespace digitflow::pipeline {
namespace {

namespace fs = std::filesystem;
namespace t = digitflow::testing;

kernels::Network& shipped_model() {
  static kernels::LoadedModel model = kernels::load_model(t::source_dir() / "models" / "digits.safetensors");
  return model.network;
}

// A page with one string of MNIST test digits, 70 px tall.
cv::Mat page_with(const std::string& digits, int seed) {
  static kernels::LabelledImages set = kernels::load_mnist(t::mnist_dir(), kernels::MnistSplit::test);
  cv::Mat page(600, 900, CV_8U, cv::Scalar(232));
  int x = 120, skip = seed;
  for (char c : digits) {
    int64_t i = 0;
    for (int seen = 0; i < set.count; ++i)
      if (set.labels[static_cast<size_t>(i)] == c - '0' && seen++ == skip) break;
    cv::Mat m(28, 28, CV_8U, &set.pixels[static_cast<size_t>(i) * 784]);
    const cv::Rect ink = cv::boundingRect(m > 40);
    cv::Mat big;
    cv::resize(m(ink), big, cv::Size(), 70.0 / ink.height, 70.0 / ink.height, cv::INTER_CUBIC);
    cv::Mat region = page(cv::Rect(x, 250, big.cols, big.rows));
    cv::min(region, 255 - big, region);
    x += big.cols + 16;
  }
  return page;
}

void write_bytes(const fs::path& path, const std::string& bytes) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << bytes;
}

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

// The job: good pages in two folders, a two-page TIFF, and every kind of broken input.
struct Job {
  t::TempDir dir;
  Job() {
    const fs::path root = dir.path() / "job";
    fs::create_directories(root / "a");
    cv::imwrite((root / "a" / "01-good.png").string(), page_with("4071", 0));
    cv::imwrite((root / "a" / "02-good.jpg").string(), page_with("385", 1), {cv::IMWRITE_JPEG_QUALITY, 90});
    cv::imwritemulti((root / "a" / "03-two.tif").string(), std::vector<cv::Mat>{page_with("62", 2), page_with("919", 3)});
    write_bytes(root / "a" / "04-empty.png", "");
    write_bytes(root / "a" / "05-text.png", "these are not the pixels you are looking for\n");
    const std::string png = read_bytes(root / "a" / "01-good.png");
    write_bytes(root / "a" / "06-truncated.png", png.substr(0, png.size() / 3));
    const std::string jpg = read_bytes(root / "a" / "02-good.jpg");
    write_bytes(root / "a" / "07-truncated.jpg", jpg.substr(0, jpg.size() / 2));
    // A PNG header that claims 100000 x 100000 pixels (a decompression bomb).
    std::string bomb = png.substr(0, 33);
    const unsigned char big[8] = {0, 1, 0x86, 0xA0, 0, 1, 0x86, 0xA0};
    bomb.replace(16, 8, reinterpret_cast<const char*>(big), 8);
    write_bytes(root / "a" / "08-bomb.png", bomb + png.substr(33));
    fs::create_directories(root / "b");
    cv::imwrite((root / "b" / "09-blank.png").string(), cv::Mat(600, 900, CV_8U, cv::Scalar(236)));
    cv::imwrite((root / "b" / "10-black.png").string(), cv::Mat(600, 900, CV_8U, cv::Scalar(8)));
    write_bytes(root / "b" / "notes.txt", "scanned on Monday\n");
    write_bytes(root / ".hidden" / "x.png", "");
  }
  fs::path root() const { return dir.path() / "job"; }
};

TEST(Run, EveryPageAccountedForInOrderWithErrors) {
  if (!t::mnist_available()) GTEST_SKIP() << "MNIST not in " << t::mnist_dir() << ": run scripts/fetch-mnist.sh";
  Job job;
  RunOptions options;
  options.pages_in_flight = 3;  // fewer tokens than pages: the limiter and batcher must cycle
  options.batch_digits = 5;
  std::vector<std::string> skipped;
  std::vector<PageRef> pages = list_pages(job.root(), options.limits, &skipped);
  std::vector<PageResult> written;
  int progress_calls = 0;
  RunSummary summary = run_pages(
      pages, options, shipped_model(), [&](const PageResult& r, const cv::Mat*) { written.push_back(r); },
      [&](const RunProgress& p) {
        ++progress_calls;
        EXPECT_EQ(p.pages_total, 11);
        EXPECT_EQ(p.pages_done, static_cast<int64_t>(written.size()));
      });
  EXPECT_EQ(skipped, std::vector<std::string>{"b/notes.txt"});
  ASSERT_EQ(written.size(), 11u);
  EXPECT_EQ(progress_calls, 11);
  const std::vector<std::pair<std::string, int>> order = {
      {"a/01-good.png", 0},   {"a/02-good.jpg", 0},       {"a/03-two.tif", 0},        {"a/03-two.tif", 1},
      {"a/04-empty.png", 0},  {"a/05-text.png", 0},       {"a/06-truncated.png", 0},  {"a/07-truncated.jpg", 0},
      {"a/08-bomb.png", 0},   {"b/09-blank.png", 0},      {"b/10-black.png", 0}};
  std::vector<std::pair<std::string, int>> got;
  for (const PageResult& r : written) got.emplace_back(r.page, r.page_index);
  EXPECT_EQ(got, order);

  auto result = [&](const std::string& page, int index = 0) -> const PageResult& {
    for (const PageResult& r : written)
      if (r.page == page && r.page_index == index) return r;
    throw std::runtime_error("no result for " + page);
  };
  auto text = [](const PageResult& r) {
    std::string all;
    for (const StringResult& s : r.strings) all += (all.empty() ? "" : " ") + s.text;
    return all;
  };
  EXPECT_EQ(text(result("a/01-good.png")), "4071");
  EXPECT_EQ(text(result("a/02-good.jpg")), "385");
  EXPECT_EQ(text(result("a/03-two.tif", 0)), "62");
  EXPECT_EQ(text(result("a/03-two.tif", 1)), "919");
  EXPECT_EQ(result("a/01-good.png").width, 900);
  EXPECT_EQ(result("a/01-good.png").height, 600);
  auto error = [&](const std::string& page) { return result(page).error.value_or("(no error)"); };
  EXPECT_NE(error("a/04-empty.png").find("empty file"), std::string::npos) << error("a/04-empty.png");
  EXPECT_NE(error("a/05-text.png").find("not an image"), std::string::npos) << error("a/05-text.png");
  EXPECT_NE(error("a/06-truncated.png").find("truncated"), std::string::npos) << error("a/06-truncated.png");
  EXPECT_NE(error("a/07-truncated.jpg").find("truncated JPEG"), std::string::npos) << error("a/07-truncated.jpg");
  EXPECT_NE(error("a/08-bomb.png").find("too large"), std::string::npos) << error("a/08-bomb.png");
  EXPECT_NE(error("b/10-black.png").find("nearly black"), std::string::npos) << error("b/10-black.png");
  EXPECT_EQ(error("a/05-text.png").rfind("a/05-text.png", 0), 0u) << "errors start with the page name";
  EXPECT_FALSE(result("b/09-blank.png").error);
  EXPECT_TRUE(result("b/09-blank.png").strings.empty());
  EXPECT_EQ(summary.pages, 11);
  EXPECT_EQ(summary.failed_pages, 6);
  EXPECT_FALSE(summary.cancelled);
}

// The texts and confidences of a run of `job` on `backend`.
std::vector<std::pair<std::string, float>> read_on(const Job& job, kernels::Backend backend) {
  RunOptions options;
  options.job_dir = job.root();
  options.backend = backend;
  std::vector<std::pair<std::string, float>> strings;
  run_pages(list_pages(job.root(), options.limits), options, shipped_model(),
            [&](const PageResult& r, const cv::Mat*) {
              for (const StringResult& s : r.strings) strings.emplace_back(s.text, s.confidence);
            },
            nullptr, nullptr);
  return strings;
}

void expect_same_readings(const std::vector<std::pair<std::string, float>>& cpu,
                          const std::vector<std::pair<std::string, float>>& other) {
  ASSERT_EQ(cpu.size(), other.size());
  for (size_t i = 0; i < cpu.size(); ++i) {
    EXPECT_EQ(cpu[i].first, other[i].first) << i;
    EXPECT_NEAR(cpu[i].second, other[i].second, 2e-3) << i;
  }
}

TEST(Run, AutoBackendReadsWhatTheCpuReads) {
  // auto is the GPU where one starts, else the CPU: the same strings either way.
  if (!t::mnist_available()) GTEST_SKIP() << "MNIST not in " << t::mnist_dir() << ": run scripts/fetch-mnist.sh";
  Job job;
  const auto cpu = read_on(job, kernels::Backend::cpu);
  const auto automatic = read_on(job, kernels::Backend::automatic);
  ASSERT_GE(cpu.size(), 4u);
  expect_same_readings(cpu, automatic);
}

TEST(Run, CudaBackendReadsWhatTheCpuReadsOrSaysWhyNot) {
  if (!t::mnist_available()) GTEST_SKIP() << "MNIST not in " << t::mnist_dir() << ": run scripts/fetch-mnist.sh";
  Job job;
  const std::string why = kernels::gpu_unavailable_reason(kernels::Backend::cuda);
  if (!why.empty()) {
    // No GPU: the run refuses to start rather than quietly scoring on the CPU.
    EXPECT_THROW(read_on(job, kernels::Backend::cuda), kernels::BackendUnavailable);
    GTEST_SKIP() << "no GPU to compare with the CPU: " << why;
  }
  const auto cpu = read_on(job, kernels::Backend::cpu);
  const auto gpu = read_on(job, kernels::Backend::cuda);
  expect_same_readings(cpu, gpu);
}

TEST(Run, AScreenReadsEveryImageAndTheModelOnlyWhatItDoubts) {
  // With the shipped screening model the job reads the same strings, the full model reads
  // a share of the images, and summary.json says how many.
  if (!t::mnist_available()) GTEST_SKIP() << "MNIST not in " << t::mnist_dir() << ": run scripts/fetch-mnist.sh";
  static kernels::LoadedModel screen = kernels::load_model(t::source_dir() / "models" / "screen.safetensors");
  Job job;
  RunOptions options;
  options.job_dir = job.root();
  options.out_dir = job.dir.path() / "alone";
  const RunSummary alone = run_job(options, shipped_model());
  options.out_dir = job.dir.path() / "screened";
  options.screen = &screen.network;
  const RunSummary screened = run_job(options, shipped_model());
  EXPECT_EQ(alone.images_read_in_full, alone.images_scored);
  EXPECT_GT(screened.images_read_in_full, 0);
  EXPECT_LT(screened.images_read_in_full, screened.images_scored);
  std::vector<std::string> texts[2];
  for (int k = 0; k < 2; ++k)
    for (const PageResult& r : read_results((job.dir.path() / (k ? "screened" : "alone") / "results.jsonl").string()))
      for (const StringResult& s : r.strings) texts[k].push_back(r.page + ":" + s.text);
  EXPECT_EQ(texts[1], texts[0]);
  EXPECT_EQ(texts[1], (std::vector<std::string>{"a/01-good.png:4071", "a/02-good.jpg:385", "a/03-two.tif:62",
                                                "a/03-two.tif:919"}));
  const nlohmann::json s = nlohmann::json::parse(read_bytes(job.dir.path() / "screened" / "summary.json"));
  EXPECT_EQ(s["images_read_in_full"], screened.images_read_in_full);
}

TEST(Run, Int8ReadsTheStringsFp32Reads) {
  // The shipped models carry their int8 calibration: with options.int8 the job reads the
  // same strings, and summary.json says int8 was used.
  if (!t::mnist_available()) GTEST_SKIP() << "MNIST not in " << t::mnist_dir() << ": run scripts/fetch-mnist.sh";
  if (const std::string why = kernels::int8_unsupported(shipped_model()); !why.empty())
    GTEST_SKIP() << "no int8 inference here: " << why;
  static kernels::LoadedModel screen = kernels::load_model(t::source_dir() / "models" / "screen.safetensors");
  Job job;
  RunOptions options;
  options.job_dir = job.root();
  options.screen = &screen.network;
  options.out_dir = job.dir.path() / "fp32";
  const RunSummary fp32 = run_job(options, shipped_model());
  options.out_dir = job.dir.path() / "int8";
  options.int8 = true;
  const RunSummary int8 = run_job(options, shipped_model());
  EXPECT_FALSE(fp32.int8);
  EXPECT_TRUE(int8.int8);
  std::vector<std::string> texts[2];
  for (int k = 0; k < 2; ++k)
    for (const PageResult& r : read_results((job.dir.path() / (k ? "int8" : "fp32") / "results.jsonl").string()))
      for (const StringResult& s : r.strings) texts[k].push_back(r.page + ":" + s.text);
  EXPECT_EQ(texts[1], texts[0]);
  EXPECT_EQ(texts[1].size(), 4u);
  EXPECT_TRUE(nlohmann::json::parse(read_bytes(job.dir.path() / "int8" / "summary.json"))["int8"].get<bool>());
  EXPECT_FALSE(nlohmann::json::parse(read_bytes(job.dir.path() / "fp32" / "summary.json"))["int8"].get<bool>());
}

TEST(Run, WritesResultsCsvSummaryAndOverlays) {
  if (!t::mnist_available()) GTEST_SKIP() << "MNIST not in " << t::mnist_dir() << ": run scripts/fetch-mnist.sh";
  Job job;
  RunOptions options;
  options.job_dir = job.root();
  options.out_dir = job.dir.path() / "out";
  options.overlays = true;
  RunSummary summary = run_job(options, shipped_model());
  std::vector<PageResult> lines = read_results((options.out_dir / "results.jsonl").string());
  EXPECT_EQ(lines.size(), 11u);
  nlohmann::json s = nlohmann::json::parse(read_bytes(options.out_dir / "summary.json"));
  EXPECT_EQ(s["pages"], 11);
  EXPECT_EQ(s["failed_pages"], 6);
  EXPECT_EQ(s["strings"], summary.strings);
  EXPECT_GT(s["stage_seconds"]["decode"].get<double>(), 0.0);
  EXPECT_GT(s["stage_seconds"]["infer"].get<double>(), 0.0);
  EXPECT_TRUE(s["stage_seconds"].contains("cut")) << s.dump();  // making the cuts, apart from the CNN passes
  EXPECT_EQ(s["skipped_files"], nlohmann::json::array({"b/notes.txt"}));
  const std::string csv = read_bytes(options.out_dir / "results.csv");
  EXPECT_EQ(csv.rfind("page,page_index,string,text,confidence,x,y,width,height", 0), 0u);
  EXPECT_NE(csv.find("a/01-good.png,0,0,4071,"), std::string::npos) << csv;
  EXPECT_NE(csv.find("a/03-two.tif,1,0,919,"), std::string::npos) << csv;
  cv::Mat overlay = cv::imread((options.out_dir / "overlays" / "a" / "03-two.tif-p2.png").string());
  EXPECT_EQ(overlay.cols, 900);
  EXPECT_TRUE(fs::exists(options.out_dir / "overlays" / "a" / "01-good.png"));
  EXPECT_TRUE(fs::exists(options.out_dir / "overlays" / "a" / "02-good.jpg.png"));
}

TEST(Run, OverlayNamesOfOneFolderNeverCollide) {
  auto name = [](const std::string& page, int index = 0) {
    PageResult r;
    r.page = page;
    r.page_index = index;
    return overlay_name(r);
  };
  EXPECT_EQ(name("a/scan.png"), "a/scan.png");
  EXPECT_EQ(name("a/scan.PNG"), "a/scan.png");
  EXPECT_EQ(name("a/scan.jpg"), "a/scan.jpg.png");
  EXPECT_EQ(name("a/doc.pdf", 1), "a/doc.pdf-p2.png");
  EXPECT_EQ(name("a/doc.pdf", 0), "a/doc.pdf.png");
  EXPECT_EQ(name("a.b/noext"), "a.b/noext.png");
  std::set<std::string> names;
  for (const std::string page : {"x/a.png", "x/a.jpg", "x/a.jpeg", "x/a.tif", "x/a.bmp", "x/a.pdf"})
    EXPECT_TRUE(names.insert(name(page)).second) << page << " -> " << name(page);
}

TEST(Run, CancelStopsFeedingAndKeepsWhatWasWritten) {
  if (!t::mnist_available()) GTEST_SKIP() << "MNIST not in " << t::mnist_dir() << ": run scripts/fetch-mnist.sh";
  Job job;
  RunOptions options;
  options.pages_in_flight = 2;
  std::vector<PageRef> pages = list_pages(job.root(), options.limits);
  std::atomic<bool> cancel{false};
  std::vector<size_t> seen;
  RunSummary summary = run_pages(
      pages, options, shipped_model(), [&](const PageResult& r, const cv::Mat*) { seen.push_back(seen.size()); (void)r; },
      [&](const RunProgress& p) {
        if (p.pages_done == 3) cancel = true;
      },
      &cancel);
  EXPECT_TRUE(summary.cancelled);
  EXPECT_GE(summary.pages, 3);
  EXPECT_LE(summary.pages, 3 + 2);  // at most the pages already in flight
  EXPECT_EQ(static_cast<int64_t>(seen.size()), summary.pages);
}

TEST(Run, RefusesAMissingFolder) {
  RunOptions options;
  options.job_dir = "/nonexistent/job";
  options.out_dir = "/tmp/unused";
  EXPECT_TRUE(t::throws_with_message<std::runtime_error>([&] { run_job(options, shipped_model()); },
                                                         {"/nonexistent/job", "no such folder"}));
}

TEST(Run, OddPagesNeitherCrashNorStopTheRun) {
  t::TempDir dir;
  const fs::path job = dir.path() / "job";
  fs::create_directories(job);
  cv::imwrite((job / "1-dot.png").string(), cv::Mat(1, 1, CV_8U, cv::Scalar(255)));
  cv::imwrite((job / "2-small-blank.png").string(), cv::Mat(100, 100, CV_8U, cv::Scalar(250)));
  cv::Mat strip(2, 8000, CV_8U, cv::Scalar(240));
  strip(cv::Rect(100, 0, 50, 2)).setTo(10);
  cv::imwrite((job / "3-strip.png").string(), strip);
  cv::imwrite((job / "4-ch\xe8que.png").string(), cv::Mat(300, 300, CV_8U, cv::Scalar(240)));  // Latin-1 name
  RunOptions options;
  options.job_dir = job;
  options.out_dir = dir.path() / "out";
  options.overlays = true;
  RunSummary summary = run_job(options, shipped_model());
  EXPECT_EQ(summary.pages, 4);
  EXPECT_EQ(summary.failed_pages, 0);
  std::vector<PageResult> lines = read_results((options.out_dir / "results.jsonl").string());
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[3].page, "4-ch\xef\xbf\xbdque.png");  // written with U+FFFD
  EXPECT_TRUE(fs::exists(options.out_dir / "summary.json"));
}

}  // namespace
}  // namespace digitflow::pipeline

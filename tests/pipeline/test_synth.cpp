// The synthetic job generator: a seed gives identical files, the truth boxes hold ink in the
// pages as stored (PNG, JPEG, multi-page TIFF, and the PDF as poppler renders it), fields keep
// their rules and stay in their template zones, and bad options are refused with a message.
#include <gtest/gtest.h>
#include <poppler/cpp/poppler-document.h>
#include <poppler/cpp/poppler-image.h>
#include <poppler/cpp/poppler-page-renderer.h>
#include <poppler/cpp/poppler-page.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <set>
#include <sstream>
// After OpenCV's headers: libtiff's own (deprecated) int64 typedef must not be the one they see.
#include <tiffio.h>

#include "digitflow/kernels/idx.hpp"
#include "digitflow/pipeline/decode.hpp"
#include "digitflow/pipeline/results.hpp"
#include "digitflow/pipeline/synth.hpp"
#include "test_support.hpp"

namespace digitflow::pipeline {
namespace {

namespace fs = std::filesystem;

// A job made once per test run and shared by the tests that only read it.
const fs::path& job(const std::string& kind, int pages, uint64_t seed) {
  static std::map<std::string, std::unique_ptr<testing::TempDir>> jobs;
  const std::string key = kind + "-" + std::to_string(pages) + "-" + std::to_string(seed);
  auto& dir = jobs[key];
  if (!dir) {
    dir = std::make_unique<testing::TempDir>();
    make_synthetic_job({dir->path(), pages, seed, kind, testing::mnist_dir()});
  }
  return dir->path();
}

std::string file_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// The pages of a file as 8-bit gray, the PDF rendered at 300 dpi as a reader would.
std::vector<cv::Mat> load_pages(const fs::path& file) {
  std::vector<cv::Mat> pages;
  if (file.extension() == ".tif") {
    cv::imreadmulti(file.string(), pages, cv::IMREAD_GRAYSCALE);
  } else if (file.extension() == ".pdf") {
    std::unique_ptr<poppler::document> doc(poppler::document::load_from_file(file.string()));
    if (!doc) return pages;
    poppler::page_renderer renderer;
    for (int i = 0; i < doc->pages(); ++i) {
      std::unique_ptr<poppler::page> page(doc->create_page(i));
      poppler::image image = renderer.render_page(page.get(), 300, 300);
      cv::Mat argb(image.height(), image.width(), CV_8UC4, image.data(),
                   static_cast<size_t>(image.bytes_per_row()));
      cv::Mat gray;
      cv::cvtColor(argb, gray, cv::COLOR_BGRA2GRAY);
      pages.push_back(gray);
    }
  } else {
    pages.push_back(cv::imread(file.string(), cv::IMREAD_GRAYSCALE));
  }
  return pages;
}

// Share of the box's pixels clearly darker than the paper around it.
double ink_share(const cv::Mat& page, const Box& box) {
  const cv::Rect inside =
      cv::Rect(box.x, box.y, box.w, box.h) & cv::Rect(0, 0, page.cols, page.rows);
  const cv::Rect around = cv::Rect(box.x - 30, box.y - 30, box.w + 60, box.h + 60) &
                          cv::Rect(0, 0, page.cols, page.rows);
  if (inside.empty()) return 0;
  std::vector<uint8_t> values(page(around).clone().reshape(1, 1));
  std::nth_element(values.begin(), values.begin() + static_cast<long>(values.size() / 2),
                   values.end());
  const int paper = values[values.size() / 2];
  return static_cast<double>(cv::countNonZero(page(inside) < paper - 45)) / inside.area();
}

// Every digit box lies in the page and holds ink; strings are the union of their digits.
void expect_truth_holds(const fs::path& dir) {
  const std::vector<PageResult> truth = read_results((dir / "truth.jsonl").string());
  ASSERT_FALSE(truth.empty());
  std::map<std::string, std::vector<cv::Mat>> files;
  for (const PageResult& page : truth) {
    SCOPED_TRACE(page.page + " page " + std::to_string(page.page_index));
    auto& images = files[page.page];
    if (images.empty()) images = load_pages(dir / page.page);
    ASSERT_LT(page.page_index, static_cast<int>(images.size()));
    const cv::Mat& image = images[static_cast<size_t>(page.page_index)];
    EXPECT_NEAR(image.cols, page.width, 1);
    EXPECT_NEAR(image.rows, page.height, 1);
    EXPECT_FALSE(page.strings.empty());
    for (const StringResult& s : page.strings) {
      ASSERT_EQ(s.text.size(), s.digits.size()) << s.text;
      Box all;
      for (size_t i = 0; i < s.digits.size(); ++i) {
        const DigitResult& d = s.digits[i];
        EXPECT_EQ(d.digit, s.text[i] - '0');
        EXPECT_GT(d.box.area(), 0);
        EXPECT_TRUE(d.box.x >= 0 && d.box.y >= 0 && d.box.right() <= page.width &&
                    d.box.bottom() <= page.height)
            << s.text << " digit " << i;
        EXPECT_GT(ink_share(image, d.box), 0.03)
            << s.text << " digit " << i << " box " << d.box.x << "," << d.box.y;
        all = unite(all, d.box);
      }
      EXPECT_EQ(s.box, all) << s.text;
      EXPECT_EQ(s.confidence, 1.0);
    }
  }
}

bool aba_valid(const std::string& s) {
  int sum = 0;
  for (size_t i = 0; i < s.size(); ++i) sum += (s[i] - '0') * std::array{3, 7, 1}[i % 3];
  return s.size() == 9 && sum % 10 == 0;
}

bool luhn_valid(const std::string& s) {
  int sum = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    int d = s[s.size() - 1 - i] - '0';
    if (i % 2 == 1) d = d * 2 > 9 ? d * 2 - 9 : d * 2;
    sum += d;
  }
  return sum % 10 == 0;
}

bool date_valid(const std::string& s) {  // DDMMYYYY
  if (s.size() != 8) return false;
  const int day = std::stoi(s.substr(0, 2)), month = std::stoi(s.substr(2, 2)),
            year = std::stoi(s.substr(4));
  const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  const std::array<int, 12> days = {31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return month >= 1 && month <= 12 && day >= 1 && day <= days[static_cast<size_t>(month - 1)];
}

// Zones of template.yaml by field name, read line by line (the format the generator writes).
std::map<std::string, cv::Rect2d> template_zones(const fs::path& file) {
  std::map<std::string, cv::Rect2d> zones;
  std::ifstream in(file);
  std::string line, name;
  while (std::getline(in, line)) {
    if (const auto at = line.find("- name: "); at != std::string::npos) name = line.substr(at + 8);
    double x = 0, y = 0, w = 0, h = 0;
    if (std::sscanf(line.c_str(), " zone: [%lf, %lf, %lf, %lf]", &x, &y, &w, &h) == 4)
      zones[name] = {x, y, w, h};
  }
  return zones;
}

// Each field is one of the page's strings, keeps its rule, and lies inside its zone.
void expect_fields_hold(const fs::path& dir, size_t fields_per_page) {
  const auto zones = template_zones(dir / "template.yaml");
  ASSERT_EQ(zones.size(), fields_per_page);
  for (const PageResult& page : read_results((dir / "truth.jsonl").string())) {
    SCOPED_TRACE(page.page + " page " + std::to_string(page.page_index));
    ASSERT_EQ(page.fields.size(), fields_per_page);
    for (const FieldResult& f : page.fields) {
      // Amounts are written with their decimal point, like digitflow run writes them.
      std::string digits = f.text;
      if (f.rule == "amount") digits.erase(std::remove(digits.begin(), digits.end(), '.'), digits.end());
      EXPECT_TRUE(std::any_of(page.strings.begin(), page.strings.end(), [&](const StringResult& s) {
        return s.text == digits && s.box == f.box;
      })) << f.name;
      if (f.rule == "aba_routing") {
        EXPECT_TRUE(aba_valid(f.text)) << f.text;
      } else if (f.rule == "luhn") {
        EXPECT_TRUE(luhn_valid(f.text)) << f.text;
      } else if (f.rule == "date") {
        EXPECT_TRUE(date_valid(f.text)) << f.text;
      }
      ASSERT_TRUE(zones.count(f.name)) << f.name;
      const cv::Rect2d z = zones.at(f.name);
      EXPECT_GE(f.box.x, z.x * page.width) << f.name;
      EXPECT_GE(f.box.y, z.y * page.height) << f.name;
      EXPECT_LE(f.box.right(), (z.x + z.width) * page.width) << f.name;
      EXPECT_LE(f.box.bottom(), (z.y + z.height) * page.height) << f.name;
    }
  }
}

TEST(Synth, SameSeedGivesIdenticalFiles) {
  DIGITFLOW_SKIP_WITHOUT_MNIST();
  const fs::path& a = job("checks", 6, 7);
  testing::TempDir b;
  make_synthetic_job({b.path(), 6, 7, "checks", testing::mnist_dir()});
  EXPECT_EQ(file_bytes(a / "truth.jsonl"), file_bytes(b / "truth.jsonl"));
  int files = 0;
  for (const auto& entry : fs::recursive_directory_iterator(a)) {
    if (!entry.is_regular_file()) continue;
    ++files;
    const fs::path relative = fs::relative(entry.path(), a);
    EXPECT_EQ(file_bytes(entry.path()), file_bytes(b.path() / relative)) << relative;
  }
  EXPECT_GE(files, 5);

  testing::TempDir c;
  make_synthetic_job({c.path(), 6, 8, "checks", testing::mnist_dir()});
  EXPECT_NE(file_bytes(a / "truth.jsonl"), file_bytes(c / "truth.jsonl"));
}

TEST(Synth, ChecksTruthHoldsInTheStoredPages) {
  DIGITFLOW_SKIP_WITHOUT_MNIST();
  const fs::path& dir = job("checks", 6, 7);
  expect_truth_holds(dir);
  expect_fields_hold(dir, 4);
}

TEST(Synth, FormsTruthHoldsAndFieldsKeepTheirRules) {
  DIGITFLOW_SKIP_WITHOUT_MNIST();
  const fs::path& dir = job("forms", 2, 11);
  expect_truth_holds(dir);
  expect_fields_hold(dir, 8);
  const std::vector<PageResult> truth = read_results((dir / "truth.jsonl").string());
  for (const PageResult& page : truth) {
    EXPECT_EQ(page.width, 2480);
    EXPECT_EQ(page.height, 3508);
  }
}

TEST(Synth, FreePagesHaveNoTemplateAndNoFields) {
  DIGITFLOW_SKIP_WITHOUT_MNIST();
  const fs::path& dir = job("free", 2, 5);
  expect_truth_holds(dir);
  EXPECT_FALSE(fs::exists(dir / "template.yaml"));
  for (const PageResult& page : read_results((dir / "truth.jsonl").string())) {
    EXPECT_TRUE(page.fields.empty());
    EXPECT_GE(page.strings.size(), 3u);
    EXPECT_LE(page.strings.size(), 8u);
  }
}

// Strings of two digits or more in a job's truth, and those with neighbours whose boxes share
// columns (written touching).
std::pair<int, int> touching_strings(const fs::path& dir) {
  int strings = 0, touching = 0;
  for (const PageResult& page : read_results((dir / "truth.jsonl").string()))
    for (const StringResult& s : page.strings) {
      if (s.digits.size() < 2) continue;
      ++strings;
      for (size_t i = 1; i < s.digits.size(); ++i)
        if (s.digits[i].box.x < s.digits[i - 1].box.right()) {
          ++touching;
          break;
        }
    }
  return {strings, touching};
}

TEST(Synth, SomeStringsHaveTouchingDigits) {
  DIGITFLOW_SKIP_WITHOUT_MNIST();
  int strings = 0, touching = 0;
  for (const fs::path& dir : {job("checks", 6, 7), job("forms", 2, 11), job("free", 2, 5)}) {
    const auto [n, t] = touching_strings(dir);
    strings += n, touching += t;
  }
  EXPECT_GT(touching, 0) << "of " << strings << " strings";
  EXPECT_LT(touching, strings / 2) << "of " << strings << " strings";
}

// Pages to train on may hold more touching digits than a scan does (SynthOptions::touching_share).
TEST(Synth, TheShareOfTouchingStringsIsAnOption) {
  DIGITFLOW_SKIP_WITHOUT_MNIST();
  testing::TempDir dir;
  SynthOptions all{dir / "all", 2, 5, "free", testing::mnist_dir()}, none = all;
  all.touching_share = 1.0;
  none.out = dir / "none";
  none.touching_share = 0.0;
  make_synthetic_job(all);
  make_synthetic_job(none);
  const auto [n_all, t_all] = touching_strings(dir / "all");
  const auto [n_none, t_none] = touching_strings(dir / "none");
  ASSERT_GT(n_all, 3);
  ASSERT_GT(n_none, 3);
  // Touching neighbours' boxes share columns. Apart, they may still, where a page turned a
  // few degrees widens each box: seldom.
  EXPECT_EQ(t_all, n_all);
  EXPECT_LE(10 * t_none, n_none) << t_none << " of " << n_none;
}

TEST(Synth, SourcesNameEachDigitsMnistImage) {
  DIGITFLOW_SKIP_WITHOUT_MNIST();
  // Asked for, sources.jsonl names for every string of the truth, in its order, the MNIST
  // image each digit was drawn from: an image of that digit. The pages are the same.
  testing::TempDir dir;
  SynthOptions options{dir.path(), 6, 7, "checks", testing::mnist_dir()};
  options.sources = true;
  const SynthReport report = make_synthetic_job(options);
  EXPECT_EQ(report.sources, dir / "sources.jsonl");
  EXPECT_EQ(file_bytes(dir / "truth.jsonl"), file_bytes(job("checks", 6, 7) / "truth.jsonl"));
  EXPECT_FALSE(fs::exists(job("checks", 6, 7) / "sources.jsonl")) << "written without being asked for";

  const kernels::LabelledImages test = kernels::load_mnist(testing::mnist_dir(), kernels::MnistSplit::test);
  const std::vector<PageResult> truth = read_results((dir / "truth.jsonl").string());
  std::ifstream in(dir / "sources.jsonl");
  std::string line;
  size_t page = 0;
  int digits = 0;
  std::set<int64_t> images;
  while (std::getline(in, line)) {
    ASSERT_LT(page, truth.size());
    const nlohmann::json j = nlohmann::json::parse(line);
    EXPECT_EQ(j["page"], truth[page].page);
    EXPECT_EQ(j["page_index"], truth[page].page_index);
    EXPECT_EQ(j["set"], "t10k");
    ASSERT_EQ(j["strings"].size(), truth[page].strings.size()) << truth[page].page;
    for (size_t s = 0; s < truth[page].strings.size(); ++s) {
      const std::string& text = truth[page].strings[s].text;
      EXPECT_EQ(j["strings"][s]["text"], text);
      const std::vector<int64_t> source = j["strings"][s]["mnist"].get<std::vector<int64_t>>();
      ASSERT_EQ(source.size(), text.size()) << text;
      for (size_t d = 0; d < text.size(); ++d) {
        ASSERT_GE(source[d], 0);
        ASSERT_LT(source[d], test.count);
        EXPECT_EQ(test.labels[static_cast<size_t>(source[d])], text[d] - '0') << text << " digit " << d;
        images.insert(source[d]);
        ++digits;
      }
    }
    ++page;
  }
  EXPECT_EQ(page, truth.size());
  EXPECT_GT(images.size(), static_cast<size_t>(digits) * 9 / 10) << "the digits are not drawn at random";
}

TEST(Synth, MultiPageFilesHoldTheirPages) {
  DIGITFLOW_SKIP_WITHOUT_MNIST();
  const fs::path& dir = job("checks", 6, 7);
  std::map<std::string, std::vector<PageResult>> by_file;
  for (PageResult& page : read_results((dir / "truth.jsonl").string()))
    by_file[page.page].push_back(page);
  int tiffs = 0, pdfs = 0;
  for (const auto& [name, pages] : by_file) {
    SCOPED_TRACE(name);
    EXPECT_TRUE(name.rfind("batch1/", 0) == 0 || name.rfind("batch2/", 0) == 0);
    for (size_t i = 0; i < pages.size(); ++i) EXPECT_EQ(pages[i].page_index, static_cast<int>(i));
    if (fs::path(name).extension() == ".tif") {
      ++tiffs;
      EXPECT_GE(pages.size(), 2u);
      EXPECT_LE(pages.size(), 3u);
      EXPECT_EQ(cv::imcount((dir / name).string()), pages.size());
    }
    if (fs::path(name).extension() == ".pdf") {
      ++pdfs;
      std::unique_ptr<poppler::document> doc(
          poppler::document::load_from_file((dir / name).string()));
      ASSERT_TRUE(doc) << "poppler cannot open it";
      ASSERT_EQ(doc->pages(), 2);
      ASSERT_EQ(pages.size(), 2u);
      for (int i = 0; i < 2; ++i) {
        std::unique_ptr<poppler::page> page(doc->create_page(i));
        const poppler::rectf size = page->page_rect();
        EXPECT_NEAR(size.width() * 300 / 72, pages[static_cast<size_t>(i)].width, 1.0);
        EXPECT_NEAR(size.height() * 300 / 72, pages[static_cast<size_t>(i)].height, 1.0);
      }
    }
  }
  EXPECT_EQ(tiffs, 1);
  EXPECT_EQ(pdfs, 1);
}

TEST(Synth, OnePdfHoldsEveryPageInOrder) {
  DIGITFLOW_SKIP_WITHOUT_MNIST();
  testing::TempDir dir;
  SynthOptions options{dir.path(), 3, 11, "checks", testing::mnist_dir()};
  options.one_pdf = true;
  const SynthReport report = make_synthetic_job(options);
  EXPECT_EQ(report.files, 1);
  EXPECT_EQ(report.pdf, 1);
  EXPECT_EQ(report.pages, 3);
  const std::vector<PageResult> truth = read_results((dir / "truth.jsonl").string());
  ASSERT_EQ(truth.size(), 3u);
  std::unique_ptr<poppler::document> doc(poppler::document::load_from_file((dir / "batch1/check-001.pdf").string()));
  ASSERT_TRUE(doc) << "poppler cannot open batch1/check-001.pdf";
  ASSERT_EQ(doc->pages(), 3);
  const std::vector<cv::Mat> rendered = load_pages(dir / "batch1/check-001.pdf");
  ASSERT_EQ(rendered.size(), 3u);
  for (size_t i = 0; i < truth.size(); ++i) {
    EXPECT_EQ(truth[i].page, "batch1/check-001.pdf");
    EXPECT_EQ(truth[i].page_index, static_cast<int>(i));
    EXPECT_EQ(rendered[i].cols, truth[i].width);
    EXPECT_EQ(rendered[i].rows, truth[i].height);
    // Each page holds its own strings: ink under every truth box.
    for (const StringResult& s : truth[i].strings) EXPECT_GT(ink_share(rendered[i], s.box), 0.02) << "page " << i;
  }
  // The same pages as the folder of separate files the same seed makes.
  const fs::path& files = job("checks", 3, 11);
  const std::vector<PageResult> separate = read_results((files / "truth.jsonl").string());
  ASSERT_EQ(separate.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    ASSERT_EQ(separate[i].strings.size(), truth[i].strings.size()) << "page " << i;
    for (size_t k = 0; k < truth[i].strings.size(); ++k)
      EXPECT_EQ(separate[i].strings[k].text, truth[i].strings[k].text) << "page " << i;
  }
}

TEST(Synth, AScannerAt200DpiInBlackAndWhiteStatesItsResolution) {
  DIGITFLOW_SKIP_WITHOUT_MNIST();
  const fs::path& at300 = job("checks", 6, 7);
  testing::TempDir dir;
  SynthOptions options{dir.path(), 6, 7, "checks", testing::mnist_dir()};
  options.dpi = 200;
  options.bitonal = true;
  const SynthReport report = make_synthetic_job(options);
  EXPECT_EQ(report.jpeg, 0);  // black and white: PNG, TIFF and PDF only
  expect_truth_holds(dir.path());

  std::map<std::pair<std::string, int>, PageResult> drawn;
  for (PageResult& page : read_results((at300 / "truth.jsonl").string()))
    drawn[{fs::path(page.page).replace_extension().string(), page.page_index}] = page;
  std::map<std::pair<std::string, int>, double> dpi;
  for (const PageRef& page : list_pages(dir.path(), {})) dpi[{page.name, page.page_index}] = page.dpi;
  for (const PageResult& page : read_results((dir / "truth.jsonl").string())) {
    SCOPED_TRACE(page.page + " page " + std::to_string(page.page_index));
    const PageResult& big = drawn.at({fs::path(page.page).replace_extension().string(), page.page_index});
    const bool pdf = fs::path(page.page).extension() == ".pdf";
    // Scanned at 200 dpi: two thirds of the pixels each way, the text the same; a PDF page is
    // the paper's size, read at 300 dpi.
    EXPECT_NEAR(page.width, pdf ? big.width : big.width * 2 / 3.0, 1);
    EXPECT_NEAR(page.height, pdf ? big.height : big.height * 2 / 3.0, 1);
    ASSERT_EQ(page.strings.size(), big.strings.size());
    for (size_t i = 0; i < page.strings.size(); ++i) EXPECT_EQ(page.strings[i].text, big.strings[i].text);
    EXPECT_NEAR(dpi.at({page.page, page.page_index}), pdf ? 300 : 200, 0.01);
  }
  for (const auto& entry : fs::recursive_directory_iterator(dir.path())) {
    if (entry.path().extension() != ".png") continue;
    const cv::Mat image = cv::imread(entry.path().string(), cv::IMREAD_UNCHANGED);
    ASSERT_EQ(image.type(), CV_8UC1) << entry.path();
    EXPECT_EQ(cv::countNonZero((image != 0) & (image != 255)), 0) << entry.path() << " is not black and white";
  }
  // TIFF and PDF pages are 1-bit CCITT G4, as black-and-white scanners store them, and read
  // back black and white.
  int g4_pages = 0;
  for (const auto& entry : fs::recursive_directory_iterator(dir.path())) {
    const std::string extension = entry.path().extension().string();
    if (extension == ".pdf") {
      std::ifstream in(entry.path(), std::ios::binary);
      const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      EXPECT_NE(bytes.find("/BitsPerComponent 1 /Filter /CCITTFaxDecode"), std::string::npos) << entry.path();
      EXPECT_EQ(bytes.find("/DCTDecode"), std::string::npos) << entry.path();
    }
    if (extension != ".tif") continue;
    TIFF* tiff = TIFFOpen(entry.path().c_str(), "r");
    ASSERT_NE(tiff, nullptr) << entry.path();
    do {
      uint16_t bits = 0, compression = 0;
      TIFFGetFieldDefaulted(tiff, TIFFTAG_BITSPERSAMPLE, &bits);
      TIFFGetFieldDefaulted(tiff, TIFFTAG_COMPRESSION, &compression);
      EXPECT_EQ(bits, 1) << entry.path();
      EXPECT_EQ(compression, COMPRESSION_CCITTFAX4) << entry.path();
      ++g4_pages;
    } while (TIFFReadDirectory(tiff));
    TIFFClose(tiff);
    std::vector<cv::Mat> pages;
    ASSERT_TRUE(cv::imreadmulti(entry.path().string(), pages, cv::IMREAD_GRAYSCALE)) << entry.path();
    for (const cv::Mat& image : pages) EXPECT_EQ(cv::countNonZero((image != 0) & (image != 255)), 0) << entry.path();
  }
  EXPECT_GE(g4_pages, 2);

  testing::TempDir untagged;
  options.out = untagged.path();
  options.bitonal = false;
  options.untagged = true;
  make_synthetic_job(options);
  for (const PageRef& page : list_pages(untagged.path(), {}))
    EXPECT_EQ(page.dpi, page.format == FileFormat::pdf ? 300 : 0) << page.name;
}

TEST(Synth, RefusesBadOptions) {
  testing::TempDir dir;
  EXPECT_TRUE(testing::throws_with_message<std::runtime_error>(
      [&] {
        make_synthetic_job({dir / "out", 3, 1, "letters", testing::mnist_dir()});
      },
      {"letters", "forms, checks or free"}));
  EXPECT_TRUE(testing::throws_with_message<std::runtime_error>(
      [&] {
        make_synthetic_job({dir / "out", 0, 1, "forms", testing::mnist_dir()});
      },
      {"pages", "at least 1"}));
  EXPECT_TRUE(testing::throws_with_message<std::runtime_error>(
      [&] {
        make_synthetic_job({dir / "out", 2, 1, "forms", dir / "no-mnist"});
      },
      {(dir / "no-mnist").string(), "t10k-images-idx3-ubyte"}));
  SynthOptions fax{dir / "out", 2, 1, "forms", testing::mnist_dir()};
  fax.dpi = 72;
  EXPECT_TRUE(testing::throws_with_message<std::runtime_error>([&] { make_synthetic_job(fax); },
                                                               {"scan resolution", "100 to 1200 dpi", "72"}));
  SynthOptions glued{dir / "out", 2, 1, "forms", testing::mnist_dir()};
  glued.touching_share = 1.5;
  EXPECT_TRUE(testing::throws_with_message<std::runtime_error>([&] { make_synthetic_job(glued); },
                                                               {"touching digits", "0 to 1", "1.5"}));
  EXPECT_FALSE(fs::exists(dir / "out" / "truth.jsonl"));
}

}  // namespace
}  // namespace digitflow::pipeline

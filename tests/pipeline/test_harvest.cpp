// Training images cut from pages with truth: each truth digit found once with its own label
// (the shipped model agrees with nearly all of them), glued digits and the pages' print as
// "not a digit", the same images in the same order whatever the threads, and a clear error
// for a folder without truth; label_pieces on a hand-made segmentation (the best piece per
// digit, not the reading with a form line's ink; glued digits, print, half digits). Also:
// synth writes training digits only when asked.
#include <gtest/gtest.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <memory>
#include <opencv2/imgcodecs.hpp>

#include "digitflow/kernels/model_file.hpp"
#include "digitflow/kernels/trainer.hpp"
#include "digitflow/pipeline/harvest.hpp"
#include "digitflow/pipeline/negatives.hpp"
#include "digitflow/pipeline/synth.hpp"
#include "test_support.hpp"

namespace digitflow::pipeline {
namespace {

namespace fs = std::filesystem;

// Pages of training digits, made once per test run.
const fs::path& training_pages(const std::string& kind) {
  static std::map<std::string, std::unique_ptr<testing::TempDir>> jobs;
  auto& dir = jobs[kind];
  if (!dir) {
    dir = std::make_unique<testing::TempDir>();
    SynthOptions options{dir->path(), 3, 11, kind, testing::mnist_dir()};
    options.training_digits = true;
    make_synthetic_job(options);
  }
  return dir->path();
}

int64_t truth_digits(const fs::path& dir) {
  int64_t n = 0;
  for (const PageResult& page : read_results((dir / "truth.jsonl").string()))
    for (const StringResult& s : page.strings) n += static_cast<int64_t>(s.digits.size());
  return n;
}

TEST(Harvest, EachTruthDigitOnceWithTheLabelTheShippedModelReads) {
  DIGITFLOW_SKIP_WITHOUT_MNIST();
  for (const std::string kind : {"forms", "checks"}) {
    SCOPED_TRACE(kind);
    const fs::path& dir = training_pages(kind);
    HarvestReport report;
    const kernels::LabelledImages images = harvest_pieces(dir, HarvestOptions{}, &report);
    ASSERT_EQ(report.pages, 3);
    EXPECT_EQ(report.failed_pages, 0);
    const int64_t truth = truth_digits(dir);
    EXPECT_EQ(report.digits + report.missed, truth);
    EXPECT_GE(report.digits, truth * 97 / 100);  // touching digits are cut as the run cuts them
    EXPECT_EQ(images.count, report.digits + report.glued + report.not_digit);
    ASSERT_EQ(images.labels.size(), static_cast<size_t>(images.count));
    ASSERT_EQ(images.pixels.size(), static_cast<size_t>(images.count) * 28 * 28);
    EXPECT_GT(report.not_digit, 0);  // the printed labels of the form or check

    kernels::LoadedModel model = kernels::load_model(testing::source_dir() / "models/digits.safetensors");
    const kernels::Tensor probs = kernels::infer_probabilities(model.network, images.pixels, images.count);
    int64_t digits = 0, agree = 0, rejected = 0, others = 0;
    for (int64_t i = 0; i < images.count; ++i) {
      const float* p = probs.data() + i * kClassesWithNotDigit;
      const int64_t read = std::max_element(p, p + kClassesWithNotDigit) - p;
      if (images.labels[static_cast<size_t>(i)] == kNotDigitClass) {
        ++others;
        rejected += read == kNotDigitClass ? 1 : 0;
      } else {
        ++digits;
        agree += read == images.labels[static_cast<size_t>(i)] ? 1 : 0;
      }
    }
    // A label off by one piece (a neighbour's digit) would show here as thousands of errors.
    EXPECT_GE(agree, digits * 97 / 100) << agree << " of " << digits;
    EXPECT_GE(rejected, others * 90 / 100) << rejected << " of " << others;
  }
}

// A piece marked by its first pixel, so the test can tell which piece was taken.
Piece marked_piece(Box box, uint8_t marker) {
  Piece piece;
  piece.box = box;
  piece.pixels[0] = marker;
  piece.usable = true;
  return piece;
}

Hypothesis reading(std::vector<int> pieces, bool on_line = false) {
  Hypothesis h;
  h.pieces = std::move(pieces);
  h.on_line = on_line;
  return h;
}

DigitResult digit_at(int digit, Box box) {
  DigitResult d;
  d.digit = digit;
  d.box = box;
  return d;
}

Slot slot_of(Box box, std::vector<Hypothesis> hypotheses) {
  Slot slot;
  slot.box = box;
  slot.hypotheses = std::move(hypotheses);
  return slot;
}

TEST(Harvest, LabelPiecesTakesTheBestPieceOfEachDigitAndRejectsGluedDigitsAndPrint) {
  // Truth: "4725" on a line, and a "9" alone that no piece covers.
  PageResult truth;
  truth.page = "p.png";
  truth.width = 1000;
  truth.height = 500;
  StringResult amount;
  amount.text = "4725";
  amount.box = {100, 100, 190, 50};
  for (int i = 0; i < 4; ++i) amount.digits.push_back(digit_at("4725"[i] - '0', {100 + 50 * i, 100, 40, 50}));
  StringResult lone;
  lone.text = "9";
  lone.box = {800, 400, 40, 50};
  lone.digits.push_back(digit_at(9, lone.box));
  truth.strings = {amount, lone};

  Segmentation seg;
  seg.pieces = {
      marked_piece({100, 100, 40, 50}, 1),  // 0: the 4
      marked_piece({152, 102, 36, 46}, 2),  // 1: the 7 as the page has it (IoU 0.83)
      marked_piece({150, 100, 40, 50}, 3),  // 2: the 7 with a form line's ink: a better box, no piece of the page
      marked_piece({200, 100, 90, 50}, 4),  // 3: the 2 and the 5 glued
      marked_piece({200, 100, 42, 50}, 5),  // 4: its left cut, the 2
      marked_piece({248, 100, 42, 50}, 6),  // 5: its right cut, the 5
      marked_piece({600, 300, 100, 40}, 7),  // 6: a printed word away from the handwriting
      marked_piece({100, 100, 20, 50}, 8),  // 7: half of the 4 (IoU 0.5)
      marked_piece({800, 400, 40, 50}, 9),  // 8: the 9, but never normalised
  };
  seg.pieces[8].usable = false;
  StringCandidate line;
  line.box = amount.box;
  line.slots = {slot_of(seg.pieces[0].box, {reading({0})}),
                slot_of(seg.pieces[1].box, {reading({1}), reading({2}, true)}),
                slot_of(seg.pieces[3].box, {reading({3}), reading({4, 5})})};
  StringCandidate print;
  print.box = seg.pieces[6].box;
  print.slots = {slot_of(print.box, {reading({6})})};
  StringCandidate half;
  half.box = seg.pieces[7].box;
  half.slots = {slot_of(half.box, {reading({7})})};
  StringCandidate nine;
  nine.box = seg.pieces[8].box;
  nine.slots = {slot_of(nine.box, {reading({8})})};
  seg.strings = {line, print, half, nine};

  kernels::LabelledImages out;
  HarvestReport report;
  label_pieces(seg, cv::Mat::eye(2, 3, CV_64F), truth.width, truth.height, truth, HarvestOptions{}, out, report);
  EXPECT_EQ(report.digits, 4);
  EXPECT_EQ(report.missed, 1);  // the 9: its only piece is unusable
  EXPECT_EQ(report.glued, 1);
  EXPECT_EQ(report.not_digit, 1);
  EXPECT_EQ(report.ambiguous, 1);  // half a digit is neither a digit nor print
  ASSERT_EQ(out.count, 6);
  EXPECT_EQ(out.rows, 28);
  EXPECT_EQ(out.labels, (std::vector<uint8_t>{4, 7, 2, 5, kNotDigitClass, kNotDigitClass}));
  std::vector<int> markers;
  for (int64_t i = 0; i < out.count; ++i) markers.push_back(out.pixels[static_cast<size_t>(i) * 28 * 28]);
  // The 7 is the piece read without the line's ink; the digits before the rejects.
  EXPECT_EQ(markers, (std::vector<int>{1, 2, 5, 6, 4, 7}));

  // A piece that matches two digits almost as well is left out: which one it shows is unsure.
  Segmentation between;
  between.pieces = {marked_piece({125, 100, 50, 50}, 1)};  // half over the 4, half over the 7
  StringCandidate one;
  one.box = between.pieces[0].box;
  one.slots = {slot_of(one.box, {reading({0})})};
  between.strings = {one};
  kernels::LabelledImages none;
  HarvestReport none_report;
  HarvestOptions loose;
  loose.digit_iou = 0.2;
  label_pieces(between, cv::Mat::eye(2, 3, CV_64F), truth.width, truth.height, truth, loose, none, none_report);
  EXPECT_EQ(none_report.digits, 0);
  EXPECT_EQ(none_report.ambiguous, 1);
  EXPECT_EQ(none.count, 0);
}

TEST(Harvest, SameImagesInTheSameOrderWhateverTheThreads) {
  DIGITFLOW_SKIP_WITHOUT_MNIST();
  const fs::path& dir = training_pages("checks");
  kernels::LabelledImages one, two;
  tbb::task_arena(1).execute([&] { one = harvest_pieces(dir, HarvestOptions{}); });
  tbb::task_arena(2).execute([&] { two = harvest_pieces(dir, HarvestOptions{}); });
  EXPECT_EQ(one.count, two.count);
  EXPECT_TRUE(one.labels == two.labels);
  EXPECT_TRUE(one.pixels == two.pixels);
}

TEST(Harvest, AFolderWithoutTruthOrWithoutItsPagesIsRefusedByName) {
  testing::TempDir empty;
  EXPECT_TRUE(testing::throws_with_message<std::runtime_error>(
      [&] { harvest_pieces(empty.path(), HarvestOptions{}); },
      {(empty.path() / "truth.jsonl").string(), "no such file", "truth that synthetic pages"}));
  testing::TempDir truth_only;
  std::ofstream(truth_only / "truth.jsonl")
      << R"({"page":"gone.png","page_index":0,"width":10,"height":10,"strings":[]})" << "\n";
  EXPECT_TRUE(testing::throws_with_message<std::runtime_error>(
      [&] { harvest_pieces(truth_only.path(), HarvestOptions{}); }, {"none of its pages"}));
}

TEST(Harvest, APageThatCannotBeReadOrIsNotTheSizeOfItsTruthFailsAndSaysWhy) {
  testing::TempDir job;
  std::ofstream(job / "a-broken.png") << "not a PNG at all";
  cv::imwrite((job / "b-small.png").string(), cv::Mat(100, 100, CV_8U, cv::Scalar(235)));
  std::ofstream(job / "truth.jsonl")
      << R"({"page":"a-broken.png","page_index":0,"width":100,"height":100,"strings":[]})" << "\n"
      << R"({"page":"b-small.png","page_index":0,"width":200,"height":100,"strings":[]})" << "\n";
  HarvestReport report;
  const kernels::LabelledImages images = harvest_pieces(job.path(), HarvestOptions{}, &report);
  EXPECT_EQ(images.count, 0);
  EXPECT_EQ(report.pages, 2);
  EXPECT_EQ(report.failed_pages, 2);  // the second: its digits' boxes would lie elsewhere
  EXPECT_EQ(report.first_failure.rfind("a-broken.png: ", 0), 0u) << report.first_failure;
  cv::imwrite((job / "a-broken.png").string(), cv::Mat(100, 100, CV_8U, cv::Scalar(235)));
  report = HarvestReport{};
  harvest_pieces(job.path(), HarvestOptions{}, &report);
  EXPECT_EQ(report.failed_pages, 1);
  EXPECT_NE(report.first_failure.find("b-small.png: decoded at another size than its truth"), std::string::npos)
      << report.first_failure;
}

TEST(Harvest, SynthWritesTrainingDigitsOnlyWhenAsked) {
  DIGITFLOW_SKIP_WITHOUT_MNIST();
  testing::TempDir test_digits, training_digits;
  SynthOptions options{test_digits.path(), 1, 11, "checks", testing::mnist_dir()};
  make_synthetic_job(options);
  options.out = training_digits.path();
  options.training_digits = true;
  make_synthetic_job(options);
  // Same seed, same layout: the strings' texts are drawn alike, the digits' images are not.
  const auto a = read_results((test_digits / "truth.jsonl").string());
  const auto b = read_results((training_digits / "truth.jsonl").string());
  ASSERT_EQ(a.size(), 1u);
  ASSERT_EQ(b.size(), 1u);
  ASSERT_FALSE(a[0].strings.empty());
  ASSERT_FALSE(b[0].strings.empty());
  bool differ = false;
  for (size_t i = 0; i < std::min(a[0].strings.size(), b[0].strings.size()); ++i)
    differ = differ || !(a[0].strings[i].box == b[0].strings[i].box);
  EXPECT_TRUE(differ) << "the handwriting is the same with training digits as with test digits";

  testing::TempDir no_training_set;  // a folder with MNIST's test files only
  for (const char* name : {"t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"})
    fs::copy_file(testing::mnist_dir() / name, no_training_set / name);
  testing::TempDir out;
  SynthOptions missing{out.path(), 1, 11, "checks", no_training_set.path()};
  missing.training_digits = true;
  EXPECT_TRUE(testing::throws_with_message<std::runtime_error>(
      [&] { make_synthetic_job(missing); }, {"no MNIST training set", "train-images-idx3-ubyte"}));
  missing.training_digits = false;
  EXPECT_NO_THROW(make_synthetic_job(missing));
}

}  // namespace
}  // namespace digitflow::pipeline

// One image read in memory: the same strings, boxes and confidences as the flow graph reads
// on the same page; a photo's encoded bytes decode with their size checked first; a single
// digit is read whole.
#include <gtest/gtest.h>

#include <cmath>

#include <fstream>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "digitflow/kernels/idx.hpp"
#include "digitflow/kernels/model_file.hpp"
#include "digitflow/pipeline/normalize.hpp"
#include "digitflow/pipeline/read.hpp"
#include "digitflow/pipeline/synth.hpp"
#include "test_support.hpp"

namespace digitflow::pipeline {
namespace {

namespace fs = std::filesystem;
namespace t = digitflow::testing;

kernels::Network& model() {
  static kernels::LoadedModel loaded =
      kernels::load_model(t::source_dir() / "models" / "digits.safetensors");
  return loaded.network;
}

// MNIST test digits of `digits`, `height` px tall, dark on light paper, starting at (x, y).
void draw_string(cv::Mat& page, const std::string& digits, int x, int y, int height = 60) {
  static kernels::LabelledImages set =
      kernels::load_mnist(t::mnist_dir(), kernels::MnistSplit::test);
  for (char c : digits) {
    int64_t i = 0;
    while (set.labels[static_cast<size_t>(i)] != c - '0') ++i;
    cv::Mat m(28, 28, CV_8U, &set.pixels[static_cast<size_t>(i) * 784]);
    const cv::Rect ink = cv::boundingRect(m > 40);
    cv::Mat big;
    const double scale = static_cast<double>(height) / ink.height;
    cv::resize(m(ink), big, cv::Size(), scale, scale, cv::INTER_CUBIC);
    cv::Mat region = page(cv::Rect(x, y, big.cols, big.rows));
    cv::min(region, 255 - big, region);
    x += big.cols + height * 14 / 60;
  }
}

std::vector<uint8_t> encode(const cv::Mat& image, const std::string& ext) {
  std::vector<uint8_t> bytes;
  cv::imencode(ext, image, bytes);
  return bytes;
}

// The page one image read gives is the one the flow graph gave: strings, boxes, confidences.
void expect_read_alike(const PageResult& one, const PageResult& flow) {
  EXPECT_FALSE(one.error);
  ASSERT_EQ(one.strings.size(), flow.strings.size());
  for (size_t i = 0; i < one.strings.size(); ++i) {
    EXPECT_EQ(one.strings[i].text, flow.strings[i].text);
    EXPECT_EQ(one.strings[i].box, flow.strings[i].box);
    EXPECT_NEAR(one.strings[i].confidence, flow.strings[i].confidence, 1e-4);
    EXPECT_EQ(one.strings[i].digits.size(), flow.strings[i].digits.size());
  }
}

TEST(Read, AnImageReadsLikeTheSamePageInTheFlowGraph) {
  if (!t::mnist_available()) GTEST_SKIP() << "MNIST is not fetched";
  cv::Mat page(500, 800, CV_8U, cv::Scalar(235));
  draw_string(page, "3907", 100, 120);
  draw_string(page, "52", 400, 330);
  t::TempDir dir;
  cv::imwrite((dir / "page.png").string(), page);

  RunOptions options;
  std::vector<PageResult> flow;
  run_pages(list_pages(dir.path(), options.limits), options, model(),
            [&](const PageResult& r, const cv::Mat*) { flow.push_back(r); });
  ASSERT_EQ(flow.size(), 1u);

  const PageResult one =
      recognize_image(decode_image(encode(page, ".png"), options.limits), model(), options);
  EXPECT_EQ(one.width, 800);
  EXPECT_EQ(one.height, 500);
  expect_read_alike(one, flow[0]);
  ASSERT_GE(one.strings.size(), 2u);
  EXPECT_EQ(one.strings[0].text, "3907");
  EXPECT_EQ(one.strings[1].text, "52");
}

TEST(Read, AnImageStatingItsResolutionIsReadLikeThatPageInTheFlowGraph) {
  if (!t::mnist_available()) GTEST_SKIP() << "MNIST is not fetched";
  cv::Mat drawn(600, 900, CV_8U, cv::Scalar(235));
  draw_string(drawn, "40718", 120, 150);
  draw_string(drawn, "263", 450, 380);
  cv::Mat page;  // scanned at 200 dpi
  cv::resize(drawn, page, cv::Size(600, 400), 0, 0, cv::INTER_AREA);
  const std::string png = encode_scan(page, true, 0, 200);
  const std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(png.data()), png.size());
  t::TempDir dir;
  std::ofstream(dir / "page.png", std::ios::binary) << png;

  RunOptions options;
  std::vector<PageResult> flow;
  run_pages(list_pages(dir.path(), options.limits), options, model(),
            [&](const PageResult& r, const cv::Mat*) { flow.push_back(r); });
  ASSERT_EQ(flow.size(), 1u);
  double dpi = 0;
  const cv::Mat gray = decode_image(bytes, options.limits, &dpi);
  EXPECT_NEAR(dpi, 200, 0.01);
  const PageResult one = recognize_image(gray, model(), options, dpi);
  EXPECT_EQ(one.width, 600);
  expect_read_alike(one, flow[0]);
  ASSERT_EQ(one.strings.size(), 2u);
  EXPECT_EQ(one.strings[0].text, "40718");

  // An image that states no resolution takes the one the options assume.
  DecodeLimits assumed;
  assumed.assume_dpi = 240;
  decode_image(encode(page, ".png"), assumed, &dpi);
  EXPECT_EQ(dpi, 240);
  decode_image(encode(page, ".png"), DecodeLimits{}, &dpi);
  EXPECT_EQ(dpi, 0);
}

TEST(Read, ANearlyBlackImageIsAnErrorNotAThrow) {
  const PageResult r =
      recognize_image(cv::Mat(200, 300, CV_8U, cv::Scalar(5)), model(), RunOptions{});
  ASSERT_TRUE(r.error);
  EXPECT_TRUE(r.strings.empty());
}

TEST(Read, DecodeChecksTheHeaderSizeBeforeThePixels) {
  const cv::Mat small(40, 60, CV_8U, cv::Scalar(200));
  for (const std::string ext : {".png", ".jpg", ".bmp"}) {
    const cv::Mat gray = decode_image(encode(small, ext), DecodeLimits{});
    EXPECT_EQ(gray.cols, 60) << ext;
    EXPECT_EQ(gray.type(), CV_8U) << ext;
    DecodeLimits tight;
    tight.max_pixels = 1000;
    EXPECT_TRUE(t::throws_with_message<ImageError>([&] { decode_image(encode(small, ext), tight); },
                                                   {"60x40", "1000"}))
        << ext;
  }
  std::vector<uint8_t> bomb = encode(small, ".png");
  const uint8_t big[8] = {0, 1, 0x86, 0xA0, 0, 1, 0x86, 0xA0};  // 100000 x 100000
  std::copy(big, big + 8, bomb.begin() + 16);
  EXPECT_TRUE(t::throws_with_message<ImageError>([&] { decode_image(bomb, DecodeLimits{}); },
                                                 {"100000x100000"}));
  const std::string text = "not an image";
  EXPECT_TRUE(t::throws_with_message<ImageError>(
      [&] {
        decode_image({reinterpret_cast<const uint8_t*>(text.data()), text.size()}, DecodeLimits{});
      },
      {"not an image"}));
  EXPECT_THROW(decode_image({}, DecodeLimits{}), ImageError);
}

TEST(Read, ATransparentPngLiesOnWhitePaper) {
  cv::Mat canvas(40, 60, CV_8UC4, cv::Scalar(0, 0, 0, 0));  // transparent black
  cv::line(canvas, {10, 20}, {50, 20}, cv::Scalar(30, 30, 30, 255), 3);
  const cv::Mat gray = decode_image(encode(canvas, ".png"), DecodeLimits{});
  ASSERT_EQ(gray.type(), CV_8U);
  EXPECT_EQ(gray.at<uint8_t>(5, 5), 255);   // paper where it was transparent
  EXPECT_LT(gray.at<uint8_t>(20, 30), 60);  // the stroke stays dark
}

TEST(Read, OneDigitIsReadWhole) {
  if (!t::mnist_available()) GTEST_SKIP() << "MNIST is not fetched";
  cv::Mat pad(200, 160, CV_8U, cv::Scalar(255));
  draw_string(pad, "7", 50, 60);
  const DigitResult d = recognize_digit(pad, model());
  EXPECT_EQ(d.digit, 7);
  EXPECT_GT(d.confidence, 0.5f);
  ASSERT_EQ(d.top.size(), 3u);
  EXPECT_EQ(d.top[0].digit, 7);
  EXPECT_GE(d.top[0].confidence, d.top[1].confidence);
  EXPECT_THROW(recognize_digit(cv::Mat(50, 50, CV_8U, cv::Scalar(255)), model()), ImageError);
}

// With a partner, a digit's probabilities are the mean of the two models' (as run_pages reads).
TEST(Read, ADigitReadWithAPartnerHasTheMeanOfTheTwoReadings) {
  cv::Mat pad(60, 50, CV_8U, cv::Scalar(255));
  cv::line(pad, {25, 8}, {25, 52}, cv::Scalar(0), 5);  // a 1 the two models read a little apart
  static kernels::LoadedModel partner =
      kernels::load_model(t::source_dir() / "models" / "partner.safetensors");
  const DigitResult alone = recognize_digit(pad, model());
  const DigitResult other = recognize_digit(pad, partner.network);
  const DigitResult both = recognize_digit(pad, model(), &partner.network);
  auto probability = [](const DigitResult& d, int digit) {
    for (const Candidate& c : d.top)
      if (c.digit == digit) return c.confidence;
    return -1.0f;
  };
  EXPECT_EQ(both.digit, 1);
  ASSERT_EQ(alone.digit, both.digit);
  ASSERT_EQ(other.digit, both.digit);
  ASSERT_GT(std::abs(alone.confidence - other.confidence), 1e-3f) << "the two readings must differ for this check";
  EXPECT_NEAR(both.confidence, 0.5f * (alone.confidence + other.confidence), 1e-5f);
  const int second = both.top[1].digit;
  if (probability(alone, second) >= 0 && probability(other, second) >= 0) {
    EXPECT_NEAR(both.top[1].confidence, 0.5f * (probability(alone, second) + probability(other, second)), 1e-5f);
  }

  kernels::ModelSpec spec = model().spec();  // a partner that reads other classes: refused
  spec.classes = 3;
  spec.layers.back().out = 3;
  kernels::Network three(spec);
  EXPECT_THROW(recognize_digit(pad, model(), &three), std::invalid_argument);
}

// A string written on the pad: thick strokes on a small white canvas. The bar of a 7 is
// as long as a form line on a 300 dpi page, so the pad's ink is read without line removal
// (with it, this reads "111").
TEST(Read, DigitsDrawnOnThePadKeepTheirStrokes) {
  cv::Mat pad(320, 960, CV_8UC1, cv::Scalar(255));
  auto stroke = [&](cv::Point a, cv::Point b) { cv::line(pad, a, b, cv::Scalar(0), 14, cv::LINE_AA); };
  stroke({85, 55}, {255, 55});  // 7
  stroke({255, 55}, {190, 265});
  stroke({355, 45}, {355, 265});  // 1
  stroke({470, 60}, {600, 60});   // 7
  stroke({600, 60}, {520, 270});
  RunOptions options;
  options.read.min_digits = 1;
  options.clean.remove_lines = false;
  const PageResult r = recognize_image(pad, model(), options);
  ASSERT_EQ(r.strings.size(), 1u);
  EXPECT_EQ(r.strings[0].text, "717");

  // Through an Inference kept by the caller, read twice: the same reading each time.
  kernels::Inference kept(model(), kernels::Backend::cpu, 64);
  for (int time = 0; time < 2; ++time) {
    const PageResult again = recognize_image(pad, kept, options);
    ASSERT_EQ(again.strings.size(), 1u);
    EXPECT_EQ(again.strings[0].text, "717");
    EXPECT_DOUBLE_EQ(again.strings[0].confidence, r.strings[0].confidence);
  }
  const DigitResult alone = recognize_digit(pad(cv::Rect(60, 30, 220, 260)), model());
  kernels::Inference one(model(), kernels::Backend::cpu, 1);
  EXPECT_EQ(recognize_digit(pad(cv::Rect(60, 30, 220, 260)), one).digit, alone.digit);
  EXPECT_FLOAT_EQ(recognize_digit(pad(cv::Rect(60, 30, 220, 260)), one).confidence, alone.confidence);
}

TEST(Read, ADrawingIsReadHoweverTallItsWriting) {
  if (!t::mnist_available()) GTEST_SKIP() << "MNIST is not fetched";
  RunOptions options;
  options.read.min_digits = 1;
  options.clean.remove_lines = false;
  kernels::Inference reader(model(), kernels::Backend::cpu, 64);
  // A pad on a phone: 960 x 640, digits written down most of it (480 px, over the 400 px a
  // form's digit may be).
  cv::Mat tall(640, 960, CV_8UC1, cv::Scalar(255));
  draw_string(tall, "71", 60, 80, 480);
  const PageResult as_is = recognize_image(tall, reader, options);
  EXPECT_TRUE(as_is.strings.empty() || as_is.strings[0].text != "71") << "read as it is, it must fail for this check";
  const PageResult fitted = recognize_drawing(tall, reader, options);
  ASSERT_EQ(fitted.strings.size(), 1u);
  EXPECT_EQ(fitted.strings[0].text, "71");
  EXPECT_EQ(fitted.width, 960);
  EXPECT_EQ(fitted.height, 640);
  // Boxes in the pixels of the drawing as sent (not of the drawing scaled to read it, 0.47
  // of it): the digits span rows 80..560, give or take their faint edges and the deskew.
  for (const DigitResult& d : fitted.strings[0].digits) {
    EXPECT_NEAR(d.box.y, 80, 20);
    EXPECT_NEAR(d.box.y + d.box.h, 560, 20);
  }
  EXPECT_NEAR(fitted.strings[0].box.x, 60, 30);
  // Light ink on a dark pad reads the same.
  cv::Mat dark;
  cv::bitwise_not(tall, dark);
  const PageResult inverted = recognize_drawing(dark, reader, options);
  ASSERT_EQ(inverted.strings.size(), 1u);
  EXPECT_EQ(inverted.strings[0].text, "71");
  EXPECT_EQ(inverted.strings[0].box, fitted.strings[0].box);

  // Writing of a form's size is read as it is.
  cv::Mat usual(320, 960, CV_8UC1, cv::Scalar(255));
  draw_string(usual, "731", 100, 60, 200);
  const PageResult same = recognize_drawing(usual, reader, options), plain = recognize_image(usual, reader, options);
  ASSERT_EQ(same.strings.size(), 1u);
  ASSERT_EQ(plain.strings.size(), 1u);
  EXPECT_EQ(same.strings[0].text, "731");
  EXPECT_EQ(same.strings[0].box, plain.strings[0].box);
  EXPECT_DOUBLE_EQ(same.strings[0].confidence, plain.strings[0].confidence);
}

TEST(Read, AModelThatDoesNotReadDigitsIsNamed) {
  kernels::ModelSpec spec = model().spec();
  spec.classes = 3;
  spec.layers.back().out = 3;
  kernels::Network three(spec);
  cv::Mat page(200, 400, CV_8UC1, cv::Scalar(255));
  EXPECT_TRUE(t::throws_with_message<std::invalid_argument>([&] { recognize_image(page, three, RunOptions{}); },
                                                            {"3 classes", "1x28x28"}));
}

}  // namespace
}  // namespace digitflow::pipeline

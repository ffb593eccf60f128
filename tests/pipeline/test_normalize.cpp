// MNIST-style normalisation of single digit images: polarity, size, centring, and clear
// refusals of files that are not images.
#include <gtest/gtest.h>

#include <fstream>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "digitflow/pipeline/normalize.hpp"
#include "test_support.hpp"

namespace digitflow::pipeline {
namespace {

// A "7"-like stroke drawn dark on light paper at any size.
cv::Mat draw_seven(int width, int height, bool dark_on_light) {
  cv::Mat img(height, width, CV_8UC1, cv::Scalar(dark_on_light ? 235 : 10));
  cv::Scalar ink(dark_on_light ? 20 : 240);
  int t = std::max(2, width / 12);
  cv::line(img, {width / 4, height / 5}, {3 * width / 4, height / 5}, ink, t);
  cv::line(img, {3 * width / 4, height / 5}, {width / 2 - width / 10, 4 * height / 5}, ink, t);
  return img;
}

struct Ink {
  cv::Rect box;
  double cx, cy;
};
Ink ink_of(const DigitPixels& p) {
  cv::Mat m(28, 28, CV_8UC1, const_cast<uint8_t*>(p.data()));
  cv::Moments mo = cv::moments(m, false);
  return {cv::boundingRect(m > 30), mo.m10 / mo.m00, mo.m01 / mo.m00};
}

TEST(NormalizeDigit, FitsTwentyPixelsAndCentresTheMass) {
  for (auto [w, h] : {std::pair{300, 400}, {40, 40}, {17, 23}, {800, 200}}) {
    SCOPED_TRACE(std::to_string(w) + "x" + std::to_string(h));
    Ink ink = ink_of(normalize_digit(draw_seven(w, h, true)));
    EXPECT_LE(std::max(ink.box.width, ink.box.height), 21);
    EXPECT_GE(std::max(ink.box.width, ink.box.height), 17);
    EXPECT_NEAR(ink.cx, 13.5, 1.0);
    EXPECT_NEAR(ink.cy, 13.5, 1.0);
  }
}

TEST(NormalizeDigit, PolarityDoesNotMatter) {
  DigitPixels a = normalize_digit(draw_seven(120, 160, true));
  DigitPixels b = normalize_digit(draw_seven(120, 160, false));
  double diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff += std::abs(int{a[i]} - int{b[i]});
  EXPECT_LT(diff / 784.0, 8.0) << "mean absolute difference";
  EXPECT_EQ(a[0], 0) << "background is black, as in MNIST";
}

// The image is the caller's: a dark-on-light one is read inverted, never inverted in place
// (callers pass a region of a page they go on reading).
TEST(NormalizeDigit, LeavesTheImageItReadsAsItWas) {
  const cv::Mat page = draw_seven(120, 160, true);
  const cv::Mat before = page.clone();
  const cv::Mat region = page(cv::Rect(10, 10, 100, 140));
  const DigitPixels once = normalize_digit(region);
  EXPECT_EQ(cv::countNonZero(page != before), 0) << "pixels of the caller's image changed";
  EXPECT_EQ(normalize_digit(region), once) << "a second reading of the same image differs";
}

TEST(NormalizeDigit, ColourAndSixteenBitInput) {
  cv::Mat gray = draw_seven(90, 120, true), bgr, deep;
  cv::cvtColor(gray, bgr, cv::COLOR_GRAY2BGR);
  gray.convertTo(deep, CV_16U, 257);
  Ink a = ink_of(normalize_digit(bgr)), b = ink_of(normalize_digit(deep));
  EXPECT_NEAR(a.cx, 13.5, 1.0);
  EXPECT_NEAR(b.cy, 13.5, 1.0);
}

TEST(NormalizeDigit, BlankImageIsRefused) {
  cv::Mat blank(50, 50, CV_8UC1, cv::Scalar(250));
  EXPECT_THROW(normalize_digit(blank), ImageError);
  EXPECT_THROW(normalize_digit(cv::Mat()), ImageError);
}

TEST(ReadImage, NamesTheFileAndTheProblem) {
  testing::TempDir dir;
  auto expect_error = [](const std::filesystem::path& p, const std::string& words) {
    try {
      read_image(p);
      ADD_FAILURE() << "no error for " << p;
    } catch (const ImageError& e) {
      std::string m = e.what();
      EXPECT_NE(m.find(p.string()), std::string::npos) << m;
      EXPECT_NE(m.find(words), std::string::npos) << m;
    }
  };
  expect_error(dir / "missing.png", "no such file");
  std::ofstream(dir / "empty.png").close();
  expect_error(dir / "empty.png", "empty file");
  std::ofstream(dir / "text.png") << "this is not a picture";
  expect_error(dir / "text.png", "not a readable image");
  expect_error(dir.path(), "directory");
  cv::imwrite((dir / "ok.png").string(), draw_seven(30, 40, true));
  EXPECT_EQ(read_image(dir / "ok.png").rows, 40);
  // A PNG damaged inside its image data: named so, and libpng prints no line of its own.
  std::ifstream in(dir / "ok.png", std::ios::binary);
  std::string png((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  png[png.find("IDAT") + 6] ^= 0x21;
  std::ofstream(dir / "damaged.png", std::ios::binary) << png;
  ::testing::internal::CaptureStderr();
  expect_error(dir / "damaged.png", "corrupt PNG: its IDAT chunk");
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
}

}  // namespace
}  // namespace digitflow::pipeline

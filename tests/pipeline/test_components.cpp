// find_components against cv::connectedComponentsWithStats: the same labels, pixel for
// pixel and in the same order, the same boxes and areas, on masks of every kind of shape.
#include <gtest/gtest.h>

#include <opencv2/imgproc.hpp>
#include <random>

#include "digitflow/pipeline/components.hpp"

namespace digitflow::pipeline {
namespace {

void expect_same_as_opencv(const cv::Mat& mask, const std::string& what) {
  cv::Mat labels, stats, centroids;
  const int n = cv::connectedComponentsWithStats(mask, labels, stats, centroids, 8, CV_32S);
  const Components c = find_components(mask);
  ASSERT_EQ(c.count(), n) << what;
  for (int i = 1; i < n; ++i) {
    const cv::Rect box(stats.at<int>(i, cv::CC_STAT_LEFT), stats.at<int>(i, cv::CC_STAT_TOP),
                       stats.at<int>(i, cv::CC_STAT_WIDTH), stats.at<int>(i, cv::CC_STAT_HEIGHT));
    EXPECT_EQ(c.boxes[static_cast<size_t>(i)], box) << what << ", label " << i;
    EXPECT_EQ(c.areas[static_cast<size_t>(i)], stats.at<int>(i, cv::CC_STAT_AREA)) << what << ", label " << i;
  }
  cv::Mat mine = cv::Mat::zeros(mask.size(), CV_32S);
  for (const InkRun& r : c.runs)
    for (int x = r.x0; x < r.x1; ++x) mine.at<int>(r.y, x) = r.label;
  EXPECT_EQ(cv::countNonZero(mine != labels), 0) << what << ": the label images differ";
  // The runs cover the mask exactly, row by row in order.
  cv::Mat painted = cv::Mat::zeros(mask.size(), CV_8U);
  c.paint(painted, {0, 0}, [](int) { return true; });
  EXPECT_EQ(cv::countNonZero(painted != (mask != 0)), 0) << what;
}

TEST(Components, MatchOpenCvOnRandomMasks) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 40; ++trial) {
    const int w = 1 + static_cast<int>(rng() % 130), h = 1 + static_cast<int>(rng() % 90);
    const double density = 0.05 + 0.1 * (trial % 8);
    cv::Mat mask(h, w, CV_8U);
    std::bernoulli_distribution ink(density);
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x) mask.at<uint8_t>(y, x) = ink(rng) ? static_cast<uint8_t>(1 + rng() % 255) : 0;
    expect_same_as_opencv(mask, std::to_string(w) + "x" + std::to_string(h) + " at " + std::to_string(density));
  }
}

TEST(Components, MatchOpenCvOnStrokesAndShapes) {
  cv::Mat mask = cv::Mat::zeros(300, 420, CV_8U);
  // Shapes that meet only at corners, a ring around a dot, a spiral, diagonal lines in
  // both directions, shapes that start on odd and on even rows, and a run to each edge.
  cv::rectangle(mask, cv::Rect(10, 10, 5, 5), 255, cv::FILLED);
  cv::rectangle(mask, cv::Rect(15, 15, 5, 5), 255, cv::FILLED);
  cv::rectangle(mask, cv::Rect(9, 21, 3, 3), 255, cv::FILLED);
  cv::circle(mask, {80, 60}, 30, 255, 3);
  cv::circle(mask, {80, 60}, 4, 255, cv::FILLED);
  for (int k = 0; k < 40; ++k) cv::line(mask, {200 + k, 20 + 2 * k}, {201 + k, 21 + 2 * k}, 255, 1);
  cv::line(mask, {300, 10}, {250, 120}, 255, 1);
  cv::line(mask, {250, 10}, {300, 120}, 255, 1);
  for (int k = 0; k < 12; ++k) cv::ellipse(mask, {120, 200}, {8 + 6 * k, 8 + 6 * k}, 0, 0, 300, 255, 2);
  mask.at<uint8_t>(1, 40) = 255;
  mask.at<uint8_t>(0, 44) = 255;
  mask.at<uint8_t>(1, 45) = 255;
  cv::line(mask, {0, 299}, {419, 299}, 255, 1);
  cv::line(mask, {419, 0}, {419, 150}, 255, 1);
  expect_same_as_opencv(mask, "shapes");
  // An empty mask and a full one.
  expect_same_as_opencv(cv::Mat::zeros(17, 23, CV_8U), "empty");
  expect_same_as_opencv(cv::Mat(17, 23, CV_8U, cv::Scalar(255)), "full");
}

TEST(Components, MatchOpenCvOnAPageSizedMask) {
  // Large enough for OpenCV's parallel labelling, which numbers stripe by stripe.
  cv::Mat mask = cv::Mat::zeros(1754, 1240, CV_8U);
  std::mt19937 rng(11);
  for (int k = 0; k < 3000; ++k) {
    const cv::Point a(static_cast<int>(rng() % 1240), static_cast<int>(rng() % 1754));
    const cv::Point b = a + cv::Point(static_cast<int>(rng() % 41) - 20, static_cast<int>(rng() % 41) - 20);
    cv::line(mask, a, b, 255, 1 + static_cast<int>(rng() % 3));
  }
  expect_same_as_opencv(mask, "page");
}

TEST(Components, PaintsTheChosenLabelsIntoAWindow) {
  cv::Mat mask = cv::Mat::zeros(40, 60, CV_8U);
  cv::rectangle(mask, cv::Rect(5, 5, 20, 10), 255, cv::FILLED);   // label 1
  cv::rectangle(mask, cv::Rect(30, 8, 20, 25), 255, cv::FILLED);  // label 2
  const Components c = find_components(mask);
  ASSERT_EQ(c.count(), 3);
  // A window from (20, 6), 20 x 10: the right end of the first block and the left of the second.
  cv::Mat window = cv::Mat::zeros(10, 20, CV_8U);
  c.paint(window, {20, 6}, [](int label) { return label == 2; }, 7);
  EXPECT_EQ(cv::countNonZero(window), 10 * 8);  // columns 30..39, rows 8..15 of the mask
  EXPECT_EQ(window.at<uint8_t>(2, 10), 7);
  EXPECT_EQ(window.at<uint8_t>(1, 10), 0);
  EXPECT_EQ(window.at<uint8_t>(5, 4), 0);  // the first block's pixel, not chosen
  c.paint(window, {20, 6}, [](int label) { return label == 1; });
  EXPECT_EQ(window.at<uint8_t>(5, 4), 255);
  // A window that hangs over the mask's edges takes what lies inside.
  cv::Mat over = cv::Mat::zeros(20, 20, CV_8U);
  c.paint(over, {-10, -10}, [](int) { return true; });
  EXPECT_EQ(cv::countNonZero(over), 5 * 5);
}

// Masks of horizontal and vertical strokes of every length, some reaching the edges.
cv::Mat strokes(int w, int h, std::mt19937& rng) {
  cv::Mat mask = cv::Mat::zeros(h, w, CV_8U);
  for (int k = 0; k < 60; ++k) {
    const cv::Point a(static_cast<int>(rng() % static_cast<unsigned>(w)), static_cast<int>(rng() % static_cast<unsigned>(h)));
    const int length = static_cast<int>(rng() % 150);
    const cv::Point b = k % 2 ? a + cv::Point(length, 0) : a + cv::Point(0, length);
    cv::line(mask, a, b, 255, 1 + static_cast<int>(rng() % 2));
  }
  for (int k = 0; k < 200; ++k)
    mask.at<uint8_t>(static_cast<int>(rng() % static_cast<unsigned>(h)), static_cast<int>(rng() % static_cast<unsigned>(w))) = 255;
  return mask;
}

TEST(Components, OpeningsMatchOpenCv) {
  std::mt19937 rng(3);
  for (int trial = 0; trial < 12; ++trial) {
    const int w = 20 + static_cast<int>(rng() % 300), h = 20 + static_cast<int>(rng() % 300);
    const cv::Mat mask = strokes(w, h, rng);
    for (int length : {1, 2, 3, 10, 11, 49, 110, 400}) {
      cv::Mat want;
      cv::morphologyEx(mask, want, cv::MORPH_OPEN, cv::getStructuringElement(cv::MORPH_RECT, cv::Size(length, 1)));
      EXPECT_EQ(cv::countNonZero(open_horizontal(mask, length) != want), 0)
          << "horizontal, " << w << "x" << h << ", length " << length;
      cv::morphologyEx(mask, want, cv::MORPH_OPEN, cv::getStructuringElement(cv::MORPH_RECT, cv::Size(1, length)));
      EXPECT_EQ(cv::countNonZero(open_vertical(mask, length) != want), 0)
          << "vertical, " << w << "x" << h << ", length " << length;
    }
  }
  // A run exactly as long as the line stays, one pixel shorter goes (away from the edges).
  cv::Mat mask = cv::Mat::zeros(9, 60, CV_8U);
  mask(cv::Rect(10, 2, 20, 1)) = 255;
  mask(cv::Rect(10, 5, 19, 1)) = 255;
  const cv::Mat opened = open_horizontal(mask, 20);
  EXPECT_EQ(cv::countNonZero(opened.row(2)), 20);
  EXPECT_EQ(cv::countNonZero(opened.row(5)), 0);
  EXPECT_THROW(open_vertical(mask, 0), std::invalid_argument);
}

TEST(Components, RefusesAMaskThatIsNotEightBitGrey) {
  EXPECT_THROW(find_components(cv::Mat::zeros(4, 4, CV_32S)), std::invalid_argument);
  EXPECT_THROW(find_components(cv::Mat::zeros(4, 4, CV_8UC3)), std::invalid_argument);
}

}  // namespace
}  // namespace digitflow::pipeline

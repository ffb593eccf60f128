// Page cleaning and segmentation on small synthetic pages: deskew recovers a known angle,
// form lines go and the digits that cross them stay, touching digits are split, broken
// strokes merged, boxes come back in the coordinates of the page as stored.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <optional>
#include <tuple>
#include <opencv2/imgproc.hpp>

#include "digitflow/kernels/idx.hpp"
#include "digitflow/kernels/model_file.hpp"
#include "digitflow/kernels/trainer.hpp"
#include "digitflow/pipeline/clean.hpp"
#include "digitflow/pipeline/segment.hpp"
#include "test_support.hpp"

namespace digitflow::pipeline {
namespace {

namespace t = digitflow::testing;

const kernels::LabelledImages& mnist_test() {
  static kernels::LabelledImages set = kernels::load_mnist(t::mnist_dir(), kernels::MnistSplit::test);
  return set;
}

// The first MNIST test image of `digit`, skipping `skip` of them.
cv::Mat mnist_digit(int digit, int skip = 0) {
  const kernels::LabelledImages& set = mnist_test();
  for (int64_t i = 0; i < set.count; ++i)
    if (set.labels[static_cast<size_t>(i)] == digit && skip-- == 0)
      return cv::Mat(28, 28, CV_8U, const_cast<uint8_t*>(&set.pixels[static_cast<size_t>(i) * 784])).clone();
  return {};
}

// Draws MNIST digits dark on light paper, `height` px tall, left to right from `at`;
// `gap` between ink boxes (negative: they touch). Returns each digit's ink box.
std::vector<cv::Rect> write_digits(cv::Mat& page, const std::vector<int>& digits, cv::Point at, int height, int gap,
                                   int skip = 0) {
  std::vector<cv::Rect> boxes;
  int x = at.x;
  for (int d : digits) {
    cv::Mat m = mnist_digit(d, skip);
    const cv::Rect ink = cv::boundingRect(m > 40);
    cv::Mat big;
    const double scale = static_cast<double>(height) / ink.height;
    cv::resize(m(ink), big, cv::Size(), scale, scale, cv::INTER_CUBIC);
    const cv::Rect where(x, at.y, big.cols, big.rows);
    cv::Mat dark = 255 - big;
    cv::Mat region = page(where);
    cv::min(region, dark, region);
    boxes.push_back(cv::boundingRect(page(where) < 128) + where.tl());
    x += big.cols + gap;
  }
  return boxes;
}

kernels::Network& shipped_model() {
  static kernels::LoadedModel model = kernels::load_model(t::source_dir() / "models" / "digits.safetensors");
  return model.network;
}

// Scores pieces `which` of `seg` into `probs`.
void score(const Segmentation& seg, const std::vector<int>& which, std::vector<float>& probs) {
  if (which.empty()) return;
  std::vector<uint8_t> pixels;
  for (int i : which) pixels.insert(pixels.end(), seg.pieces[static_cast<size_t>(i)].pixels.begin(), seg.pieces[static_cast<size_t>(i)].pixels.end());
  kernels::Tensor p = kernels::infer_probabilities(shipped_model(), pixels, static_cast<int64_t>(which.size()));
  const int classes = shipped_model().spec().classes;
  for (size_t k = 0; k < which.size(); ++k)
    std::copy(p.data() + k * static_cast<size_t>(classes), p.data() + (k + 1) * static_cast<size_t>(classes),
              probs.begin() + static_cast<std::ptrdiff_t>(which[k]) * classes);
}

std::vector<StringResult> read_page(const cv::Mat& page, double dpi = 0) {
  CleanedPage cleaned = clean_page(page, {}, dpi);
  Segmentation seg = find_strings(cleaned);
  const int classes = shipped_model().spec().classes;
  std::vector<float> probs(seg.pieces.size() * static_cast<size_t>(classes), 0.0f);
  score(seg, normalize_pieces(cleaned, seg), probs);
  score(seg, normalize_cuts(seg, probs, classes), probs);
  return read_strings(seg, probs.data(), classes, cleaned.to_page, page.cols, page.rows);
}

std::string texts(const std::vector<StringResult>& strings) {
  std::string all;
  for (const StringResult& s : strings) all += (all.empty() ? "" : " ") + s.text;
  return all;
}

TEST(Clean, DeskewRecoversAKnownAngle) {
  for (double angle : {-5.0, -2.5, 3.0, 5.0}) {
    SCOPED_TRACE(angle);
    cv::Mat page(1200, 1600, CV_8U, cv::Scalar(235));
    for (int line = 0; line < 6; ++line)
      for (int word = 0; word < 8; ++word)
        cv::rectangle(page, cv::Rect(150 + word * 160, 200 + line * 140, 120, 50), cv::Scalar(30), cv::FILLED);
    cv::Mat turn = cv::getRotationMatrix2D(cv::Point2f(800, 600), angle, 1.0), turned;
    cv::warpAffine(page, turned, turn, page.size(), cv::INTER_LINEAR, cv::BORDER_CONSTANT, cv::Scalar(235));
    CleanedPage cleaned = clean_page(turned);
    EXPECT_NEAR(cleaned.skew_deg, -angle, 0.2);
    // The map back to the page takes a corner of the levelled first block to where it was drawn.
    const cv::Mat& m = cleaned.to_page;
    cv::Mat levelled_to_original = m.clone();
    std::vector<cv::Point2f> src{{150, 200}}, ours, theirs;
    cv::transform(src, theirs, turn);  // where it landed on the stored page
    cv::Mat forward;
    cv::invertAffineTransform(m, forward);
    std::vector<cv::Point2f> levelled;
    cv::transform(theirs, levelled, forward);
    cv::transform(levelled, ours, m);
    EXPECT_NEAR(ours[0].x, theirs[0].x, 1.0);
    EXPECT_NEAR(ours[0].y, theirs[0].y, 1.0);
  }
}

TEST(Clean, APageScannedAt200DpiIsReadAt300AndMappedBackToItsPixels) {
  if (!t::mnist_available()) GTEST_SKIP() << "MNIST not in " << t::mnist_dir() << ": run scripts/fetch-mnist.sh";
  cv::Mat page(900, 1500, CV_8U, cv::Scalar(236));
  cv::line(page, {100, 480}, {1400, 480}, cv::Scalar(40), 3);  // the field's line, under the digits
  write_digits(page, {4, 0, 7, 1, 8, 3}, {200, 400}, 70, 18);
  const std::vector<StringResult> at300 = read_page(page);
  ASSERT_EQ(texts(at300), "407183");

  cv::Mat small;  // the same page from a scanner set to 200 dpi
  cv::resize(page, small, cv::Size(1000, 600), 0, 0, cv::INTER_AREA);
  const CleanedPage cleaned = clean_page(small, {}, 200);
  EXPECT_EQ(cleaned.flat.size(), cv::Size(1500, 900));  // worked on at 300 dpi
  std::vector<cv::Point2d> working{{300, 450}}, stored;
  cv::transform(working, stored, cleaned.to_page);
  EXPECT_NEAR(stored[0].x, 200, 0.5);
  EXPECT_NEAR(stored[0].y, 300, 0.5);
  EXPECT_EQ(clean_page(small).flat.size(), small.size());  // no stated resolution: as stored
  EXPECT_EQ(clean_page(page, {}, 310).flat.size(), page.size());  // within a tenth of 300
  const cv::Mat poster(5000, 5000, CV_8U, cv::Scalar(236));  // at 300 dpi 225 MP: kept as stored
  EXPECT_EQ(clean_page(poster, {}, 100).flat.size(), poster.size());

  const std::vector<StringResult> at200 = read_page(small, 200);
  ASSERT_EQ(texts(at200), "407183");
  // Boxes in the pixels of the page as stored: two thirds of those read at 300 dpi.
  const Box& a = at300[0].box;
  const Box& b = at200[0].box;
  EXPECT_NEAR(b.x, a.x * 2 / 3.0, 3);
  EXPECT_NEAR(b.y, a.y * 2 / 3.0, 3);
  EXPECT_NEAR(b.w, a.w * 2 / 3.0, 4);
  EXPECT_NEAR(b.h, a.h * 2 / 3.0, 4);
}

TEST(Clean, UnevenLightAndOffWhitePaperAreFlattened) {
  cv::Mat page(800, 1200, CV_8U);
  for (int y = 0; y < page.rows; ++y)
    for (int x = 0; x < page.cols; ++x) page.at<uint8_t>(y, x) = static_cast<uint8_t>(120 + 90 * x / page.cols);
  cv::rectangle(page, cv::Rect(100, 300, 40, 60), cv::Scalar(20), cv::FILLED);    // dark corner
  cv::rectangle(page, cv::Rect(1000, 300, 40, 60), cv::Scalar(80), cv::FILLED);   // light corner
  CleanedPage cleaned = clean_page(page);
  EXPECT_GT(cv::countNonZero(cleaned.ink(cv::Rect(100, 300, 40, 60))), 2000);
  EXPECT_GT(cv::countNonZero(cleaned.ink(cv::Rect(1000, 300, 40, 60))), 2000);
  EXPECT_LT(cv::countNonZero(cleaned.ink), 2 * 2400 + 200);  // no paper taken for ink
}

TEST(Clean, BlankPageHasNoInkAndBlackPageIsRefused) {
  cv::Mat blank(900, 700, CV_8U, cv::Scalar(228));
  cv::randn(blank, 228, 4);
  EXPECT_EQ(cv::countNonZero(clean_page(blank).ink), 0);
  cv::Mat black(900, 700, CV_8U, cv::Scalar(12));
  EXPECT_TRUE(t::throws_with_message<ImageError>([&] { clean_page(black); }, {"nearly black"}));
}

TEST(Clean, AStrokeIsBridgedAcrossOneLineAndAcrossAPageOfLines) {
  // One underline (its band is joined around the line only), then a ruled page: lines every
  // 12 rows, whose bands cover the page (joined over the whole page at once).
  for (const int spacing : {0, 12}) {
    cv::Mat ink = cv::Mat::zeros(400, 600, CV_8U);
    if (spacing == 0) cv::line(ink, {0, 200}, {599, 200}, 255, 2);
    for (int y = 6; spacing > 0 && y < 400; y += spacing) cv::line(ink, {0, y}, {599, y}, 255, 2);
    cv::line(ink, {280, 20}, {340, 380}, 255, 5);  // slanted: no vertical rule
    remove_lines(ink, 110);
    EXPECT_EQ(cv::countNonZero(ink(cv::Rect(400, 0, 200, 400))), 0) << "lines left, spacing " << spacing;
    for (int y = 25; y < 375; ++y)
      EXPECT_GT(cv::countNonZero(ink.row(y)), 0) << "the stroke is cut at row " << y << ", spacing " << spacing;
  }
}

TEST(Clean, LineRemovalKeepsTheDigitsThatCrossIt) {
  if (!t::mnist_available()) GTEST_SKIP() << "MNIST not in " << t::mnist_dir() << ": run scripts/fetch-mnist.sh";
  cv::Mat page(500, 1000, CV_8U, cv::Scalar(240));
  std::vector<cv::Rect> boxes = write_digits(page, {4, 7, 1}, {200, 150}, 80, 25);
  const int line_y = 150 + 60;
  cv::line(page, {50, line_y}, {950, line_y}, cv::Scalar(40), 3);                 // an underline through them
  cv::rectangle(page, cv::Rect(170, 120, 340, 130), cv::Scalar(40), 2);           // a box around them
  CleanedPage cleaned = clean_page(page);
  // The line is gone away from the digits...
  EXPECT_EQ(cv::countNonZero(cleaned.ink(cv::Rect(600, line_y - 3, 300, 7))), 0);
  EXPECT_EQ(cv::countNonZero(cleaned.ink(cv::Rect(168, 130, 6, 100))), 0);  // box side
  // ... each digit is still one piece of ink, crossing where the line was.
  for (const cv::Rect& b : boxes) {
    cv::Mat labels;
    cv::Mat ink = cleaned.ink(b).clone();
    const int parts = cv::connectedComponents(ink, labels, 8) - 1;
    EXPECT_LE(parts, 2) << "digit at " << b;
    EXPECT_GT(cv::countNonZero(ink.row(line_y - b.y)), 0) << "stroke cut at the line in " << b;
  }
  EXPECT_EQ(texts(read_page(page)), "471");
}

TEST(Clean, AOneWrittenOnABoxsSideKeepsItsInkBesideTheSide) {
  // A box 140 px tall (a form line by length) with 3 px sides; over its left side a pen's 1,
  // 9 px wide, along 90 px of it. The sides go; the 1's ink beside the left one stays, and
  // the right side, with nothing on it, leaves none.
  cv::Mat ink = cv::Mat::zeros(300, 600, CV_8U);
  cv::rectangle(ink, cv::Rect(100, 80, 400, 140), 255, 2);
  cv::rectangle(ink, cv::Rect(97, 120, 9, 90), 255, cv::FILLED);
  remove_lines(ink, 110);
  // The pen's 4 px right of the side stay, less the pixel of margin the side is taken with;
  // the 2 px left of it are no wider than a rule's rough edge and go with it.
  for (int y = 125; y < 205; ++y)
    EXPECT_EQ(cv::countNonZero(ink(cv::Rect(96, y, 11, 1))), 3) << "row " << y << ": the 1 was taken with the side";
  EXPECT_EQ(cv::countNonZero(ink(cv::Rect(495, 82, 10, 136))), 0) << "the right side left ink";
  EXPECT_EQ(cv::countNonZero(ink(cv::Rect(96, 82, 11, 36))), 0) << "the left side above the 1 left ink";
}

TEST(Clean, BoxSidesGoWrittenOnesOnLinesStay) {
  // A written 1, slightly slanted, standing on an underline; a second one standing between
  // the sides of a box whose lines run top and bottom; and a box too short to count as a
  // form line by length. The box's thin sides, running from line to line, go; the 1s stay.
  cv::Mat page(500, 1000, CV_8U, cv::Scalar(235));
  cv::line(page, {100, 300}, {500, 300}, cv::Scalar(40), 3);
  cv::line(page, {300, 240}, {306, 298}, cv::Scalar(40), 8);
  cv::rectangle(page, cv::Rect(600, 220, 200, 90), cv::Scalar(40), 2);
  cv::line(page, {700, 236}, {706, 306}, cv::Scalar(40), 8);
  CleanOptions straight;
  straight.max_skew_deg = 0;
  CleanedPage cleaned = clean_page(page, straight);
  EXPECT_GT(cv::countNonZero(cleaned.ink(cv::Rect(290, 245, 25, 40))), 300) << "the 1 on the underline was taken for a line";
  EXPECT_GT(cv::countNonZero(cleaned.ink(cv::Rect(690, 245, 25, 45))), 300) << "the 1 in the box was taken for a line";
  EXPECT_EQ(cv::countNonZero(cleaned.ink(cv::Rect(596, 230, 8, 70))), 0);  // left side of the box
  EXPECT_EQ(cv::countNonZero(cleaned.ink(cv::Rect(796, 230, 8, 70))), 0);  // right side

  // A long rule drawn thick (8 px, as a heavy box or a blurred scan makes it) goes too.
  page.setTo(235);
  cv::rectangle(page, cv::Rect(100, 100, 400, 160), cv::Scalar(40), 8);
  cleaned = clean_page(page, straight);
  EXPECT_EQ(cv::countNonZero(cleaned.ink(cv::Rect(90, 120, 20, 120))), 0) << "a thick box side stayed ink";
}

TEST(Clean, AFaintStretchOfAStrokeStaysInkWhereItJoinsClearInk) {
  // A vertical stroke, dark at both ends and light in the middle (a pen lifting), and a
  // light mark alone: the stroke stays one piece, the lone mark stays paper.
  cv::Mat page(600, 600, CV_8U, cv::Scalar(230));
  cv::line(page, {200, 150}, {200, 230}, cv::Scalar(40), 7);
  cv::line(page, {200, 230}, {200, 270}, cv::Scalar(180), 7);
  cv::line(page, {200, 270}, {200, 350}, cv::Scalar(40), 7);
  cv::line(page, {400, 200}, {400, 300}, cv::Scalar(180), 7);
  CleanedPage cleaned = clean_page(page);
  cv::Mat labels;
  ASSERT_EQ(cv::connectedComponents(cleaned.ink(cv::Rect(150, 100, 100, 300)), labels, 8) - 1, 1);
  EXPECT_EQ(cv::countNonZero(cleaned.ink(cv::Rect(370, 180, 60, 140))), 0);
}

TEST(Segment, ReadsStringsInReadingOrderWithBoxesOnThePage) {
  if (!t::mnist_available()) GTEST_SKIP() << "MNIST not in " << t::mnist_dir() << ": run scripts/fetch-mnist.sh";
  cv::Mat page(900, 1400, CV_8U, cv::Scalar(230));
  std::vector<cv::Rect> first = write_digits(page, {0, 4, 1, 2}, {100, 100}, 70, 18);
  std::vector<cv::Rect> second = write_digits(page, {9, 8, 3}, {700, 500}, 90, 20);
  std::vector<StringResult> strings = read_page(page);
  ASSERT_EQ(texts(strings), "0412 983");
  for (size_t i = 0; i < first.size(); ++i) {
    const Box b = strings[0].digits[i].box;
    EXPECT_GT(iou(b, {first[i].x, first[i].y, first[i].width, first[i].height}), 0.8) << i;
  }
  EXPECT_GT(strings[1].confidence, 0.5);
  for (const DigitResult& d : strings[1].digits) EXPECT_EQ(d.top.size(), 3u);
}

TEST(Segment, SplitsTouchingDigits) {
  if (!t::mnist_available()) GTEST_SKIP() << "MNIST not in " << t::mnist_dir() << ": run scripts/fetch-mnist.sh";
  int right = 0, total = 0;
  std::string misread;
  for (auto [a, b] : {std::pair{3, 5}, {2, 8}, {6, 0}, {4, 9}, {7, 2}, {5, 3}, {0, 0}, {8, 6}}) {
    // Push the pair together until their ink touches.
    for (int gap = 0; gap > -40; gap -= 2) {
      cv::Mat page(400, 700, CV_8U, cv::Scalar(235));
      write_digits(page, {a, b}, {150, 150}, 80, gap, 2);
      cv::Mat labels;
      if (cv::connectedComponents(page < 128, labels, 8) - 1 != 1) continue;
      const std::string expected = std::to_string(a) + std::to_string(b), read = texts(read_page(page));
      right += read == expected;
      if (read != expected) misread += " " + expected + "->" + read;
      ++total;
      break;
    }
  }
  EXPECT_EQ(total, 8);
  EXPECT_GE(right, total - 1) << right << " of " << total << " touching pairs read;" << misread;
}

TEST(Segment, ASlantedStrokeIsNotCutIntoAnUpperAndALowerHalf) {
  // A slash as wide as it is tall, called "not a digit" whole: cut down the middle, its
  // halves are an upper and a lower stroke, each as slim as a 1 ("11" on a plain page).
  // Digits side by side span the same rows, so such a cut is no reading.
  cv::Mat page(400, 500, CV_8U, cv::Scalar(235));
  cv::line(page, {150, 150}, {240, 250}, cv::Scalar(30), 9);
  CleanOptions straight;
  straight.max_skew_deg = 0;  // the stroke's slant is not the page's
  const CleanedPage cleaned = clean_page(page, straight);
  auto hypotheses = [&](double cut_height) {
    SegmentOptions options;
    options.cut_height = cut_height;
    Segmentation seg = find_strings(cleaned, options);
    if (seg.strings.size() != 1u || seg.strings[0].slots.size() != 1u) return size_t{0};
    std::vector<float> probs(seg.pieces.size() * 11, 0.0f);
    for (int i : normalize_pieces(cleaned, seg)) probs[static_cast<size_t>(i) * 11 + 10] = 1.0f;
    normalize_cuts(seg, probs, 11);
    return seg.strings[0].slots[0].hypotheses.size();
  };
  EXPECT_EQ(hypotheses(SegmentOptions{}.cut_height), 1u);  // read whole only
  EXPECT_GT(hypotheses(0.0), 1u);                          // without the rule it is cut
}

TEST(Segment, CutsFollowThePaperBetweenSlantedStrokes) {
  // Two parallel slanted strokes joined by a thin bridge: every straight cut slices both,
  // a path between them crosses only the bridge. The cuts are asked for with a first pass
  // that calls the blob "not a digit".
  cv::Mat page(400, 500, CV_8U, cv::Scalar(235));
  cv::line(page, {150, 300}, {200, 180}, cv::Scalar(30), 9);
  cv::line(page, {195, 300}, {245, 180}, cv::Scalar(30), 9);
  cv::line(page, {175, 240}, {220, 240}, cv::Scalar(30), 2);
  CleanOptions straight;
  straight.max_skew_deg = 0;  // the strokes' slant is not the page's
  CleanedPage cleaned = clean_page(page, straight);
  Segmentation seg = find_strings(cleaned);
  ASSERT_EQ(seg.strings.size(), 1u);
  ASSERT_EQ(seg.strings[0].slots.size(), 1u);
  std::vector<float> probs(seg.pieces.size() * 11, 0.0f);
  for (int i : normalize_pieces(cleaned, seg)) probs[static_cast<size_t>(i) * 11 + 10] = 1.0f;
  normalize_cuts(seg, probs, 11);
  EXPECT_EQ(probs.size(), seg.pieces.size() * 11);
  const Slot& slot = seg.strings[0].slots[0];
  // The stroke boxes on the cleaned page: each one alone, without the bridge.
  cv::Mat left = cv::Mat::zeros(page.size(), CV_8U), right = left.clone();
  cv::line(left, {150, 300}, {200, 180}, cv::Scalar(255), 9);
  cv::line(right, {195, 300}, {245, 180}, cv::Scalar(255), 9);
  const cv::Rect l = cv::boundingRect(left), r = cv::boundingRect(right);
  bool separated = false;
  for (const Hypothesis& h : slot.hypotheses) {
    if (h.pieces.size() != 2) continue;
    const Box a = seg.pieces[static_cast<size_t>(h.pieces[0])].box, b = seg.pieces[static_cast<size_t>(h.pieces[1])].box;
    separated |= iou(a, {l.x, l.y, l.width, l.height}) > 0.8 && iou(b, {r.x, r.y, r.width, r.height}) > 0.8;
  }
  EXPECT_TRUE(separated) << slot.hypotheses.size() << " readings, none with the two strokes apart";
}

TEST(Segment, ACutLeavingOnlyAStrokesTailIsTriedWithoutIt) {
  // A 0 with a flat tail run out 170 px to its left along the bottom, joined by a thin
  // bridge to a second 0, then a 1 a little apart: too wide for one cut, and cut in three or
  // four the left pieces hold the tail alone, too low to be a digit. Without the cuts that
  // leave them, the cut at the bridge parts the two 0s. A lone blob's tails are a
  // signature's loops: without the 1, no such reading.
  auto readings = [](bool with_one) {
    cv::Mat page(400, 700, CV_8U, cv::Scalar(235));
    cv::line(page, {40, 214}, {215, 214}, cv::Scalar(30), 8);                           // the tail
    cv::ellipse(page, {225, 180}, {20, 38}, 0, 0, 360, cv::Scalar(30), 8);              // a 0
    cv::line(page, {248, 180}, {268, 180}, cv::Scalar(30), 3);                          // the bridge
    cv::ellipse(page, {290, 180}, {20, 38}, 0, 0, 360, cv::Scalar(30), 8);              // a 0
    if (with_one) cv::line(page, {385, 140}, {380, 220}, cv::Scalar(30), 8);            // a 1
    CleanOptions plain;
    plain.remove_lines = false;
    plain.max_skew_deg = 0;
    const CleanedPage cleaned = clean_page(page, plain);
    Segmentation seg = find_strings(cleaned);
    EXPECT_EQ(seg.strings.size(), 1u);
    if (seg.strings.empty()) return std::vector<std::vector<Box>>{};
    std::vector<float> probs(seg.pieces.size() * 11, 0.0f);
    for (int i : normalize_pieces(cleaned, seg)) probs[static_cast<size_t>(i) * 11 + (seg.pieces[static_cast<size_t>(i)].box.w > 100 ? 10 : 1)] = 1.0f;
    normalize_cuts(seg, probs, 11);
    std::vector<std::vector<Box>> cut;
    for (const Hypothesis& h : seg.strings[0].slots[0].hypotheses) {
      std::vector<Box> boxes;
      for (int piece : h.pieces) boxes.push_back(seg.pieces[static_cast<size_t>(piece)].box);
      if (boxes.size() > 1) cut.push_back(boxes);
    }
    return cut;
  };
  // Two pieces: the tail and the first 0 (x 36-249), and the second 0 with the bridge or
  // part of it (x 248-314).
  auto parted = [](const std::vector<std::vector<Box>>& cut) {
    return std::any_of(cut.begin(), cut.end(), [](const std::vector<Box>& boxes) {
      return boxes.size() == 2 && boxes[0].x < 45 && boxes[0].right() <= 268 && boxes[1].x >= 245 &&
             boxes[1].x <= 268 && boxes[1].right() >= 310;
    });
  };
  const std::vector<std::vector<Box>> in_string = readings(true);
  EXPECT_TRUE(parted(in_string)) << in_string.size() << " cut readings, none parting the 0s at the bridge";
  EXPECT_TRUE(readings(false).empty());
}

TEST(Segment, ACutPieceMadeTwiceIsScoredOnce) {
  // Touching pairs get a dozen cuts; several leave the same piece (straight cuts and paths
  // through the same gap). Each distinct piece is scored once and the readings share it.
  if (!t::mnist_available()) GTEST_SKIP() << "MNIST not in " << t::mnist_dir() << ": run scripts/fetch-mnist.sh";
  int shared = 0;
  for (auto [a, b] : {std::pair{4, 0}, {7, 4}, {2, 3}, {1, 8}, {0, 9}}) {
    cv::Mat page(400, 700, CV_8U, cv::Scalar(235));
    write_digits(page, {a, b}, {150, 150}, 80, -6);
    CleanedPage cleaned = clean_page(page);
    Segmentation seg = find_strings(cleaned);
    std::vector<float> probs(seg.pieces.size() * 11, 0.0f);
    for (int i : normalize_pieces(cleaned, seg)) probs[static_cast<size_t>(i) * 11 + 10] = 1.0f;  // cut every blob
    const std::vector<int> second = normalize_cuts(seg, probs, 11);
    for (size_t i = 0; i < second.size(); ++i)
      for (size_t j = 0; j < i; ++j) {
        const Piece& p = seg.pieces[static_cast<size_t>(second[i])];
        const Piece& q = seg.pieces[static_cast<size_t>(second[j])];
        EXPECT_FALSE(p.box == q.box && p.pixels == q.pixels) << a << b << ": pieces " << second[j] << " and " << second[i];
      }
    for (const StringCandidate& candidate : seg.strings)
      for (const Slot& slot : candidate.slots) {
        std::vector<int> refs;
        for (size_t h = 1; h < slot.hypotheses.size(); ++h)
          refs.insert(refs.end(), slot.hypotheses[h].pieces.begin(), slot.hypotheses[h].pieces.end());
        const size_t all = refs.size();
        std::sort(refs.begin(), refs.end());
        shared += static_cast<int>(all - static_cast<size_t>(std::unique(refs.begin(), refs.end()) - refs.begin()));
      }
  }
  EXPECT_GT(shared, 0) << "no cut piece was shared between two readings";
}

TEST(Segment, SplitsDigitsWhoseBoxesOverlap) {
  // Pairs pushed together until their ink boxes share 14 px of columns: no straight cut
  // separates them, a path between the strokes does.
  if (!t::mnist_available()) GTEST_SKIP() << "MNIST not in " << t::mnist_dir() << ": run scripts/fetch-mnist.sh";
  int right = 0, total = 0;
  std::string misread;
  for (auto [a, b] : {std::pair{4, 0}, {7, 4}, {2, 3}, {9, 7}, {5, 6}, {1, 8}, {3, 2}, {6, 5}, {8, 1}, {0, 9}}) {
    cv::Mat page(400, 700, CV_8U, cv::Scalar(235));
    write_digits(page, {a, b}, {150, 150}, 80, -14, 4);
    cv::Mat labels;
    if (cv::connectedComponents(page < 128, labels, 8) - 1 != 1) continue;  // they did not touch
    const std::string expected = std::to_string(a) + std::to_string(b), read = texts(read_page(page));
    right += read == expected;
    if (read != expected) misread += " " + expected + "->" + read;
    ++total;
  }
  EXPECT_GE(total, 6);
  EXPECT_GE(right, total - 2) << right << " of " << total << " overlapping pairs read;" << misread;
}

TEST(Segment, ALeaningOneIsCutFromTheDigitItTouches) {
  // "3", a 1 pressed against a 4, 0, 8, 9 or 6 (ink boxes overlapping by 4, 8 or 12 px, six
  // different MNIST writers), "5": 90 strings. The cut between a slanted 1 and its neighbour
  // is narrow and off the middle; paths started from the thirds and quarters as well as the
  // middle find it (62 of the 90 read exactly; from the middle and the thinnest columns
  // only, 40).
  if (!t::mnist_available()) GTEST_SKIP() << "MNIST not in " << t::mnist_dir() << ": run scripts/fetch-mnist.sh";
  int exact = 0, total = 0;
  for (int second : {4, 0, 8, 9, 6})
    for (int writer = 0; writer < 6; ++writer)
      for (int overlap : {4, 8, 12}) {
        cv::Mat page(300, 600, CV_8U, cv::Scalar(235));
        const cv::Rect three = write_digits(page, {3}, {150, 100}, 70, 20, writer)[0];
        const cv::Rect pair = write_digits(page, {1, second}, {three.br().x + 20, 100}, 70, -overlap, writer).back();
        write_digits(page, {5}, {pair.br().x + 20, 100}, 70, 20, writer);
        exact += texts(read_page(page)) == "31" + std::to_string(second) + "5";
        ++total;
      }
  EXPECT_GE(exact, 55) << exact << " of " << total << " read exactly";
}

TEST(Segment, MergesBrokenStrokes) {
  if (!t::mnist_available()) GTEST_SKIP() << "MNIST not in " << t::mnist_dir() << ": run scripts/fetch-mnist.sh";
  cv::Mat page(400, 700, CV_8U, cv::Scalar(235));
  std::vector<cv::Rect> boxes = write_digits(page, {5, 4}, {200, 120}, 90, 30);
  // A paper-coloured cut across each digit breaks it in two.
  for (const cv::Rect& b : boxes) cv::line(page, {b.x - 5, b.y + b.height / 3}, {b.x + b.width + 5, b.y + b.height / 3}, cv::Scalar(235), 4);
  EXPECT_EQ(texts(read_page(page)), "54");

  // A signature's loops under a string, a third of a digit's height below it, are not a
  // broken stroke of the digits above them.
  page.setTo(235);
  write_digits(page, {3, 8}, {200, 60}, 80, 30);
  cv::ellipse(page, {260, 255}, {110, 70}, 0, 0, 360, cv::Scalar(40), 4);  // rows ~185..325
  const std::vector<StringResult> strings = read_page(page);
  ASSERT_FALSE(strings.empty());
  EXPECT_EQ(strings[0].text, "38");
}

TEST(Segment, SideBySideStrokesOfOneDigitBecomeOneBlob) {
  // "38" and then a digit written in two strokes side by side, each well short of the
  // string's height (a 5's body and its flag written apart): one blob of digit height.
  if (!t::mnist_available()) GTEST_SKIP() << "MNIST not in " << t::mnist_dir() << ": run scripts/fetch-mnist.sh";
  cv::Mat page(400, 700, CV_8U, cv::Scalar(235));
  std::vector<cv::Rect> digits = write_digits(page, {3, 8}, {150, 150}, 60, 14);
  const int x = digits.back().br().x + 14, top = digits.back().y;
  // Each stroke below the 30 px digit height, together 60 px tall.
  cv::ellipse(page, {x + 12, top + 47}, {12, 11}, 0, -90, 200, cv::Scalar(30), 5);  // body
  cv::line(page, {x + 20, top + 24}, {x + 48, top + 4}, cv::Scalar(30), 5);          // flag
  CleanOptions straight;
  straight.max_skew_deg = 0;
  Segmentation seg = find_strings(clean_page(page, straight));
  ASSERT_EQ(seg.strings.size(), 1u);
  const std::vector<Slot>& slots = seg.strings[0].slots;
  ASSERT_EQ(slots.size(), 3u) << "the two strokes were not joined";
  EXPECT_GE(slots[2].box.h, 55);
  EXPECT_FALSE(slots[2].hypotheses.empty());  // read, not kept as small context

  // A 5's flag written apart, flat over the top of its body and reaching well past it: too
  // flat to be a slot of its own, it joins the body.
  page.setTo(235);
  digits = write_digits(page, {3, 8}, {150, 150}, 60, 14);
  cv::ellipse(page, {x + 14, top + 38}, {14, 20}, 0, -100, 200, cv::Scalar(30), 5);  // body, rows ~16..60
  cv::line(page, {x + 18, top + 6}, {x + 52, top + 4}, cv::Scalar(30), 5);           // flag, 3 px above it
  seg = find_strings(clean_page(page, straight));
  ASSERT_EQ(seg.strings.size(), 1u);
  ASSERT_EQ(seg.strings[0].slots.size(), 3u);
  EXPECT_LE(seg.strings[0].slots[2].box.y, top + 4) << "the flag was left out of its digit";
  EXPECT_GE(seg.strings[0].slots[2].box.x + seg.strings[0].slots[2].box.w, x + 52);

  // A 5's flag written apart off to the right of its body, sharing none of its columns and
  // longer than the body is wide, then "47": the flag joins the body, and the string is not
  // split at the gap the flag would leave (wider than a digit's height).
  page.setTo(235);
  digits = write_digits(page, {3, 8}, {150, 150}, 60, 14);
  cv::ellipse(page, {x + 14, top + 38}, {14, 20}, 0, -100, 200, cv::Scalar(30), 5);  // body, columns ~x-2..x+30
  cv::line(page, {x + 36, top + 12}, {x + 70, top + 10}, cv::Scalar(30), 5);          // flag, rows ~top+8..top+14
  write_digits(page, {4, 7}, {x + 96, 150}, 60, 14);
  seg = find_strings(clean_page(page, straight));
  ASSERT_EQ(seg.strings.size(), 1u) << "the string was split where the flag was";
  ASSERT_EQ(seg.strings[0].slots.size(), 5u);
  EXPECT_GE(seg.strings[0].slots[2].box.x + seg.strings[0].slots[2].box.w, x + 70) << "the flag was left out of its digit";
  EXPECT_LE(seg.strings[0].slots[2].box.x, x);

  // "38", then a 7 whose bar was written apart, starting just after the 8's top: the bar is
  // the 7's, not a flag of the 8.
  page.setTo(235);
  digits = write_digits(page, {3, 8}, {150, 150}, 60, 14);
  const int eight_right = digits.back().br().x;
  cv::line(page, {eight_right + 6, top + 6}, {eight_right + 46, top + 6}, cv::Scalar(30), 5);   // bar, rows ~top+3..top+9
  cv::line(page, {eight_right + 44, top + 14}, {eight_right + 30, top + 60}, cv::Scalar(30), 5);  // stem, 3 px below it
  seg = find_strings(clean_page(page, straight));
  ASSERT_EQ(seg.strings.size(), 1u);
  ASSERT_EQ(seg.strings[0].slots.size(), 3u);
  EXPECT_LE(seg.strings[0].slots[1].box.x + seg.strings[0].slots[1].box.w, eight_right + 2) << "the 8 took the 7's bar";
  EXPECT_LE(seg.strings[0].slots[2].box.y, top + 4) << "the 7 lost its bar";

  // A full-height stem and a short loop close beside it (a 6 written in two strokes).
  page.setTo(235);
  digits = write_digits(page, {3, 8}, {150, 150}, 60, 14);
  const int stem = digits.back().br().x + 14;
  cv::line(page, {stem, top + 2}, {stem - 4, top + 58}, cv::Scalar(30), 5);
  cv::circle(page, {stem + 19, top + 43}, 11, cv::Scalar(30), 5);  // rows ~30..56, 3 px apart
  seg = find_strings(clean_page(page, straight));
  ASSERT_EQ(seg.strings.size(), 1u);
  ASSERT_EQ(seg.strings[0].slots.size(), 3u) << "the stem and the loop were not joined";
  EXPECT_GE(seg.strings[0].slots[2].box.w, 30);

  // The same with a loop as wide as a 0: together 1.2 times the digits' height wide.
  page.setTo(235);
  digits = write_digits(page, {3, 8}, {150, 150}, 60, 14);
  cv::line(page, {stem, top + 2}, {stem - 4, top + 58}, cv::Scalar(30), 5);  // columns ~stem-6..stem+2
  cv::ellipse(page, {stem + 36, top + 43}, {28, 12}, 0, 0, 360, cv::Scalar(30), 5);  // columns ~stem+6..stem+67
  seg = find_strings(clean_page(page, straight));
  ASSERT_EQ(seg.strings.size(), 1u);
  ASSERT_EQ(seg.strings[0].slots.size(), 3u) << "the stem and the wide loop were not joined";
  EXPECT_GE(seg.strings[0].slots[2].box.w, 66);
}

TEST(Segment, AFlagWrittenHighOrThickStillJoinsItsFive) {
  // "38", a 5's body and its flag written apart, then "47". Each way of writing the flag
  // below was dropped before: the body alone reads 2, 3 or 1 and the gap splits the string.
  if (!t::mnist_available()) GTEST_SKIP() << "MNIST not in " << t::mnist_dir() << ": run scripts/fetch-mnist.sh";
  cv::Mat page(500, 800, CV_8U, cv::Scalar(235));
  CleanOptions straight;
  straight.max_skew_deg = 0;
  auto five = [&](cv::Point from, cv::Point to, int thickness) {
    page.setTo(235);
    const std::vector<cv::Rect> digits = write_digits(page, {3, 8}, {150, 150}, 60, 14);
    const int x = digits.back().br().x + 14, top = digits.back().y;
    cv::ellipse(page, {x + 14, top + 38}, {14, 20}, 0, -100, 200, cv::Scalar(30), 5);  // body, rows ~top+16..top+60
    cv::line(page, {x + from.x, top + from.y}, {x + to.x, top + to.y}, cv::Scalar(30), thickness);
    write_digits(page, {4, 7}, {x + 96, 150}, 60, 14);
    return std::pair{x, top};
  };
  auto five_slot = [&]() -> std::optional<Box> {  // the 5's slot when the string is one
    const Segmentation seg = find_strings(clean_page(page, straight));
    if (seg.strings.size() != 1 || seg.strings[0].slots.size() != 5) return std::nullopt;
    return seg.strings[0].slots[2].box;
  };

  // Floating over the body: its bottom 20 px (0.45 of the body's height) above the body's
  // top, too far for the join of broken strokes.
  auto [x, top] = five({22, -6}, {56, -8}, 5);
  std::optional<Box> slot = five_slot();
  ASSERT_TRUE(slot) << "the string was split, or the flag kept apart, when the flag floats over the body";
  EXPECT_LE(slot->y, top - 8) << "the floating flag was left out of its digit";
  EXPECT_GE(slot->x + slot->w, x + 56);

  // Floating further over it (its bottom 0.7 of the body's height above the body's top): a
  // mark of the line above, or a tick, not this digit's flag.
  std::tie(x, top) = five({22, -20}, {56, -22}, 5);
  int bodies = 0;
  for (const StringCandidate& s : find_strings(clean_page(page, straight)).strings)
    for (const Slot& s_slot : s.slots)
      if (s_slot.box.x <= x + 14 && s_slot.box.x + s_slot.box.w >= x + 14) {  // the body's middle column
        ++bodies;
        EXPECT_GT(s_slot.box.y, top - 16) << "a stroke floating far above joined the digit";
      }
  EXPECT_EQ(bodies, 1);

  // Written with a thick pen, tilted: about 17 px tall, more than half the least digit height
  // (30 px), off to the right of the body's top.
  std::tie(x, top) = five({36, 18}, {70, 10}, 9);
  slot = five_slot();
  ASSERT_TRUE(slot) << "the string was split, or the flag kept apart, when the flag is thick";
  EXPECT_GE(slot->x + slot->w, x + 70) << "the thick flag was left out of its digit";
  EXPECT_LE(slot->x, x);

  // A signature below the string, under the flag's columns, is no digit the flag could be
  // the bar of.
  std::tie(x, top) = five({22, -6}, {56, -8}, 5);
  cv::ellipse(page, {x + 40, top + 196}, {90, 95}, 0, 0, 360, cv::Scalar(40), 4);  // rows ~top+99..top+293
  const Segmentation seg = find_strings(clean_page(page, straight));
  ASSERT_FALSE(seg.strings.empty());
  const auto with_five = std::find_if(seg.strings.begin(), seg.strings.end(), [&](const StringCandidate& s) {
    return s.slots.size() == 5 && s.box.y < top + 60;
  });
  ASSERT_NE(with_five, seg.strings.end()) << "the string with the 5 was split beside the signature";
  EXPECT_LE(with_five->slots[2].box.y, top - 8) << "the signature kept the flag from its digit";
}

TEST(Segment, AZeroWrittenInTwoStrokesIsOneDigit) {
  // "38", a 0 written as "(" and ")" whose ends do not meet but whose columns overlap, then
  // "47": one slot that reads 0, not "11" or "17".
  if (!t::mnist_available()) GTEST_SKIP() << "MNIST not in " << t::mnist_dir() << ": run scripts/fetch-mnist.sh";
  cv::Mat page(400, 800, CV_8U, cv::Scalar(235));
  CleanOptions straight;
  straight.max_skew_deg = 0;
  std::vector<cv::Rect> digits = write_digits(page, {3, 8}, {150, 150}, 60, 14);
  int x = digits.back().br().x + 30;
  const int top = digits.back().y, middle = top + 30;
  cv::ellipse(page, {x, middle}, {16, 30}, 0, 80, 280, cv::Scalar(30), 4);       // "(": columns ~x-18..x+5
  cv::ellipse(page, {x + 4, middle}, {17, 22}, 0, -100, 100, cv::Scalar(30), 4);  // ")": columns ~x-1..x+23, 4 px from its ends
  write_digits(page, {4, 7}, {x + 40, 150}, 60, 14);
  Segmentation seg = find_strings(clean_page(page, straight));
  ASSERT_EQ(seg.strings.size(), 1u);
  ASSERT_EQ(seg.strings[0].slots.size(), 5u) << "the two strokes were not joined";
  EXPECT_TRUE(seg.strings[0].slots[2].joined);
  EXPECT_EQ(texts(read_page(page)), "38047");

  // The same 0 with 3 px of paper between the columns of its strokes: two slots, and a
  // piece of both that read_strings weighs against them.
  page.setTo(235);
  digits = write_digits(page, {3, 8}, {150, 150}, 60, 14);
  cv::ellipse(page, {x, middle}, {16, 30}, 0, 80, 280, cv::Scalar(30), 4);        // columns ~x-18..x+5
  cv::ellipse(page, {x + 12, middle}, {17, 22}, 0, -100, 100, cv::Scalar(30), 4);  // columns ~x+8..x+31
  write_digits(page, {4, 7}, {x + 46, 150}, 60, 14);
  seg = find_strings(clean_page(page, straight));
  ASSERT_EQ(seg.strings.size(), 1u);
  ASSERT_EQ(seg.strings[0].slots.size(), 6u);
  EXPECT_GE(seg.strings[0].slots[2].join_next, 0) << "no piece of both strokes";
  EXPECT_EQ(texts(read_page(page)), "38047");

  // A 1 and a 7 written so close that their columns overlap, their ink apart: joined as
  // one blob, cut again, read as two.
  page.setTo(235);
  digits = write_digits(page, {3, 8}, {150, 150}, 60, 14);
  const cv::Rect one = write_digits(page, {1}, {digits.back().br().x + 14, 150}, 60, 0)[0];
  const cv::Rect seven = write_digits(page, {7}, {one.br().x - 6, 150}, 60, 0)[0];
  write_digits(page, {4, 7}, {seven.br().x + 14, 150}, 60, 14);
  EXPECT_EQ(texts(read_page(page)), "381747");

  // Two slanted 1s written close, a gap between their columns: two digits.
  page.setTo(235);
  digits = write_digits(page, {3, 8}, {150, 150}, 60, 14);
  x = digits.back().br().x + 16;
  cv::line(page, {x, top + 58}, {x + 24, top + 2}, cv::Scalar(30), 5);        // columns ~x-2..x+26
  cv::line(page, {x + 34, top + 58}, {x + 58, top + 2}, cv::Scalar(30), 5);   // 5 px apart
  write_digits(page, {4, 7}, {x + 76, 150}, 60, 14);
  seg = find_strings(clean_page(page, straight));
  ASSERT_EQ(seg.strings.size(), 1u);
  EXPECT_EQ(seg.strings[0].slots.size(), 6u) << "two 1s were joined as one digit";
  EXPECT_EQ(texts(read_page(page)), "381147");
}

TEST(Segment, ASmallMarkAboveAStringDoesNotTakeTheRestOfIt) {
  // "38", a short stroke above the 8's top right (a 5's flag drifted up, a tick), then "47":
  // the stroke is nearer the 4 than the 8 is, but the string stays whole.
  if (!t::mnist_available()) GTEST_SKIP() << "MNIST not in " << t::mnist_dir() << ": run scripts/fetch-mnist.sh";
  cv::Mat page(400, 800, CV_8U, cv::Scalar(235));
  const std::vector<cv::Rect> first = write_digits(page, {3, 8}, {150, 150}, 60, 14);
  const int right = first.back().br().x;
  cv::line(page, {right + 4, first.back().y}, {right + 26, first.back().y - 18}, cv::Scalar(30), 5);
  write_digits(page, {4, 7}, {right + 40, 135}, 60, 14);  // a little higher, as the mark is
  EXPECT_EQ(texts(read_page(page)), "3847");
}

TEST(Segment, ADigitInStrokesOneUnderTheOtherStaysInItsString) {
  // "38", then a digit whose lower stroke is written apart from its upper part and reaches
  // under it from the left, then "47". Each way below split the string in two at that digit
  // before: the lower stroke was taken as the last digit's tail, or the upper part as the
  // row the next stroke must share.
  if (!t::mnist_available()) GTEST_SKIP() << "MNIST not in " << t::mnist_dir() << ": run scripts/fetch-mnist.sh";
  cv::Mat page(400, 900, CV_8U, cv::Scalar(235));
  CleanOptions straight;
  straight.max_skew_deg = 0;
  const cv::Scalar pen(30);
  // The digit's slot, when the page holds one string of five.
  auto one_string = [&](int x) -> std::optional<Box> {
    const Segmentation seg = find_strings(clean_page(page, straight));
    if (seg.strings.size() != 1) return std::nullopt;
    for (const Slot& slot : seg.strings[0].slots)
      if (slot.box.x <= x + 20 && slot.box.x + slot.box.w >= x + 20) return slot.box;
    return std::nullopt;
  };

  // A 5 after a 0: its bowl's lower half (rows ~196..214, 18 px: not a digit's height)
  // starts just after the 0 and runs under the flag and stem (rows ~148..176), 20 px below
  // them. The lower stroke, flat and low, is a tail of the 0 as well: it must not make the
  // upper part overlap the 0.
  std::vector<cv::Rect> digits = write_digits(page, {3, 8}, {150, 150}, 60, 14);
  const int zero = digits.back().br().x + 14;
  cv::ellipse(page, {zero + 22, 180}, {20, 28}, 0, 0, 360, pen, 5);  // columns ~zero..zero+44
  const int five = zero + 50;
  cv::ellipse(page, {five + 28, 198}, {26, 14}, 0, 0, 180, pen, 5);  // columns ~five..five+56
  cv::line(page, {five + 18, 150}, {five + 60, 150}, pen, 5);         // the flag
  cv::line(page, {five + 18, 150}, {five + 16, 174}, pen, 5);         // the stem
  write_digits(page, {4, 7}, {five + 80, 150}, 60, 14);
  std::optional<Box> slot = one_string(five + 10);
  ASSERT_TRUE(slot) << "the string was split at a 5 in two strokes";
  EXPECT_LE(slot->y, 150);
  EXPECT_GE(slot->y + slot->h, 210) << "the 5's strokes are not one slot";

  // A 6 after an 8: its stem (rows ~147..182, of digit height but short for the string) and
  // its loop (rows ~194..223) 12 px apart, too far for the join of broken strokes. The loop
  // overlaps the stem's columns and shares no row with it, only with the 8 before it.
  page.setTo(235);
  digits = write_digits(page, {3, 8}, {150, 150}, 60, 14);
  const int six = digits.back().br().x + 14;
  cv::line(page, {six + 20, 148}, {six + 4, 176}, pen, 5);  // columns ~six+1..six+23
  cv::circle(page, {six + 20, 206}, 11, pen, 5);            // columns ~six+7..six+34
  write_digits(page, {4, 7}, {six + 50, 150}, 60, 14);
  slot = one_string(six + 6);
  ASSERT_TRUE(slot) << "the string was split at a 6 in two strokes";
  EXPECT_LE(slot->y, 150);
  EXPECT_GE(slot->y + slot->h, 218) << "the 6's strokes are not one slot";
}

TEST(Segment, MapBoxFollowsTheAffineMap) {
  cv::Mat shift = (cv::Mat_<double>(2, 3) << 1, 0, 10, 0, 1, -5);
  EXPECT_EQ(map_box({20, 30, 40, 50}, shift, 1000, 1000), (Box{30, 25, 40, 50}));
  EXPECT_EQ(map_box({990, 0, 40, 50}, shift, 1000, 1000), (Box{1000, 0, 0, 45}));  // clipped to the page
}

// One chain of pieces of the same size, one slot each, read with the given "not a digit"
// probabilities: each piece is its digit with probability 1 - not_digit[k] (the rest on 10),
// or, for digit -1, digit 3 with 1 - not_digit[k].
std::vector<StringResult> read_chain(const std::vector<int>& digits, const std::vector<float>& not_digit,
                                     const std::vector<int>& heights = {}, const ReadOptions& options = {},
                                     const std::vector<int>& widths = {}, const std::vector<int>& xs = {}) {
  Segmentation seg;
  StringCandidate chain;
  std::vector<float> probs(digits.size() * 11, 0.0f);
  for (size_t k = 0; k < digits.size(); ++k) {
    Piece piece;
    const int height = heights.empty() ? 60 : heights[k];
    piece.box = {xs.empty() ? 100 + 50 * static_cast<int>(k) : xs[k], 100, widths.empty() ? 40 : widths[k], height};
    piece.usable = true;
    seg.pieces.push_back(piece);
    Slot slot;
    slot.box = piece.box;
    slot.hypotheses.push_back({{static_cast<int>(k)}});
    chain.slots.push_back(slot);
    float* p = &probs[k * 11];
    p[10] = not_digit[k];
    p[digits[k] < 0 ? 3 : digits[k]] = 1.0f - not_digit[k];
  }
  seg.strings.push_back(chain);
  const cv::Mat identity = (cv::Mat_<double>(2, 3) << 1, 0, 0, 0, 1, 0);
  return read_strings(seg, probs.data(), 11, identity, 1000, 1000, options);
}

// One chain read from a pattern, one slot per character: a digit is a piece read as that
// digit (0.95), 'r' a piece read as "not a digit" (0.995), 'c' small context (a speck, a
// printed label's small letter: a slot that is not read).
std::vector<StringResult> read_pattern(const std::string& pattern) {
  Segmentation seg;
  StringCandidate chain;
  std::vector<float> probs;
  for (size_t k = 0; k < pattern.size(); ++k) {
    Slot slot;
    slot.box = {100 + 50 * static_cast<int>(k), 100, 40, pattern[k] == 'c' ? 20 : 60};
    if (pattern[k] != 'c') {
      Piece piece;
      piece.box = slot.box;
      piece.usable = true;
      slot.hypotheses.push_back({{static_cast<int>(seg.pieces.size())}});
      seg.pieces.push_back(piece);
      std::vector<float> p(11, 0.0f);
      if (pattern[k] == 'r') {
        p[10] = 0.995f;
        p[3] = 0.005f;
      } else {
        p[static_cast<size_t>(pattern[k] - '0')] = 0.95f;
        p[10] = 0.05f;
      }
      probs.insert(probs.end(), p.begin(), p.end());
    }
    chain.slots.push_back(slot);
  }
  seg.strings.push_back(chain);
  const cv::Mat identity = (cv::Mat_<double>(2, 3) << 1, 0, 0, 0, 1, 0);
  return read_strings(seg, probs.data(), 11, identity, 1000, 1000);
}

TEST(Segment, AStrokeAlongTheLineUnderADigitIsReadWithIt) {
  // A 2 whose base, drawn with a pen, lies along a printed underline and shows 3 px above
  // it: taking the line out takes the base with it, and what is left is a 7 with a sliver
  // along its foot. The page is darker along the line there, so the blob gets a second reading
  // with the line's pixels given back under it (Hypothesis::on_line). A 7 whose stem only
  // meets the same line gets none, nor does one standing on no line.
  cv::Mat page(500, 900, CV_8U, cv::Scalar(235));
  auto seven = [&](int x, int y) {
    cv::line(page, {x, y - 85}, {x + 55, y - 85}, cv::Scalar(60), 9);
    cv::line(page, {x + 55, y - 85}, {x + 5, y - 2}, cv::Scalar(60), 9);
  };
  seven(200, 300);
  cv::line(page, {205, 298}, {262, 298}, cv::Scalar(60), 7);  // the 2's base: rows 295-301
  cv::line(page, {80, 300}, {640, 300}, cv::Scalar(40), 4);   // the underline over it
  seven(450, 300);
  seven(700, 420);  // away from any line
  CleanOptions straight;
  straight.max_skew_deg = 0;
  const CleanedPage cleaned = clean_page(page, straight);
  const Segmentation seg = find_strings(cleaned);
  // The ink of a piece's mask on the rows the line was taken out of.
  auto ink_on_line = [&](const Piece& piece) {
    int n = 0;
    for (int y = 0; y < piece.mask.rows; ++y)
      if (cv::countNonZero(cleaned.lines.row(piece.box.y + y)) > 500) n += cv::countNonZero(piece.mask.row(y));
    return n;
  };
  auto slot_at = [&](int x) -> const Slot* {
    for (const StringCandidate& c : seg.strings)
      for (const Slot& slot : c.slots)
        if (slot.box.x < x + 30 && slot.box.right() > x + 30) return &slot;
    return nullptr;
  };
  auto on_line = [&](const Slot* slot) -> const Piece* {
    for (const Hypothesis& h : slot->hypotheses)
      if (h.on_line) return &seg.pieces[static_cast<size_t>(h.pieces.at(0))];
    return nullptr;
  };
  const Slot* two = slot_at(200);
  ASSERT_NE(two, nullptr);
  const Piece& whole = seg.pieces[static_cast<size_t>(two->hypotheses.at(0).pieces.at(0))];
  EXPECT_LT(ink_on_line(whole), 20) << "the base was not taken with the line";
  const Piece* based = on_line(two);
  ASSERT_NE(based, nullptr) << "the 2 on the line got no reading with its base";
  EXPECT_GT(ink_on_line(*based), 200) << "the line's pixels under it were not given back";
  EXPECT_GE(based->box.right(), 255);
  ASSERT_NE(slot_at(450), nullptr);
  EXPECT_EQ(on_line(slot_at(450)), nullptr) << "a 7 meeting the line got a base too";
  ASSERT_NE(slot_at(700), nullptr);
  EXPECT_EQ(on_line(slot_at(700)), nullptr);

  // That reading is made into an image and scored only once the blob, read whole, is a 7:
  // read_strings takes it for nothing else.
  const int whole_index = two->hypotheses.at(0).pieces.at(0);
  const int lined = static_cast<int>(based - seg.pieces.data());
  auto passes = [&](int whole_digit) {
    Segmentation copy = seg;
    const std::vector<int> first = normalize_pieces(cleaned, copy);
    EXPECT_EQ(std::count(first.begin(), first.end(), lined), 0) << "scored in the first pass";
    EXPECT_FALSE(copy.pieces[static_cast<size_t>(lined)].usable);
    std::vector<float> probs(copy.pieces.size() * 11, 0.0f);
    for (int i : first) probs[static_cast<size_t>(i) * 11 + (i == whole_index ? whole_digit : 4)] = 1.0f;
    const std::vector<int> second = normalize_cuts(copy, probs, 11);
    EXPECT_TRUE(copy.pieces[static_cast<size_t>(lined)].grey.empty()) << "the grey page under it was kept";
    return std::count(second.begin(), second.end(), lined) == 1 && copy.pieces[static_cast<size_t>(lined)].usable;
  };
  EXPECT_TRUE(passes(7));
  EXPECT_FALSE(passes(5));
}

TEST(Segment, ADigitsTailRunOnAlongItsLineKeepsTheStringWhole) {
  // "1", "0", a 2 whose base runs on in a tail 90 px long that a gap in the ink parted from
  // it, then "5" and "7" after the tail: the 5 stands more than a digit's height from the
  // 2's body but just after its tail. One string; without the tail, two.
  cv::Mat page(400, 900, CV_8U, cv::Scalar(235));
  auto one = [&](int x) { cv::line(page, {x + 10, 140}, {x, 220}, cv::Scalar(40), 8); };
  auto zero = [&](int x) { cv::ellipse(page, {x + 25, 180}, {22, 38}, 0, 0, 360, cv::Scalar(40), 8); };
  one(100);
  zero(150);
  cv::ellipse(page, {245, 165}, {22, 22}, 0, 180, 360, cv::Scalar(40), 8);  // the 2: its top,
  cv::line(page, {267, 165}, {222, 218}, cv::Scalar(40), 8);                 // its stroke down,
  cv::line(page, {222, 218}, {272, 218}, cv::Scalar(40), 8);                 // its base
  cv::line(page, {289, 218}, {370, 218}, cv::Scalar(40), 8);                 // and the tail
  one(385);
  zero(420);
  CleanOptions plain;
  plain.remove_lines = false;
  plain.max_skew_deg = 0;
  const CleanedPage cleaned = clean_page(page, plain);
  const Segmentation seg = find_strings(cleaned);
  ASSERT_EQ(seg.strings.size(), 1u) << "the string broke at the tail";
  EXPECT_EQ(seg.strings[0].slots.size(), 5u);
  // Without the tail, the gap after the 2 is more than a digit's height: two strings.
  cv::line(page, {289, 218}, {370, 218}, cv::Scalar(235), 12);
  EXPECT_EQ(find_strings(clean_page(page, plain)).strings.size(), 2u);
}

TEST(Segment, ASevenOnALineIsReadTwoWhenItsBaseMakesASurerTwo) {
  // "4", a blob read whole and with the ink of the line under it given back
  // (Hypothesis::on_line), "5". The reading with the line's ink is taken only where the
  // blob read whole is a 7 and it is a surer 2: a 2 losing its base to the line is a 7,
  // no other digit loses its base that way.
  auto read = [](int whole_digit, float whole_p, int lined_digit, float lined_p) {
    Segmentation seg;
    StringCandidate chain;
    std::vector<float> probs;
    auto piece = [&](Box box, int digit, float p) {
      Piece made;
      made.box = box;
      made.usable = true;
      seg.pieces.push_back(made);
      std::vector<float> q(11, 0.0f);
      q[static_cast<size_t>(digit)] = p;
      q[10] = 0.01f;
      q[digit == 3 ? 8 : 3] = 0.99f - p;
      probs.insert(probs.end(), q.begin(), q.end());
      return static_cast<int>(seg.pieces.size()) - 1;
    };
    for (int k = 0; k < 3; ++k) {
      Slot slot;
      slot.box = {100 + 60 * k, 100, 40, 60};
      slot.hypotheses.push_back({{piece(slot.box, k == 0 ? 4 : k == 2 ? 5 : whole_digit, k == 1 ? whole_p : 0.98f)}});
      if (k == 1) slot.hypotheses.push_back({{piece({160, 100, 46, 66}, lined_digit, lined_p)}, true});
      chain.slots.push_back(slot);
    }
    seg.strings.push_back(chain);
    const cv::Mat identity = (cv::Mat_<double>(2, 3) << 1, 0, 0, 0, 1, 0);
    return read_strings(seg, probs.data(), 11, identity, 1000, 1000);
  };
  const std::vector<StringResult> two = read(7, 0.9f, 2, 0.97f);
  ASSERT_EQ(two.size(), 1u);
  EXPECT_EQ(two[0].text, "425");
  EXPECT_EQ(two[0].digits[1].box.h, 66) << "the digit's box is the reading's, base and all";
  EXPECT_NEAR(two[0].digits[1].confidence, 0.97, 0.005);
  EXPECT_EQ(texts(read(7, 0.98f, 2, 0.95f)), "475");  // the 7 is the surer
  EXPECT_EQ(texts(read(5, 0.9f, 2, 0.99f)), "455");   // not a 7
  EXPECT_EQ(texts(read(7, 0.9f, 3, 0.99f)), "475");   // not a 2
}

TEST(Segment, SmallContextBesideTheDigitsIsNoVoteAgainstThem) {
  // A printed label's small letters before the digits, a rejected piece after them: the
  // digits are half of what is read only if the letters count.
  EXPECT_EQ(texts(read_pattern("ccc472r")), "472");
  // Specks among the digits do count: here the digits are no more than half.
  EXPECT_EQ(texts(read_pattern("4ccc7r")), "");
  EXPECT_EQ(texts(read_pattern("4c72r")), "472");
}

TEST(Segment, AStringCutByARejectedPieceCarriesItsDoubt) {
  // The middle piece is "not a digit" with probability 0.995 and half as tall again as the
  // digits: no digit of theirs, so it cuts the string, and each half carries that doubt.
  const std::vector<int> taller = {60, 60, 90, 60, 60};
  std::vector<StringResult> strings = read_chain({4, 7, -1, 2, 9}, {0.1f, 0.1f, 0.995f, 0.1f, 0.1f}, taller);
  ASSERT_EQ(strings.size(), 2u);
  EXPECT_EQ(strings[0].text, "47");
  EXPECT_EQ(strings[1].text, "29");
  EXPECT_NEAR(strings[0].confidence, 0.9 * 0.9 * 0.995, 1e-5);
  EXPECT_NEAR(strings[1].confidence, 0.995 * 0.9 * 0.9, 1e-5);

  // With a temperature, the digits' probabilities are sharpened, but the doubt a cut carries
  // is the model's own "not a digit": sharpened, 0.9 rejected would pass for 0.98, and the
  // strings it cut came out complete-looking at 0.99 when it was a digit of theirs.
  ReadOptions sharp;
  sharp.temperature = 0.5;
  strings = read_chain({4, 7, -1, 2, 9}, {0.1f, 0.1f, 0.995f, 0.1f, 0.1f}, taller, sharp);
  ASSERT_EQ(strings.size(), 2u);
  const double digit = 0.81 / (0.81 + 0.01);  // 0.9 and 0.1 squared, renormalised
  EXPECT_NEAR(strings[0].confidence, digit * digit * 0.995, 1e-5);
}

TEST(Segment, ADigitUnderHalfTheOthersHeightHalvesItsStringsConfidence) {
  // "4107" with its 1 28 px tall beside 60 px digits: the 1 may be a fragment (a 1's foot).
  auto read = [](const std::vector<int>& digits, const std::vector<int>& heights, const ReadOptions& options = {}) {
    const std::vector<StringResult> strings =
        read_chain(digits, std::vector<float>(digits.size(), 0.05f), heights, options);
    EXPECT_EQ(strings.size(), 1u);
    return strings.empty() ? std::pair{std::string(), -1.0} : std::pair{strings[0].text, strings[0].confidence};
  };
  const auto [text, full] = read({4, 1, 0, 7}, {60, 60, 60, 60});
  EXPECT_EQ(text, "4107");
  ASSERT_GT(full, 0.8);  // 0.95 each
  const auto [short_text, halved] = read({4, 1, 0, 7}, {60, 28, 60, 60});
  EXPECT_EQ(short_text, "4107") << "the short digit is doubted, not dropped";
  EXPECT_NEAR(halved, 0.5 * full, 1e-9);
  EXPECT_NEAR(read({4, 1, 0, 7}, {60, 32, 60, 60}).second, full, 1e-9) << "over half the height: no doubt";
  EXPECT_NEAR(read({4, 1}, {60, 28}).second, read({4, 1}, {60, 60}).second, 1e-9) << "two digits have no median to judge by";
  ReadOptions off;
  off.short_digit = 0;
  EXPECT_NEAR(read({4, 1, 0, 7}, {60, 28, 60, 60}, off).second, full, 1e-9);
}

TEST(Segment, RoomForALostDigitInAStringHalvesItsConfidence) {
  // "4107", digits 40 px wide and 60 px tall, 10 px apart; then with the gap before the 0
  // widened. A 1 broken into specks, or faded, leaves such a gap; the string is wrong then.
  auto read = [](const std::vector<int>& xs, const ReadOptions& options = {}) {
    static const std::vector<int> text = {4, 1, 0, 7};
    const std::vector<int> digits(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(xs.size()));
    const std::vector<StringResult> strings =
        read_chain(digits, std::vector<float>(digits.size(), 0.05f), {}, options, {}, xs);
    EXPECT_EQ(strings.size(), 1u);
    return strings.empty() ? -1.0 : strings[0].confidence;
  };
  const double even = read({100, 150, 200, 250});
  ASSERT_GT(even, 0.8);  // 0.95 each
  // Room for a digit: wider than the usual gap by more than 0.6 of the digits' height (36 px).
  EXPECT_NEAR(read({100, 150, 240, 290}), 0.5 * even, 1e-9);
  EXPECT_NEAR(read({100, 150, 235, 285}), even, 1e-9) << "35 px more than the usual gap: no doubt";
  // Digits spaced widely throughout: the gap is their usual one.
  EXPECT_NEAR(read({100, 200, 300, 400}), even, 1e-9);
  EXPECT_NEAR(read({100, 200}), read({100, 150}), 1e-9) << "two digits have no usual gap to judge by";
  // Three digits: the usual gap is the other one.
  const double three = read({100, 150, 200});
  EXPECT_NEAR(read({100, 150, 240}), 0.5 * three, 1e-9);
  EXPECT_NEAR(read({100, 150, 235}), three, 1e-9);
  // Overlapping digits (by 15 px) are no spacing: the usual gap is 0, not below it, and a
  // gap of 25 px is no room for a digit.
  EXPECT_NEAR(read({100, 125, 150, 215}), even, 1e-9);
  ReadOptions off;
  off.lost_digit_gap = 0;
  EXPECT_NEAR(read({100, 150, 240, 290}, off), even, 1e-9);
}

TEST(Segment, TwoStrokesReadAsOneDigitWhenEitherIsInDoubt) {
  // Slots "4", a stroke read 1 and one read 7, then "2", and a piece of the two strokes
  // together (Slot::join_next) read as 0. `second_box` moves the second stroke.
  auto read = [](float first, float second, float together, const ReadOptions& options = {},
                 std::optional<Box> second_box = std::nullopt) {
    Segmentation seg;
    StringCandidate chain;
    std::vector<float> probs;
    auto piece = [&](int x, int width, int digit, float p) {
      Piece made;
      made.box = {x, 100, width, 60};
      made.usable = true;
      seg.pieces.push_back(made);
      probs.resize(probs.size() + 11, 0.0f);
      float* q = &probs[probs.size() - 11];
      if (p < 0) {  // read as no digit
        q[10] = 0.8f;
        q[digit] = 0.2f;
      } else {
        q[digit] = p;
        q[digit == 3 ? 6 : 3] = q[digit == 5 ? 6 : 5] = (1.0f - p) / 2;  // the rest on two other digits
      }
      return static_cast<int>(seg.pieces.size() - 1);
    };
    const std::vector<std::pair<int, float>> slots = {{4, 0.99f}, {1, first}, {7, second}, {2, 0.99f}};
    for (size_t k = 0; k < slots.size(); ++k) {
      Slot slot;
      slot.box = {100 + 50 * static_cast<int>(k), 100, 40, 60};
      if (k == 2 && second_box) slot.box = *second_box;
      slot.hypotheses.push_back({{piece(slot.box.x, 40, slots[k].first, slots[k].second)}});
      chain.slots.push_back(slot);
    }
    chain.slots[1].join_next = piece(150, 60, 0, together);  // as wide as tall
    seg.strings.push_back(chain);
    const cv::Mat identity = (cv::Mat_<double>(2, 3) << 1, 0, 0, 0, 1, 0);
    return texts(read_strings(seg, probs.data(), 11, identity, 1000, 1000, options));
  };
  EXPECT_EQ(read(0.6f, 0.7f, 0.99f), "402");
  EXPECT_EQ(read(0.99f, 0.5f, 0.99f), "402") << "one stroke in doubt is enough";
  EXPECT_EQ(read(-1.0f, 0.99f, 0.99f), "402") << "a stroke read as no digit is in doubt too";
  EXPECT_EQ(read(0.99f, 0.99f, 0.99f), "4172") << "two sure digits stay two";
  EXPECT_EQ(read(0.6f, 0.7f, 0.3f), "4172") << "a doubtful whole does not win";
  // The second stroke shorter, its top lower, its bottom level with the first's: a 6's stem
  // and loop, weighed even when both are sure, at no price.
  EXPECT_EQ(read(0.99f, 0.99f, 0.99f, {}, Box{200, 115, 40, 45}), "402");
  EXPECT_EQ(read(0.99f, 0.99f, 0.3f, {}, Box{200, 115, 40, 45}), "4172") << "a doubtful whole does not win";
  EXPECT_EQ(read(0.99f, 0.99f, 0.99f, {}, Box{200, 102, 40, 58}), "4172") << "a top level with the stroke's";
  EXPECT_EQ(read(0.99f, 0.99f, 0.99f, {}, Box{200, 115, 40, 25}), "4172") << "a loop ending far above the stroke's bottom";
  ReadOptions off;
  off.join_doubt = 0;
  EXPECT_EQ(read(0.6f, 0.7f, 0.99f, off), "4172");
  EXPECT_EQ(read(-1.0f, 0.99f, 0.99f, off), "4172");
}

TEST(Segment, APrintedSignBeforeTheDigitsCarriesItsDoubtSharpened) {
  // A piece rejected at 0.95 before 60 px digits, 40 px tall and 30 px wide: the build of a
  // printed "$". Its doubt is sharpened as the digits' probabilities are.
  ReadOptions sharp;
  sharp.temperature = 0.5;
  auto squared = [](double p) { return p * p / (p * p + (1 - p) * (1 - p)); };
  const double digits = std::pow(squared(0.95), 3);
  auto confidence = [&](float not_digit, int height, int width, const ReadOptions& options) {
    const std::vector<StringResult> strings =
        read_chain({-1, 4, 0, 7}, {not_digit, 0.05f, 0.05f, 0.05f}, {height, 60, 60, 60}, options, {width, 40, 40, 40});
    EXPECT_EQ(texts(strings), "407");
    return strings.empty() ? -1.0 : strings[0].confidence;
  };
  EXPECT_NEAR(confidence(0.95f, 40, 30, sharp), squared(0.95) * digits, 1e-5);
  // Two glued digits (90 px wide), the remains of a broken one (30 px tall), a lone 1 (12 px
  // wide) or a piece the model doubts more (0.85) may be digits of the string: it carries
  // their "not a digit" as the model gives it.
  EXPECT_NEAR(confidence(0.95f, 60, 90, sharp), 0.95 * digits, 1e-5);
  EXPECT_NEAR(confidence(0.95f, 30, 30, sharp), 0.95 * digits, 1e-5);
  EXPECT_NEAR(confidence(0.95f, 60, 12, sharp), 0.95 * digits, 1e-5);
  EXPECT_NEAR(confidence(0.85f, 40, 30, sharp), 0.85 * digits, 1e-5);
  ReadOptions off = sharp;
  off.symbol_not_digit = 1.1;
  EXPECT_NEAR(confidence(0.95f, 40, 30, off), 0.95 * digits, 1e-5);
  // After the digits, the same piece may be a last digit the model rejects: the model's own
  // doubt.
  const std::vector<StringResult> after =
      read_chain({4, 0, 7, -1}, {0.05f, 0.05f, 0.05f, 0.95f}, {60, 60, 60, 40}, sharp, {40, 40, 40, 30});
  ASSERT_EQ(texts(after), "407");
  EXPECT_NEAR(after[0].confidence, digits * 0.95, 1e-5);
}

TEST(Segment, ARejectedPieceOfTheDigitsHeightBetweenDigitsKeepsTheStringWhole) {
  // As tall as the digits, with two digits or more on each side: read as its likeliest digit
  // with its low probability (0.005), one string to review rather than two sure halves.
  std::vector<StringResult> strings = read_chain({4, 7, -1, 2, 9}, {0.1f, 0.1f, 0.995f, 0.1f, 0.1f});
  ASSERT_EQ(strings.size(), 1u);
  EXPECT_EQ(strings[0].text, "47329");
  EXPECT_NEAR(strings[0].confidence, 0.9 * 0.9 * 0.005 * 0.9 * 0.9, 1e-6);
  // With one digit on a side it may be a printed mark ending the string: cut there.
  EXPECT_EQ(texts(read_chain({4, 7, 5, -1, 9}, {0.1f, 0.1f, 0.1f, 0.995f, 0.1f})), "475");
  EXPECT_EQ(texts(read_chain({-1, 4, 7, 5, 9}, {0.995f, 0.1f, 0.1f, 0.1f, 0.1f})), "4759");
  // Shorter than the digits (a 5's hook written apart, debris): passed over, the string whole
  // and one digit short if it was one, carrying its "not a digit" (0.85) as a doubt, and
  // half for the room it leaves between the 7 and the 2 (ReadOptions::lost_digit_gap).
  strings = read_chain({4, 7, -1, 2, 9}, {0.1f, 0.1f, 0.85f, 0.1f, 0.1f}, {60, 60, 40, 60, 60});
  ASSERT_EQ(strings.size(), 1u);
  EXPECT_EQ(strings[0].text, "4729");
  EXPECT_NEAR(strings[0].confidence, 0.9 * 0.9 * 0.85 * 0.9 * 0.9 * 0.5, 1e-6);
  // With one digit on a side, cut there as before.
  EXPECT_EQ(texts(read_chain({4, 7, 5, -1, 9}, {0.1f, 0.1f, 0.1f, 0.85f, 0.1f}, {60, 60, 60, 40, 60})), "475");
  // The doubt is the model's own "not a digit", not sharpened by the temperature.
  ReadOptions sharp;
  sharp.temperature = 0.5;
  strings = read_chain({4, 7, -1, 2, 9}, {0.1f, 0.1f, 0.85f, 0.1f, 0.1f}, {60, 60, 40, 60, 60}, sharp);
  ASSERT_EQ(strings.size(), 1u);
  const double digit = 0.81 / (0.81 + 0.01);  // 0.9 and 0.1 squared, renormalised
  EXPECT_NEAR(strings[0].confidence, std::pow(digit, 4) * 0.85 * 0.5, 1e-6);
}

TEST(Segment, AnUnsurePieceOfTheDigitsHeightStaysInItsString) {
  // "Not a digit" with 0.6 (below keep_unsure_below), between digits of its height: read as
  // its likeliest digit, with that digit's low probability in the string's confidence.
  std::vector<StringResult> strings = read_chain({4, 7, -1, 2, 9}, {0.1f, 0.1f, 0.6f, 0.1f, 0.1f});
  ASSERT_EQ(strings.size(), 1u);
  EXPECT_EQ(strings[0].text, "47329");
  EXPECT_NEAR(strings[0].confidence, 0.9 * 0.9 * 0.4 * 0.9 * 0.9, 1e-6);
  EXPECT_NEAR(strings[0].digits[2].confidence, 0.4, 1e-6);
  // At the end of a string too.
  strings = read_chain({-1, 5, 8, 1}, {0.7f, 0.05f, 0.05f, 0.05f});
  ASSERT_EQ(strings.size(), 1u);
  EXPECT_EQ(strings[0].text, "3581");
}

TEST(Segment, AStrokeFarTallerThanTheDigitsIsNoDigitOfThem) {
  // A box's side read as a confident 1 before a string of 60 px digits: not part of it.
  EXPECT_EQ(texts(read_chain({1, 4, 0, 7}, {0.05f, 0.05f, 0.05f, 0.05f}, {130, 60, 60, 60})), "407");
  EXPECT_EQ(texts(read_chain({1, 4, 0, 7}, {0.05f, 0.05f, 0.05f, 0.05f}, {80, 60, 60, 60})), "1407");
  // As thin as a rule (4 px), it is a box's side, and the string owes it no doubt; thicker
  // (20 px), it may be a 1 written over that side, and the string carries its "not a digit".
  std::vector<StringResult> strings = read_chain({1, 4, 0, 7}, {0.05f, 0.05f, 0.05f, 0.05f}, {130, 60, 60, 60}, {}, {4, 40, 40, 40});
  ASSERT_EQ(strings.size(), 1u);
  EXPECT_NEAR(strings[0].confidence, 0.95 * 0.95 * 0.95, 1e-5);
  strings = read_chain({1, 4, 0, 7}, {0.05f, 0.05f, 0.05f, 0.05f}, {130, 60, 60, 60}, {}, {20, 40, 40, 40});
  ASSERT_EQ(strings.size(), 1u);
  EXPECT_EQ(strings[0].text, "407");
  EXPECT_NEAR(strings[0].confidence, 0.05 * 0.95 * 0.95 * 0.95, 1e-5);
}

TEST(Segment, ALoneDigitBesideAStringPutsItInDoubt) {
  // A digit on its own (too few to report) at `lone_x`, then the string "407" from x = 300,
  // all 60 px tall; each digit read with 0.9.
  auto read_beside = [](int lone_x) {
    Segmentation seg;
    std::vector<float> probs;
    auto chain = [&](const std::vector<int>& digits, int x) {
      StringCandidate candidate;
      for (int d : digits) {
        Piece piece;
        piece.box = {x, 100, 40, 60};
        piece.usable = true;
        Slot slot;
        slot.box = piece.box;
        slot.hypotheses.push_back({{static_cast<int>(seg.pieces.size())}});
        candidate.slots.push_back(slot);
        seg.pieces.push_back(piece);
        probs.resize(seg.pieces.size() * 11, 0.0f);
        probs[(seg.pieces.size() - 1) * 11 + static_cast<size_t>(d)] = 0.9f;
        probs[(seg.pieces.size() - 1) * 11 + 10] = 0.1f;
        x += 50;
      }
      seg.strings.push_back(candidate);
    };
    chain({2}, lone_x);
    chain({4, 0, 7}, 300);
    const cv::Mat identity = (cv::Mat_<double>(2, 3) << 1, 0, 0, 0, 1, 0);
    return read_strings(seg, probs.data(), 11, identity, 1000, 1000);
  };
  // 80 px of paper between them: the string may be missing its first digit.
  std::vector<StringResult> strings = read_beside(180);
  ASSERT_EQ(strings.size(), 1u);
  EXPECT_EQ(strings[0].text, "407");
  EXPECT_NEAR(strings[0].confidence, 0.9 * 0.9 * 0.9 * (1 - 0.9), 1e-5);
  // 200 px (over two digit heights): something else.
  strings = read_beside(60);
  ASSERT_EQ(strings.size(), 1u);
  EXPECT_NEAR(strings[0].confidence, 0.9 * 0.9 * 0.9, 1e-5);
}

// A segmentation made by hand: pieces read as `digit` with probability 1 - not_digit and
// "not a digit" with not_digit.
struct HandMade {
  Segmentation seg;
  std::vector<float> probs;
  int piece(const Box& box, int digit, float not_digit) {
    Piece p;
    p.box = box;
    p.usable = true;
    seg.pieces.push_back(p);
    probs.resize(seg.pieces.size() * 11, 0.0f);
    probs[(seg.pieces.size() - 1) * 11 + static_cast<size_t>(digit)] = 1.0f - not_digit;
    probs[(seg.pieces.size() - 1) * 11 + 10] = not_digit;
    return static_cast<int>(seg.pieces.size()) - 1;
  }
  std::vector<StringResult> read() const {
    const cv::Mat identity = (cv::Mat_<double>(2, 3) << 1, 0, 0, 0, 1, 0);
    return read_strings(seg, probs.data(), 11, identity, 1000, 1000);
  }
};

// A cut into two digits needs a blob about two digits wide (ReadOptions::narrow_cut): "45",
// then a blob `width` px wide read whole as 0 with 0.25 ("not a digit" 0.75) and cut in two
// as 2 and 7 with 0.95 each, then "81"; the other digits are 40 px wide.
TEST(Segment, ABlobNoWiderThanOneDigitIsReadWholeRatherThanCutInTwo) {
  auto read_with_blob = [](int width) {
    HandMade made;
    StringCandidate line;
    int x = 100;
    auto digit = [&](int d) {
      Slot slot;
      slot.box = {x, 100, 40, 60};
      slot.hypotheses = {{{made.piece(slot.box, d, 0.05f)}}};
      line.slots.push_back(slot);
      x += 50;
    };
    digit(4);
    digit(5);
    Slot blob;
    blob.box = {x, 100, width, 60};
    const int half = width / 2;
    blob.hypotheses = {{{made.piece(blob.box, 0, 0.75f)}},
                       {{made.piece({x, 100, half, 60}, 2, 0.05f), made.piece({x + half, 100, width - half, 60}, 7, 0.05f)}}};
    line.slots.push_back(blob);
    x += width + 10;
    digit(8);
    digit(1);
    made.seg.strings.push_back(line);
    return texts(made.read());
  };
  EXPECT_EQ(read_with_blob(40), "45081") << "as wide as one digit: one digit, unsure";
  EXPECT_EQ(read_with_blob(80), "452781") << "as wide as two: two digits";
}

// A blob 150 px wide, "not a digit" whole, with one cut into three pieces read as `cut`
// (each piece its digit with probability 1 - cut_not_digit[k]), after `digits_before` slots
// of single digits read with 0.95.
std::vector<StringResult> read_wide_blob(int digits_before, const std::vector<int>& cut, const std::vector<float>& cut_not_digit) {
  HandMade made;
  StringCandidate line;
  int x = 100;
  for (int k = 0; k < digits_before; ++k, x += 50) {
    Slot slot;
    slot.box = {x, 100, 40, 60};
    slot.hypotheses = {{{made.piece(slot.box, 4 + k, 0.05f)}}};
    line.slots.push_back(slot);
  }
  Slot blob;
  blob.box = {x, 100, 150, 60};
  Hypothesis three;
  for (size_t k = 0; k < cut.size(); ++k)
    three.pieces.push_back(made.piece({x + 50 * static_cast<int>(k), 100, 45, 60}, cut[k], cut_not_digit[k]));
  blob.hypotheses = {{{made.piece(blob.box, 8, 0.999f)}}, three};
  line.slots.push_back(blob);
  made.seg.strings.push_back(line);
  return made.read();
}

TEST(Segment, ALoneBlobThatOnlyCutsIntoDigitsWithAPieceLeftOverIsNoString) {
  // A signature: one wide stroke alone on its line, whose best cut reads "4", "1", "0" with
  // the 4 taken for "not a digit" (0.8): no string, not "10" nor "410".
  EXPECT_TRUE(read_wide_blob(0, {4, 1, 0}, {0.8f, 0.1f, 0.05f}).empty());
  // Three glued digits alone, each piece a digit: read.
  EXPECT_EQ(texts(read_wide_blob(0, {4, 1, 0}, {0.1f, 0.1f, 0.05f})), "410");
  // The same blob after two digits on their line: part of a string of digits, its unsure
  // piece kept as an unsure digit.
  EXPECT_EQ(texts(read_wide_blob(2, {4, 1, 0}, {0.8f, 0.1f, 0.05f})), "45410");
}

TEST(Segment, AMostlyRejectedLineIsPrintAndNotRead) {
  // Three printed letters, each "not a digit" read whole, whose halves pass for a 1 and a 7:
  // print, and not read as 171717.
  Segmentation seg;
  StringCandidate line;
  std::vector<float> probs;
  for (int k = 0; k < 3; ++k) {
    const int x = 100 + 60 * k;
    Slot slot;
    slot.box = {x, 100, 50, 60};
    for (const Box& b : {Box{x, 100, 50, 60}, Box{x, 100, 24, 60}, Box{x + 26, 100, 24, 60}}) {
      Piece piece;
      piece.box = b;
      piece.usable = true;
      seg.pieces.push_back(piece);
      probs.resize(seg.pieces.size() * 11, 0.0f);
    }
    const int first = static_cast<int>(seg.pieces.size()) - 3;
    slot.hypotheses = {{{first}}, {{first + 1, first + 2}}};
    probs[static_cast<size_t>(first) * 11 + 10] = 0.99f, probs[static_cast<size_t>(first) * 11 + 8] = 0.01f;
    probs[static_cast<size_t>(first + 1) * 11 + 1] = 0.95f, probs[static_cast<size_t>(first + 1) * 11 + 10] = 0.05f;
    probs[static_cast<size_t>(first + 2) * 11 + 7] = 0.95f, probs[static_cast<size_t>(first + 2) * 11 + 10] = 0.05f;
    line.slots.push_back(slot);
  }
  seg.strings.push_back(line);
  const cv::Mat identity = (cv::Mat_<double>(2, 3) << 1, 0, 0, 0, 1, 0);
  EXPECT_TRUE(read_strings(seg, probs.data(), 11, identity, 1000, 1000).empty());
  // Three of five blobs rejected, no cuts: nothing read either.
  EXPECT_TRUE(read_chain({1, -1, -1, 7, -1}, {0.05f, 0.99f, 0.97f, 0.1f, 0.99f}).empty());
  // Two of five: a string of digits with two rejected blobs.
  EXPECT_EQ(texts(read_chain({1, -1, 4, 7, -1}, {0.05f, 0.99f, 0.1f, 0.1f, 0.99f})), "47");
}

TEST(Segment, AShortAmountWithASignAndTwoGluedDigitsIsNoPrint) {
  // "$", a 6, then a 5 and an 8 that touch: the sign and the glued pair are both "not a
  // digit" read whole, two of the three blobs, as in a line of print. The pair, as wide as
  // two digits, has no vote while another blob reads as a digit.
  auto read = [](const std::vector<std::pair<Box, int>>& blobs) {  // box, and the digit it reads whole (-1: none)
    Segmentation seg;
    StringCandidate line;
    std::vector<float> probs;
    auto piece = [&](const Box& box, int digit) {
      Piece p;
      p.box = box;
      p.usable = true;
      seg.pieces.push_back(p);
      probs.resize(seg.pieces.size() * 11, 0.0f);
      float* q = &probs[(seg.pieces.size() - 1) * 11];
      if (digit < 0) q[10] = 0.995f, q[1] = 0.005f;
      else q[digit] = 0.98f, q[10] = 0.02f;
      return static_cast<int>(seg.pieces.size()) - 1;
    };
    for (const auto& [box, digit] : blobs) {
      Slot slot;
      slot.box = box;
      slot.hypotheses = {{{piece(box, digit)}}};
      if (box.w > box.h) {  // cut in two: a 5 and an 8
        const int left = piece({box.x, box.y, box.w / 2, box.h}, 5);
        slot.hypotheses.push_back({{left, piece({box.x + box.w / 2, box.y, box.w - box.w / 2, box.h}, 8)}});
      }
      line.slots.push_back(slot);
      line.box = unite(line.box, box);
    }
    seg.strings.push_back(line);
    const cv::Mat identity = (cv::Mat_<double>(2, 3) << 1, 0, 0, 0, 1, 0);
    return read_strings(seg, probs.data(), 11, identity, 1000, 1000);
  };
  const Box sign{100, 100, 36, 60}, six{150, 100, 50, 60}, pair{210, 100, 100, 60};
  EXPECT_EQ(texts(read({{sign, -1}, {six, 6}, {pair, -1}})), "658");
  // With a letter for the 6, no blob reads as a digit: the pair votes, and the line is print.
  EXPECT_TRUE(read({{sign, -1}, {six, -1}, {pair, -1}}).empty());
  // A blob wider than 2.5 times its height is no glued pair: a signature's loops.
  EXPECT_TRUE(read({{sign, -1}, {six, 6}, {{210, 100, 156, 60}, -1}}).empty());
  // Nor one narrower than 1.25 times (66 px: 1.1), as a printed word's joined letters can be.
  EXPECT_TRUE(read({{sign, -1}, {six, 6}, {{210, 100, 66, 60}, -1}}).empty());
  // A signature's loops and its end, as wide as a pair, with no digit beside them: print.
  EXPECT_TRUE(read({{{100, 100, 400, 60}, -1}, {{510, 100, 80, 60}, -1}}).empty());
}

}  // namespace
}  // namespace digitflow::pipeline

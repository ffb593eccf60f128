// Page cleaning. The background is estimated on a page shrunk 8 times (a max filter wider
// than any pen stroke, then smoothing), so flattening costs a few milliseconds on an A4
// page at 300 dpi. The skew comes from the sharpness of row projections of a subsample of
// ink pixels over a range of angles; the whole page is then rotated once. Form lines are
// found and taken out from runs of ink (components.hpp), not with page-sized label images or
// morphology whose cost grows with the length of a line.
#include "digitflow/pipeline/clean.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <opencv2/imgproc.hpp>
#include <vector>

#include "digitflow/pipeline/components.hpp"
#include "digitflow/pipeline/normalize.hpp"

namespace digitflow::pipeline {

namespace {

constexpr double kPi = 3.14159265358979323846;

cv::Mat background_of(const cv::Mat& gray) {
  const int factor = 8;
  cv::Mat small;
  cv::resize(gray, small, cv::Size(std::max(1, gray.cols / factor), std::max(1, gray.rows / factor)), 0, 0,
             cv::INTER_AREA);
  cv::dilate(small, small, cv::getStructuringElement(cv::MORPH_RECT, cv::Size(9, 9)));
  cv::medianBlur(small, small, 5);
  cv::GaussianBlur(small, small, cv::Size(0, 0), 2.0);
  cv::Mat background;
  cv::resize(small, background, gray.size(), 0, 0, cv::INTER_LINEAR);
  return background;
}

// Histogram mode (paper) and the spread of the paper's darker half.
void paper_level(const cv::Mat& flat, double& paper, double& noise) {
  int hist[256] = {};
  for (int y = 0; y < flat.rows; y += 2) {
    const uint8_t* row = flat.ptr<uint8_t>(y);
    for (int x = 0; x < flat.cols; x += 2) ++hist[row[x]];
  }
  int mode = static_cast<int>(std::max_element(hist + 64, hist + 256) - hist);
  // Half width at half maximum on the dark side, as a Gaussian sigma.
  int half = mode;
  while (half > 0 && hist[half] > hist[mode] / 2) --half;
  paper = mode;
  noise = std::max(1.0, (mode - half) / 1.1774);
}

// Adds to `ink`, on the pixels of `band`, the ink's closing by `kernel` (a line of odd
// length): the strokes that crossed a removed form line, joined across its band. Computed
// around each part of the band only (the band of a form's lines is a small share of the
// page), with the margin a closing reads, so that each pixel gets what the whole page's
// closing gives it.
void bridge_across(cv::Mat& ink, const cv::Mat& band, cv::Size kernel) {
  const cv::Mat element = cv::getStructuringElement(cv::MORPH_RECT, kernel);
  const Components parts = find_components(band);
  const int reach_x = kernel.width - 1, reach_y = kernel.height - 1;  // a dilation, then an erosion
  const cv::Rect page(0, 0, ink.cols, ink.rows);
  std::vector<cv::Rect> around;
  int64_t area = 0;
  for (int i = 1; i < parts.count(); ++i) {
    const cv::Rect b = parts.boxes[static_cast<size_t>(i)];
    around.push_back(cv::Rect(b.x - reach_x, b.y - reach_y, b.width + 2 * reach_x, b.height + 2 * reach_y) & page);
    area += around.back().area();
  }
  if (area > static_cast<int64_t>(ink.total()) / 2) {  // a page of lines (or of black): all at once
    cv::Mat closed;
    cv::morphologyEx(ink, closed, cv::MORPH_CLOSE, element);
    ink |= closed & band;
    return;
  }
  std::vector<cv::Mat> adds;
  for (size_t k = 0; k < around.size(); ++k) {
    const cv::Rect b = parts.boxes[k + 1];
    cv::Mat closed;
    cv::morphologyEx(ink(around[k]), closed, cv::MORPH_CLOSE, element);
    adds.push_back(closed(b - around[k].tl()) & band(b));
  }
  for (size_t k = 0; k < adds.size(); ++k) {
    cv::Mat target = ink(parts.boxes[k + 1]);
    target |= adds[k];
  }
}

}  // namespace

double estimate_skew(const cv::Mat& ink, double max_deg) {
  std::vector<cv::Point> points;
  cv::findNonZero(ink, points);
  if (points.size() < 50) return 0.0;
  const size_t stride = std::max<size_t>(1, points.size() / 150000);
  const double cx = ink.cols / 2.0, cy = ink.rows / 2.0;
  const double reach = std::hypot(cx, cy) + 2;
  std::vector<int> bins(static_cast<size_t>(2 * reach + 4));
  auto sharpness = [&](double deg) {
    const double a = deg * kPi / 180.0, s = std::sin(a), c = std::cos(a);
    std::fill(bins.begin(), bins.end(), 0);
    for (size_t i = 0; i < points.size(); i += stride) {
      const double y = -s * (points[i].x - cx) + c * (points[i].y - cy) + reach;
      ++bins[static_cast<size_t>(y)];
    }
    double sum = 0;
    for (int b : bins) sum += static_cast<double>(b) * b;
    return sum;
  };
  double best = 0, best_score = -1;
  for (double d = -max_deg; d <= max_deg + 1e-9; d += 0.5) {
    const double score = sharpness(d);
    if (score > best_score) best_score = score, best = d;
  }
  const double coarse = best;
  for (double d = coarse - 0.5; d <= coarse + 0.5 + 1e-9; d += 0.05) {
    const double score = sharpness(d);
    if (score > best_score) best_score = score, best = d;
  }
  return best;
}

cv::Mat remove_lines(cv::Mat& ink, int min_length) {
  // Horizontal lines: runs of at least min_length in one row.
  cv::Mat horizontal = open_horizontal(ink, min_length);
  // Vertical lines: long thin runs, or shorter thin ones that meet a horizontal line (the
  // sides of a box). A pen stroke is thicker than a printed rule and rarely that straight.
  const int short_length = std::max(15, min_length * 9 / 20);
  const Components runs = find_components(open_vertical(ink, short_length));
  std::vector<uint8_t> keep(static_cast<size_t>(runs.count()), 0);
  const int thin = std::max(6, min_length / 18);
  // Whether a form line passes within 4 px of `r`.
  auto near_horizontal = [&](const cv::Rect& r) {
    return cv::countNonZero(horizontal(cv::Rect(r.x - 4, r.y - 4, r.width + 8, r.height + 8) &
                                       cv::Rect(0, 0, ink.cols, ink.rows))) > 0;
  };
  for (int i = 1; i < runs.count(); ++i) {
    const cv::Rect r = runs.boxes[static_cast<size_t>(i)];
    const int w = r.width, h = r.height;
    if (w > (h >= min_length ? 2 * thin : thin)) continue;  // a long straight run may be a thick rule
    if (h >= min_length) {
      keep[static_cast<size_t>(i)] = 1;
      continue;
    }
    // A short one is the side of a box only if it runs from a line to a line and its ink is
    // as thin as a rule along most of it: a pen's 1 standing on an underline is neither.
    const int end = std::min(h, 4);
    if (!near_horizontal(cv::Rect(r.x, r.y, w, end)) || !near_horizontal(cv::Rect(r.x, r.y + h - end, w, end)))
      continue;
    std::vector<int> widths;
    for (int y = r.y; y < r.y + h; ++y) {
      int x = -1;  // where the run's ink starts on this row
      for (int k = runs.row_start[static_cast<size_t>(y)]; k < runs.row_start[static_cast<size_t>(y) + 1]; ++k)
        if (runs.runs[static_cast<size_t>(k)].label == i) {
          x = runs.runs[static_cast<size_t>(k)].x0;
          break;
        }
      if (x < 0) continue;
      const uint8_t* row = ink.ptr<uint8_t>(y);
      int left = x, right = x;
      while (left > 0 && row[left - 1]) --left;
      while (right + 1 < ink.cols && row[right + 1]) ++right;
      widths.push_back(right - left + 1);
    }
    if (widths.empty()) continue;
    std::nth_element(widths.begin(), widths.begin() + static_cast<long>(widths.size() / 2), widths.end());
    if (widths[widths.size() / 2] <= thin) keep[static_cast<size_t>(i)] = 1;
  }
  cv::Mat vertical = cv::Mat::zeros(ink.size(), CV_8U);
  // A long run wider than a thin rule may be a rule with a pen's stroke along part of it (a
  // 1 written on a box's side): the rule is the columns inked nearly all its length; beside
  // them, a row's ink 3 px wide or more is the pen's and stays. Narrower, it is the rule's
  // rough edge and goes with it.
  for (int i = 1; i < runs.count(); ++i) {
    const cv::Rect r = runs.boxes[static_cast<size_t>(i)];
    if (!keep[static_cast<size_t>(i)] || r.width <= thin) continue;
    std::vector<int> inked(static_cast<size_t>(r.width), 0);
    auto each_run = [&](auto&& visit) {
      for (int y = r.y; y < r.y + r.height; ++y)
        for (int k = runs.row_start[static_cast<size_t>(y)]; k < runs.row_start[static_cast<size_t>(y) + 1]; ++k)
          if (const InkRun& run = runs.runs[static_cast<size_t>(k)]; run.label == i) visit(y, run);
    };
    each_run([&](int, const InkRun& run) {
      for (int x = run.x0; x < run.x1; ++x) ++inked[static_cast<size_t>(x - r.x)];
    });
    int core0 = r.width, core1 = -1;  // the rule's columns, relative to r.x
    for (int x = 0; x < r.width; ++x)
      if (inked[static_cast<size_t>(x)] >= 0.8 * r.height) core0 = std::min(core0, x), core1 = std::max(core1, x);
    if (core1 < 0) continue;  // no straight rule in it: taken whole, as before
    keep[static_cast<size_t>(i)] = 0;
    each_run([&](int y, const InkRun& run) {
      uint8_t* row = vertical.ptr<uint8_t>(y);
      const int lo = r.x + core0, hi = r.x + core1 + 1;  // [lo, hi): the rule
      const int left = std::min(run.x1, lo) - run.x0, right = run.x1 - std::max(run.x0, hi);
      const int x0 = left >= 3 ? lo : run.x0, x1 = right >= 3 ? hi : run.x1;
      if (x0 < x1) std::fill(row + std::max(x0, run.x0), row + std::min(x1, run.x1), uint8_t{255});
    });
  }
  runs.paint(vertical, {0, 0}, [&](int label) { return keep[static_cast<size_t>(label)] != 0; });
  // Take the lines out with a pixel of margin (their anti-aliased edges).
  cv::dilate(horizontal, horizontal, cv::getStructuringElement(cv::MORPH_RECT, cv::Size(1, 3)));
  cv::dilate(vertical, vertical, cv::getStructuringElement(cv::MORPH_RECT, cv::Size(3, 1)));
  cv::Mat lines = horizontal | vertical;
  ink.setTo(0, lines);
  // Bridge strokes that crossed a line: ink on both sides of it, within the line's band.
  bridge_across(ink, horizontal, cv::Size(1, 11));
  bridge_across(ink, vertical, cv::Size(11, 1));
  return lines;
}

namespace {

CleanedPage clean_at_working_resolution(const cv::Mat& gray_in, const CleanOptions& options) {
  CleanedPage page;
  {
    std::vector<uint8_t> sample;
    for (int y = 0; y < gray_in.rows; y += 4)
      for (int x = 0; x < gray_in.cols; x += 4) sample.push_back(gray_in.at<uint8_t>(y, x));
    std::nth_element(sample.begin(), sample.begin() + static_cast<long>(sample.size() / 2), sample.end());
    const int median = sample.empty() ? 255 : sample[sample.size() / 2];
    if (median < kDarkPageMedian)
      throw ImageError("page is nearly black (median grey " + std::to_string(median) +
                       " of 255): not a scan of paper, or scanned with the lid open");
  }
  cv::Mat flat;
  cv::divide(gray_in, background_of(gray_in), flat, 255.0);

  double noise = 1;
  paper_level(flat, page.paper, noise);
  // Ink: clearly darker than paper noise; the threshold sits half way to the typical ink.
  const double dark = page.paper - std::max(40.0, 6.0 * noise);
  std::vector<uint8_t> inky;
  for (int y = 0; y < flat.rows; y += 2) {
    const uint8_t* row = flat.ptr<uint8_t>(y);
    for (int x = 0; x < flat.cols; x += 2)
      if (row[x] < dark) inky.push_back(row[x]);
  }
  if (inky.empty() || inky.size() * 4 < static_cast<size_t>(flat.total() / 20000)) {  // blank page
    page.flat = flat;
    page.ink = cv::Mat::zeros(flat.size(), CV_8U);
    page.lines = cv::Mat::zeros(flat.size(), CV_8U);
    page.to_page = (cv::Mat_<double>(2, 3) << 1, 0, 0, 0, 1, 0);
    page.ink_level = page.paper;
    return page;
  }
  std::nth_element(inky.begin(), inky.begin() + static_cast<long>(inky.size() / 2), inky.end());
  page.ink_level = inky[inky.size() / 2];
  // Faint strokes (a light pen, a tired hand) sit between paper and typical ink: keep
  // everything clearly off the paper's noise.
  const double threshold = std::max((page.paper + page.ink_level) / 2, page.paper - std::max(65.0, 7.0 * noise));

  cv::Mat ink = flat < threshold;
  // Deskew on a 4x smaller mask.
  cv::Mat small;
  cv::resize(ink, small, cv::Size(std::max(1, ink.cols / 4), std::max(1, ink.rows / 4)), 0, 0, cv::INTER_AREA);
  page.skew_deg = estimate_skew(small > 64, options.max_skew_deg);
  if (std::abs(page.skew_deg) >= 0.1) {
    const cv::Point2f centre(static_cast<float>(flat.cols) / 2.0f, static_cast<float>(flat.rows) / 2.0f);
    cv::Mat rotation = cv::getRotationMatrix2D(centre, page.skew_deg, 1.0);
    const double a = std::abs(page.skew_deg) * kPi / 180.0;
    const int w = static_cast<int>(std::ceil(flat.cols * std::cos(a) + flat.rows * std::sin(a)));
    const int h = static_cast<int>(std::ceil(flat.cols * std::sin(a) + flat.rows * std::cos(a)));
    rotation.at<double>(0, 2) += (w - flat.cols) / 2.0;
    rotation.at<double>(1, 2) += (h - flat.rows) / 2.0;
    cv::Mat turned;
    cv::warpAffine(flat, turned, rotation, cv::Size(w, h), cv::INTER_LINEAR, cv::BORDER_CONSTANT,
                   cv::Scalar(page.paper));
    flat = turned;
    cv::invertAffineTransform(rotation, page.to_page);
    ink = flat < threshold;
  } else {
    page.skew_deg = 0;
    page.to_page = (cv::Mat_<double>(2, 3) << 1, 0, 0, 0, 1, 0);
  }
  page.lines = options.remove_lines ? remove_lines(ink, options.min_line_length) : cv::Mat::zeros(ink.size(), CV_8UC1);
  {
    // Hysteresis: fainter pixels joined to clear ink are ink too, so that a light stroke
    // (a 1 drawn with little pressure) stays one piece instead of breaking into dashes. Not
    // near removed form lines, whose faint edges would glue digits to them.
    const double faint = page.paper - std::max(35.0, 5.0 * noise);
    if (faint > threshold) {
      cv::Mat weak = flat < faint, near_lines;
      cv::dilate(page.lines, near_lines, cv::getStructuringElement(cv::MORPH_RECT, cv::Size(7, 7)));
      weak.setTo(0, near_lines);
      const Components parts = find_components(weak);
      std::vector<uint8_t> joined(static_cast<size_t>(parts.count()), 0);
      for (const InkRun& r : parts.runs) {
        const uint8_t* k = ink.ptr<uint8_t>(r.y);
        if (std::any_of(k + r.x0, k + r.x1, [](uint8_t v) { return v != 0; })) joined[static_cast<size_t>(r.label)] = 1;
      }
      parts.paint(ink, {0, 0}, [&](int label) { return joined[static_cast<size_t>(label)] != 0; });
    }
  }
  page.flat = flat;
  page.ink = ink;
  return page;
}

}  // namespace

CleanedPage clean_page(const cv::Mat& stored, const CleanOptions& options, double dpi) {
  CV_Assert(stored.type() == CV_8UC1);
  // Resampled to the working resolution: working pixels per stored pixel, across and down.
  double scale_x = 1, scale_y = 1;
  cv::Mat gray_in = stored;
  if (dpi > 0 && std::abs(dpi - kWorkingDpi) > 0.1 * kWorkingDpi &&
      static_cast<double>(stored.total()) * (kWorkingDpi / dpi) * (kWorkingDpi / dpi) <= kMaxWorkingPixels) {
    const cv::Size size(std::max(1, static_cast<int>(std::lround(stored.cols * kWorkingDpi / dpi))),
                        std::max(1, static_cast<int>(std::lround(stored.rows * kWorkingDpi / dpi))));
    // Enlarged, a grey scan keeps sharper strokes bicubic; a black-and-white one would ring
    // (grey halos beside every edge), so it is enlarged bilinearly.
    const bool black_and_white = dpi < kWorkingDpi && cv::countNonZero((stored > 0) & (stored < 255)) == 0;
    cv::resize(stored, gray_in, size, 0, 0,
               dpi > kWorkingDpi ? cv::INTER_AREA : black_and_white ? cv::INTER_LINEAR : cv::INTER_CUBIC);
    scale_x = static_cast<double>(size.width) / stored.cols;
    scale_y = static_cast<double>(size.height) / stored.rows;
  }
  CleanedPage page = clean_at_working_resolution(gray_in, options);
  for (int c = 0; c < 3; ++c) {
    page.to_page.at<double>(0, c) /= scale_x;
    page.to_page.at<double>(1, c) /= scale_y;
  }
  return page;
}

}  // namespace digitflow::pipeline

// Cleaning a scanned page before segmentation: flatten the paper (divide by a smoothed
// background, which removes uneven light and off-white tints), estimate and undo the skew
// (projection profiles of the ink), binarise, and take out straight form lines and box
// borders while keeping the strokes that cross them.
#pragma once

#include <opencv2/core.hpp>

namespace digitflow::pipeline {

struct CleanOptions {
  double max_skew_deg = 8.0;   // search range of the deskew, both ways
  int min_line_length = 110;   // a straight run at least this long (px) is a form line
  bool remove_lines = true;    // false for ink with no form (a number drawn on the pad)
};

struct CleanedPage {
  cv::Mat flat;     // 8-bit grey, paper ~255, deskewed
  cv::Mat ink;      // 8-bit mask (255 = ink) on `flat`, form lines removed
  cv::Mat lines;    // 8-bit mask of the removed lines (for overlays and tests)
  double skew_deg = 0;  // the page's ink was rotated by this much (counter-clockwise positive)
  cv::Mat to_page;  // 2x3 CV_64F affine: deskewed coordinates -> stored page coordinates
  double paper = 255, ink_level = 0;  // grey levels on `flat` of paper and of typical ink
};

// A page whose median grey is below this is "nearly black" and refused by clean_page.
constexpr int kDarkPageMedian = 60;

// The resolution cleaning and segmentation work at: their sizes in pixels (a form line's
// length, a digit's height, the gaps between digits) and the models' training pages are
// 300 dpi. A page is not resampled to it when that would take it over kMaxWorkingPixels.
constexpr double kWorkingDpi = 300;
constexpr double kMaxWorkingPixels = 80e6;

// Throws ImageError for a page that is nearly black (not a scan of paper). A blank page is
// not an error: its ink mask is empty. `dpi` is the page's stored resolution when known (0:
// unknown, taken as it is): a page more than a tenth off kWorkingDpi (a check scanned at 200
// dpi, a 600 dpi scan) is resampled to it first. `to_page` maps back to the pixels as stored
// either way.
CleanedPage clean_page(const cv::Mat& gray, const CleanOptions& options = {}, double dpi = 0);

// The skew of the ink in a binary mask, in degrees within +-max_deg (exposed for tests).
double estimate_skew(const cv::Mat& ink, double max_deg);

// Removes lines longer than min_length from a binary ink mask, in place; returns the mask of
// what was removed. Strokes that cross a removed line are bridged back.
cv::Mat remove_lines(cv::Mat& ink, int min_length);

}  // namespace digitflow::pipeline

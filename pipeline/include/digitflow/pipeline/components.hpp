// Connected components of a binary mask (8-connected), found from its horizontal runs of
// ink. A scanned page is mostly paper: each pixel is looked at once to find the runs, and
// the rest works on runs only, with no label image the size of the page (35 MB of int32
// for an A4 page at 300 dpi, which cv::connectedComponents writes and the caller reads).
#pragma once

#include <algorithm>
#include <cstdint>
#include <opencv2/core.hpp>
#include <vector>

namespace digitflow::pipeline {

// Nonzero pixels [x0, x1) of row y, all of component `label` (1 .. count() - 1).
struct InkRun {
  int y = 0, x0 = 0, x1 = 0;
  int label = 0;
};

struct Components {
  std::vector<InkRun> runs;     // in raster order
  std::vector<int> row_start;   // the runs of row y are runs[row_start[y]] .. runs[row_start[y + 1] - 1]
  std::vector<cv::Rect> boxes;  // per label; boxes[0], the background, is empty
  std::vector<int> areas;       // pixels per label; areas[0] is 0

  // Labels, the background's included (as cv::connectedComponents counts them).
  int count() const { return static_cast<int>(boxes.size()); }

  // Sets `value` on the pixels of `out` whose label passes `keep(label)`. `out` (8-bit) is a
  // window on the labelled mask: its pixel (x, y) is the mask's (origin.x + x, origin.y + y).
  template <class Keep>
  void paint(cv::Mat& out, cv::Point origin, Keep&& keep, uint8_t value = 255) const {
    const int y_end = std::min(origin.y + out.rows, static_cast<int>(row_start.size()) - 1);
    for (int y = std::max(origin.y, 0); y < y_end; ++y) {
      uint8_t* row = out.ptr<uint8_t>(y - origin.y);
      for (int i = row_start[static_cast<size_t>(y)]; i < row_start[static_cast<size_t>(y) + 1]; ++i) {
        const InkRun& r = runs[static_cast<size_t>(i)];
        const int x0 = std::max(r.x0, origin.x), x1 = std::min(r.x1, origin.x + out.cols);
        if (x0 >= x1 || !keep(r.label)) continue;
        std::fill(row + (x0 - origin.x), row + (x1 - origin.x), value);
      }
    }
  }
};

// The 8-connected components of the nonzero pixels of an 8-bit, one-channel mask. Labels are
// numbered as cv::connectedComponentsWithStats numbers them (by where each component is
// first met, scanning the image in rows of 2x2 blocks), so that code written against one
// finds the same numbers in the other.
Components find_components(const cv::Mat& mask);

// The opening of a binary (0 / nonzero) mask by a line of `length` pixels, along rows
// (horizontal) or columns (vertical), exactly as cv::morphologyEx(MORPH_OPEN) computes it
// with a cv::MORPH_RECT of length x 1 (1 x length) and its default anchor and border: every
// run of at least `length` pixels, those at the mask's edges from half of it (the border
// counts as ink to the erosion); an even length moves the result one pixel right (down).
// Made from runs, in time that grows with the pixels, not with `length`. Values are 0 / 255.
cv::Mat open_horizontal(const cv::Mat& mask, int length);
cv::Mat open_vertical(const cv::Mat& mask, int length);

}  // namespace digitflow::pipeline

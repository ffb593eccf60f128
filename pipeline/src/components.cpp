// Connected components from runs: the runs of each row are joined to the runs of the row
// above that they touch (8-connectivity: overlapping, or meeting at a corner) in a
// union-find whose root is a component's first run; labels are then numbered as OpenCV
// numbers them.
#include "digitflow/pipeline/components.hpp"

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numeric>
#include <stdexcept>

namespace digitflow::pipeline {

namespace {

// The first nonzero byte of p[x .. end), or end; eight bytes at a time over paper.
int next_ink(const uint8_t* p, int x, int end) {
  while (x + 8 <= end) {
    uint64_t word;
    std::memcpy(&word, p + x, 8);
    if (word != 0) {
      if constexpr (std::endian::native == std::endian::little) return x + std::countr_zero(word) / 8;
      else return x + std::countl_zero(word) / 8;
    }
    x += 8;
  }
  while (x < end && p[x] == 0) ++x;
  return x;
}

// Calls run(x0, x1) for each run of nonzero bytes [x0, x1) of the row p[0 .. width).
template <class Run>
void for_each_run(const uint8_t* p, int width, Run&& run) {
  for (int x = next_ink(p, 0, width); x < width; x = next_ink(p, x, width)) {
    const int x0 = x;
    while (x < width && p[x] != 0) ++x;
    run(x0, x);
  }
}

int root_of(std::vector<int>& parent, int i) {
  while (parent[static_cast<size_t>(i)] != i) {
    const int up = parent[static_cast<size_t>(parent[static_cast<size_t>(i)])];
    parent[static_cast<size_t>(i)] = up;
    i = up;
  }
  return i;
}

// Where a run [s, e] (inclusive, in [0, size)) of ink along a line of `size` pixels leaves
// ink after an opening by `length` (anchor length / 2): the erosion keeps the anchors whose
// window lies in the run (or past the edge), the dilation spreads them back over the same
// window offsets. Returns false when nothing is left.
bool opened(int s, int e, int size, int length, int& d0, int& d1) {
  const int a = length / 2, after = length - 1 - a;
  const int x0 = s == 0 ? 0 : s + a;
  const int x1 = e == size - 1 ? size - 1 : e - after;
  if (x0 > x1) return false;
  d0 = std::max(0, x0 - after);
  d1 = std::min(size - 1, x1 + a);
  return true;
}

}  // namespace

cv::Mat open_horizontal(const cv::Mat& mask, int length) {
  if (mask.type() != CV_8UC1 || length < 1) throw std::invalid_argument("open_horizontal takes an 8-bit mask and a length >= 1");
  cv::Mat out = cv::Mat::zeros(mask.size(), CV_8U);
  for (int y = 0; y < mask.rows; ++y) {
    const uint8_t* p = mask.ptr<uint8_t>(y);
    uint8_t* o = out.ptr<uint8_t>(y);
    for_each_run(p, mask.cols, [&](int x0, int x1) {
      int d0 = 0, d1 = 0;
      if (opened(x0, x1 - 1, mask.cols, length, d0, d1)) std::fill(o + d0, o + d1 + 1, uint8_t{255});
    });
  }
  return out;
}

cv::Mat open_vertical(const cv::Mat& mask, int length) {
  if (mask.type() != CV_8UC1 || length < 1) throw std::invalid_argument("open_vertical takes an 8-bit mask and a length >= 1");
  cv::Mat out = cv::Mat::zeros(mask.size(), CV_8U);
  const int w = mask.cols, h = mask.rows;
  std::vector<int> start(static_cast<size_t>(w), 0);  // the first row of the run open in each column
  const std::vector<uint8_t> paper(static_cast<size_t>(w), 0);
  auto finish = [&](int x, int s, int e) {
    int d0 = 0, d1 = 0;
    if (opened(s, e, h, length, d0, d1))
      for (int y = d0; y <= d1; ++y) out.at<uint8_t>(y, x) = 255;
  };
  // Columns change only where a row differs from the row above: find those eight bytes at a time.
  for (int y = 0; y <= h; ++y) {
    const uint8_t* cur = y < h ? mask.ptr<uint8_t>(y) : paper.data();
    const uint8_t* above = y > 0 ? mask.ptr<uint8_t>(y - 1) : paper.data();
    for (int x = 0; x < w;) {
      if (x + 8 <= w) {
        uint64_t a, b;
        std::memcpy(&a, cur + x, 8);
        std::memcpy(&b, above + x, 8);
        if (a == b) {
          x += 8;
          continue;
        }
      }
      const int end = std::min(w, x + 8);
      for (; x < end; ++x) {
        const bool now = cur[x] != 0, before = above[x] != 0;
        if (now == before) continue;
        if (now) start[static_cast<size_t>(x)] = y;
        else finish(x, start[static_cast<size_t>(x)], y - 1);
      }
    }
  }
  return out;
}

Components find_components(const cv::Mat& mask) {
  if (mask.type() != CV_8UC1) throw std::invalid_argument("find_components takes an 8-bit, one-channel mask");
  Components c;
  c.row_start.assign(static_cast<size_t>(mask.rows) + 1, 0);
  std::vector<int> parent;
  for (int y = 0; y < mask.rows; ++y) {
    const uint8_t* p = mask.ptr<uint8_t>(y);
    const int above = y > 0 ? c.row_start[static_cast<size_t>(y) - 1] : 0;
    const int here = static_cast<int>(c.runs.size());
    c.row_start[static_cast<size_t>(y)] = here;
    int j = above;  // the first run above that may touch the next run of this row
    for_each_run(p, mask.cols, [&](int x0, int x1) {
      const int index = static_cast<int>(c.runs.size());
      c.runs.push_back({y, x0, x1, 0});
      parent.push_back(index);
      while (j < here && c.runs[static_cast<size_t>(j)].x1 < x0) ++j;
      for (int k = j; k < here && c.runs[static_cast<size_t>(k)].x0 <= x1; ++k) {
        const int a = root_of(parent, k), b = root_of(parent, index);
        if (a < b) parent[static_cast<size_t>(b)] = a;
        else parent[static_cast<size_t>(a)] = b;
      }
    });
  }
  c.row_start[static_cast<size_t>(mask.rows)] = static_cast<int>(c.runs.size());

  // Where each component is first met in a scan of 2x2 blocks: its smallest (row / 2, column / 2).
  const size_t n_runs = c.runs.size();
  std::vector<int64_t> first(n_runs, std::numeric_limits<int64_t>::max());
  std::vector<int> roots;
  for (size_t i = 0; i < n_runs; ++i) {
    const int root = root_of(parent, static_cast<int>(i));
    parent[i] = root;
    if (root == static_cast<int>(i)) roots.push_back(root);
    const InkRun& r = c.runs[i];
    first[static_cast<size_t>(root)] =
        std::min(first[static_cast<size_t>(root)], static_cast<int64_t>(r.y / 2) << 32 | (r.x0 / 2));
  }
  std::sort(roots.begin(), roots.end(), [&](int a, int b) {
    return first[static_cast<size_t>(a)] < first[static_cast<size_t>(b)];
  });
  std::vector<int> label_of_root(n_runs, 0);
  for (size_t k = 0; k < roots.size(); ++k) label_of_root[static_cast<size_t>(roots[k])] = static_cast<int>(k) + 1;
  c.boxes.assign(roots.size() + 1, cv::Rect());
  c.areas.assign(roots.size() + 1, 0);
  std::vector<int> right(roots.size() + 1, 0), bottom(roots.size() + 1, 0);
  for (size_t i = 0; i < n_runs; ++i) {
    InkRun& r = c.runs[i];
    r.label = label_of_root[static_cast<size_t>(parent[i])];  // parent[i] is its root, set above
    const auto l = static_cast<size_t>(r.label);
    cv::Rect& box = c.boxes[l];
    if (c.areas[l] == 0) {
      box = cv::Rect(r.x0, r.y, 0, 0);
      right[l] = r.x1;
    }
    box.x = std::min(box.x, r.x0);
    right[l] = std::max(right[l], r.x1);
    bottom[l] = r.y + 1;
    c.areas[l] += r.x1 - r.x0;
  }
  for (size_t l = 1; l < c.boxes.size(); ++l) {
    c.boxes[l].width = right[l] - c.boxes[l].x;
    c.boxes[l].height = bottom[l] - c.boxes[l].y;
  }
  return c;
}

}  // namespace digitflow::pipeline

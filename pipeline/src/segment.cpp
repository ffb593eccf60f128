// Segmentation of a cleaned page into digit strings, and reading them from CNN scores.
#include "digitflow/pipeline/segment.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <opencv2/imgproc.hpp>

#include "digitflow/pipeline/components.hpp"

namespace digitflow::pipeline {

namespace {

Box to_box(const cv::Rect& r) { return {r.x, r.y, r.width, r.height}; }
cv::Rect to_rect(const Box& b) { return {b.x, b.y, b.w, b.h}; }

struct UnionFind {
  std::vector<int> parent;
  explicit UnionFind(int n) : parent(static_cast<size_t>(n)) { std::iota(parent.begin(), parent.end(), 0); }
  int find(int i) {
    while (parent[static_cast<size_t>(i)] != i) i = parent[static_cast<size_t>(i)] = parent[static_cast<size_t>(parent[static_cast<size_t>(i)])];
    return i;
  }
  void join(int a, int b) { parent[static_cast<size_t>(find(a))] = find(b); }
};

int overlap(int a0, int a1, int b0, int b1) { return std::min(a1, b1) - std::max(a0, b0); }

// The middle value (the upper one of an even count); `values` is reordered, not empty.
int median(std::vector<int>& values) {
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(values.size() / 2), values.end());
  return values[values.size() / 2];
}

// Keeps the connected parts of `mask` that hold at least `share` of its ink. Labelled from
// runs: cv::connectedComponentsWithStats costs about 20 us on a digit-sized mask, most of
// it setting up, and this runs for every piece of every cut.
cv::Mat drop_fragments(const cv::Mat& mask, double share) {
  const Components components = find_components(mask);
  const int n = components.count();
  if (n <= 2) return mask;
  int total = 0;
  for (int i = 1; i < n; ++i) total += components.areas[static_cast<size_t>(i)];
  cv::Mat kept = cv::Mat::zeros(mask.size(), CV_8U);
  components.paint(kept, {0, 0}, [&](int label) { return components.areas[static_cast<size_t>(label)] >= share * total; });
  return kept;
}

// A cut through a slot: the first column of the right-hand side, row by row (slot-relative).
using CutPath = std::vector<int>;

// A piece of a slot's mask (slot-relative): the ink right of `left` (when given) and left of
// `right` (when given), trimmed to its ink with stray fragments dropped.
bool make_piece(const cv::Mat& slot_mask, const Box& slot_box, const CutPath* left, const CutPath* right, Piece& piece) {
  cv::Mat part = cv::Mat::zeros(slot_mask.size(), CV_8U);
  for (int y = 0; y < slot_mask.rows; ++y) {
    const int x0 = left ? std::max(0, (*left)[static_cast<size_t>(y)]) : 0;
    const int x1 = right ? std::min(slot_mask.cols, (*right)[static_cast<size_t>(y)]) : slot_mask.cols;
    const uint8_t* m = slot_mask.ptr<uint8_t>(y);
    uint8_t* o = part.ptr<uint8_t>(y);
    for (int x = x0; x < x1; ++x) o[x] = m[x];
  }
  part = drop_fragments(part, 0.12);
  const cv::Rect r = cv::boundingRect(part);
  if (r.area() == 0) return false;
  piece.mask = part(r).clone();
  piece.box = {slot_box.x + r.x, slot_box.y + r.y, r.width, r.height};
  return true;
}

// The cheapest top-to-bottom path through a slot's mask near column `near`: each row moves at
// most one column, crossing ink costs much more than paper, and straying from `near` a
// little. Where two digits touch at a slant, it runs between them where a straight cut
// would slice one of them.
CutPath ink_path(const cv::Mat& mask, int near, int window) {
  const int h = mask.rows;
  const int lo = std::max(1, near - window), hi = std::min(mask.cols - 1, near + window + 1);
  const int span = hi - lo;
  CutPath path(static_cast<size_t>(h), near);
  if (span <= 0 || h == 0) return path;
  std::vector<double> cost(static_cast<size_t>(span)), next(static_cast<size_t>(span));
  std::vector<int> from(static_cast<size_t>(h) * static_cast<size_t>(span), 0);
  auto step = [&](int y, int x) {
    return (mask.at<uint8_t>(y, x) ? 10.0 : 0.0) + 0.5 * std::abs(x - near) / std::max(1, window);
  };
  for (int x = lo; x < hi; ++x) cost[static_cast<size_t>(x - lo)] = step(0, x);
  for (int y = 1; y < h; ++y) {
    for (int i = 0; i < span; ++i) {
      int best = i;
      for (int d = -1; d <= 1; d += 2)
        if (i + d >= 0 && i + d < span && cost[static_cast<size_t>(i + d)] + 0.2 < cost[static_cast<size_t>(best)]) best = i + d;
      next[static_cast<size_t>(i)] = cost[static_cast<size_t>(best)] + (best != i ? 0.2 : 0.0) + step(y, lo + i);
      from[static_cast<size_t>(y) * static_cast<size_t>(span) + static_cast<size_t>(i)] = best;
    }
    std::swap(cost, next);
  }
  int i = static_cast<int>(std::min_element(cost.begin(), cost.end()) - cost.begin());
  for (int y = h - 1; y >= 0; --y) {
    path[static_cast<size_t>(y)] = lo + i;
    i = from[static_cast<size_t>(y) * static_cast<size_t>(span) + static_cast<size_t>(i)];
  }
  return path;
}

// Column positions in [lo, hi) where the ink is thinnest, best first, at least `apart`
// from each other.
std::vector<int> thin_columns(const std::vector<double>& count, int lo, int hi, int apart, int how_many) {
  std::vector<int> order;
  for (int x = std::max(1, lo); x < std::min(static_cast<int>(count.size()) - 1, hi); ++x) order.push_back(x);
  const double middle = (lo + hi) / 2.0, half = std::max(1.0, (hi - lo) / 2.0);
  auto cost = [&](int x) { return count[static_cast<size_t>(x)] * (1.0 + 0.3 * std::abs(x - middle) / half); };
  std::sort(order.begin(), order.end(), [&](int a, int b) { return cost(a) < cost(b); });
  std::vector<int> chosen;
  for (int x : order) {
    if (static_cast<int>(chosen.size()) >= how_many) break;
    if (std::all_of(chosen.begin(), chosen.end(), [&](int c) { return std::abs(c - x) >= apart; })) chosen.push_back(x);
  }
  return chosen;
}

// Normalises a piece from the grey page under it: `flat` is a region of the flattened page
// whose top-left is `at`, holding the piece's box. The ink, grown a little, is laid on
// paper; false when the piece cannot be normalised (no ink).
bool normalize_piece(const cv::Mat& flat, cv::Point at, double paper, Piece& piece) {
  static const cv::Mat grow = cv::getStructuringElement(cv::MORPH_ELLIPSE, cv::Size(5, 5));
  const cv::Rect r = to_rect(piece.box) - at;
  const cv::Rect padded = (r + cv::Size(4, 4) - cv::Point(2, 2)) & cv::Rect(0, 0, flat.cols, flat.rows);
  cv::Mat mask = cv::Mat::zeros(padded.size(), CV_8U);
  piece.mask.copyTo(mask(cv::Rect(r.x - padded.x, r.y - padded.y, r.width, r.height)));
  piece.mask.release();
  cv::dilate(mask, mask, grow);
  cv::Mat image(padded.size(), CV_8U, cv::Scalar(paper));
  flat(padded).copyTo(image, mask);
  try {
    piece.pixels = normalize_digit(image);
    return true;
  } catch (const ImageError&) {
    return false;
  }
}

// Whether a string candidate is a line of print, judged on its blobs read whole (first CNN
// pass): most of them are "not a digit". Cut into halves, printed letters pass for 1s and
// 7s, so such a line is neither cut nor read. A row of touching handwritten digits has some
// blobs rejected whole (two glued digits are "not a digit" to the model), rarely most; in a
// short one they can be ("$", "6", then "58" glued), so a rejected blob as wide as two or
// three glued digits (1.25 to 2.5 times its height) has no vote while another blob is not
// rejected.
// Printed words at the height of digits have rejected blobs that wide as well ("mm", "Pay"
// joined): with the limit at 0.9 times the height, 25 lines of print on the 600 free pages
// of seeds 9090, 2026 and 4242 came out as strings, at 1.0 five, at 1.1 and 1.25 none.
bool looks_like_print(const Segmentation& seg, const StringCandidate& candidate, const float* probs, int classes) {
  if (classes <= 10) return false;
  int read = 0, rejected = 0, glued = 0;
  for (const Slot& slot : candidate.slots) {
    if (slot.hypotheses.empty()) continue;
    const size_t whole = static_cast<size_t>(slot.hypotheses[0].pieces[0]);
    const bool no_digit = seg.pieces[whole].usable && probs[whole * static_cast<size_t>(classes) + 10] >= 0.5f;
    if (no_digit && slot.box.w > 1.25 * slot.box.h && slot.box.w <= 2.5 * slot.box.h) {
      ++glued;
      continue;
    }
    ++read;
    if (no_digit) ++rejected;
  }
  if (read == rejected) read += glued, rejected += glued;  // no digit among the others: they vote
  return read >= 2 && 2 * rejected > read;
}

// A 5's flag written apart, drawn beside or above the top of its body: a short flat stroke
// that shares too few columns with the body, or floats too high over it, for the join of
// broken strokes. Too flat to be a slot, or read as small context only, it would be dropped,
// leaving a body that reads as "not a digit", 2, 3 or 1, and a gap wide enough to split the
// string there. A stroke under the digit height (options.min_digit_height), more than twice
// as wide as tall and at least a third of that height wide joins the digit-height group on
// its left that is nearest (by the gap from its right edge to the stroke's start) when:
// - it is level with or over the group's top: its top at most `above` of the group's height
//   above it, its bottom from `floating` of that height above it to 0.4 of it below;
// - it starts past the group's middle and at most `near` of its height after it;
// - the two together are no wider than `wide` of its height.
// A stroke that lies the same way over a third of its width of another digit-height group,
// one no more than 1.5 times as tall as the body, is left alone: it may be that digit's (a
// 7's bar written apart, over a 7 in pieces that the join above did not reach). A signature
// or a block of print below is no such group.
void join_flags(const Components& components, const std::vector<int>& kept, UnionFind& groups,
                const SegmentOptions& options) {
  const size_t n = static_cast<size_t>(components.count());
  std::vector<cv::Rect> box(n);
  for (int i : kept) {
    cv::Rect& b = box[static_cast<size_t>(groups.find(i))];
    b = b.empty() ? components.boxes[static_cast<size_t>(i)] : (b | components.boxes[static_cast<size_t>(i)]);
  }
  std::vector<int> digits, flags;
  for (size_t g = 0; g < n; ++g) {
    const cv::Rect& b = box[g];
    if (b.empty()) continue;
    if (b.height >= options.min_digit_height && b.height <= options.max_digit_height) digits.push_back(static_cast<int>(g));
    else if (b.height < options.min_digit_height && b.width > 2 * b.height && 3 * b.width >= options.min_digit_height)
      flags.push_back(static_cast<int>(g));
  }
  constexpr double near = 0.3, above = 0.9, floating = 0.6, wide = 2.6;
  for (int f : flags) {
    const cv::Rect r = box[static_cast<size_t>(f)];
    auto level = [&](const cv::Rect& d) {
      const double h = d.height;
      return r.y >= d.y - above * h && r.y + r.height <= d.y + 0.4 * h && r.y + r.height >= d.y - floating * h;
    };
    auto beside = [&](const cv::Rect& d) {
      const double h = d.height;
      return 2 * r.x >= 2 * d.x + d.width && r.x - (d.x + d.width) <= near * h && r.x + r.width - d.x <= wide * h;
    };
    int best = -1;
    int best_gap = std::numeric_limits<int>::max();
    for (int g : digits) {
      const cv::Rect& d = box[static_cast<size_t>(g)];
      const int gap = std::abs(r.x - (d.x + d.width));
      if (level(d) && beside(d) && gap < best_gap) best_gap = gap, best = g;
    }
    if (best < 0) continue;
    const int body = box[static_cast<size_t>(best)].height;
    bool over_another = false;
    for (int g : digits) {
      const cv::Rect& d = box[static_cast<size_t>(g)];
      if (2 * d.height <= 3 * body && level(d) && !beside(d) &&
          3 * overlap(r.x, r.x + r.width, d.x, d.x + d.width) >= r.width)
        over_another = true;
    }
    if (!over_another) groups.join(f, best);
  }
}

// Whether strokes `a` and `b` side by side could be one digit (`digit` px tall) written in
// two: each of about the digit's height and a quarter of it wide or more, the two together
// no taller or wider than 1.3 of it.
bool one_digit_in_two(const cv::Rect& a, const cv::Rect& b, double digit) {
  const cv::Rect both = a | b;
  return a.height >= 0.75 * digit && b.height >= 0.75 * digit && both.height <= 1.3 * digit && a.width >= 0.25 * digit &&
         b.width >= 0.25 * digit && both.width <= 1.3 * digit;
}

}  // namespace

// The ink a form line took from a digit standing on it (a 2's base drawn along the
// underline). The line is the rows, within 15 px of the blob `r`'s bottom, where removed
// line pixels (CleanedPage::lines) lie under half of its columns or more; there must be
// such rows. Along the line, the page is darker where a pen's stroke lies on it: each
// column's darkness (paper minus grey, summed over the line's rows and 6 px either side)
// is compared with its median along the line (three blob widths either way). Columns in
// [x0, x1) a quarter darker or more, in runs at least 0.3 of the blob's height long (where
// a stroke's end only meets the line, the run is shorter), give back the line's pixels in
// those rows. Empty when there is none (`where` is then left as it was); else `where` is
// its rectangle on the page.
cv::Mat ink_under_line(const CleanedPage& page, const cv::Rect& r, int x0, int x1, cv::Rect& where) {
  const cv::Mat& lines = page.lines;
  if (lines.empty() || page.flat.empty()) return {};
  const cv::Rect inside(0, 0, lines.cols, lines.rows);
  const cv::Rect below = cv::Rect(r.x, r.y + r.height - 15, r.width, 30) & inside;
  int top = -1, bottom = -1;
  for (int y = below.y; y < below.y + below.height; ++y) {
    const int on = cv::countNonZero(lines.row(y).colRange(below.x, below.x + below.width));
    if (2 * on < r.width) continue;  // a box's side, not a line under the blob
    top = top < 0 ? y : top;
    bottom = y;
  }
  if (top < 0) return {};
  const int ya = std::max(0, top - 6), yb = std::min(lines.rows, bottom + 7);
  const int wa = std::max(0, r.x - 3 * r.width), wb = std::min(lines.cols, r.x + 4 * r.width);
  x0 = std::max(x0, wa), x1 = std::min(x1, wb);
  if (x0 >= x1) return {};
  std::vector<double> dark(static_cast<size_t>(wb - wa), -1.0);  // -1: no line in that column
  std::vector<double> along;
  for (int x = wa; x < wb; ++x) {
    bool line = false;
    for (int y = top; y <= bottom && !line; ++y) line = lines.at<uint8_t>(y, x) != 0;
    if (!line) continue;
    double sum = 0;
    for (int y = ya; y < yb; ++y) sum += std::max(0.0, page.paper - page.flat.at<uint8_t>(y, x));
    dark[static_cast<size_t>(x - wa)] = sum;
    along.push_back(sum);
  }
  if (static_cast<int>(along.size()) < 2 * r.width) return {};
  std::nth_element(along.begin(), along.begin() + static_cast<std::ptrdiff_t>(along.size() / 2), along.end());
  const double darker = 1.25 * along[along.size() / 2];
  std::vector<int> keep;  // columns given back
  for (int x = x0; x < x1;) {
    int end = x;
    while (end < x1 && dark[static_cast<size_t>(end - wa)] >= darker) ++end;
    if (end - x >= 0.3 * r.height)
      for (int k = x; k < end; ++k) keep.push_back(k);
    x = std::max(end, x + 1);
  }
  if (keep.empty()) return {};
  where = cv::Rect(keep.front(), top, keep.back() + 1 - keep.front(), bottom + 1 - top);
  cv::Mat out = cv::Mat::zeros(where.size(), CV_8U);
  for (int x : keep)
    for (int y = top; y <= bottom; ++y) out.at<uint8_t>(y - top, x - where.x) = lines.at<uint8_t>(y, x);
  return out;
}

Box map_box(const Box& box, const cv::Mat& affine, int width, int height) {
  const double* m0 = affine.ptr<double>(0);
  const double* m1 = affine.ptr<double>(1);
  double x0 = 1e18, y0 = 1e18, x1 = -1e18, y1 = -1e18;
  for (int corner = 0; corner < 4; ++corner) {
    const double x = box.x + ((corner & 1) ? box.w : 0), y = box.y + ((corner & 2) ? box.h : 0);
    const double px = m0[0] * x + m0[1] * y + m0[2], py = m1[0] * x + m1[1] * y + m1[2];
    x0 = std::min(x0, px), x1 = std::max(x1, px), y0 = std::min(y0, py), y1 = std::max(y1, py);
  }
  const int left = std::clamp(static_cast<int>(std::floor(x0)), 0, width);
  const int top = std::clamp(static_cast<int>(std::floor(y0)), 0, height);
  const int right = std::clamp(static_cast<int>(std::ceil(x1)), 0, width);
  const int bottom = std::clamp(static_cast<int>(std::ceil(y1)), 0, height);
  return {left, top, right - left, bottom - top};
}

Segmentation find_strings(const CleanedPage& page, const SegmentOptions& options) {
  Segmentation out;
  out.options = options;
  const Components components = find_components(page.ink);
  const int n = components.count();
  auto rect = [&](int i) { return components.boxes[static_cast<size_t>(i)]; };
  // Specks are dropped before anything is merged with them.
  const int speck = std::max(3, options.min_digit_height / 4);
  std::vector<int> kept;
  for (int i = 1; i < n; ++i) {
    const cv::Rect r = rect(i);
    if (std::max(r.width, r.height) >= speck && r.height <= options.max_digit_height * 2) kept.push_back(i);
  }
  // Broken strokes of one digit: boxes that share most of their columns and nearly touch.
  UnionFind groups(n);
  std::sort(kept.begin(), kept.end(), [&](int a, int b) { return rect(a).x < rect(b).x; });
  for (size_t a = 0; a < kept.size(); ++a) {
    const cv::Rect ra = rect(kept[a]);
    for (size_t b = a + 1; b < kept.size(); ++b) {
      const cv::Rect rb = rect(kept[b]);
      if (rb.x >= ra.x + ra.width) break;
      const int shared = overlap(ra.x, ra.x + ra.width, rb.x, rb.x + rb.width);
      const int gap = -overlap(ra.y, ra.y + ra.height, rb.y, rb.y + rb.height);
      const int tall = std::max(ra.height, rb.height);
      const int joint = std::max(ra.y + ra.height, rb.y + rb.height) - std::min(ra.y, rb.y);
      // A flat stroke over a digit's top (a 5's flag written apart) may reach well past it.
      const int low = std::min(ra.height, rb.height), low_width = ra.height < rb.height ? ra.width : rb.width;
      const bool flat_over = 2 * low < tall && 2 * low < low_width && 3 * shared >= low_width;
      if ((shared >= 0.5 * std::min(ra.width, rb.width) || flat_over) && gap <= 0.3 * tall &&
          (flat_over || gap <= 0.3 * low) && joint <= 2.2 * tall && joint <= options.max_digit_height)
        groups.join(kept[a], kept[b]);
    }
  }
  join_flags(components, kept, groups, options);
  std::vector<int> group_of(static_cast<size_t>(n), -1);
  std::vector<cv::Rect> group_rect;
  std::vector<int> root_index(static_cast<size_t>(n), -1);
  for (int i : kept) {
    const int root = groups.find(i);
    if (root_index[static_cast<size_t>(root)] < 0) {
      root_index[static_cast<size_t>(root)] = static_cast<int>(group_rect.size());
      group_rect.push_back(rect(i));
    } else {
      cv::Rect& g = group_rect[static_cast<size_t>(root_index[static_cast<size_t>(root)])];
      g |= rect(i);
    }
    group_of[static_cast<size_t>(i)] = root_index[static_cast<size_t>(root)];
  }
  // Slots: groups of a digit's size (tall enough; not long flat line debris).
  // Groups from half the digit height up take part in strings; those below the digit
  // height only as context (see Slot).
  std::vector<int> slots;
  for (size_t g = 0; g < group_rect.size(); ++g) {
    const cv::Rect& r = group_rect[g];
    if (2 * r.height < options.min_digit_height || r.height > options.max_digit_height) continue;
    if (r.width > 8 * r.height) continue;
    slots.push_back(static_cast<int>(g));
  }
  std::sort(slots.begin(), slots.end(), [&](int a, int b) {
    return group_rect[static_cast<size_t>(a)].x < group_rect[static_cast<size_t>(b)].x;
  });
  // Flat strokes too low to be digits or context: a digit's tail drawn out along the line
  // (a 2's base run on), which a gap in the ink may part from it.
  std::vector<int> tails;  // by their left edge
  for (size_t g = 0; g < group_rect.size(); ++g) {
    const cv::Rect& r = group_rect[g];
    if (r.height < options.min_digit_height && r.width >= 2 * r.height) tails.push_back(static_cast<int>(g));
  }
  std::sort(tails.begin(), tails.end(), [&](int a, int b) { return group_rect[static_cast<size_t>(a)].x < group_rect[static_cast<size_t>(b)].x; });
  // Strings: chain slots left to right on a shared baseline band with small gaps. A chain is
  // compared through its last slot of digit height (small context such as a detached dot
  // or a stroke's tail must not steer it; where that slot is short for the chain, the one
  // before it too) and its rightmost ink, a tail of its last digit's included: the next
  // digit is written after the tail. How far a slot may overlap the chain is judged
  // against its slots of digit height alone.
  std::vector<std::vector<int>> chains;
  // Per chain: its last slot of digit height and the one before that (-1: none), its
  // rightmost ink with tails and without, and its tallest slot.
  std::vector<int> anchor, before, right, body_right, tallest;
  for (int g : slots) {
    const cv::Rect& r = group_rect[static_cast<size_t>(g)];
    const bool full = r.height >= options.min_digit_height;
    int best = -1;
    double best_gap = 1e18;
    for (size_t c = 0; c < chains.size(); ++c) {
      const cv::Rect& last = group_rect[static_cast<size_t>(anchor[c])];
      const int tall = std::max(r.height, tallest[c]);
      const int gap = r.x - right[c];
      // On the rows of the last slot of digit height, or, where that one is short for the
      // chain (one stroke of a digit in pieces, its other strokes lower), of the one before.
      auto level_with = [&](int group) {
        if (group < 0) return false;
        const cv::Rect& d = group_rect[static_cast<size_t>(group)];
        return overlap(r.y, r.y + r.height, d.y, d.y + d.height) >= 0.45 * std::min(r.height, d.height);
      };
      const bool last_short = 4 * last.height < 3 * tall;
      if (!level_with(anchor[c]) && !(last_short && level_with(before[c]))) continue;
      // Overlap is judged against the slots of digit height: a tail credited to the last
      // digit may be the next one's lower stroke written apart (a 5's bowl under its flag).
      // Where either is short for the chain (strokes of one digit, joined below) it may
      // overlap the other fully; else by half the narrower at most.
      const bool stroke = 4 * r.height < 3 * tall || last_short;
      const double overlap_allowed = (stroke ? 1.0 : 0.5) * std::min(r.width, last.width);
      if (gap > options.string_gap * tall || r.x - body_right[c] < -overlap_allowed) continue;
      // A chain of digit height comes before one of small context only (a 5's flag that
      // started a chain of its own must not take the rest of its string).
      const double rank = gap + (group_rect[static_cast<size_t>(anchor[c])].height < options.min_digit_height ? 1e6 : 0.0);
      if (rank < best_gap) best_gap = rank, best = static_cast<int>(c);
    }
    if (best < 0) {
      chains.push_back({g});
      anchor.push_back(g);
      before.push_back(-1);
      right.push_back(r.x + r.width);
      body_right.push_back(full ? r.x + r.width : r.x);
      tallest.push_back(r.height);
    } else {
      const size_t c = static_cast<size_t>(best);
      chains[c].push_back(g);
      if (full || group_rect[static_cast<size_t>(anchor[c])].height < options.min_digit_height) {
        if (group_rect[static_cast<size_t>(anchor[c])].height >= options.min_digit_height) before[c] = anchor[c];
        anchor[c] = g;
      }
      right[c] = std::max(right[c], r.x + r.width);
      if (full) body_right[c] = std::max(body_right[c], r.x + r.width);
      tallest[c] = std::max(tallest[c], r.height);
    }
    if (full) {
      const size_t c = best < 0 ? chains.size() - 1 : static_cast<size_t>(best);
      auto t = std::lower_bound(tails.begin(), tails.end(), r.x + r.width / 2,
                                [&](int tail, int x) { return group_rect[static_cast<size_t>(tail)].x < x; });
      for (; t != tails.end() && group_rect[static_cast<size_t>(*t)].x <= r.x + r.width + 0.15 * r.height; ++t) {
        const cv::Rect& tail = group_rect[static_cast<size_t>(*t)];
        const int middle = tail.y + tail.height / 2;
        if (2 * middle >= 2 * r.y + r.height && middle <= r.y + 1.2 * r.height) right[c] = std::max(right[c], tail.x + tail.width);
      }
    }
  }
  // Pieces of one digit written in separate strokes side by side: neighbours in a chain,
  // each short of the chain's digit height, that together make a blob of about that height
  // (a 5's flag apart from its body); or a full-height stroke and a short one close beside
  // it that together are no wider than 1.3 of that height (a 6's stem and a loop as wide as
  // a 0, which read 1 and 0 apart: on the 1,500 pages of seeds 9090, 2026 and 4242, going
  // from 1.0 to 1.3 made 21 strings right and 3 wrong); or two strokes of about the digit
  // height whose columns overlap, each a quarter of that height wide or more and together
  // no wider than 1.3 of it (a 0 written as "(" and ")", which read 11 or 17; two digits
  // written apart leave a gap between their columns, and strokes a little apart are read
  // both ways, see Slot::join_next). A merged blob wide enough for two digits still gets
  // its cut readings, so a true 1 and a small 0 can come back as such; the cut at the join
  // of two such strokes is not taken for one too narrow (Slot::joined).
  std::vector<int> merged_into(group_rect.size());
  std::iota(merged_into.begin(), merged_into.end(), 0);
  std::vector<bool> joined(group_rect.size(), false);
  for (std::vector<int>& chain : chains) {
    std::vector<int> heights;
    for (int g : chain)
      if (group_rect[static_cast<size_t>(g)].height >= options.min_digit_height) heights.push_back(group_rect[static_cast<size_t>(g)].height);
    if (heights.size() < 2) continue;
    const double digit = median(heights);
    std::vector<int> kept_groups;
    for (int g : chain) {
      const cv::Rect r = group_rect[static_cast<size_t>(g)];
      if (!kept_groups.empty()) {
        cv::Rect& last = group_rect[static_cast<size_t>(kept_groups.back())];
        const cv::Rect both = last | r;
        const bool both_short = last.height < 0.75 * digit && r.height < 0.75 * digit && both.height >= 0.75 * digit &&
                                both.height <= 1.3 * digit && both.width <= 1.4 * digit && r.x - (last.x + last.width) <= 0.25 * digit;
        const bool stem_and_loop = (last.height < 0.75 * digit) != (r.height < 0.75 * digit) && both.height <= 1.3 * digit &&
                                   both.width <= 1.3 * digit && r.x - (last.x + last.width) <= 0.12 * digit;
        const bool arcs = one_digit_in_two(last, r, digit) && r.x < last.x + last.width &&
                          !joined[static_cast<size_t>(kept_groups.back())];
        if (both_short || stem_and_loop || arcs) {
          last = both;
          merged_into[static_cast<size_t>(g)] = kept_groups.back();
          if (arcs) joined[static_cast<size_t>(kept_groups.back())] = true;
          continue;
        }
      }
      kept_groups.push_back(g);
    }
    chain = std::move(kept_groups);
  }
  for (int& g : group_of)
    if (g >= 0) g = merged_into[static_cast<size_t>(g)];
  // Masks and hypotheses per slot. A chain where blobs below the digit height are at least
  // half is print (lower-case beside capitals): read_strings would drop it whatever the CNN
  // said of its larger blobs, so they are not scored at all.
  for (const std::vector<int>& chain : chains) {
    const auto small = std::count_if(chain.begin(), chain.end(), [&](int g) {
      return group_rect[static_cast<size_t>(g)].height < options.min_digit_height;
    });
    if (2 * small >= static_cast<long>(chain.size())) continue;
    StringCandidate candidate;
    std::vector<int> heights;
    for (int g : chain)
      if (group_rect[static_cast<size_t>(g)].height >= options.min_digit_height) heights.push_back(group_rect[static_cast<size_t>(g)].height);
    const double digit = heights.empty() ? 0.0 : median(heights);
    int previous = -1;  // the group of the last slot, when it was read whole
    for (size_t at = 0; at < chain.size(); ++at) {
      const int g = chain[at];
      const cv::Rect r = group_rect[static_cast<size_t>(g)];
      cv::Mat mask = cv::Mat::zeros(r.size(), CV_8U);
      components.paint(mask, r.tl(), [&](int label) { return group_of[static_cast<size_t>(label)] == g; });
      const int left = previous;  // the group of the slot just before, when it was read
      previous = -1;
      Slot slot;
      slot.box = to_box(r);
      slot.joined = joined[static_cast<size_t>(g)];
      if (r.height < options.min_digit_height) {
        candidate.slots.push_back(std::move(slot));
        continue;
      }
      Piece whole;
      if (!make_piece(mask, slot.box, nullptr, nullptr, whole)) continue;  // no ink left
      // One digit in two strokes a little apart (a 0 as "(" and ")" whose columns do not
      // overlap): the two read together as well, for read_strings to weigh.
      if (left >= 0 && heights.size() >= 2) {
        const cv::Rect last = group_rect[static_cast<size_t>(left)];
        const cv::Rect both = last | r;
        const int gap = r.x - (last.x + last.width);
        if (one_digit_in_two(last, r, digit) && gap >= 0 && gap <= 0.15 * digit && !joined[static_cast<size_t>(left)] &&
            !joined[static_cast<size_t>(g)]) {
          cv::Mat two = cv::Mat::zeros(both.size(), CV_8U);
          components.paint(two, both.tl(), [&](int label) {
            return group_of[static_cast<size_t>(label)] == g || group_of[static_cast<size_t>(label)] == left;
          });
          Piece joined_piece;
          if (make_piece(two, to_box(both), nullptr, nullptr, joined_piece)) {
            candidate.slots.back().join_next = static_cast<int>(out.pieces.size());
            out.pieces.push_back(std::move(joined_piece));
          }
        }
      }
      previous = g;
      slot.hypotheses.push_back({{static_cast<int>(out.pieces.size())}});
      out.pieces.push_back(std::move(whole));
      // Standing on a form line, it may have lost a stroke that lay along it: read with the
      // line's ink there as well, under it and on to the next blob, 0.3 of its height at most.
      {
        const int next = at + 1 < chain.size() ? group_rect[static_cast<size_t>(chain[at + 1])].x : page.lines.cols;
        const int reach = std::max(r.x + r.width, std::min(next, r.x + r.width + static_cast<int>(0.3 * r.height)));
        cv::Rect where;
        const cv::Mat given = ink_under_line(page, r, r.x, reach, where);
        if (!given.empty()) {
          const cv::Rect both = r | where;
          cv::Mat with = cv::Mat::zeros(both.size(), CV_8U);
          components.paint(with, both.tl(), [&](int label) { return group_of[static_cast<size_t>(label)] == g; });
          with(where - both.tl()) |= given;
          Piece based;
          if (make_piece(with, to_box(both), nullptr, nullptr, based)) {
            slot.hypotheses.push_back({{static_cast<int>(out.pieces.size())}, true});
            out.pieces.push_back(std::move(based));
          }
        }
      }
      if (static_cast<double>(r.width) / r.height > options.split_aspect) slot.mask = std::move(mask);
      candidate.box = unite(candidate.box, slot.box);
      candidate.slots.push_back(std::move(slot));
    }
    const bool readable = std::any_of(candidate.slots.begin(), candidate.slots.end(),
                                      [](const Slot& slot) { return !slot.hypotheses.empty(); });
    if (readable) out.strings.push_back(std::move(candidate));
  }
  // Reading order: lines top to bottom (a string joins the line it shares most rows with),
  // then left to right within a line.
  std::sort(out.strings.begin(), out.strings.end(),
            [](const StringCandidate& a, const StringCandidate& b) { return a.box.y < b.box.y; });
  std::vector<std::pair<int, int>> order;  // (line, x)
  Box line;
  int line_number = -1;
  for (const StringCandidate& c : out.strings) {
    if (line_number < 0 || overlap(line.y, line.bottom(), c.box.y, c.box.bottom()) <= 0.5 * std::min(line.h, c.box.h)) {
      ++line_number;
      line = c.box;
    } else {
      line = unite(line, c.box);
    }
    order.emplace_back(line_number, c.box.x);
  }
  std::vector<size_t> index(out.strings.size());
  std::iota(index.begin(), index.end(), 0);
  std::sort(index.begin(), index.end(), [&](size_t a, size_t b) { return order[a] < order[b]; });
  std::vector<StringCandidate> sorted;
  for (size_t i : index) sorted.push_back(std::move(out.strings[i]));
  out.strings = std::move(sorted);
  return out;
}

std::vector<int> normalize_pieces(const CleanedPage& page, Segmentation& segmentation) {
  segmentation.paper = page.paper;
  const cv::Rect whole_page(0, 0, page.flat.cols, page.flat.rows);
  auto around = [&](const Box& box) { return (to_rect(box) + cv::Size(4, 4) - cv::Point(2, 2)) & whole_page; };
  std::vector<bool> later(segmentation.pieces.size(), false);
  for (StringCandidate& candidate : segmentation.strings)
    for (Slot& slot : candidate.slots) {
      if (!slot.mask.empty()) {
        const cv::Rect r = around(slot.box);
        slot.grey = page.flat(r).clone();
        slot.grey_at = r.tl();
      }
      for (const Hypothesis& h : slot.hypotheses)
        if (h.on_line) {
          Piece& piece = segmentation.pieces[static_cast<size_t>(h.pieces[0])];
          const cv::Rect r = around(piece.box);
          piece.grey = page.flat(r).clone();
          piece.grey_at = r.tl();
          later[static_cast<size_t>(h.pieces[0])] = true;
        }
    }
  std::vector<int> first;
  for (size_t i = 0; i < segmentation.pieces.size(); ++i) {
    if (later[i]) continue;
    Piece& piece = segmentation.pieces[i];
    piece.usable = normalize_piece(page.flat, {0, 0}, page.paper, piece);
    if (piece.usable) first.push_back(static_cast<int>(i));
  }
  return first;
}

std::vector<int> normalize_cuts(Segmentation& segmentation, std::vector<float>& probs, int classes) {
  const SegmentOptions& options = segmentation.options;
  std::vector<int> second;
  for (StringCandidate& candidate : segmentation.strings) {
    const bool print = looks_like_print(segmentation, candidate, probs.data(), classes);
    for (Slot& slot : candidate.slots) {
      // The reading with a line's ink is only ever taken for a blob read whole as 7.
      for (const Hypothesis& h : slot.hypotheses) {
        if (!h.on_line) continue;
        Piece& piece = segmentation.pieces[static_cast<size_t>(h.pieces[0])];
        const size_t whole = static_cast<size_t>(slot.hypotheses[0].pieces[0]);
        const float* p = &probs[whole * static_cast<size_t>(classes)];
        if (segmentation.pieces[whole].usable && std::max_element(p, p + std::min(classes, 10)) - p == 7 && !piece.grey.empty()) {
          piece.usable = normalize_piece(piece.grey, piece.grey_at, segmentation.paper, piece);
          if (piece.usable) second.push_back(h.pieces[0]);
        }
        piece.mask.release();
        piece.grey.release();
      }
      if (slot.mask.empty()) continue;
      const Piece& whole = segmentation.pieces[static_cast<size_t>(slot.hypotheses[0].pieces[0])];
      // Cut where the whole reading is in doubt: "not a digit" above 0.25 (two glued digits
      // are that to the model), no digit above 0.5, or wider than any one handwritten digit
      // is likely to be. Cuts cost a CNN pass for each piece (about ten per blob), and on
      // the calibration pages cutting every blob wider than tall or below 0.9 read no
      // string better than these limits did, at 2x the images.
      bool needed = !print && (!whole.usable || static_cast<double>(whole.box.w) > 1.3 * whole.box.h);
      if (!needed && !print) {
        const float* p = &probs[static_cast<size_t>(slot.hypotheses[0].pieces[0]) * static_cast<size_t>(classes)];
        const float best = *std::max_element(p, p + std::min(classes, 10));
        needed = best < 0.5f || (classes > 10 && p[10] > 0.25f);
      }
      if (needed) {
        const cv::Mat& mask = slot.mask;
        const int width = mask.cols, height = mask.rows;
        std::vector<std::vector<CutPath>> tried;
        // Different cuts often leave the same piece (a path that runs straight, a cut
        // through paper either side of a gap): it is scored once and shared.
        const size_t first_cut_piece = segmentation.pieces.size();
        // A blob with other blobs beside it on its line: one of a string of digits.
        const bool in_company = std::count_if(candidate.slots.begin(), candidate.slots.end(), [](const Slot& other) {
                                  return !other.hypotheses.empty();
                                }) >= 2;
        auto add = [&](std::vector<CutPath> cuts) {
          std::vector<Piece> pieces;
          for (bool side_by_side = false; !side_by_side;) {
            if (cuts.empty() || std::find(tried.begin(), tried.end(), cuts) != tried.end()) return;
            tried.push_back(cuts);
            pieces.assign(cuts.size() + 1, Piece{});
            side_by_side = true;
            for (size_t e = 0; e < pieces.size(); ++e) {
              if (!make_piece(mask, slot.box, e > 0 ? &cuts[e - 1] : nullptr, e < cuts.size() ? &cuts[e] : nullptr, pieces[e]))
                return;  // a side with no ink: not a reading
              if (pieces[e].box.h >= options.cut_height * slot.box.h) continue;
              // Not side by side. At either end of a blob in a string, that piece is a stroke's
              // tail (a 5's hook run out under its neighbour): the cuts without the one that
              // made it are tried instead. A lone blob's tails are a signature's loops.
              if (!in_company || cuts.size() < 2 || (e > 0 && e + 1 < pieces.size())) return;
              if (e == 0)
                cuts.erase(cuts.begin());
              else
                cuts.pop_back();
              side_by_side = false;
              break;
            }
          }
          Hypothesis h;
          for (Piece& piece : pieces) {
            piece.usable = normalize_piece(slot.grey, slot.grey_at, segmentation.paper, piece);
            size_t same = first_cut_piece;
            for (; same < segmentation.pieces.size(); ++same) {
              const Piece& made = segmentation.pieces[same];
              if (made.usable && piece.usable && made.box == piece.box && made.pixels == piece.pixels) break;
            }
            if (same < segmentation.pieces.size()) {
              h.pieces.push_back(static_cast<int>(same));
              continue;
            }
            if (piece.usable) second.push_back(static_cast<int>(segmentation.pieces.size()));
            h.pieces.push_back(static_cast<int>(segmentation.pieces.size()));
            segmentation.pieces.push_back(std::move(piece));
          }
          slot.hypotheses.push_back(std::move(h));
        };
        auto straight = [&](int x) { return CutPath(static_cast<size_t>(height), x); };
        const double aspect = static_cast<double>(width) / height;
        std::vector<double> count(static_cast<size_t>(width), 0.0);
        for (int y = 0; y < height; ++y) {
          const uint8_t* m = mask.ptr<uint8_t>(y);
          for (int x = 0; x < width; ++x) count[static_cast<size_t>(x)] += m[x] ? 1 : 0;
        }
        std::vector<double> smooth = count;
        for (size_t x = 1; x + 1 < count.size(); ++x) smooth[x] = (count[x - 1] + count[x] + count[x + 1]) / 3;
        for (int k = 2; k <= 4; ++k) {
          if (aspect < (k == 2 ? options.split_aspect : 0.42 * k) || aspect > 1.25 * k) continue;
          const int window = std::max(2, static_cast<int>(0.3 * width / k));
          if (k == 2) {
            // Straight cuts at the thinnest columns, and ink-avoiding paths from them and
            // from the middle, thirds and quarters, for digits that touch at a slant or lean
            // into each other (a 1 against a 4's open top: paths from the middle alone
            // missed the narrow gap between them).
            std::vector<int> starts = thin_columns(smooth, width / 4, 3 * width / 4, std::max(2, width / 12), options.max_cuts);
            for (int cut : starts) add({straight(cut)});
            for (int twelfths : {6, 4, 8, 3, 9}) starts.push_back(twelfths * width / 12);  // 1/2, 1/3, 2/3, 1/4, 3/4
            for (int cut : starts) add({ink_path(mask, cut, window)});
          } else {
            std::vector<CutPath> cuts, paths;
            for (int i = 1; i < k; ++i) {
              const int ideal = i * width / k;
              std::vector<int> best = thin_columns(smooth, ideal - window, ideal + window, 1, 1);
              if (best.empty()) break;
              cuts.push_back(straight(best[0]));
              paths.push_back(ink_path(mask, best[0], window));
            }
            if (static_cast<int>(cuts.size()) == k - 1) {
              add(cuts);
              add(paths);
            }
          }
        }
      }
      slot.mask.release();
      slot.grey.release();
    }
  }
  probs.resize(segmentation.pieces.size() * static_cast<size_t>(classes), 0.0f);
  return second;
}

std::vector<StringResult> read_strings(const Segmentation& seg, const float* probs, int classes, const cv::Mat& to_page,
                                       int width, int height, const ReadOptions& options) {
  const bool has_reject = classes > 10;
  const int digit_classes = std::min(classes, 10);
  // Calibrated probabilities per piece.
  std::vector<std::vector<double>> p(seg.pieces.size());
  for (size_t i = 0; i < seg.pieces.size(); ++i) {
    std::vector<double>& q = p[i];
    q.assign(static_cast<size_t>(classes), 0.0);
    if (!seg.pieces[i].usable) continue;
    double sum = 0;
    for (int c = 0; c < classes; ++c) {
      q[static_cast<size_t>(c)] = std::pow(std::max(1e-12, static_cast<double>(probs[i * static_cast<size_t>(classes) + static_cast<size_t>(c)])), 1.0 / options.temperature);
      sum += q[static_cast<size_t>(c)];
    }
    for (double& v : q) v /= sum;
  }
  auto best_digit = [&](size_t i) {
    return static_cast<int>(std::max_element(p[i].begin(), p[i].begin() + digit_classes) - p[i].begin());
  };
  auto is_digit = [&](size_t i) {
    if (!seg.pieces[i].usable) return false;
    if (!has_reject) return true;
    return p[i][10] < 0.5;  // more likely some digit than not one: read it, maybe with low confidence
  };

  std::vector<StringResult> results, dropped;
  for (const StringCandidate& candidate : seg.strings) {
    if (looks_like_print(seg, candidate, probs, classes)) continue;
    // Slots read as a digit whole: a blob that is only digits once cut needs such company.
    const auto whole_digits = std::count_if(candidate.slots.begin(), candidate.slots.end(), [&](const Slot& slot) {
      return !slot.hypotheses.empty() && is_digit(static_cast<size_t>(slot.hypotheses[0].pieces[0]));
    });
    // The width of one digit here: the median of the slots read whole as a digit, where
    // there are three or more (ReadOptions::narrow_cut).
    std::vector<int> widths;
    for (const Slot& slot : candidate.slots)
      if (!slot.hypotheses.empty() && is_digit(static_cast<size_t>(slot.hypotheses[0].pieces[0])))
        widths.push_back(slot.box.w);
    const double digit_width = widths.size() >= 3 ? median(widths) : 0.0;
    // The chosen pieces of every slot, in order.
    std::vector<int> chosen;  // piece indices; -1 for small context
    // A slot's most likely reading and its score.
    auto choose = [&](const Slot& slot) {
      const Hypothesis* best = nullptr;
      double best_score = -1e300, whole_score = 0;
      // A cut reading is only as likely as the blob being more than one digit, which the
      // 11-class model tells by its "not a digit" class (glued digits were its negatives):
      // a plain 6 must not come out as the 1 and 0 its halves resemble.
      const size_t whole = static_cast<size_t>(slot.hypotheses[0].pieces[0]);
      const double not_one_digit = has_reject && seg.pieces[whole].usable ? std::max(0.05, p[whole][10]) : 1.0;
      for (const Hypothesis& h : slot.hypotheses) {
        // A 7 standing on a line whose base the line took may be a 2 (Hypothesis::on_line):
        // scored as the blob read whole, with its p(2) for the whole's p(7), so taken only
        // where it is the surer (the whole, read first, is already the best so far).
        if (h.on_line) {
          const size_t i = static_cast<size_t>(h.pieces[0]);
          if (is_digit(i) && is_digit(whole) && best_digit(whole) == 7 && best_digit(i) == 2) {
            const double score = whole_score + std::log(p[i][2]) - std::log(p[whole][7]);
            if (score > best_score) best_score = score, best = &h;
          }
          continue;
        }
        double score = -options.split_penalty * static_cast<double>(h.pieces.size() - 1);
        if (h.pieces.size() > 1) score += std::log(not_one_digit);
        if (h.pieces.size() > 1 && !slot.joined && slot.box.w < options.narrow_cut * digit_width * static_cast<double>(h.pieces.size()))
          score -= options.narrow_cut_penalty;
        for (int piece : h.pieces) {
          const size_t i = static_cast<size_t>(piece);
          score += seg.pieces[i].usable ? std::log(std::max(1e-12, p[i][static_cast<size_t>(best_digit(i))])) : -30.0;
          // One handwritten digit is seldom wider than tall; two glued together are.
          const Box& b = seg.pieces[i].box;
          score -= options.wide_penalty * std::max(0.0, static_cast<double>(b.w) / std::max(1, b.h) - 1.0);
          // Nor much shorter than its neighbours: a short piece is a fragment of a cut.
          score -= options.wide_penalty * std::max(0.0, 0.75 - static_cast<double>(b.h) / std::max(1, slot.box.h));
        }
        if (&h == &slot.hypotheses[0]) whole_score = score;
        if (score > best_score) best_score = score, best = &h;
      }
      // A wide blob with no digit beside it on its line, whose best cut still leaves a piece
      // the model takes for "not a digit", is no string of digits: a signature's loops, cut,
      // pass for 1s and 0s. Read whole, it is rejected. (Two glued digits cut right are two
      // digits; in a line of digits an odd piece is kept as an unsure digit below.)
      if (has_reject && best->pieces.size() > 1 && whole_digits == 0 &&
          std::any_of(best->pieces.begin(), best->pieces.end(), [&](int piece) {
            return seg.pieces[static_cast<size_t>(piece)].usable && !is_digit(static_cast<size_t>(piece));
          }))
        best = &slot.hypotheses[0], best_score = whole_score;
      return std::pair{best, best_score};
    };
    for (size_t k = 0; k < candidate.slots.size(); ++k) {
      const Slot& slot = candidate.slots[k];
      if (slot.hypotheses.empty()) {
        chosen.push_back(-1);
        continue;
      }
      const auto [best, score] = choose(slot);
      // Two strokes that may be one digit (Slot::join_next): one digit when either is in
      // doubt and the two together read better, less the price of a split turned round. A
      // stroke and a shorter loop after it whose top is lower, their bottoms level, is a 6's
      // stem and loop as much as a 1 and a 0, each read sure: weighed at no price.
      if (slot.join_next >= 0 && k + 1 < candidate.slots.size() && !candidate.slots[k + 1].hypotheses.empty()) {
        const auto [next_best, next_score] = choose(candidate.slots[k + 1]);
        const size_t u = static_cast<size_t>(slot.join_next);
        auto sure = [&](const Hypothesis* h) {
          const size_t i = static_cast<size_t>(h->pieces[0]);
          return h->pieces.size() == 1 && is_digit(i) && p[i][static_cast<size_t>(best_digit(i))] >= options.join_doubt;
        };
        const Box& stroke = slot.box;
        const Box& loop = candidate.slots[k + 1].box;
        const bool stem_and_loop = loop.h < stroke.h && loop.y >= stroke.y + 0.1 * stroke.h &&
                                   std::abs(loop.bottom() - stroke.bottom()) <= 0.25 * stroke.h;
        if (options.join_doubt > 0 && best->pieces.size() == 1 && next_best->pieces.size() == 1 && is_digit(u) &&
            (!sure(best) || !sure(next_best) || stem_and_loop)) {
          const Box& b = seg.pieces[u].box;
          const double together = std::log(std::max(1e-12, p[u][static_cast<size_t>(best_digit(u))])) -
                                  (stem_and_loop ? 0.0 : options.split_penalty) -
                                  options.wide_penalty * std::max(0.0, static_cast<double>(b.w) / std::max(1, b.h) - 1.0);
          if (together > score + next_score) {
            chosen.push_back(static_cast<int>(u));
            ++k;
            continue;
          }
        }
      }
      chosen.insert(chosen.end(), best->pieces.begin(), best->pieces.end());
    }
    const auto digit_at = [&](int i) { return i >= 0 && is_digit(static_cast<size_t>(i)); };
    const auto accepted = std::count_if(chosen.begin(), chosen.end(), digit_at);
    // Mostly not digits: print or debris. Small context beside the digits (a printed label's
    // small letters before them) is no vote against them; among them it is.
    const auto first = std::find_if(chosen.begin(), chosen.end(), digit_at);
    const auto last = std::find_if(chosen.rbegin(), chosen.rend(), digit_at).base();
    const long voters = std::count_if(chosen.begin(), first, [](int i) { return i >= 0; }) + (last - first) +
                        std::count_if(last, chosen.end(), [](int i) { return i >= 0; });
    if (accepted == 0 || 2 * accepted <= voters) continue;
    // Unsure pieces of the digits' height stay in the string (ReadOptions::keep_unsure_below).
    std::vector<int> heights;
    for (int i : chosen)
      if (i >= 0 && is_digit(static_cast<size_t>(i))) heights.push_back(seg.pieces[static_cast<size_t>(i)].box.h);
    const int digit_height = median(heights);
    std::vector<bool> unsure_digit(seg.pieces.size(), false), too_tall(seg.pieces.size(), false),
        fragment(seg.pieces.size(), false);
    long digits_before = 0;
    if (accepted >= 2)
      for (int i : chosen) {
        if (i < 0) continue;
        const size_t k = static_cast<size_t>(i);
        if (is_digit(k)) ++digits_before;
        // Between two digits or more on each side, kept whatever its "not a digit": cut there,
        // the string would come out as two, each sure of itself and wrong.
        const bool inside = digits_before >= 2 && accepted - digits_before >= 2;
        if (seg.pieces[k].usable && !is_digit(k) && (inside || p[k][10] < options.keep_unsure_below) &&
            seg.pieces[k].box.h >= 0.75 * digit_height && seg.pieces[k].box.h <= 1.4 * digit_height)
          unsure_digit[k] = true;
        // Shorter, between the same digits: a stroke broken off a digit beside it (a 5's
        // hook written apart) or debris, passed over rather than cut at; if it was a digit
        // the string lacks one, so it carries the piece's "not a digit" as a doubt.
        if (seg.pieces[k].usable && !is_digit(k) && inside && seg.pieces[k].box.h < 0.75 * digit_height)
          fragment[k] = true;
        // A stroke far taller than the string's digits (the side of the box they are written
        // in, a bracket) is no digit of it, however much it looks like a 1.
        if (accepted >= 3 && seg.pieces[k].box.h > 1.6 * digit_height) too_tall[k] = true;
      }
    // Runs of digits between rejected pieces become strings. A string that a rejected piece
    // ends is only right if that piece truly is no digit: its confidence carries the piece's
    // "not a digit" probability on each side where it was cut.
    StringResult current;
    double cut_before = 1.0;  // "not a digit" probability of the piece that ended the last run
    auto flush = [&](double cut_after) {
      current.confidence *= cut_after;
      // A digit far shorter than the others may be a fragment (ReadOptions::short_digit).
      if (current.digits.size() >= 3) {
        std::vector<int> tall;
        for (const DigitResult& d : current.digits) tall.push_back(d.box.h);
        const int shortest = *std::min_element(tall.begin(), tall.end());
        if (shortest < options.short_digit * median(tall)) current.confidence *= 0.5;
        // Room for one more digit between two of them, beyond the string's usual spacing (the
        // median of its other gaps): a 1 broken into specks, or faded, may have been lost there
        // (ReadOptions::lost_digit_gap). Digits that overlap are no spacing: 0.
        std::vector<int> gaps;
        for (size_t k = 1; k < current.digits.size(); ++k) {
          const Box& before = current.digits[k - 1].box;
          gaps.push_back(std::max(0, current.digits[k].box.x - (before.x + before.w)));
        }
        const auto widest = std::max_element(gaps.begin(), gaps.end());
        const int room = *widest;
        gaps.erase(widest);
        if (options.lost_digit_gap > 0 && room > median(gaps) + options.lost_digit_gap * median(tall))
          current.confidence *= 0.5;
      }
      if (static_cast<int>(current.digits.size()) >= std::max(1, options.min_digits))
        results.push_back(std::move(current));
      else if (!current.digits.empty())
        dropped.push_back(std::move(current));
      current = StringResult{};
    };
    for (int piece : chosen) {
      if (piece < 0) continue;  // small context: counted above, but no break in the digits
      const size_t i = static_cast<size_t>(piece);
      // A fragment inside a run of digits (one after a cut is treated as any rejected piece).
      if (fragment[i] && !current.digits.empty()) {
        current.confidence *= static_cast<double>(probs[i * static_cast<size_t>(classes) + 10]);
        continue;
      }
      if ((!is_digit(i) && !unsure_digit[i]) || too_tall[i]) {
        // The doubt a cut carries is the model's own "not a digit", not sharpened by the
        // temperature (fitted to digits' correctness): sharpened, a rejection at 0.9 passed
        // for 0.98, and strings it had cut short came out at 0.99. A too-tall stroke as thin
        // as a rule is a box's side and carries none; a thicker one may hold a digit written
        // over that side. A printed sign before the digits carries its doubt sharpened
        // (ReadOptions::symbol_not_digit).
        const bool rule = too_tall[i] && seg.pieces[i].box.w * 4 < digit_height;
        double not_digit = 1.0, before_digits = 1.0;
        if (has_reject && seg.pieces[i].usable && !rule) {
          not_digit = before_digits = static_cast<double>(probs[i * static_cast<size_t>(classes) + 10]);
          const Box& b = seg.pieces[i].box;
          if (not_digit >= options.symbol_not_digit && b.h >= 0.6 * digit_height && b.h <= 1.3 * digit_height &&
              b.w >= 0.3 * digit_height && b.w <= 0.8 * digit_height)
            before_digits = p[i][10];
        }
        if (!current.digits.empty()) flush(not_digit);
        cut_before = before_digits;
        continue;
      }
      DigitResult d;
      std::vector<int> order(static_cast<size_t>(digit_classes));
      std::iota(order.begin(), order.end(), 0);
      std::sort(order.begin(), order.end(), [&](int a, int b) { return p[i][static_cast<size_t>(a)] > p[i][static_cast<size_t>(b)]; });
      d.digit = order[0];
      d.confidence = static_cast<float>(p[i][static_cast<size_t>(order[0])]);
      for (size_t k = 0; k < 3 && k < order.size(); ++k)
        d.top.push_back({order[k], static_cast<float>(p[i][static_cast<size_t>(order[k])])});
      if (has_reject) d.not_digit = static_cast<float>(p[i][10]);
      d.box = map_box(seg.pieces[i].box, to_page, width, height);
      if (current.digits.empty()) current.confidence = cut_before;
      current.confidence *= d.confidence;
      current.text += static_cast<char>('0' + d.digit);
      current.box = unite(current.box, d.box);
      current.digits.push_back(std::move(d));
    }
    flush(1.0);
  }
  // A digit too few to be reported alone, just beside a string on its line, may be that
  // string's first or last digit written apart: the string is complete only if it is not.
  for (const StringResult& lone : dropped)
    for (StringResult& s : results) {
      const Box& a = lone.box;
      const Box& b = s.box;
      const int rows = std::min(a.y + a.h, b.y + b.h) - std::max(a.y, b.y);
      const int gap = std::max(a.x - (b.x + b.w), b.x - (a.x + a.w));
      if (rows >= 0.5 * std::min(a.h, b.h) && gap >= 0 && gap <= 2 * a.h) s.confidence *= 1.0 - lone.confidence;
    }
  return results;
}

}  // namespace digitflow::pipeline

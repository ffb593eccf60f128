// "Not a digit" images. Each kind draws white ink coverage (0..255) at page scale; one
// function lays it on paper (margin, blur, paper and ink levels, noise) and normalize_digit()
// does the rest, as for a digit cut from a page. Every choice comes from a splitmix64 stream
// seeded by (seed, image, attempt), so an image never depends on the others or on threads.
#include "digitflow/pipeline/negatives.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <numeric>
#include <opencv2/freetype.hpp>
#include <opencv2/imgproc.hpp>
#include <stdexcept>
#include <string>
#include <vector>

namespace digitflow::pipeline {

namespace {

namespace k = digitflow::kernels;

constexpr double kPi = 3.14159265358979323846;

uint64_t splitmix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
uint64_t mix(uint64_t a, uint64_t b) { return splitmix(a ^ splitmix(b + 0x632be59bd9b4e019ull)); }

// Portable random draws (the standard distributions differ between libraries).
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next() { return splitmix(state_++ * 0x9e3779b97f4a7c15ull + 1); }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  int integer(int lo, int hi) {  // inclusive
    return lo + static_cast<int>(next() % static_cast<uint64_t>(hi - lo + 1));
  }
  bool chance(double p) { return uniform() < p; }
  template <class T>
  const T& pick(const std::vector<T>& items) {
    return items[static_cast<size_t>(integer(0, static_cast<int>(items.size()) - 1))];
  }

 private:
  uint64_t state_;
};

// ---- what may be drawn ----

// Letters drawn alone: none that a handwritten digit can look like — O o Q D C-shapes stay
// (C is open wide in print), but O o Q D (0), I l i j J | (1), Z z (2), S s (5), G b (6),
// T (7), B (8), g q y (9, and the open 4) are left out.
const std::string kSingleLetters = "ACEFHKLMNPRUVWXYacdefhkmnprtuvwx";
// Hershey's script faces are cursive; only their lower case is plain enough.
const std::string kScriptLetters = "acdefhkmnprtuvwx";
// Symbols alone. '/' and '|' are not among them: alone they are a slanted or upright 1.
const std::vector<std::string> kSymbols = {"$", ":", "-", "#", "*", "(", ")", "&", "%", "@", ",", ".", "\xe2\x80\x94"};
// Clusters glue 2-3 glyphs into one blob, which is no digit whatever its letters (two glued
// digit-like letters are a glued pair, also not a digit); thin letters that would vanish
// into a neighbour are left out.
const std::string kClusterLetters =
    "ABCDEFGHKLMNOPQRSTUVWXYZabcdefghkmnopqrstuvwxyz$&%#/";
// Printed words of checks and forms, cut into 2-3 letter pieces.
const std::vector<std::string> kFormWords = {
    "AMOUNT", "Amount", "Pay", "to", "the", "order", "of", "Date", "DATE", "DOLLARS",
    "Dollars", "MEMO", "Memo", "CHECK", "No", "Bank", "Total", "Name", "Signature",
    "Account", "Routing", "Sum", "Box", "Form", "PAY", "USD", "Ref"};

const std::vector<std::string> kDejaVuFiles = {"DejaVuSans.ttf",      "DejaVuSans-Bold.ttf",
                                               "DejaVuSerif.ttf",     "DejaVuSerif-Bold.ttf",
                                               "DejaVuSansMono.ttf",  "DejaVuSansMono-Bold.ttf"};
const std::vector<int> kHersheyFaces = {cv::FONT_HERSHEY_SIMPLEX, cv::FONT_HERSHEY_PLAIN,
                                        cv::FONT_HERSHEY_DUPLEX,  cv::FONT_HERSHEY_COMPLEX,
                                        cv::FONT_HERSHEY_TRIPLEX, cv::FONT_HERSHEY_COMPLEX_SMALL};
const std::vector<int> kHersheyScriptFaces = {cv::FONT_HERSHEY_SCRIPT_SIMPLEX,
                                              cv::FONT_HERSHEY_SCRIPT_COMPLEX};

// The DejaVu faces found on this machine, loaded once per make_negatives call (FreeType2
// objects are not shared between threads).
struct Fonts {
  std::vector<cv::Ptr<cv::freetype::FreeType2>> faces;
  std::vector<bool> serif;  // per face

  Fonts() {
    const std::string dir = "/usr/share/fonts/truetype/dejavu/";
    for (const std::string& file : kDejaVuFiles) {
      try {
        cv::Ptr<cv::freetype::FreeType2> face = cv::freetype::createFreeType2();
        face->loadFontData(dir + file, 0);
        faces.push_back(face);
        serif.push_back(file.rfind("DejaVuSerif", 0) == 0);
      } catch (const cv::Exception&) {  // not installed: Hershey fonts only
      }
    }
  }
};

// Thrown by a drawing that came out unusable (too thin, a bar); the caller draws again.
struct Redraw {};

// ---- coverage helpers: CV_8UC1, 0 = no ink, 255 = full ink ----

cv::Mat crop_to_ink(const cv::Mat& coverage, int threshold = 0) {
  const cv::Rect box = cv::boundingRect(coverage > threshold);
  if (box.area() == 0) throw Redraw{};
  return coverage(box).clone();
}

// Keeps every row (so glyphs rendered alike keep their baseline), drops empty columns.
cv::Mat crop_columns(const cv::Mat& coverage) {
  const cv::Rect box = cv::boundingRect(coverage > 0);
  if (box.area() == 0) throw Redraw{};
  return coverage(cv::Rect(box.x, 0, box.width, coverage.rows)).clone();
}

cv::Mat rotate_bound(const cv::Mat& src, double degrees) {
  const cv::Point2f centre(static_cast<float>(src.cols) / 2.0f, static_cast<float>(src.rows) / 2.0f);
  cv::Mat m = cv::getRotationMatrix2D(centre, degrees, 1.0);
  const cv::Rect2f box =
      cv::RotatedRect(cv::Point2f(), cv::Size2f(src.size()), static_cast<float>(degrees)).boundingRect2f();
  m.at<double>(0, 2) += box.width / 2.0 - centre.x;
  m.at<double>(1, 2) += box.height / 2.0 - centre.y;
  cv::Mat out;
  cv::warpAffine(src, out, m, cv::Size(static_cast<int>(std::ceil(box.width)), static_cast<int>(std::ceil(box.height))),
                 cv::INTER_LINEAR, cv::BORDER_CONSTANT, cv::Scalar(0));
  return out;
}

// A small rotation and a change of width, as printing and scanning give.
cv::Mat jitter(const cv::Mat& coverage, Rng& rng, double max_degrees) {
  cv::Mat out = coverage;
  const double stretch = rng.uniform(0.85, 1.15);
  cv::resize(out, out, cv::Size(), stretch, 1.0, cv::INTER_LINEAR);
  return crop_to_ink(rotate_bound(out, rng.uniform(-max_degrees, max_degrees)));
}

// Places `right` beside `left` (its top `dy` rows below left's top) so that the two touch
// and overlap by `overlap` columns where they come closest. Redraw when no row holds ink
// of both.
cv::Mat join_touching(const cv::Mat& left, const cv::Mat& right, int overlap, int dy) {
  constexpr int kInk = 96;
  const int top = std::min(0, dy), bottom = std::max(left.rows, dy + right.rows);
  int shift = std::numeric_limits<int>::min();
  for (int y = top; y < bottom; ++y) {
    const int yl = y, yr = y - dy;
    if (yl < 0 || yl >= left.rows || yr < 0 || yr >= right.rows) continue;
    int last = -1, first = -1;
    for (int x = left.cols - 1; x >= 0 && last < 0; --x)
      if (left.at<uint8_t>(yl, x) > kInk) last = x;
    for (int x = 0; x < right.cols && first < 0; ++x)
      if (right.at<uint8_t>(yr, x) > kInk) first = x;
    if (last >= 0 && first >= 0) shift = std::max(shift, last + 1 - first);
  }
  if (shift == std::numeric_limits<int>::min()) throw Redraw{};
  const int ox = shift - overlap;  // x of right's column 0 in left's coordinates
  const int x0 = std::min(0, ox), x1 = std::max(left.cols, ox + right.cols);
  cv::Mat out = cv::Mat::zeros(bottom - top, x1 - x0, CV_8UC1);
  cv::Mat l = out(cv::Rect(-x0, -top, left.cols, left.rows));
  cv::max(l, left, l);
  cv::Mat r = out(cv::Rect(ox - x0, dy - top, right.cols, right.rows));
  cv::max(r, right, r);
  return out;
}

// ---- printed glyphs ----

struct GlyphStyle {
  int face = -1;     // index into Fonts::faces; -1 = Hershey
  int hershey = 0;   // Hershey face (with FONT_ITALIC or not)
  int thickness = 1; // Hershey stroke width in pixels
  int cap_height = 60;
  bool script = false;
};

GlyphStyle pick_style(const Fonts& fonts, Rng& rng, bool allow_script) {
  GlyphStyle style;
  style.cap_height = rng.integer(40, 120);
  if (!fonts.faces.empty() && rng.chance(0.65)) {
    style.face = rng.integer(0, static_cast<int>(fonts.faces.size()) - 1);
    return style;
  }
  style.script = allow_script && rng.chance(0.2);
  style.hershey = style.script ? rng.pick(kHersheyScriptFaces) : rng.pick(kHersheyFaces);
  if (rng.chance(0.25)) style.hershey |= cv::FONT_ITALIC;
  style.thickness = std::max(1, static_cast<int>(std::lround(style.cap_height * rng.uniform(0.04, 0.12))));
  return style;
}

// `text` drawn at the style's size on a canvas large enough for any origin convention.
cv::Mat render_text(const Fonts& fonts, const std::string& text, const GlyphStyle& style) {
  const int h = style.cap_height;
  cv::Mat canvas = cv::Mat::zeros(4 * h + 20, static_cast<int>(text.size() + 2) * 2 * h, CV_8UC1);
  const cv::Point origin(h, 2 * h);
  if (style.face >= 0) {
    const int em = static_cast<int>(std::lround(h / 0.73));  // DejaVu capitals are 0.73 em
    cv::Mat colour = cv::Mat::zeros(canvas.size(), CV_8UC3);  // FreeType2 draws on BGR only
    fonts.faces[static_cast<size_t>(style.face)]->putText(colour, text, origin, em, cv::Scalar::all(255), -1,
                                                          cv::LINE_AA, true);
    cv::extractChannel(colour, canvas, 0);
  } else {
    const std::string ascii = text == "\xe2\x80\x94" ? "-" : text;
    int baseline = 0;
    const double unit = cv::getTextSize("H", style.hershey, 1.0, style.thickness, &baseline).height;
    cv::putText(canvas, ascii, origin, style.hershey, h / std::max(1.0, unit), cv::Scalar(255),
                style.thickness, cv::LINE_AA);
  }
  return canvas;
}

cv::Mat draw_letter(const Fonts& fonts, Rng& rng) {
  const GlyphStyle style = pick_style(fonts, rng, true);
  const std::string& letters = style.script ? kScriptLetters : kSingleLetters;
  const std::string text(1, letters[static_cast<size_t>(rng.integer(0, static_cast<int>(letters.size()) - 1))]);
  return jitter(crop_to_ink(render_text(fonts, text, style)), rng, 5);
}

cv::Mat draw_symbol(const Fonts& fonts, Rng& rng) {
  const GlyphStyle style = pick_style(fonts, rng, false);
  std::string symbol = rng.pick(kSymbols);
  // Most faces draw a comma as a slanted wedge, which scaled to digit size is a thick 1;
  // the serif faces' comma is a tadpole.
  if (symbol == "," && !(style.face >= 0 && fonts.serif[static_cast<size_t>(style.face)])) symbol = ".";
  return jitter(crop_to_ink(render_text(fonts, symbol, style)), rng, 5);
}

cv::Mat draw_cluster(const Fonts& fonts, Rng& rng) {
  const GlyphStyle style = pick_style(fonts, rng, false);
  const int length = rng.integer(2, 3);
  std::string text;
  if (rng.chance(0.5)) {
    const std::string& word = rng.pick(kFormWords);
    const int n = std::min(length, static_cast<int>(word.size()));
    text = word.substr(static_cast<size_t>(rng.integer(0, static_cast<int>(word.size()) - n)), static_cast<size_t>(n));
  } else {
    for (int i = 0; i < length; ++i)
      text += kClusterLetters[static_cast<size_t>(rng.integer(0, static_cast<int>(kClusterLetters.size()) - 1))];
  }
  if (text.size() < 2) throw Redraw{};
  cv::Mat blob;
  for (char c : text) {
    cv::Mat glyph = crop_columns(render_text(fonts, std::string(1, c), style));
    blob = blob.empty() ? glyph
                        : join_touching(blob, glyph, rng.integer(0, std::max(1, style.cap_height / 25)), 0);
  }
  return jitter(crop_to_ink(blob), rng, 4);
}

// ---- form debris, dots, scribbles ----

void stroke(cv::Mat& canvas, cv::Point2d a, cv::Point2d b, int thickness) {
  constexpr int kShift = 4;  // sub-pixel end points
  const auto fixed = [](cv::Point2d p) {
    return cv::Point(static_cast<int>(std::lround(p.x * 16)), static_cast<int>(std::lround(p.y * 16)));
  };
  cv::line(canvas, fixed(a), fixed(b), cv::Scalar(255), thickness, cv::LINE_AA, kShift);
}

void polyline(cv::Mat& canvas, const std::vector<cv::Point2d>& points, int thickness) {
  for (size_t i = 1; i < points.size(); ++i) stroke(canvas, points[i - 1], points[i], thickness);
}

// Near-horizontal strokes only: an upright or steep stroke is what a 1 is.
cv::Mat draw_line(Rng& rng) {
  const int t = rng.integer(1, 6);
  const double p = rng.uniform();
  cv::Mat canvas = cv::Mat::zeros(480, 480, CV_8UC1);
  const cv::Point2d c(240, 240);
  if (p < 0.4) {  // a stroke of a form line
    const double length = rng.uniform(30, 220), angle = rng.uniform(-30, 30) * kPi / 180;
    const cv::Point2d d(std::cos(angle) * length / 2, std::sin(angle) * length / 2);
    stroke(canvas, c - d, c + d, t);
    return crop_to_ink(canvas);
  }
  if (p < 0.7) {  // a corner of a box: not the top-right one, which is a 7
    double a = rng.uniform(25, 120), b = rng.uniform(25, 120);
    if (std::max(a, b) > 2.5 * std::min(a, b)) b = a * rng.uniform(0.5, 2.0);
    const int corner = rng.integer(0, 2);  // top-left, bottom-left, bottom-right
    const double sx = corner == 2 ? -1 : 1, sy = corner == 0 ? 1 : -1;
    stroke(canvas, c, c + cv::Point2d(sx * a, 0), t);
    stroke(canvas, c, c + cv::Point2d(0, sy * b), t);
    return jitter(crop_to_ink(canvas), rng, 4);
  }
  if (p < 0.85) {  // a dotted rule
    const int n = rng.integer(3, 8);
    const double r = rng.uniform(1.5, 4), gap = rng.uniform(3, 6) * r;
    for (int i = 0; i < n; ++i)
      cv::circle(canvas, cv::Point(static_cast<int>(40 + i * gap), 240), static_cast<int>(std::lround(r)),
                 cv::Scalar(255), cv::FILLED, cv::LINE_AA);
    return crop_to_ink(canvas);
  }
  const int n = rng.integer(2, 5);  // a dashed rule
  const double dash = rng.uniform(8, 30), gap = rng.uniform(4, 15);
  for (int i = 0; i < n; ++i) {
    const double x = 30 + i * (dash + gap);
    stroke(canvas, {x, 240}, {x + dash, 240}, t);
  }
  return jitter(crop_to_ink(canvas), rng, 3);
}

cv::Mat draw_dot(Rng& rng) {
  cv::Mat canvas = cv::Mat::zeros(160, 160, CV_8UC1);
  const double p = rng.uniform();
  const cv::Point c(80, 80);
  if (p < 0.35) {
    cv::circle(canvas, c, rng.integer(2, 10), cv::Scalar(255), cv::FILLED, cv::LINE_AA);
  } else if (p < 0.55) {  // an ellipse, never elongated enough to pass for a 1
    const int a = rng.integer(3, 12);
    const int b = std::max(2, static_cast<int>(std::lround(a * rng.uniform(0.65, 1.0))));
    cv::ellipse(canvas, c, cv::Size(a, b), rng.uniform(0, 180), 0, 360, cv::Scalar(255), cv::FILLED, cv::LINE_AA);
  } else if (p < 0.8) {  // an irregular blot
    const double radius = rng.uniform(4, 22);
    const int n = rng.integer(7, 11);
    std::vector<cv::Point> poly;
    for (int i = 0; i < n; ++i) {
      const double angle = 2 * kPi * (i + rng.uniform(-0.3, 0.3)) / n, r = radius * rng.uniform(0.55, 1.0);
      poly.emplace_back(static_cast<int>(std::lround(80 + r * std::cos(angle))),
                        static_cast<int>(std::lround(80 + r * std::sin(angle))));
    }
    cv::fillPoly(canvas, std::vector<std::vector<cv::Point>>{poly}, cv::Scalar(255), cv::LINE_AA);
  } else {  // specks of dirt
    const int box = rng.integer(15, 60), n = rng.integer(3, 9);
    for (int i = 0; i < n; ++i)
      cv::circle(canvas, cv::Point(50 + rng.integer(0, box), 50 + rng.integer(0, box)), rng.integer(1, 3),
                 cv::Scalar(255), cv::FILLED, cv::LINE_AA);
  }
  return crop_to_ink(canvas);
}

// Catmull-Rom spline through `points`, 12 samples a span.
std::vector<cv::Point2d> smooth(const std::vector<cv::Point2d>& points) {
  std::vector<cv::Point2d> out;
  for (size_t i = 0; i + 1 < points.size(); ++i) {
    const cv::Point2d p0 = points[i == 0 ? 0 : i - 1], p1 = points[i], p2 = points[i + 1],
                      p3 = points[std::min(i + 2, points.size() - 1)];
    for (int s = 0; s < 12; ++s) {
      const double t = s / 12.0, t2 = t * t, t3 = t2 * t;
      out.push_back(0.5 * (2 * p1 + (p2 - p0) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t2 +
                           (3 * p1 - p0 - 3 * p2 + p3) * t3));
    }
  }
  out.push_back(points.back());
  return out;
}

// Wide on purpose: a compact random curve can be a handwritten digit.
cv::Mat draw_scribble(Rng& rng) {
  const int t = rng.integer(2, 5);
  const double p = rng.uniform();
  std::vector<cv::Point2d> path;
  if (p < 0.5) {  // a signature: a smooth stroke that runs on and sometimes doubles back
    const double height = rng.uniform(30, 90), width = height * rng.uniform(2.2, 4.5);
    const int n = rng.integer(6, 12);
    std::vector<cv::Point2d> points;
    for (int i = 0; i < n; ++i) {
      const double x = width * i / (n - 1) + rng.uniform(-0.6, 0.3) * width / (n - 1);
      points.emplace_back(x, rng.uniform(0, height));
    }
    path = smooth(points);
  } else if (p < 0.75) {  // running loops, as in "eeee" or a flourish
    const int loops = rng.integer(3, 6);
    const double a = rng.uniform(6, 14), b = a * rng.uniform(1.2, 2.2), c = rng.uniform(15, 35);
    const double drift = rng.uniform(-0.15, 0.15);
    for (double u = 0; u <= 2 * kPi * loops; u += 0.05)
      path.emplace_back(a * u - b * std::sin(u), c * std::cos(u) + drift * a * u);
  } else {  // a zigzag scratch: too many turns for a Z, a 2, an N or a W
    const int turns = rng.integer(5, 9);
    const double width = rng.uniform(50, 160), height = rng.uniform(25, 70);
    for (int i = 0; i <= turns; ++i)
      path.emplace_back(width * i / turns + rng.uniform(-3, 3), (i % 2 ? height : 0) + rng.uniform(-6, 6));
  }
  double min_x = 1e9, min_y = 1e9, max_x = -1e9, max_y = -1e9;
  for (const auto& q : path) {
    min_x = std::min(min_x, q.x), min_y = std::min(min_y, q.y);
    max_x = std::max(max_x, q.x), max_y = std::max(max_y, q.y);
  }
  cv::Mat canvas = cv::Mat::zeros(static_cast<int>(max_y - min_y) + 40, static_cast<int>(max_x - min_x) + 40, CV_8UC1);
  for (auto& q : path) q = q - cv::Point2d(min_x - 20, min_y - 20);
  polyline(canvas, path, t);
  return crop_to_ink(canvas);
}

// ---- digits at page scale ----

// The sides of a digit whose slice no longer looks like any digit, by label. The right part
// of a 3 or an 8 is a 3, either part of a 2, a 4 or a 7 is still a 2, a 4 or a 7 (or a 1
// with a stub), the right part of a 5 or a 9 is a 3 or a 1 with a hook, the left part of a 6
// is a 6; a 1 has no slice that is not a 1.
constexpr int kLeftSlice = 1, kRightSlice = 2;
constexpr std::array<int, 10> kSliceSides = {kLeftSlice | kRightSlice, 0, 0, kLeftSlice, 0,
                                             kLeftSlice, kRightSlice, 0, kLeftSlice, kLeftSlice};

bool pairable(uint8_t label) { return label < 10; }
bool sliceable(uint8_t label) { return label < 10 && kSliceSides[label] != 0; }

std::vector<int64_t> digit_indices(const k::LabelledImages* digits, bool (*usable)(uint8_t)) {
  if (digits == nullptr)
    throw std::invalid_argument("make_negative: glued pairs and digit slices need digit images");
  std::vector<int64_t> indices;
  for (int64_t i = 0; i < digits->count; ++i)
    if (usable(digits->labels[static_cast<size_t>(i)])) indices.push_back(i);
  if (indices.empty())
    throw std::invalid_argument(usable == sliceable
                                    ? "make_negative: the digit images hold no digit that slices (0, 3, 5, 6, 8, 9)"
                                    : "make_negative: the digit images hold no digit 0-9");
  return indices;
}

// One digit image (light on dark, as in IDX files) scaled so that its ink is about
// `ink_height` pixels tall, cropped to the ink. MNIST's grey edges come from shrinking
// binary pen strokes; scaled up they would be a soft blur no pen makes, so the edges are
// made steep again (a smooth step over 50..170) before the page's own blur and shrinking.
cv::Mat digit_at_scale(const k::LabelledImages& digits, int64_t index, double ink_height) {
  static const cv::Mat pen = [] {
    cv::Mat lut(1, 256, CV_8UC1);
    for (int v = 0; v < 256; ++v) {
      const double t = std::clamp((v - 50) / 120.0, 0.0, 1.0);
      lut.at<uint8_t>(0, v) = static_cast<uint8_t>(std::lround(255 * t * t * (3 - 2 * t)));
    }
    return lut;
  }();
  const size_t size = static_cast<size_t>(digits.rows) * static_cast<size_t>(digits.cols);
  cv::Mat image(digits.rows, digits.cols, CV_8UC1,
                const_cast<uint8_t*>(digits.pixels.data() + static_cast<size_t>(index) * size));
  const double scale = ink_height / (0.72 * digits.rows);  // MNIST ink is 20 of 28 rows
  cv::Mat up;
  cv::resize(image, up, cv::Size(), scale, scale, cv::INTER_LINEAR);
  cv::LUT(up, pen, up);
  return crop_to_ink(up, 20);
}

// A random digit from the sample (not the whole set: cheap to draw from 60,000).
int64_t pick_digit(const k::LabelledImages& digits, Rng& rng, bool (*usable)(uint8_t)) {
  for (int tries = 0; tries < 64; ++tries) {
    const int64_t i = static_cast<int64_t>(rng.next() % static_cast<uint64_t>(digits.count));
    if (usable(digits.labels[static_cast<size_t>(i)])) return i;
  }
  const std::vector<int64_t> all = digit_indices(&digits, usable);  // a set of few digits
  return all[static_cast<size_t>(rng.next() % all.size())];
}

cv::Mat draw_glued_pair(const k::LabelledImages* digits, Rng& rng) {
  const double height = rng.uniform(40, 120);
  const cv::Mat left = digit_at_scale(*digits, pick_digit(*digits, rng, pairable), height);
  const cv::Mat right = digit_at_scale(*digits, pick_digit(*digits, rng, pairable), height * rng.uniform(0.85, 1.15));
  const int overlap = rng.integer(0, std::max(0, std::min(left.cols, right.cols) / 4));
  const int dy = (left.rows - right.rows) / 2 + static_cast<int>(std::lround(rng.uniform(-0.1, 0.1) * height));
  try {
    return join_touching(left, right, overlap, dy);
  } catch (const Redraw&) {
    return join_touching(left, right, overlap, (left.rows - right.rows) / 2);
  }
}

// True when the ink is one steep bar, thinner than `thinness` (minor / major spread): what a
// 1 looks like.
bool looks_like_a_bar(const cv::Mat& coverage, double thinness) {
  const cv::Moments m = cv::moments(coverage, false);
  if (m.m00 <= 0) return true;
  const double a = m.mu20 / m.m00, b = m.mu11 / m.m00, c = m.mu02 / m.m00;
  const double root = std::sqrt((a - c) * (a - c) / 4 + b * b);
  const double major = (a + c) / 2 + root, minor = (a + c) / 2 - root;
  const double theta = 0.5 * std::atan2(2 * b, a - c);  // major axis, from the x axis
  const bool steep = std::abs(std::cos(theta)) < std::cos(50 * kPi / 180);
  return steep && std::sqrt(std::max(0.0, minor) / major) < thinness;
}

cv::Mat draw_digit_slice(const k::LabelledImages* digits, Rng& rng) {
  const int64_t index = pick_digit(*digits, rng, sliceable);
  const int sides = kSliceSides[digits->labels[static_cast<size_t>(index)]];
  const cv::Mat digit = digit_at_scale(*digits, index, rng.uniform(40, 120));
  const int keep = std::max(1, static_cast<int>(std::lround(digit.cols * rng.uniform(0.35, 0.6))));
  const bool left = sides == (kLeftSlice | kRightSlice) ? rng.chance(0.5) : sides == kLeftSlice;
  const cv::Mat slice = crop_to_ink(digit(cv::Rect(left ? 0 : digit.cols - keep, 0, keep, digit.rows)), 20);
  // Over a third of the ink gone (a slanted digit loses little to a cut), yet not a sliver.
  const double share = cv::sum(slice)[0] / cv::sum(digit)[0];
  if (share < 0.15 || share > 0.6) throw Redraw{};
  if (slice.cols < 0.3 * slice.rows || looks_like_a_bar(slice, 0.35)) throw Redraw{};
  return slice;
}

// The left or right part of a printed dollar sign, as a cut through a "$" printed just before
// a handwritten amount leaves it: the bar with half the S beside it reads as a 4, a 9 or a 3,
// the other half as a 3 or a 5, and a string would gain digits in front.
cv::Mat draw_symbol_slice(const Fonts& fonts, Rng& rng) {
  const GlyphStyle style = pick_style(fonts, rng, false);
  const cv::Mat sign = jitter(crop_to_ink(render_text(fonts, "$", style)), rng, 4);
  if (sign.cols < 4) throw Redraw{};
  const int at = std::clamp(static_cast<int>(std::lround(sign.cols * rng.uniform(0.3, 0.7))), 1, sign.cols - 1);
  const bool left = rng.chance(0.5);
  cv::Mat slice = sign(cv::Rect(left ? 0 : at, 0, left ? at : sign.cols - at, sign.rows)).clone();
  // As a page's cut does, the slivers the cut leaves apart from the main part go.
  cv::Mat labels, stats, centroids;
  const int n = cv::connectedComponentsWithStats(slice > 96, labels, stats, centroids, 8, CV_32S);
  int largest = 0;
  for (int i = 1; i < n; ++i) largest = std::max(largest, stats.at<int>(i, cv::CC_STAT_AREA));
  for (int i = 1; i < n; ++i)
    if (stats.at<int>(i, cv::CC_STAT_AREA) < 0.12 * largest) slice.setTo(0, labels == i);
  slice = crop_to_ink(slice, 20);
  const double share = cv::sum(slice)[0] / cv::sum(sign)[0];
  if (share < 0.2 || share > 0.8) throw Redraw{};
  return slice;
}

// ---- onto paper, then normalised ----

cv::Mat on_paper(const cv::Mat& coverage, Rng& rng) {
  const int margin = rng.integer(4, 20);
  cv::Mat padded;
  cv::copyMakeBorder(coverage, padded, margin, margin, margin, margin, cv::BORDER_CONSTANT, cv::Scalar(0));
  cv::Mat ink;
  padded.convertTo(ink, CV_32F, 1.0 / 255);
  if (rng.chance(0.5)) cv::GaussianBlur(ink, ink, cv::Size(0, 0), rng.uniform(0.4, 1.1));
  const double paper = rng.uniform(195, 250), dark = rng.uniform(5, 90);
  cv::Mat page = paper - ink * (paper - dark);
  cv::Mat noise(page.size(), CV_32F);
  cv::RNG(rng.next()).fill(noise, cv::RNG::NORMAL, 0.0, rng.uniform(0.0, 4.0));
  page += noise;
  cv::Mat out;
  page.convertTo(out, CV_8U);
  return out;
}

bool has_ink(const DigitPixels& pixels) {
  int strong = 0, peak = 0;
  for (uint8_t p : pixels) strong += p > 50, peak = std::max(peak, int{p});
  return peak >= 100 && strong >= 5;
}

DigitPixels render(NegativeKind kind, uint64_t seed, const k::LabelledImages* digits, const Fonts& fonts) {
  for (uint64_t attempt = 0; attempt < 64; ++attempt) {
    Rng rng(mix(seed, attempt));
    try {
      cv::Mat coverage;
      switch (kind) {
        case NegativeKind::letter: coverage = draw_letter(fonts, rng); break;
        case NegativeKind::cluster: coverage = draw_cluster(fonts, rng); break;
        case NegativeKind::symbol: coverage = draw_symbol(fonts, rng); break;
        case NegativeKind::symbol_slice: coverage = draw_symbol_slice(fonts, rng); break;
        case NegativeKind::line: coverage = draw_line(rng); break;
        case NegativeKind::dot: coverage = draw_dot(rng); break;
        case NegativeKind::scribble: coverage = draw_scribble(rng); break;
        case NegativeKind::glued_pair: coverage = draw_glued_pair(digits, rng); break;
        case NegativeKind::digit_slice: coverage = draw_digit_slice(digits, rng); break;
      }
      // Whatever the kind (a comma in some faces, a thin blot), a steep straight bar is a 1.
      if (looks_like_a_bar(coverage, 0.28)) continue;
      const DigitPixels pixels = normalize_digit(on_paper(coverage, rng));
      if (has_ink(pixels)) return pixels;
    } catch (const Redraw&) {
    } catch (const ImageError&) {
    }
  }
  throw std::logic_error("make_negative: no usable image in 64 attempts");
}

struct KindWeight {
  NegativeKind kind;
  double weight;
};
// Glued pairs and slices are the most common wrong cuts of a segmenter, and the hardest.
const std::vector<KindWeight> kMix = {
    {NegativeKind::letter, 0.16},     {NegativeKind::cluster, 0.10},     {NegativeKind::symbol, 0.10},
    {NegativeKind::symbol_slice, 0.06}, {NegativeKind::line, 0.10},      {NegativeKind::dot, 0.07},
    {NegativeKind::scribble, 0.09},   {NegativeKind::glued_pair, 0.20}, {NegativeKind::digit_slice, 0.12}};

NegativeKind pick_kind(Rng& rng, bool with_digits) {
  double total = 0;
  for (const auto& [kind, weight] : kMix)
    if (with_digits || (kind != NegativeKind::glued_pair && kind != NegativeKind::digit_slice)) total += weight;
  double u = rng.uniform() * total;
  for (const auto& [kind, weight] : kMix) {
    if (!with_digits && (kind == NegativeKind::glued_pair || kind == NegativeKind::digit_slice)) continue;
    if (u < weight) return kind;
    u -= weight;
  }
  return NegativeKind::letter;
}

}  // namespace

DigitPixels make_negative(NegativeKind kind, uint64_t seed, const kernels::LabelledImages* digits) {
  if (kind == NegativeKind::glued_pair || kind == NegativeKind::digit_slice)
    digit_indices(digits, kind == NegativeKind::glued_pair ? pairable : sliceable);
  const Fonts fonts;
  return render(kind, seed, digits, fonts);
}

kernels::LabelledImages make_negatives(int64_t count, uint64_t seed, const kernels::LabelledImages* digits) {
  if (count < 0) throw std::invalid_argument("make_negatives: count must be >= 0");
  const bool with_digits = digits != nullptr && digits->count > 0;
  if (with_digits) digit_indices(digits, pairable);
  const Fonts fonts;
  kernels::LabelledImages out;
  out.count = count;
  out.rows = 28;
  out.cols = 28;
  out.pixels.resize(static_cast<size_t>(count) * 28 * 28);
  out.labels.assign(static_cast<size_t>(count), kNotDigitClass);
  for (int64_t i = 0; i < count; ++i) {
    const uint64_t image_seed = mix(seed, static_cast<uint64_t>(i));
    Rng rng(image_seed);
    const NegativeKind kind = pick_kind(rng, with_digits);
    const DigitPixels pixels = render(kind, rng.next(), with_digits ? digits : nullptr, fonts);
    std::copy(pixels.begin(), pixels.end(), out.pixels.begin() + i * 28 * 28);
  }
  return out;
}

kernels::LabelledImages digits_through_page(const kernels::LabelledImages& digits, uint64_t seed,
                                            double share) {
  kernels::LabelledImages out = digits;
  if (share <= 0) return out;
  if (digits.rows != 28 || digits.cols != 28)
    throw std::invalid_argument("digits_through_page: the digits are not 28x28");
  for (int64_t i = 0; i < digits.count; ++i) {
    if (share < 1 && !Rng(mix(seed ^ 0x5a4e, static_cast<uint64_t>(i))).chance(share)) continue;
    DigitPixels pixels{};
    bool done = false;
    for (uint64_t attempt = 0; attempt < 16 && !done; ++attempt) {
      Rng rng(mix(mix(seed, static_cast<uint64_t>(i)), attempt));
      try {
        pixels = normalize_digit(on_paper(digit_at_scale(digits, i, rng.uniform(40, 120)), rng));
        done = true;
      } catch (const Redraw&) {
      } catch (const ImageError&) {
      }
    }
    if (done) std::copy(pixels.begin(), pixels.end(), out.pixels.begin() + i * 28 * 28);  // else: no ink
  }
  return out;
}

kernels::LabelledImages with_negatives(const kernels::LabelledImages& digits,
                                       const kernels::LabelledImages& negatives, uint64_t seed,
                                       std::vector<bool>* from_digits) {
  if (negatives.count > 0 && (digits.rows != negatives.rows || digits.cols != negatives.cols))
    throw std::invalid_argument("with_negatives: the digits are " + std::to_string(digits.rows) + "x" +
                                std::to_string(digits.cols) + " but the negatives " +
                                std::to_string(negatives.rows) + "x" + std::to_string(negatives.cols));
  const size_t size = static_cast<size_t>(digits.rows) * static_cast<size_t>(digits.cols);
  const int64_t total = digits.count + negatives.count;
  std::vector<int64_t> order(static_cast<size_t>(total));
  std::iota(order.begin(), order.end(), 0);
  Rng rng(mix(seed, 0x5e7));
  for (int64_t i = total - 1; i > 0; --i)  // Fisher-Yates
    std::swap(order[static_cast<size_t>(i)], order[static_cast<size_t>(rng.next() % static_cast<uint64_t>(i + 1))]);
  kernels::LabelledImages out;
  out.count = total;
  out.rows = digits.rows;
  out.cols = digits.cols;
  out.pixels.resize(static_cast<size_t>(total) * size);
  out.labels.resize(static_cast<size_t>(total));
  if (from_digits) from_digits->assign(static_cast<size_t>(total), false);
  for (int64_t i = 0; i < total; ++i) {
    const int64_t src = order[static_cast<size_t>(i)];
    if (from_digits) (*from_digits)[static_cast<size_t>(i)] = src < digits.count;
    const kernels::LabelledImages& from = src < digits.count ? digits : negatives;
    const int64_t j = src < digits.count ? src : src - digits.count;
    std::copy_n(from.pixels.begin() + static_cast<std::ptrdiff_t>(static_cast<size_t>(j) * size), size,
                out.pixels.begin() + static_cast<std::ptrdiff_t>(static_cast<size_t>(i) * size));
    out.labels[static_cast<size_t>(i)] = from.labels[static_cast<size_t>(j)];
  }
  return out;
}

double rejected_share(const kernels::EvalResult& result) {
  if (result.count == 0 || result.confusion.size() <= kNotDigitClass) return 0.0;
  int64_t rejected = 0;
  for (const auto& row : result.confusion) rejected += row[kNotDigitClass];
  return static_cast<double>(rejected) / static_cast<double>(result.count);
}

}  // namespace digitflow::pipeline

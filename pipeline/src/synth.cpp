// Synthetic test jobs: pages drawn like real scans (a printed form, a bank check, a loose
// sheet) carrying handwritten strings made of MNIST test digits (training digits on request), and a truth.jsonl giving each
// digit's box in the page as stored. Every page draws from its own seeded generator
// (splitmix64, the same on every platform), so a seed names a job byte for byte.
#include "digitflow/pipeline/synth.hpp"

#include "digitflow/pipeline/fields.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <numbers>
#include <opencv2/freetype.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <optional>
#include <stdexcept>
#include <vector>
// After OpenCV's headers: libtiff's own (deprecated) int64 typedef must not be the one they see.
#include <tiffio.h>

#include "digitflow/kernels/idx.hpp"
#include "digitflow/pipeline/results.hpp"

namespace digitflow::pipeline {
namespace {

namespace fs = std::filesystem;

// ---------------------------------------------------------------- randomness

class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next() {  // splitmix64
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform(double lo = 0.0, double hi = 1.0) {
    return lo + (hi - lo) * static_cast<double>(next() >> 11) * 0x1.0p-53;
  }
  int integer(int lo, int hi) {  // inclusive
    return lo + static_cast<int>(next() % static_cast<uint64_t>(hi - lo + 1));
  }
  bool chance(double p) { return uniform() < p; }
  double normal() {  // Box-Muller
    const double u = uniform(1e-12, 1.0), v = uniform();
    return std::sqrt(-2.0 * std::log(u)) * std::cos(2.0 * std::numbers::pi * v);
  }
  template <typename T, size_t N>
  const T& pick(const std::array<T, N>& items) {
    return items[static_cast<size_t>(integer(0, static_cast<int>(N) - 1))];
  }

 private:
  uint64_t state_;
};

// A generator per (seed, stream): pages and files draw independently of one another.
Rng stream(uint64_t seed, uint64_t stream_id) {
  Rng mixer(seed ^ (0xD1B54A32D192ED03ull * (stream_id + 1)));
  return Rng(mixer.next());
}

int round_int(double v) { return static_cast<int>(std::lround(v)); }

// ---------------------------------------------------------------- assets

struct DigitBank {
  kernels::LabelledImages set;
  std::array<std::vector<int64_t>, 10> by_label;
};

DigitBank load_digit_bank(const fs::path& dir, bool training_digits) {
  if (dir.empty()) throw std::runtime_error("no MNIST folder given");
  const std::string prefix = training_digits ? "train" : "t10k";
  const fs::path images = dir / (prefix + "-images-idx3-ubyte"), labels = dir / (prefix + "-labels-idx1-ubyte");
  std::error_code ec;
  if (!fs::exists(images, ec) || !fs::exists(labels, ec))
    throw std::runtime_error(dir.string() + ": no MNIST " + (training_digits ? "training" : "test") +
                             " set here (" + images.filename().string() + " and " +
                             labels.filename().string() +
                             "); run scripts/fetch-mnist.sh or name the folder that holds them");
  DigitBank bank;
  bank.set = kernels::read_idx_images(images, labels);
  for (int64_t i = 0; i < bank.set.count; ++i) {
    const uint8_t label = bank.set.labels[static_cast<size_t>(i)];
    if (label > 9)
      throw std::runtime_error(labels.string() + ": label " + std::to_string(label) +
                               " is not a digit");
    bank.by_label[label].push_back(i);
  }
  for (int d = 0; d < 10; ++d)
    if (bank.by_label[static_cast<size_t>(d)].empty())
      throw std::runtime_error(labels.string() + ": no image of the digit " + std::to_string(d));
  return bank;
}

// Darkens `page` (8-bit gray) where `alpha` (CV_32F coverage 0..1) has ink of gray level
// `ink`; the darker of page and ink wins, as when ink lands on paper or print.
void put_ink(cv::Mat& page, const cv::Mat& alpha, cv::Point at, int ink) {
  const cv::Rect dst = cv::Rect(at, alpha.size()) & cv::Rect(0, 0, page.cols, page.rows);
  if (dst.empty()) return;
  const cv::Point src = dst.tl() - at;
  const float depth = static_cast<float>(255 - ink);
  for (int y = 0; y < dst.height; ++y) {
    uint8_t* p = page.ptr<uint8_t>(dst.y + y) + dst.x;
    const float* a = alpha.ptr<float>(src.y + y) + src.x;
    for (int x = 0; x < dst.width; ++x) {
      const auto v = static_cast<uint8_t>(std::lround(255.0f - a[x] * depth));
      if (v < p[x]) p[x] = v;
    }
  }
}

enum class Face { sans, sans_bold, serif, serif_bold, mono, mono_bold };

// The DejaVu faces of Debian's fonts-dejavu-core, loaded once per job.
class Fonts {
 public:
  Fonts() {
    const fs::path dir = "/usr/share/fonts/truetype/dejavu";
    const std::array<const char*, 6> files = {"DejaVuSans.ttf",     "DejaVuSans-Bold.ttf",
                                              "DejaVuSerif.ttf",    "DejaVuSerif-Bold.ttf",
                                              "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf"};
    for (size_t i = 0; i < files.size(); ++i) {
      const fs::path file = dir / files[i];
      if (!fs::exists(file))
        throw std::runtime_error(file.string() + ": font missing (install fonts-dejavu-core)");
      faces_[i] = cv::freetype::createFreeType2();
      faces_[i]->loadFontData(file.string(), 0);
    }
  }

  int width(Face face, const std::string& text, int height) const {
    int baseline = 0;
    return faces_[static_cast<size_t>(face)]->getTextSize(text, height, -1, &baseline).width;
  }

  // Prints `text` with the top-left corner of its em box at `at`. FreeType2 draws only on
  // colour images, so the text goes through a small white patch.
  void print(cv::Mat& page, Face face, const std::string& text, cv::Point at, int height,
             int ink) const {
    const int pad = height / 2;
    cv::Mat patch(2 * height, width(face, text, height) + 2 * pad, CV_8UC3, cv::Scalar::all(255));
    faces_[static_cast<size_t>(face)]->putText(patch, text, {pad, pad}, height, cv::Scalar::all(0),
                                               -1, cv::LINE_AA, false);
    cv::Mat gray, alpha;
    cv::cvtColor(patch, gray, cv::COLOR_BGR2GRAY);
    gray.convertTo(alpha, CV_32F, -1.0 / 255, 1.0);
    put_ink(page, alpha, at - cv::Point(pad, pad), ink);
  }

 private:
  std::array<cv::Ptr<cv::freetype::FreeType2>, 6> faces_;
};

struct Assets {
  DigitBank digits;
  Fonts fonts;
  double touching = 0.12;  // SynthOptions::touching_share
};

// ---------------------------------------------------------------- handwriting

// One writer's style, fixed for a string.
struct Hand {
  double height = 70;  // ink height of a digit, px
  double slant = 0;    // x shift per px of height; positive leans right
  double pen = 7;      // stroke width, px (a ballpoint is about 5, a felt tip 10)
  double gap = 0.2;    // usual gap between digits, as a fraction of the height
  int ink = 40;        // gray level of the pen
};

Hand random_hand(Rng& rng, double min_height, double max_height) {
  Hand hand;
  hand.height = rng.uniform(min_height, max_height);
  hand.slant = rng.uniform(-0.12, 0.28);
  hand.pen = rng.uniform(4.0, 10.0);
  hand.gap = rng.uniform(0.06, 0.4);
  hand.ink = rng.integer(15, 85);
  return hand;
}

struct Glyph {
  int digit = 0;
  int64_t source = -1;  // its image's index in the MNIST set
  cv::Mat alpha;  // CV_32F ink coverage 0..1, cropped to the ink
};

// Mean width of the strokes in a coverage image: twice the ink area over its outline.
double stroke_width(const cv::Mat& alpha) {
  const cv::Mat ink = alpha > 0.5;
  cv::Mat inner;
  cv::erode(ink, inner, cv::getStructuringElement(cv::MORPH_CROSS, {3, 3}));
  const int outline = cv::countNonZero(ink) - cv::countNonZero(inner);
  return outline > 0 ? 2.0 * cv::countNonZero(ink) / outline : 0.0;
}

// A random MNIST test image of `digit`, cropped to its ink, scaled to the hand's height
// (times `scale`), slanted, brought to the hand's pen width, and given crisp edges.
Glyph make_glyph(const DigitBank& bank, int digit, const Hand& hand, double scale, Rng& rng) {
  const auto& pool = bank.by_label[static_cast<size_t>(digit)];
  const int64_t index =
      pool[static_cast<size_t>(rng.integer(0, static_cast<int>(pool.size()) - 1))];
  const int rows = bank.set.rows, cols = bank.set.cols;
  const cv::Mat source(rows, cols, CV_8UC1,
                       const_cast<uint8_t*>(bank.set.pixels.data() + index * rows * cols));
  const cv::Rect ink = cv::boundingRect(source > 40);
  cv::Mat crop;
  source(ink).convertTo(crop, CV_32F, 1.0 / 255);
  cv::copyMakeBorder(crop, crop, 2, 2, 2, 2, cv::BORDER_CONSTANT, cv::Scalar(0));

  const double factor = hand.height * scale / ink.height;
  cv::Mat big;
  cv::resize(crop, big, cv::Size(), factor, factor, cv::INTER_CUBIC);

  // x' = x + slant * (height - y): the bottom stays, the top leans.
  const double h = big.rows;
  const int extra = static_cast<int>(std::ceil(std::abs(hand.slant) * h));
  const cv::Mat shear =
      (cv::Mat_<double>(2, 3) << 1, -hand.slant, hand.slant > 0 ? hand.slant * h : 0, 0, 1, 0);
  cv::Mat slanted;
  cv::warpAffine(big, slanted, shear, cv::Size(big.cols + extra, big.rows), cv::INTER_LINEAR,
                 cv::BORDER_CONSTANT, cv::Scalar(0));

  // Each dilation or erosion step moves the stroke width by about 2 px.
  const cv::Mat pen = cv::getStructuringElement(cv::MORPH_ELLIPSE, {3, 3});
  const int steps = std::clamp(round_int((hand.pen - stroke_width(slanted)) / 2), -2, 3);
  if (steps > 0) cv::dilate(slanted, slanted, pen, {-1, -1}, steps);
  if (steps < 0) cv::erode(slanted, slanted, pen, {-1, -1}, -steps);

  slanted = (slanted - 0.15) * 1.8;  // crisper edges than an upscaled 28x28 image
  cv::threshold(slanted, slanted, 1.0, 1.0, cv::THRESH_TRUNC);
  cv::threshold(slanted, slanted, 0.0, 0.0, cv::THRESH_TOZERO);
  const cv::Rect box = cv::boundingRect(slanted > 0.02);
  return {digit, index, slanted(box).clone()};
}

struct PlacedGlyph {
  Glyph glyph;
  cv::Point at;  // top-left in the string's frame
};

struct HandString {
  std::string text;
  std::vector<PlacedGlyph> glyphs;
  cv::Size size;
  int baseline = 0;  // y of the line the digits sit on, in the string's frame
  int ink = 0;
};

// Per row of `alpha`, the column of its leftmost (or rightmost) ink, -1 where there is none.
std::vector<int> ink_edge(const cv::Mat& alpha, bool rightmost) {
  std::vector<int> edge(static_cast<size_t>(alpha.rows), -1);
  for (int y = 0; y < alpha.rows; ++y) {
    const float* a = alpha.ptr<float>(y);
    for (int i = 0; i < alpha.cols; ++i) {
      const int x = rightmost ? alpha.cols - 1 - i : i;
      if (a[x] > 0.3f) {
        edge[static_cast<size_t>(y)] = x;
        break;
      }
    }
  }
  return edge;
}

// The left edge for `next` (its top at `top`) that makes its ink touch, and overlap by a
// few pixels, the ink of `prev`.
int touching_left(const PlacedGlyph& prev, const Glyph& next, int top, Rng& rng) {
  const std::vector<int> right = ink_edge(prev.glyph.alpha, true),
                         left = ink_edge(next.alpha, false);
  int best = std::numeric_limits<int>::min();
  for (int y = std::max(prev.at.y, top);
       y < std::min(prev.at.y + prev.glyph.alpha.rows, top + next.alpha.rows); ++y) {
    const int r = right[static_cast<size_t>(y - prev.at.y)], l = left[static_cast<size_t>(y - top)];
    if (r >= 0 && l >= 0) best = std::max(best, prev.at.x + r - l);
  }
  if (best == std::numeric_limits<int>::min())
    best = prev.at.x + prev.glyph.alpha.cols - next.alpha.cols / 6;
  return std::max(prev.at.x + 1, best - rng.integer(0, 3));
}

// Lays out `text` left to right: per-digit size and baseline jitter, gaps that vary, and
// when `touching` one pair of neighbours whose ink runs together.
HandString write_digits(const DigitBank& bank, const std::string& text, const Hand& hand,
                        bool touching, Rng& rng) {
  HandString s;
  s.text = text;
  s.ink = hand.ink;
  const int touch_at =
      touching && text.size() >= 2 ? rng.integer(0, static_cast<int>(text.size()) - 2) : -1;
  for (size_t i = 0; i < text.size(); ++i) {
    Glyph glyph = make_glyph(bank, text[i] - '0', hand, rng.uniform(0.93, 1.07), rng);
    const double drift = std::clamp(rng.normal() * 0.03, -0.06, 0.06);
    const int top = -glyph.alpha.rows + round_int(drift * hand.height);  // baseline at y = 0
    int left = 0;
    if (i > 0) {
      const PlacedGlyph& prev = s.glyphs.back();
      if (static_cast<int>(i) - 1 == touch_at)
        left = touching_left(prev, glyph, top, rng);
      else
        left = prev.at.x + prev.glyph.alpha.cols +
               std::max(3, round_int(hand.height * (hand.gap + rng.uniform(-0.05, 0.05))));
    }
    s.glyphs.push_back({std::move(glyph), {left, top}});
  }
  int min_top = 0;
  for (const PlacedGlyph& g : s.glyphs) min_top = std::min(min_top, g.at.y);
  for (PlacedGlyph& g : s.glyphs) {
    g.at.y -= min_top;
    s.size.width = std::max(s.size.width, g.at.x + g.glyph.alpha.cols);
    s.size.height = std::max(s.size.height, g.at.y + g.glyph.alpha.rows);
  }
  s.baseline = -min_top;
  return s;
}

// As write_digits, smaller when it would not fit `max_width`.
HandString write_digits_within(const DigitBank& bank, const std::string& text, Hand hand,
                               bool touching, int max_width, Rng& rng) {
  for (int attempt = 0;; ++attempt) {
    HandString s = write_digits(bank, text, hand, touching, rng);
    if (s.size.width <= max_width || attempt == 4) return s;
    hand.height *= 0.97 * max_width / s.size.width;
  }
}

// Inks the string onto the page with its frame's top-left at `origin`; returns its truth.
StringResult put_string(cv::Mat& page, const HandString& s, cv::Point origin, std::vector<int64_t>* sources) {
  StringResult result;
  result.text = s.text;
  result.confidence = 1.0;
  for (const PlacedGlyph& g : s.glyphs) {
    const cv::Point at = origin + g.at;
    put_ink(page, g.glyph.alpha, at, s.ink);
    DigitResult digit;
    digit.digit = g.glyph.digit;
    digit.box = {at.x, at.y, g.glyph.alpha.cols, g.glyph.alpha.rows};
    digit.confidence = 1.0f;
    result.digits.push_back(digit);
    sources->push_back(g.glyph.source);
  }
  return result;
}

// A signature-like scribble across `area`: a prolate cycloid (the loops of cursive writing)
// whose loop widths, heights, tightness and baseline wander from loop to loop. Not digits,
// and not in the truth.
void draw_scribble(cv::Mat& page, const cv::Rect& area, int ink, Rng& rng) {
  const double period = area.height * rng.uniform(0.4, 0.8);  // px of paper per loop, on average
  struct Loop {
    double start, width, height, drift, tightness;
  };
  std::vector<Loop> loops;
  for (double x = 0; x < area.width - period;) {
    const Loop loop{x, period * rng.uniform(0.6, 1.6), area.height * rng.uniform(0.12, 0.5),
                    area.height * rng.uniform(-0.15, 0.15), rng.uniform(0.4, 2.4)};
    loops.push_back(loop);
    x += loop.width;
  }
  if (loops.size() < 2) return;
  std::vector<cv::Point> curve;  // in 1/16 px
  for (size_t i = 0; i + 1 < loops.size(); ++i) {
    const Loop &l = loops[i], &n = loops[i + 1];
    for (double t = 0; t < 1; t += 1.0 / 48) {
      const double angle = 2 * std::numbers::pi * t, s = std::sin(angle);
      auto mix = [&](double from, double to) { return from + (to - from) * t; };
      const double back =
          mix(l.tightness, n.tightness) * mix(l.width, n.width) / (2 * std::numbers::pi);
      const double x = area.x + l.start + l.width * t - back * s;
      const double y = area.y + area.height * 0.5 + mix(l.drift, n.drift) -
                       mix(l.height, n.height) * std::cos(angle);
      curve.emplace_back(round_int(x * 16), round_int(y * 16));
    }
  }
  cv::polylines(page, std::vector<std::vector<cv::Point>>{curve}, false, cv::Scalar(ink),
                rng.integer(2, 5), cv::LINE_AA, 4);
}

// ---------------------------------------------------------------- field values

std::string random_digits(int n, Rng& rng, bool leading_zero) {
  std::string s;
  for (int i = 0; i < n; ++i)
    s += static_cast<char>('0' + (i == 0 && !leading_zero ? rng.integer(1, 9) : rng.integer(0, 9)));
  return s;
}

// Appends the Luhn check digit.
std::string with_luhn_digit(std::string payload) {
  int sum = 0;
  for (size_t i = 0; i < payload.size(); ++i) {
    int d = payload[payload.size() - 1 - i] - '0';
    if (i % 2 == 0) d = d * 2 > 9 ? d * 2 - 9 : d * 2;
    sum += d;
  }
  return payload + static_cast<char>('0' + (10 - sum % 10) % 10);
}

// Nine digits whose weighted sum (3, 7, 1 repeating) is a multiple of 10, with a Federal
// Reserve district prefix as real routing numbers have.
std::string aba_routing(Rng& rng) {
  const int prefix = rng.chance(0.5) ? rng.integer(1, 12) : rng.integer(21, 32);
  std::string s = std::string(1, static_cast<char>('0' + prefix / 10)) +
                  static_cast<char>('0' + prefix % 10) + random_digits(6, rng, true);
  const std::array<int, 3> weights = {3, 7, 1};
  int sum = 0;
  for (size_t i = 0; i < s.size(); ++i) sum += (s[i] - '0') * weights[i % 3];
  return s + static_cast<char>('0' + (10 - sum % 10) % 10);
}

std::string calendar_date(Rng& rng) {  // DDMMYYYY
  const int year = rng.integer(1990, 2030), month = rng.integer(1, 12);
  const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  const std::array<int, 12> days = {31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const int day = rng.integer(1, days[static_cast<size_t>(month - 1)]);
  char text[32];
  std::snprintf(text, sizeof text, "%02d%02d%04d", day, month, year);
  return text;
}

// ---------------------------------------------------------------- layouts

enum class Frame { box, underline };

// A field of a form or check: the printed frame the digits are written in.
struct FieldLayout {
  const char* name;
  const char* label;
  cv::Rect2d area;  // where the digits go, as fractions of the page
  Frame frame;
  int min_length, max_length;
  const char* rule;  // as template.yaml names it
};

const std::array<FieldLayout, 8> kFormFields = {{
    {"routing", "Routing number", {0.34, 0.150, 0.40, 0.036}, Frame::box, 9, 9, "aba_routing"},
    {"account", "Account number", {0.34, 0.245, 0.50, 0.036}, Frame::underline, 8, 12, "none"},
    {"card", "Card number", {0.34, 0.340, 0.58, 0.036}, Frame::box, 16, 16, "luhn"},
    {"date", "Date", {0.34, 0.435, 0.36, 0.036}, Frame::box, 8, 8, "date"},
    {"amount", "Amount", {0.34, 0.530, 0.32, 0.036}, Frame::underline, 3, 7, "amount"},
    {"reference", "Reference", {0.34, 0.625, 0.42, 0.036}, Frame::underline, 6, 10, "none"},
    {"postcode", "Postcode", {0.34, 0.720, 0.24, 0.036}, Frame::box, 5, 5, "none"},
    {"phone", "Phone", {0.34, 0.815, 0.44, 0.036}, Frame::underline, 10, 10, "none"},
}};

const std::array<FieldLayout, 4> kCheckFields = {{
    {"date", "Date", {0.62, 0.055, 0.30, 0.115}, Frame::underline, 8, 8, "date"},
    {"amount", "$", {0.745, 0.33, 0.225, 0.13}, Frame::box, 3, 7, "amount"},
    {"routing", "Routing number", {0.05, 0.78, 0.32, 0.13}, Frame::box, 9, 9, "aba_routing"},
    {"account", "Account number", {0.42, 0.78, 0.40, 0.13}, Frame::box, 8, 12, "none"},
}};

const cv::Size kFormSize(2480, 3508), kCheckSize(1800, 800), kFreeSize(1748, 2480);
constexpr double kMaxRotation = 4.0;  // degrees, either way
constexpr int kDrawnDpi = 300;         // pages are drawn at this resolution, then scanned

struct Scanner {
  int dpi = kDrawnDpi;
  bool bitonal = false;
};

std::string field_text(const FieldLayout& field, Rng& rng) {
  const std::string name = field.name;
  const int length = rng.integer(field.min_length, field.max_length);
  if (name == "routing") return aba_routing(rng);
  if (name == "card") {  // 16 digits, the first a card network's (3-6)
    const int network = rng.integer(3, 6);
    return with_luhn_digit(std::to_string(network) + random_digits(14, rng, true));
  }
  if (name == "account")  // half of them carry a Luhn check digit, as many banks' do
    return rng.chance(0.5) ? with_luhn_digit(random_digits(length - 1, rng, false))
                           : random_digits(length, rng, false);
  if (name == "date") return calendar_date(rng);
  if (name == "amount") return random_digits(length, rng, false);
  if (name == "phone")
    return rng.chance(0.5) ? "0" + random_digits(9, rng, true) : random_digits(10, rng, false);
  return random_digits(length, rng, true);
}

// A page as drawn, before it is stored.
struct Page {
  cv::Mat image;  // CV_8UC1
  int paper = 235;
  cv::Scalar tint = cv::Scalar::all(1.0);  // B, G, R factors for a page stored in colour
  std::vector<StringResult> strings;
  std::vector<std::vector<int64_t>> sources;  // per string, its digits' MNIST indices
  std::vector<FieldResult> fields;
  std::vector<size_t> field_strings;  // the string each field was written as
};

cv::Rect to_pixels(const cv::Rect2d& fraction, cv::Size page, cv::Point shift) {
  return {round_int(fraction.x * page.width) + shift.x,
          round_int(fraction.y * page.height) + shift.y, round_int(fraction.width * page.width),
          round_int(fraction.height * page.height)};
}

// Writes the field's digits in its frame: near the bottom line, sometimes crossing it or
// the left border, as people do.
void write_field(Page& page, const Assets& assets, const FieldLayout& field, const cv::Rect& area,
                 const Hand& hand, Rng& rng) {
  const int pad = 12;
  const std::string text = field_text(field, rng);
  const HandString s =
      write_digits_within(assets.digits, text, hand, rng.chance(assets.touching), area.width - 2 * pad, rng);
  const int slack = std::max(0, area.width - 2 * pad - s.size.width);
  int x = area.x + pad + round_int(slack * rng.uniform(0.0, 0.35));
  if (rng.chance(0.08)) x = area.x - rng.integer(2, 8);
  const int bottom =
      area.br().y - (field.frame == Frame::box ? rng.integer(-6, 22) : rng.integer(-8, 14));
  page.strings.push_back(put_string(page.image, s, {x, bottom - s.baseline}, &page.sources.emplace_back()));

  FieldResult f;
  f.name = field.name;
  f.rule = std::string(field.rule) == "none" ? "" : field.rule;
  FieldSpec spec;
  spec.rule = rule_from_name(field.rule).value_or(FieldRule::none);
  f.text = format_field(spec, text);  // as digitflow run writes it: amounts with their point
  f.found = f.valid = true;
  f.confidence = 1.0;
  page.fields.push_back(f);
  page.field_strings.push_back(page.strings.size() - 1);
}

void draw_frame(cv::Mat& image, const cv::Rect& area, Frame frame, int ink, int thickness) {
  if (frame == Frame::box)
    cv::rectangle(image, area, cv::Scalar(ink), thickness, cv::LINE_AA);
  else
    cv::line(image, {area.x, area.br().y}, area.br(), cv::Scalar(ink), thickness, cv::LINE_AA);
}

// An A4 form at 300 dpi: title, instructions, eight labelled fields in fixed places (the
// template's zones), a signature and an office-use box.
Page draw_form_page(const Assets& assets, Rng& rng) {
  Page page;
  const cv::Size size = kFormSize;
  page.paper = rng.integer(190, 245);
  page.image = cv::Mat(size, CV_8UC1, cv::Scalar(page.paper));
  const cv::Point shift{rng.integer(-6, 6), rng.integer(-6, 6)};
  const int print = rng.integer(20, 60), thickness = rng.integer(2, 3);
  const Fonts& fonts = assets.fonts;
  auto at = [&](double fx, double fy) {
    return cv::Point(round_int(fx * size.width), round_int(fy * size.height)) + shift;
  };

  fonts.print(page.image, Face::serif_bold, "Customer Account Form", at(0.08, 0.040), 84, print);
  fonts.print(
      page.image, Face::sans,
      "Please write in dark ink, one figure after another, inside the boxes or on the lines.",
      at(0.08, 0.078), 36, print);
  cv::line(page.image, at(0.08, 0.110), at(0.92, 0.110), cv::Scalar(print), 4, cv::LINE_AA);

  for (const FieldLayout& field : kFormFields) {
    const cv::Rect area = to_pixels(field.area, size, shift);
    fonts.print(page.image, Face::sans_bold, field.label,
                {at(0.08, 0).x, area.y + area.height / 2 - 36}, 44, print);
    if (std::string(field.name) == "date")
      fonts.print(page.image, Face::sans, "day  month  year",
                  {at(0.08, 0).x, area.y + area.height / 2 + 20}, 28, print);
    draw_frame(page.image, area, field.frame, print, thickness);
    write_field(page, assets, field, area, random_hand(rng, 50, 90), rng);
  }

  fonts.print(page.image, Face::sans_bold, "Signature", at(0.08, 0.880), 44, print);
  cv::line(page.image, at(0.34, 0.912), at(0.60, 0.912), cv::Scalar(print), thickness, cv::LINE_AA);
  draw_scribble(page.image, cv::Rect(at(0.36, 0.868), at(0.57, 0.908)), rng.integer(15, 85), rng);
  cv::rectangle(page.image, cv::Rect(at(0.66, 0.870), at(0.92, 0.930)), cv::Scalar(print),
                thickness, cv::LINE_AA);
  fonts.print(page.image, Face::sans, "For office use only", at(0.675, 0.876), 30, print);
  return page;
}

// Faint interlaced waves across the check, as security backgrounds have.
void draw_guilloche(cv::Mat& image, int paper, Rng& rng) {
  const int lines = rng.integer(10, 18);
  const int level = paper - rng.integer(12, 30);
  const double w1 = 2 * std::numbers::pi / (image.cols * rng.uniform(0.15, 0.35));
  const double w2 = 2 * std::numbers::pi / (image.cols * rng.uniform(0.05, 0.12));
  const double a1 = image.rows * rng.uniform(0.06, 0.12), a2 = image.rows * rng.uniform(0.01, 0.03);
  for (int k = 0; k < lines; ++k) {
    const double phase = 2 * std::numbers::pi * k / lines, centre = image.rows * (k + 0.5) / lines;
    std::vector<cv::Point> curve;
    for (int x = 0; x <= image.cols; x += 6)
      curve.emplace_back(
          x, round_int(centre + a1 * std::sin(w1 * x + phase) + a2 * std::sin(w2 * x + 2 * phase)));
    cv::polylines(image, std::vector<std::vector<cv::Point>>{curve}, false, cv::Scalar(level), 1,
                  cv::LINE_AA);
  }
}

// A personal check (about 6 x 2.7 inches at 300 dpi) on a tinted security background: bank
// name, date, payee line, amount box, memo, signature, routing and account boxes.
Page draw_check_page(const Assets& assets, Rng& rng) {
  Page page;
  const cv::Size size{kCheckSize.width + rng.integer(-12, 12),
                      kCheckSize.height + rng.integer(-8, 8)};
  page.paper = rng.integer(200, 245);
  page.image = cv::Mat(size, CV_8UC1, cv::Scalar(page.paper));
  page.tint = rng.pick(std::array{cv::Scalar::all(1.0), cv::Scalar(0.92, 1.0, 0.93),
                                  cv::Scalar(1.0, 0.96, 0.90), cv::Scalar(0.88, 0.97, 1.0)});
  const cv::Point shift{rng.integer(-5, 5), rng.integer(-5, 5)};
  const int print = rng.integer(25, 70);
  const Fonts& fonts = assets.fonts;
  auto at = [&](double fx, double fy) {
    return cv::Point(round_int(fx * size.width), round_int(fy * size.height)) + shift;
  };

  draw_guilloche(page.image, page.paper, rng);
  cv::rectangle(page.image, cv::Rect(12, 12, size.width - 24, size.height - 24),
                cv::Scalar(print + 40), 3, cv::LINE_AA);
  fonts.print(page.image, Face::serif_bold,
              rng.pick(std::array<std::string, 5>{"First Meridian Bank", "Harbor Savings Bank",
                                                  "Northfield Credit Union", "Union Trust Company",
                                                  "Lakeside National Bank"}),
              at(0.05, 0.055), 52, print);
  fonts.print(page.image, Face::sans,
              rng.pick(std::array<std::string, 3>{"Main Street Branch", "Riverside Office",
                                                  "Market Square Branch"}),
              at(0.05, 0.150), 26, print);

  const Hand writer = random_hand(rng, 45, 75);  // one person fills in the whole check
  auto hand = [&] {
    Hand h = writer;
    h.height *= rng.uniform(0.9, 1.1);
    return h;
  };
  auto field = [&](size_t i) -> const FieldLayout& { return kCheckFields[i]; };

  const cv::Rect date = to_pixels(field(0).area, size, shift);
  fonts.print(page.image, Face::sans, "Date", {date.x - 100, date.br().y - 42}, 32, print);
  draw_frame(page.image, date, Frame::underline, print, 2);
  write_field(page, assets, field(0), date, hand(), rng);

  fonts.print(page.image, Face::sans, "Pay to the", at(0.05, 0.330), 28, print);
  fonts.print(page.image, Face::sans, "order of", at(0.05, 0.380), 28, print);
  cv::line(page.image, at(0.17, 0.450), at(0.70, 0.450), cv::Scalar(print), 2, cv::LINE_AA);
  if (rng.chance(0.7))
    draw_scribble(page.image, cv::Rect(at(0.19, 0.350), at(0.50, 0.440)), writer.ink, rng);

  const cv::Rect amount = to_pixels(field(1).area, size, shift);
  fonts.print(page.image, Face::serif_bold, "$", {amount.x - 44, amount.y + amount.height / 2 - 36},
              56, print);
  draw_frame(page.image, amount, Frame::box, print, 2);
  write_field(page, assets, field(1), amount, hand(), rng);

  cv::line(page.image, at(0.05, 0.570), at(0.80, 0.570), cv::Scalar(print), 2, cv::LINE_AA);
  fonts.print(page.image, Face::sans, "DOLLARS", at(0.82, 0.525), 28, print);
  if (rng.chance(0.5))
    draw_scribble(page.image, cv::Rect(at(0.08, 0.490), at(0.55, 0.560)), writer.ink, rng);
  fonts.print(page.image, Face::sans, "Memo", at(0.05, 0.630), 28, print);
  cv::line(page.image, at(0.12, 0.690), at(0.45, 0.690), cv::Scalar(print), 2, cv::LINE_AA);
  cv::line(page.image, at(0.55, 0.690), at(0.95, 0.690), cv::Scalar(print), 2, cv::LINE_AA);
  draw_scribble(page.image, cv::Rect(at(0.58, 0.600), at(0.90, 0.680)), writer.ink, rng);
  fonts.print(page.image, Face::sans, "Authorized signature", at(0.66, 0.695), 22, print);

  for (size_t i : {size_t{2}, size_t{3}}) {
    const cv::Rect area = to_pixels(field(i).area, size, shift);
    fonts.print(page.image, Face::sans, field(i).label, {area.x, area.y - 42}, 24, print);
    draw_frame(page.image, area, Frame::box, print, 2);
    write_field(page, assets, field(i), area, hand(), rng);
  }
  return page;
}

// A plain sheet: 3-8 strings at random places, a few printed words, stray dots and strokes.
Page draw_free_page(const Assets& assets, Rng& rng) {
  Page page;
  const cv::Size size = kFreeSize;
  page.paper = rng.integer(190, 245);
  page.image = cv::Mat(size, CV_8UC1, cv::Scalar(page.paper));
  std::vector<cv::Rect> taken;
  auto find_spot = [&](cv::Size item, int margin) -> std::optional<cv::Point> {
    const int x0 = round_int(0.07 * size.width), y0 = round_int(0.06 * size.height);
    const int x1 = round_int(0.93 * size.width) - item.width,
              y1 = round_int(0.94 * size.height) - item.height;
    if (x1 < x0 || y1 < y0) return std::nullopt;
    for (int attempt = 0; attempt < 300; ++attempt) {
      const cv::Point p{rng.integer(x0, x1), rng.integer(y0, y1)};
      const cv::Rect grown(p.x - margin, p.y - margin, item.width + 2 * margin,
                           item.height + 2 * margin);
      if (std::none_of(taken.begin(), taken.end(),
                       [&](const cv::Rect& t) { return (t & grown).area() > 0; })) {
        taken.push_back(grown);
        return p;
      }
    }
    return std::nullopt;
  };

  const int strings = rng.integer(3, 8);
  for (int i = 0; i < strings; ++i) {
    const int length = rng.integer(2, 10);
    const std::string text = random_digits(length, rng, rng.chance(0.3));
    const Hand hand = random_hand(rng, 50, 90);
    const HandString s = write_digits_within(assets.digits, text, hand, rng.chance(assets.touching),
                                             round_int(0.8 * size.width), rng);
    if (auto spot = find_spot(s.size, 60))
      page.strings.push_back(put_string(page.image, s, *spot, &page.sources.emplace_back()));
  }
  const int print = rng.integer(20, 70), words = rng.integer(2, 3);
  for (int i = 0; i < words; ++i) {
    const std::string word = rng.pick(std::array<std::string, 7>{
        "Notes", "Total", "Received", "Checked by", "Batch", "Approved", "Remarks"});
    const Face face = rng.pick(
        std::array{Face::sans, Face::sans_bold, Face::serif, Face::serif_bold, Face::mono});
    const int height = rng.integer(36, 64);
    if (auto spot =
            find_spot({assets.fonts.width(face, word, height), round_int(height * 1.3)}, 30))
      assets.fonts.print(page.image, face, word, *spot, height, print);
  }
  const int strays = rng.integer(4, 12);
  for (int i = 0; i < strays; ++i) {
    if (auto spot = find_spot({60, 60}, 20)) {
      const cv::Point c = *spot + cv::Point(30, 30);
      const int ink = rng.integer(20, 90);
      if (rng.chance(0.5)) {
        cv::circle(page.image, c, rng.integer(2, 6), cv::Scalar(ink), cv::FILLED, cv::LINE_AA);
      } else {
        const double angle = rng.uniform(0, std::numbers::pi), half = rng.uniform(8, 30);
        const cv::Point d(round_int(half * std::cos(angle)), round_int(half * std::sin(angle)));
        cv::line(page.image, c - d, c + d, cv::Scalar(ink), rng.integer(2, 4), cv::LINE_AA);
      }
    }
  }
  return page;
}

// ---------------------------------------------------------------- degradations

// The axis-aligned box of `box`'s corners carried through the affine map `m`, in the page.
Box transform_box(const Box& box, const cv::Mat& m, cv::Size page) {
  double x0 = std::numeric_limits<double>::max(), y0 = x0, x1 = -x0, y1 = -x0;
  for (const cv::Point2d& c :
       {cv::Point2d(box.x, box.y), cv::Point2d(box.right(), box.y),
        cv::Point2d(box.x, box.bottom()), cv::Point2d(box.right(), box.bottom())}) {
    // Pixel edges to pixel centres and back: warpAffine maps centres.
    const double cx = c.x - 0.5, cy = c.y - 0.5;
    const double x = m.at<double>(0, 0) * cx + m.at<double>(0, 1) * cy + m.at<double>(0, 2) + 0.5;
    const double y = m.at<double>(1, 0) * cx + m.at<double>(1, 1) * cy + m.at<double>(1, 2) + 0.5;
    x0 = std::min(x0, x), y0 = std::min(y0, y), x1 = std::max(x1, x), y1 = std::max(y1, y);
  }
  const int left = std::clamp(static_cast<int>(std::floor(x0)), 0, page.width);
  const int top = std::clamp(static_cast<int>(std::floor(y0)), 0, page.height);
  const int right = std::clamp(static_cast<int>(std::ceil(x1)), 0, page.width);
  const int bottom = std::clamp(static_cast<int>(std::ceil(y1)), 0, page.height);
  return {left, top, right - left, bottom - top};
}

// A smooth light falloff, 1 at its brightest and down to 0.7: a linear gradient mixed with
// a vignette around a random centre. Drawn small, then scaled up.
cv::Mat illumination(cv::Size size, Rng& rng) {
  const double depth = rng.uniform(0.0, 0.3), mix = rng.uniform(),
               direction = rng.uniform(0, 2 * std::numbers::pi);
  const double cx = rng.uniform(0.2, 0.8), cy = rng.uniform(0.2, 0.8);
  const cv::Size small(64, std::max(8, 64 * size.height / size.width));
  cv::Mat field(small, CV_32F);
  for (int y = 0; y < small.height; ++y)
    for (int x = 0; x < small.width; ++x) {
      const double u = (x + 0.5) / small.width, v = (y + 0.5) / small.height;
      const double ramp = std::clamp(
          0.5 + ((u - 0.5) * std::cos(direction) + (v - 0.5) * std::sin(direction)) / 1.4143, 0.0,
          1.0);
      const double r = std::min(1.0, std::hypot(u - cx, v - cy) / 0.9);
      field.at<float>(y, x) = static_cast<float>(1.0 - depth * (mix * ramp + (1 - mix) * r * r));
    }
  cv::Mat full;
  cv::resize(field, full, size, 0, 0, cv::INTER_LINEAR);
  return full;
}

// What a scanner does to a page: rotation (the truth boxes follow), blur, uneven light,
// sensor noise, specks, and for some pages JPEG artefacts from an earlier save.
// The truth's boxes on a page resampled by `scale` (new pixels per old pixel).
void scale_truth(Page& page, double scale) {
  auto scaled = [scale](const Box& b) {
    const int x0 = round_int(b.x * scale), y0 = round_int(b.y * scale);
    return Box{x0, y0, round_int((b.x + b.w) * scale) - x0, round_int((b.y + b.h) * scale) - y0};
  };
  for (StringResult& s : page.strings) {
    s.box = {};
    for (DigitResult& d : s.digits) {
      d.box = scaled(d.box);
      s.box = unite(s.box, d.box);
    }
  }
  for (size_t i = 0; i < page.fields.size(); ++i)
    page.fields[i].box = page.strings[page.field_strings[i]].box;
}

// Scans the page drawn at 300 dpi: rotated on the glass, read at the scanner's resolution,
// blurred, unevenly lit, noisy, specked, and (in black and white) thresholded.
void degrade_page(Page& page, bool stored_as_jpeg, const Scanner& scanner, Rng& rng) {
  cv::Size size = page.image.size();
  const double angle = rng.uniform(-kMaxRotation, kMaxRotation);
  const cv::Mat m = cv::getRotationMatrix2D(
      cv::Point2f(static_cast<float>(size.width - 1) / 2, static_cast<float>(size.height - 1) / 2),
      angle, 1.0);
  cv::Mat image;
  cv::warpAffine(page.image, image, m, size, cv::INTER_LINEAR, cv::BORDER_CONSTANT,
                 cv::Scalar(page.paper));
  for (StringResult& s : page.strings) {
    s.box = {};
    for (DigitResult& d : s.digits) {
      d.box = transform_box(d.box, m, size);
      s.box = unite(s.box, d.box);
    }
  }
  for (size_t i = 0; i < page.fields.size(); ++i)
    page.fields[i].box = page.strings[page.field_strings[i]].box;
  if (scanner.dpi != kDrawnDpi) {
    const double scale = static_cast<double>(scanner.dpi) / kDrawnDpi;
    cv::resize(image, image, cv::Size(round_int(size.width * scale), round_int(size.height * scale)), 0, 0,
               scale < 1 ? cv::INTER_AREA : cv::INTER_LINEAR);
    size = image.size();
    scale_truth(page, scale);
  }

  const double blur = rng.uniform(0.0, 0.8);
  if (blur > 0.25) cv::GaussianBlur(image, image, cv::Size(0, 0), blur);
  cv::Mat light;
  image.convertTo(light, CV_32F);
  light = light.mul(illumination(size, rng));
  cv::Mat noise(size, CV_32F);
  cv::RNG noise_rng(rng.next());
  noise_rng.fill(noise, cv::RNG::NORMAL, 0.0, rng.uniform(3.0, 8.0));
  light += noise;
  light.convertTo(image, CV_8U);

  if (rng.chance(0.3)) {
    const int specks = rng.integer(20, 150);
    for (int i = 0; i < specks; ++i) {
      const cv::Point c{rng.integer(0, size.width - 1), rng.integer(0, size.height - 1)};
      const int level = rng.chance(0.5) ? rng.integer(20, 90) : 255;
      cv::circle(image, c, rng.integer(1, 3), cv::Scalar(level), cv::FILLED);
    }
  }
  if (!stored_as_jpeg && rng.chance(0.3)) {
    std::vector<uint8_t> bytes;
    cv::imencode(".jpg", image, bytes, {cv::IMWRITE_JPEG_QUALITY, rng.integer(50, 90)});
    image = cv::imdecode(bytes, cv::IMREAD_GRAYSCALE);
  }
  if (scanner.bitonal) {
    cv::threshold(image, image, 0, 255, cv::THRESH_BINARY | cv::THRESH_OTSU);
    page.tint = cv::Scalar::all(1.0);
  }
  page.image = image;
}

// ---------------------------------------------------------------- files

enum class Format { png, jpeg, tiff, pdf };

struct PageFile {
  std::string name;  // relative to the output folder
  Format format;
  int first_page;  // 0-based over the job
  int page_count;
};

// Which pages go to which file: single PNG (and some JPEG) pages in batch1/ and batch2/,
// and with 6 pages or more a multi-page TIFF in batch1/ and a two-page PDF in batch2/; or,
// `one_pdf`, every page in one PDF in batch1/.
std::vector<PageFile> plan_files(int pages, const std::string& stem, double jpeg_share, bool one_pdf, Rng& rng) {
  if (one_pdf) return {{"batch1/" + stem + "-001.pdf", Format::pdf, 0, pages}};
  const int tiff_pages = pages >= 6 ? rng.integer(2, 3) : 0, pdf_pages = pages >= 6 ? 2 : 0;
  const int singles = pages - tiff_pages - pdf_pages, first_batch = (singles + 1) / 2;
  std::vector<PageFile> files;
  int page = 0;
  auto add = [&](const char* batch, Format format, int count) {
    static const std::array<const char*, 4> extension = {"png", "jpg", "tif", "pdf"};
    char name[128];
    std::snprintf(name, sizeof name, "%s/%s-%03d.%s", batch, stem.c_str(), page + 1,
                  extension[static_cast<size_t>(format)]);
    files.push_back({name, format, page, count});
    page += count;
  };
  std::vector<Format> single(static_cast<size_t>(singles));
  for (Format& f : single) f = rng.chance(jpeg_share) ? Format::jpeg : Format::png;
  if (singles >= 5 && jpeg_share > 0 &&
      std::none_of(single.begin(), single.end(), [](Format f) { return f == Format::jpeg; }))
    single[1] = Format::jpeg;
  for (int i = 0; i < first_batch; ++i) add("batch1", single[static_cast<size_t>(i)], 1);
  if (tiff_pages) add("batch1", Format::tiff, tiff_pages);
  for (int i = first_batch; i < singles; ++i) add("batch2", single[static_cast<size_t>(i)], 1);
  if (pdf_pages) add("batch2", Format::pdf, pdf_pages);
  return files;
}

// px at `dpi` in PDF points (1/72 inch); at 300 dpi exactly: px * 0.24 has two decimals.
std::string points(int px, int dpi) {
  char text[32];
  std::snprintf(text, sizeof text, "%.4f", px * 72.0 / dpi);
  return text;
}

}  // namespace

namespace {

// libtiff writing into memory: the file grows in `bytes` as libtiff writes and seeks.
struct TiffBuffer {
  std::string bytes;
  toff_t at = 0;
};

tmsize_t tiff_read(thandle_t h, void* data, tmsize_t n) {
  auto* b = static_cast<TiffBuffer*>(h);
  const size_t at = std::min<size_t>(b->at, b->bytes.size());
  const size_t count = std::min(static_cast<size_t>(n), b->bytes.size() - at);
  std::memcpy(data, b->bytes.data() + at, count);
  b->at += count;
  return static_cast<tmsize_t>(count);
}
tmsize_t tiff_write(thandle_t h, void* data, tmsize_t n) {
  auto* b = static_cast<TiffBuffer*>(h);
  if (b->bytes.size() < b->at + static_cast<toff_t>(n)) b->bytes.resize(static_cast<size_t>(b->at + static_cast<toff_t>(n)));
  std::memcpy(b->bytes.data() + b->at, data, static_cast<size_t>(n));
  b->at += static_cast<toff_t>(n);
  return n;
}
toff_t tiff_seek(thandle_t h, toff_t offset, int whence) {
  auto* b = static_cast<TiffBuffer*>(h);
  b->at = whence == SEEK_SET ? offset : whence == SEEK_CUR ? b->at + offset : b->bytes.size() + offset;
  return b->at;
}
int tiff_close(thandle_t) { return 0; }
toff_t tiff_size(thandle_t h) { return static_cast<TiffBuffer*>(h)->bytes.size(); }

void tiff_quiet(const char*, const char*, va_list) {}

// The pages as a G4 TIFF in memory, each page one strip; `strips` (when given) gets each
// page's coded strip, the bytes a PDF's CCITTFaxDecode image holds.
std::string g4_tiff(const std::vector<cv::Mat>& images, int dpi, std::vector<std::string>* strips = nullptr) {
  TIFFSetWarningHandler(tiff_quiet);
  TiffBuffer buffer;
  TIFF* tiff = TIFFClientOpen("memory", "w", &buffer, tiff_read, tiff_write, tiff_seek, tiff_close, tiff_size, nullptr, nullptr);
  if (!tiff) throw std::runtime_error("cannot start a TIFF");
  std::vector<uint8_t> row;
  bool ok = true;
  for (size_t k = 0; k < images.size() && ok; ++k) {
    const cv::Mat& image = images[k];
    TIFFSetField(tiff, TIFFTAG_IMAGEWIDTH, static_cast<uint32_t>(image.cols));
    TIFFSetField(tiff, TIFFTAG_IMAGELENGTH, static_cast<uint32_t>(image.rows));
    TIFFSetField(tiff, TIFFTAG_BITSPERSAMPLE, 1);
    TIFFSetField(tiff, TIFFTAG_SAMPLESPERPIXEL, 1);
    TIFFSetField(tiff, TIFFTAG_COMPRESSION, COMPRESSION_CCITTFAX4);
    TIFFSetField(tiff, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_MINISWHITE);  // a 1 bit is black
    TIFFSetField(tiff, TIFFTAG_FILLORDER, FILLORDER_MSB2LSB);
    TIFFSetField(tiff, TIFFTAG_ROWSPERSTRIP, static_cast<uint32_t>(image.rows));
    if (dpi > 0) {
      TIFFSetField(tiff, TIFFTAG_XRESOLUTION, static_cast<float>(dpi));
      TIFFSetField(tiff, TIFFTAG_YRESOLUTION, static_cast<float>(dpi));
      TIFFSetField(tiff, TIFFTAG_RESOLUTIONUNIT, RESUNIT_INCH);
    }
    if (images.size() > 1) {
      TIFFSetField(tiff, TIFFTAG_SUBFILETYPE, FILETYPE_PAGE);
      TIFFSetField(tiff, TIFFTAG_PAGENUMBER, static_cast<uint16_t>(k), static_cast<uint16_t>(images.size()));
    }
    row.assign((static_cast<size_t>(image.cols) + 7) / 8, 0);
    for (int y = 0; y < image.rows && ok; ++y) {
      std::fill(row.begin(), row.end(), 0);
      const uint8_t* in = image.ptr<uint8_t>(y);
      for (int x = 0; x < image.cols; ++x)
        if (in[x] < 128) row[static_cast<size_t>(x) >> 3] |= static_cast<uint8_t>(0x80u >> (x & 7));
      ok = TIFFWriteScanline(tiff, row.data(), static_cast<uint32_t>(y), 0) == 1;
    }
    ok = ok && TIFFWriteDirectory(tiff) == 1;
  }
  TIFFClose(tiff);
  if (ok && strips) {  // read back: each page's one strip as coded
    buffer.at = 0;
    tiff = TIFFClientOpen("memory", "r", &buffer, tiff_read, tiff_write, tiff_seek, tiff_close, tiff_size, nullptr, nullptr);
    ok = tiff != nullptr;
    for (size_t k = 0; ok && k < images.size(); ++k) {
      uint64_t* counts = nullptr;
      ok = (k == 0 || TIFFReadDirectory(tiff) == 1) && TIFFGetField(tiff, TIFFTAG_STRIPBYTECOUNTS, &counts) == 1 && counts;
      if (!ok) break;
      std::string strip(static_cast<size_t>(counts[0]), '\0');
      ok = TIFFReadRawStrip(tiff, 0, strip.data(), static_cast<tmsize_t>(strip.size())) == static_cast<tmsize_t>(strip.size());
      strips->push_back(std::move(strip));
    }
    if (tiff) TIFFClose(tiff);
  }
  if (!ok) throw std::runtime_error("cannot code the page as CCITT G4");
  return buffer.bytes;
}

}  // namespace

void write_bitonal_tiff(const fs::path& path, const std::vector<cv::Mat>& images, int dpi) {
  std::string file;
  try {
    file = g4_tiff(images, dpi);
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(path.string() + ": " + e.what());
  }
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(file.data(), static_cast<std::streamsize>(file.size()));
  if (!out.flush()) throw std::runtime_error(path.string() + ": cannot write");
}

void write_pdf(const fs::path& path, const std::vector<cv::Mat>& images, int quality, int dpi, bool bitonal) {
  std::string pdf = "%PDF-1.4\n%\xE2\xE3\xCF\xD3\n";
  const int objects = 2 + 3 * static_cast<int>(images.size());
  std::vector<size_t> offsets(static_cast<size_t>(objects) + 1, 0);
  auto begin = [&](int number) {
    offsets[static_cast<size_t>(number)] = pdf.size();
    pdf += std::to_string(number) + " 0 obj\n";
  };
  begin(1);
  pdf += "<< /Type /Catalog /Pages 2 0 R >>\nendobj\n";
  begin(2);
  pdf += "<< /Type /Pages /Kids [";
  for (size_t i = 0; i < images.size(); ++i)
    pdf += (i ? " " : "") + std::to_string(3 + 3 * i) + " 0 R";
  pdf += "] /Count " + std::to_string(images.size()) + " >>\nendobj\n";
  for (size_t i = 0; i < images.size(); ++i) {
    const int page = 3 + 3 * static_cast<int>(i), contents = page + 1, image = page + 2;
    const std::string w = points(images[i].cols, dpi), h = points(images[i].rows, dpi);
    begin(page);
    pdf += "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 " + w + " " + h +
           "] /Resources << /XObject << /Im0 " + std::to_string(image) + " 0 R >> >> /Contents " +
           std::to_string(contents) + " 0 R >>\nendobj\n";
    const std::string draw = "q\n" + w + " 0 0 " + h + " 0 0 cm\n/Im0 Do\nQ\n";
    begin(contents);
    pdf += "<< /Length " + std::to_string(draw.size()) + " >>\nstream\n" + draw +
           "endstream\nendobj\n";
    const std::string width = std::to_string(images[i].cols), height = std::to_string(images[i].rows);
    std::string coded, coding;
    if (bitonal) {
      std::vector<std::string> strips;
      try {
        g4_tiff({images[i]}, 0, &strips);
      } catch (const std::runtime_error& e) {
        throw std::runtime_error(path.string() + ": page " + std::to_string(i) + ": " + e.what());
      }
      coded = std::move(strips.at(0));
      coding = "/BitsPerComponent 1 /Filter /CCITTFaxDecode /DecodeParms << /K -1 /Columns " + width + " /Rows " +
               height + " >>";
    } else {
      std::vector<uint8_t> jpeg;
      if (!cv::imencode(".jpg", images[i], jpeg, {cv::IMWRITE_JPEG_QUALITY, quality}))
        throw std::runtime_error(path.string() + ": cannot encode page " + std::to_string(i) +
                                 " as JPEG");
      coded.assign(jpeg.begin(), jpeg.end());
      coding = "/BitsPerComponent 8 /Filter /DCTDecode";
    }
    begin(image);
    pdf += "<< /Type /XObject /Subtype /Image /Width " + width + " /Height " + height + " /ColorSpace /DeviceGray " +
           coding + " /Length " + std::to_string(coded.size()) + " >>\nstream\n";
    pdf += coded;
    pdf += "\nendstream\nendobj\n";
  }
  const size_t xref = pdf.size();
  pdf += "xref\n0 " + std::to_string(objects + 1) + "\n0000000000 65535 f \n";
  for (int n = 1; n <= objects; ++n) {
    char entry[24];
    std::snprintf(entry, sizeof entry, "%010zu 00000 n \n", offsets[static_cast<size_t>(n)]);
    pdf += entry;
  }
  pdf += "trailer\n<< /Size " + std::to_string(objects + 1) + " /Root 1 0 R >>\nstartxref\n" +
         std::to_string(xref) + "\n%%EOF\n";
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(pdf.data(), static_cast<std::streamsize>(pdf.size()));
  if (!out.flush()) throw std::runtime_error(path.string() + ": cannot write");
}

namespace {

// The CRC of a PNG chunk (ISO 3309, as zlib's crc32).
uint32_t png_crc(const std::string& bytes) {
  uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char c : bytes) {
    crc ^= c;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

std::string big_endian(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)};
}

}  // namespace

std::string encode_scan(const cv::Mat& image, bool png, int quality, int dpi) {
  std::vector<uint8_t> bytes;
  if (!cv::imencode(png ? ".png" : ".jpg", image, bytes, {cv::IMWRITE_JPEG_QUALITY, quality}))
    throw std::runtime_error(std::string("cannot encode the page as ") + (png ? "PNG" : "JPEG"));
  std::string file(bytes.begin(), bytes.end());
  if (dpi == 0) return file;
  if (png) {  // a pHYs chunk (pixels per metre) after the header chunk
    const uint32_t per_metre = static_cast<uint32_t>(std::lround(dpi / 0.0254));
    const std::string body = "pHYs" + big_endian(per_metre) + big_endian(per_metre) + std::string(1, '\1');
    return file.substr(0, 33) + big_endian(9) + body + big_endian(png_crc(body)) + file.substr(33);
  }
  if (file.size() > 18 && file.compare(6, 5, std::string("JFIF\0", 5)) == 0) {  // its APP0: units, densities
    file[13] = 1;
    file[14] = file[16] = static_cast<char>(dpi >> 8);
    file[15] = file[17] = static_cast<char>(dpi & 0xFF);
  }
  return file;
}

namespace {

// The page as a scanner in colour mode would store it: the gray page times the paper's tint.
cv::Mat in_colour(const Page& page) {
  if (page.tint == cv::Scalar::all(1.0)) return page.image;
  cv::Mat bgr;
  cv::cvtColor(page.image, bgr, cv::COLOR_GRAY2BGR);
  cv::multiply(bgr, page.tint, bgr);
  return bgr;
}

void write_page_file(const fs::path& path, Format format, const std::vector<Page>& pages, int dpi, bool tagged,
                     bool bitonal, Rng& rng) {
  fs::create_directories(path.parent_path());
  bool written = false;
  std::vector<cv::Mat> gray;
  for (const Page& p : pages) gray.push_back(p.image);
  switch (format) {
    case Format::png:
    case Format::jpeg: {
      const int quality = format == Format::jpeg ? rng.integer(75, 92) : 95;
      const std::string file = encode_scan(in_colour(pages[0]), format == Format::png, quality, tagged ? dpi : 0);
      std::ofstream out(path, std::ios::binary | std::ios::trunc);
      out.write(file.data(), static_cast<std::streamsize>(file.size()));
      written = static_cast<bool>(out.flush());
      break;
    }
    case Format::tiff: {  // Deflate (8) keeps noisy pages smaller than the default LZW
      if (bitonal) {
        write_bitonal_tiff(path, gray, tagged ? dpi : 0);
        written = true;
        break;
      }
      std::vector<int> params = {cv::IMWRITE_TIFF_COMPRESSION, 8};
      if (tagged) params.insert(params.end(), {cv::IMWRITE_TIFF_RESUNIT, 2, cv::IMWRITE_TIFF_XDPI, dpi, cv::IMWRITE_TIFF_YDPI, dpi});
      written = cv::imwritemulti(path.string(), gray, params);
      break;
    }
    case Format::pdf:
      write_pdf(path, gray, rng.integer(80, 92), dpi, bitonal);
      written = true;
      break;
  }
  if (!written) throw std::runtime_error(path.string() + ": cannot write the page file");
}

// ---------------------------------------------------------------- template

std::string fraction(double v) {
  char text[16];
  std::snprintf(text, sizeof text, "%.3f", v);
  return text;
}

// The zone of a field as fractions of the page: its area grown by what handwriting
// overshoots and the layout jitter, swept through every rotation a page may get.
cv::Rect2d field_zone(const cv::Rect2d& area, cv::Size page) {
  const double grow_x = 20, grow_y = 22, margin = 6;
  const double cx = (page.width - 1) / 2.0, cy = (page.height - 1) / 2.0;
  double x0 = std::numeric_limits<double>::max(), y0 = x0, x1 = -x0, y1 = -x0;
  const double left = area.x * page.width - grow_x, right = area.br().x * page.width + grow_x;
  const double top = area.y * page.height - grow_y, bottom = area.br().y * page.height + grow_y;
  for (double degrees = -kMaxRotation; degrees <= kMaxRotation + 1e-9; degrees += 0.25) {
    const double a = degrees * std::numbers::pi / 180, c = std::cos(a), s = std::sin(a);
    for (const cv::Point2d& p : {cv::Point2d(left, top), cv::Point2d(right, top),
                                 cv::Point2d(left, bottom), cv::Point2d(right, bottom)}) {
      const double x = cx + c * (p.x - cx) + s * (p.y - cy),
                   y = cy - s * (p.x - cx) + c * (p.y - cy);
      x0 = std::min(x0, x), y0 = std::min(y0, y), x1 = std::max(x1, x), y1 = std::max(y1, y);
    }
  }
  const double fx0 = std::max(0.0, std::floor((x0 - margin) / page.width * 1000) / 1000);
  const double fy0 = std::max(0.0, std::floor((y0 - margin) / page.height * 1000) / 1000);
  const double fx1 = std::min(1.0, std::ceil((x1 + margin) / page.width * 1000) / 1000);
  const double fy1 = std::min(1.0, std::ceil((y1 + margin) / page.height * 1000) / 1000);
  return {fx0, fy0, fx1 - fx0, fy1 - fy0};
}

template <size_t N>
void write_template(const fs::path& path, const std::string& name,
                    const std::array<FieldLayout, N>& fields, cv::Size page) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << "# zone = [x, y, width, height] as fractions of the page\n"
      << "# Written by digitflow synth: each zone holds its field's handwriting with a margin\n"
      << "# on every page, whatever its rotation (up to " << kMaxRotation
      << " degrees either way).\n"
      << "name: " << name << "\nfields:\n";
  for (const FieldLayout& f : fields) {
    const cv::Rect2d zone = field_zone(f.area, page);
    out << "  - name: " << f.name << "\n    zone: [" << fraction(zone.x) << ", " << fraction(zone.y)
        << ", " << fraction(zone.width) << ", " << fraction(zone.height) << "]\n";
    if (f.min_length == f.max_length) out << "    length: " << f.min_length << "\n";
    out << "    rule: " << f.rule << "\n";
    if (std::string(f.rule) == "date") out << "    format: DDMMYYYY\n";
  }
  if (!out.flush()) throw std::runtime_error(path.string() + ": cannot write");
}

enum class Kind { forms, checks, free };

Kind parse_kind(const std::string& kind) {
  if (kind == "forms") return Kind::forms;
  if (kind == "checks") return Kind::checks;
  if (kind == "free") return Kind::free;
  throw std::runtime_error("unknown kind of page '" + kind + "': expected forms, checks or free");
}

Page draw_page(Kind kind, const Assets& assets, Rng& rng) {
  switch (kind) {
    case Kind::forms:
      return draw_form_page(assets, rng);
    case Kind::checks:
      return draw_check_page(assets, rng);
    case Kind::free:
      break;
  }
  return draw_free_page(assets, rng);
}

}  // namespace

SynthReport make_synthetic_job(const SynthOptions& options, const SynthProgress& progress) {
  const Kind kind = parse_kind(options.kind);
  if (options.pages < 1)
    throw std::runtime_error("pages must be at least 1 (got " + std::to_string(options.pages) +
                             ")");
  if (options.dpi < 100 || options.dpi > 1200)
    throw std::runtime_error("the scan resolution must be 100 to 1200 dpi (got " + std::to_string(options.dpi) + ")");
  if (options.out.empty()) throw std::runtime_error("no output folder given");
  if (!(options.touching_share >= 0 && options.touching_share <= 1))
    throw std::runtime_error("the share of strings with touching digits must be 0 to 1 (got " +
                             std::to_string(options.touching_share) + ")");
  const Assets assets{load_digit_bank(options.mnist_dir, options.training_digits), Fonts(), options.touching_share};
  fs::create_directories(options.out);

  SynthReport report;
  const std::string stem = kind == Kind::forms ? "form" : kind == Kind::checks ? "check" : "page";
  Rng plan_rng = stream(options.seed, 0);
  const std::vector<PageFile> files =
      plan_files(options.pages, stem, options.bitonal ? 0.0 : options.jpeg_share, options.one_pdf, plan_rng);
  const Scanner scanner{options.dpi, options.bitonal};
  const std::string set_name = options.training_digits ? "train" : "t10k";
  std::string truth, sources;
  for (const PageFile& file : files) {
    std::vector<Page> pages;
    for (int k = 0; k < file.page_count; ++k) {
      Rng rng = stream(options.seed, 1 + static_cast<uint64_t>(file.first_page + k));
      Page page = draw_page(kind, assets, rng);
      degrade_page(page, file.format == Format::jpeg, scanner, rng);
      pages.push_back(std::move(page));
    }
    Rng file_rng = stream(options.seed, 1'000'000 + static_cast<uint64_t>(file.first_page));
    write_page_file(options.out / file.name, file.format, pages, options.dpi, !options.untagged, options.bitonal,
                    file_rng);

    for (size_t k = 0; k < pages.size(); ++k) {
      PageResult result;
      result.page = file.name;
      result.page_index = static_cast<int>(k);
      result.width = pages[k].image.cols;
      result.height = pages[k].image.rows;
      if (file.format == Format::pdf && options.dpi != kDrawnDpi) {  // read as rendered at 300 dpi
        const double scale = static_cast<double>(kDrawnDpi) / options.dpi;
        scale_truth(pages[k], scale);
        result.width = round_int(result.width * scale);
        result.height = round_int(result.height * scale);
      }
      if (options.sources) {
        nlohmann::json strings = nlohmann::json::array();
        for (size_t i = 0; i < pages[k].strings.size(); ++i)
          strings.push_back({{"text", pages[k].strings[i].text}, {"mnist", pages[k].sources[i]}});
        sources += nlohmann::json{{"page", file.name}, {"page_index", k}, {"set", set_name}, {"strings", strings}}.dump() + "\n";
      }
      result.strings = std::move(pages[k].strings);
      result.fields = std::move(pages[k].fields);
      truth += to_json(result).dump() + "\n";
      report.strings += static_cast<int>(result.strings.size());
      for (const StringResult& s : result.strings)
        report.digits += static_cast<int>(s.digits.size());
      ++report.pages;
      if (progress) progress(report.pages, options.pages);
    }
    ++report.files;
    switch (file.format) {
      case Format::png:
        ++report.png;
        break;
      case Format::jpeg:
        ++report.jpeg;
        break;
      case Format::tiff:
        ++report.tiff;
        break;
      case Format::pdf:
        ++report.pdf;
        break;
    }
  }

  if (kind == Kind::forms) {
    report.template_file = options.out / "template.yaml";
    write_template(report.template_file, "synthetic form", kFormFields, kFormSize);
  } else if (kind == Kind::checks) {
    report.template_file = options.out / "template.yaml";
    write_template(report.template_file, "synthetic check", kCheckFields, kCheckSize);
  }

  auto write = [](const fs::path& path, const std::string& text) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out.flush()) throw std::runtime_error(path.string() + ": cannot write");
  };
  if (options.sources) write(report.sources = options.out / "sources.jsonl", sources);
  // The truth goes last, so that a truth.jsonl always describes a finished job.
  write(report.truth = options.out / "truth.jsonl", truth);
  return report;
}

}  // namespace digitflow::pipeline

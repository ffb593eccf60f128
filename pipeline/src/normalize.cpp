// MNIST-style normalisation. Polarity comes from the border: paper is what touches the edge.
// Ink is found with Otsu's threshold on the background-subtracted image, and its grey
// levels (not a binary mask) are kept, as the NIST digits were anti-aliased.
#include "digitflow/pipeline/normalize.hpp"

#include <algorithm>
#include <array>
#include <cfloat>
#include <cmath>
#include <fstream>
#include <limits>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <vector>

#include "digitflow/pipeline/decode.hpp"

namespace digitflow::pipeline {

namespace {

cv::Mat to_gray8(const cv::Mat& image) {
  const int channels = image.channels(), depth = image.depth();
  if (channels != 1 && channels != 3 && channels != 4)
    throw ImageError("unsupported image: " + std::to_string(channels) +
                     " channels (grey, colour or colour with alpha expected)");
  if (depth != CV_8U && depth != CV_16U)
    throw ImageError("unsupported image: samples are not 8- or 16-bit integers");
  cv::Mat gray;
  if (image.channels() == 4) {
    // Transparent pixels are background: composite onto white.
    std::vector<cv::Mat> planes;
    cv::split(image, planes);
    cv::Mat bgr, alpha;
    cv::merge(std::vector<cv::Mat>{planes[0], planes[1], planes[2]}, bgr);
    planes[3].convertTo(alpha, CV_32F, image.depth() == CV_16U ? 1.0 / 65535 : 1.0 / 255);
    cv::Mat color;
    bgr.convertTo(color, CV_32FC3, image.depth() == CV_16U ? 1.0 / 257 : 1.0);
    cv::cvtColor(color, gray, cv::COLOR_BGR2GRAY);
    gray = gray.mul(alpha) + (1.0 - alpha) * 255.0;
    gray.convertTo(gray, CV_8U);
    return gray;
  }
  if (image.channels() == 3)
    cv::cvtColor(image, gray, cv::COLOR_BGR2GRAY);
  else
    gray = image;
  if (gray.depth() == CV_16U) gray.convertTo(gray, CV_8U, 1.0 / 257);
  return gray;
}

// Histogram of the outermost pixels (each corner counted twice, as the median below takes it).
struct Border {
  std::array<int, 256> count{};
  int total = 0;
  // The k-th smallest value (0-based), k = total / 2: the upper middle of an even count.
  int median(bool inverted) const {
    int seen = 0;
    for (int v = 0; v < 256; ++v) {
      seen += count[static_cast<size_t>(inverted ? 255 - v : v)];
      if (seen > total / 2) return v;
    }
    return 255;
  }
};

Border border_of(const cv::Mat& g) {
  Border b;
  const uint8_t* top = g.ptr<uint8_t>(0);
  const uint8_t* bottom = g.ptr<uint8_t>(g.rows - 1);
  for (int x = 0; x < g.cols; ++x) ++b.count[top[x]], ++b.count[bottom[x]];
  for (int y = 0; y < g.rows; ++y) {
    const uint8_t* row = g.ptr<uint8_t>(y);
    ++b.count[row[0]], ++b.count[row[g.cols - 1]];
  }
  b.total = 2 * (g.cols + g.rows);
  return b;
}

// Otsu's threshold of a histogram of `n` pixels, computed as cv::threshold(THRESH_OTSU)
// computes it for 8-bit images (the same sums in the same order, so the same value).
int otsu_threshold(const std::array<int, 256>& h, int n) {
  const double scale = 1.0 / n;
  double mu = 0;
  for (int i = 0; i < 256; ++i) mu += i * static_cast<double>(h[static_cast<size_t>(i)]);
  mu *= scale;
  double mu1 = 0, q1 = 0, max_sigma = 0;
  int max_val = 0;
  for (int i = 0; i < 256; ++i) {
    const double p_i = h[static_cast<size_t>(i)] * scale;
    mu1 *= q1;
    q1 += p_i;
    const double q2 = 1.0 - q1;
    if (std::min(q1, q2) < FLT_EPSILON || std::max(q1, q2) > 1.0 - FLT_EPSILON) continue;
    mu1 = (mu1 + i * p_i) / q1;
    const double mu2 = (mu - q1 * mu1) / q2;
    const double sigma = q1 * q2 * (mu1 - mu2) * (mu1 - mu2);
    if (sigma > max_sigma) {
      max_sigma = sigma;
      max_val = i;
    }
  }
  return max_val;
}

}  // namespace

DigitPixels normalize_digit(const cv::Mat& image) {
  if (image.empty()) throw ImageError("empty image");
  const cv::Mat gray = to_gray8(image);  // may share the caller's pixels: read only

  // Polarity from the border: ink is made light. Then the background (the border's median)
  // to zero; the ink's histogram, and its largest value in each row and column.
  const Border border = border_of(gray);
  const bool invert = border.median(false) > 127;
  const int background = border.median(invert);
  const uint8_t flip = invert ? 255 : 0;
  cv::Mat ink(gray.size(), CV_8U);
  std::vector<uint8_t> column_max(static_cast<size_t>(gray.cols), 0), row_max(static_cast<size_t>(gray.rows), 0);
  std::array<std::array<int, 256>, 4> part{};  // four histograms: no chain of increments of one count
  for (int y = 0; y < gray.rows; ++y) {
    const uint8_t* g = gray.ptr<uint8_t>(y);
    uint8_t* o = ink.ptr<uint8_t>(y);
    uint8_t top = 0;
    for (int x = 0; x < gray.cols; ++x) {
      const uint8_t v = static_cast<uint8_t>(std::max((g[x] ^ flip) - background, 0));
      o[x] = v;
      column_max[static_cast<size_t>(x)] = std::max(column_max[static_cast<size_t>(x)], v);
      top = std::max(top, v);
    }
    row_max[static_cast<size_t>(y)] = top;
    int x = 0;
    for (; x + 4 <= gray.cols; x += 4)
      ++part[0][o[x]], ++part[1][o[x + 1]], ++part[2][o[x + 2]], ++part[3][o[x + 3]];
    for (; x < gray.cols; ++x) ++part[0][o[x]];
  }
  const int hi = *std::max_element(row_max.begin(), row_max.end());
  if (hi < 24) throw ImageError("no ink found (the image is blank or has too little contrast)");
  std::array<int, 256> histogram{};
  for (size_t v = 0; v < 256; ++v) histogram[v] = part[0][v] + part[1][v] + part[2][v] + part[3][v];

  // Ink is above Otsu's threshold (its box is the digit's); paper texture below half of it
  // is dropped, and the rest scaled to 0..255, rounded as cv::Mat::convertTo rounds (float).
  const int t = otsu_threshold(histogram, gray.rows * gray.cols);
  auto first_above = [t](const std::vector<uint8_t>& m) {
    return static_cast<int>(std::find_if(m.begin(), m.end(), [t](uint8_t v) { return v > t; }) - m.begin());
  };
  auto last_above = [t](const std::vector<uint8_t>& m) {
    return static_cast<int>(m.rend() - std::find_if(m.rbegin(), m.rend(), [t](uint8_t v) { return v > t; })) - 1;
  };
  const int x0 = first_above(column_max), x1 = last_above(column_max);
  const int y0 = first_above(row_max), y1 = last_above(row_max);
  if (x1 < x0 || y1 < y0) throw ImageError("no ink found");
  const float gain = static_cast<float>(255.0 / hi);
  std::array<uint8_t, 256> level{};
  for (int v = 0; v < 256; ++v)
    level[static_cast<size_t>(v)] = 2 * v < t ? 0 : cv::saturate_cast<uint8_t>(static_cast<float>(v) * gain);
  const cv::Rect box(x0, y0, x1 - x0 + 1, y1 - y0 + 1);
  for (int y = y0; y <= y1; ++y) {  // only the box is read from here on
    uint8_t* o = ink.ptr<uint8_t>(y);
    for (int x = x0; x <= x1; ++x) o[x] = level[o[x]];
  }
  const cv::Mat crop = ink(box);

  // Fit 20x20, keeping the aspect ratio.
  const double scale = 20.0 / std::max(box.width, box.height);
  cv::Size fitted(std::max(1, static_cast<int>(std::lround(box.width * scale))),
                  std::max(1, static_cast<int>(std::lround(box.height * scale))));
  cv::Mat small;
  cv::resize(crop, small, fitted, 0, 0, scale < 1.0 ? cv::INTER_AREA : cv::INTER_LINEAR);

  // Centre of mass to the centre of 28x28 (sub-pixel, bilinear).
  cv::Moments m = cv::moments(small, false);
  double cx = m.m00 > 0 ? m.m10 / m.m00 : small.cols / 2.0;
  double cy = m.m00 > 0 ? m.m01 / m.m00 : small.rows / 2.0;
  cv::Mat shift = (cv::Mat_<double>(2, 3) << 1, 0, 14.0 - cx - 0.5, 0, 1, 14.0 - cy - 0.5);
  DigitPixels pixels{};
  cv::Mat out(28, 28, CV_8U, pixels.data());
  cv::warpAffine(small, out, shift, cv::Size(28, 28), cv::INTER_LINEAR, cv::BORDER_CONSTANT, 0);
  return pixels;
}

cv::Mat read_image(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw ImageError(path.string() + ": no such file");
  if (std::filesystem::is_directory(path, ec)) throw ImageError(path.string() + ": is a directory, not an image");
  const uint64_t size = std::filesystem::file_size(path, ec);
  if (!ec && size == 0) throw ImageError(path.string() + ": empty file (0 bytes)");
  if (ec || size > static_cast<uint64_t>(std::numeric_limits<int>::max()))
    throw ImageError(path.string() + ": cannot be read" + (ec ? " (" + ec.message() + ")" : std::string(" (over 2 GB)")));
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  std::ifstream in(path, std::ios::binary);
  if (!in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size)))
    throw ImageError(path.string() + ": cannot be read");
  if (read_header(bytes).format == FileFormat::png) {
    try {
      check_png(bytes);  // libpng would print a line of its own
    } catch (const ImageError& e) {
      throw ImageError(path.string() + ": " + e.what());
    }
  }
  cv::Mat image;
  try {
    image = cv::imdecode(cv::Mat(1, static_cast<int>(bytes.size()), CV_8U, bytes.data()), cv::IMREAD_UNCHANGED);
  } catch (const cv::Exception&) {
    image.release();
  }
  if (image.empty())
    throw ImageError(path.string() + ": not a readable image (PNG, JPEG, BMP, TIFF, ...) or corrupt");
  return image;
}

}  // namespace digitflow::pipeline

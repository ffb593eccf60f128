// MNIST-style normalisation. Polarity comes from the border: paper is what touches the edge.
// Ink is found with Otsu's threshold on the background-subtracted image, and its grey
// levels (not a binary mask) are kept, as the NIST digits were anti-aliased.
#include "digitflow/pipeline/normalize.hpp"

#include <algorithm>
#include <cmath>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <vector>

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

// Median of the outermost pixels.
int border_median(const cv::Mat& g) {
  std::vector<uint8_t> v;
  for (int x = 0; x < g.cols; ++x) v.push_back(g.at<uint8_t>(0, x)), v.push_back(g.at<uint8_t>(g.rows - 1, x));
  for (int y = 0; y < g.rows; ++y) v.push_back(g.at<uint8_t>(y, 0)), v.push_back(g.at<uint8_t>(y, g.cols - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<long>(v.size() / 2), v.end());
  return v[v.size() / 2];
}

}  // namespace

DigitPixels normalize_digit(const cv::Mat& image) {
  if (image.empty()) throw ImageError("empty image");
  cv::Mat gray = to_gray8(image);
  if (border_median(gray) > 127) cv::bitwise_not(gray, gray);  // make the ink light

  // Background to zero, ink scaled to 0..255.
  cv::Mat ink;
  cv::subtract(gray, cv::Scalar(border_median(gray)), ink);
  double lo = 0, hi = 0;
  cv::minMaxLoc(ink, &lo, &hi);
  if (hi < 24) throw ImageError("no ink found (the image is blank or has too little contrast)");
  cv::Mat mask;
  double t = cv::threshold(ink, mask, 0, 255, cv::THRESH_BINARY | cv::THRESH_OTSU);
  cv::Mat faint = ink < t * 0.5;
  ink.setTo(0, faint);  // drop paper texture below half the ink threshold
  ink.convertTo(ink, CV_8U, 255.0 / hi);

  cv::Rect box = cv::boundingRect(mask);
  if (box.area() == 0) throw ImageError("no ink found");
  cv::Mat crop = ink(box);

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
  cv::Mat out;
  cv::warpAffine(small, out, shift, cv::Size(28, 28), cv::INTER_LINEAR, cv::BORDER_CONSTANT, 0);

  DigitPixels pixels{};
  for (int y = 0; y < 28; ++y)
    for (int x = 0; x < 28; ++x) pixels[static_cast<size_t>(y * 28 + x)] = out.at<uint8_t>(y, x);
  return pixels;
}

cv::Mat read_image(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw ImageError(path.string() + ": no such file");
  if (std::filesystem::is_directory(path, ec)) throw ImageError(path.string() + ": is a directory, not an image");
  if (std::filesystem::file_size(path, ec) == 0) throw ImageError(path.string() + ": empty file (0 bytes)");
  cv::Mat image;
  try {
    image = cv::imread(path.string(), cv::IMREAD_UNCHANGED);
  } catch (const cv::Exception&) {
    image.release();
  }
  if (image.empty())
    throw ImageError(path.string() + ": not a readable image (PNG, JPEG, BMP, TIFF, ...) or corrupt");
  return image;
}

}  // namespace digitflow::pipeline

// One image through the page stages, in sequence: the same calls the flow graph of run.cpp
// makes for a page (clean_page, find_strings, normalize_pieces, a CNN pass, normalize_cuts,
// a second pass, read_strings, apply_template), without batching across pages.
#include "digitflow/pipeline/read.hpp"

#include <algorithm>
#include <numeric>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "digitflow/kernels/inference.hpp"
#include "digitflow/kernels/trainer.hpp"
#include "digitflow/pipeline/clean.hpp"
#include "digitflow/pipeline/normalize.hpp"
#include "digitflow/pipeline/segment.hpp"

namespace digitflow::pipeline {

namespace {

// Scores the pieces in `which` in one CNN pass; row i of `probs` is piece i.
void score_pieces(const Segmentation& segmentation, const std::vector<int>& which,
                  kernels::Inference& inference, int classes, std::vector<float>& probs) {
  if (which.empty()) return;
  std::vector<uint8_t> pixels;
  pixels.reserve(which.size() * 784);
  for (int i : which) {
    const DigitPixels& d = segmentation.pieces[static_cast<size_t>(i)].pixels;
    pixels.insert(pixels.end(), d.begin(), d.end());
  }
  const auto count = static_cast<int64_t>(which.size());
  const kernels::Tensor p = inference.probabilities(pixels, count);
  for (size_t k = 0; k < which.size(); ++k)
    std::copy(p.data() + k * static_cast<size_t>(classes),
              p.data() + (k + 1) * static_cast<size_t>(classes),
              probs.begin() + static_cast<std::ptrdiff_t>(which[k]) * classes);
}

}  // namespace

cv::Mat decode_image(std::span<const uint8_t> bytes, const DecodeLimits& limits, double* dpi) {
  if (bytes.empty()) throw ImageError("the image is empty");
  const ImageHeader header = read_header(bytes);
  const int64_t w = header.width, h = header.height;
  if (w < 0 || h < 0 || w * h > limits.max_pixels)
    throw ImageError("the image is " + std::to_string(w) + "x" + std::to_string(h) +
                     " pixels, over the limit of " + std::to_string(limits.max_pixels));
  if (header.format == FileFormat::png) check_png(bytes);
  const cv::Mat encoded(1, static_cast<int>(bytes.size()), CV_8U,
                        const_cast<uint8_t*>(bytes.data()));
  // A PNG with an alpha channel (a canvas, a cut-out) is laid on white paper: decoded to
  // grey directly, its transparent pixels would turn black. Other images are decoded to grey
  // by OpenCV, which also applies a JPEG's EXIF orientation (phone photos).
  const bool png_alpha = bytes.size() > 25 && bytes[0] == 0x89 && bytes[1] == 'P' &&
                         (bytes[25] == 4 || bytes[25] == 6);
  cv::Mat gray;
  try {
    if (png_alpha) {
      cv::Mat raw = cv::imdecode(encoded, cv::IMREAD_UNCHANGED);
      if (!raw.empty() && raw.channels() == 4) {
        if (raw.depth() != CV_8U) raw.convertTo(raw, CV_8U, 1.0 / 257);
        std::vector<cv::Mat> planes;
        cv::split(raw, planes);
        cv::Mat colour, alpha;
        cv::merge(std::vector<cv::Mat>{planes[0], planes[1], planes[2]}, colour);
        cv::cvtColor(colour, gray, cv::COLOR_BGR2GRAY);
        planes[3].convertTo(alpha, CV_32F, 1.0 / 255);
        cv::Mat ink;
        gray.convertTo(ink, CV_32F);
        ink = ink.mul(alpha) + 255.0f * (1.0f - alpha);
        ink.convertTo(gray, CV_8U);
      } else {
        gray = cv::imdecode(encoded, cv::IMREAD_GRAYSCALE);
      }
    } else {
      gray = cv::imdecode(encoded, cv::IMREAD_GRAYSCALE);
    }
  } catch (const cv::Exception&) {
    gray.release();
  }
  if (gray.empty()) throw ImageError("not an image that can be read (PNG, JPEG, BMP or TIFF)");
  if (static_cast<int64_t>(gray.cols) * gray.rows > limits.max_pixels)
    throw ImageError("the image is " + std::to_string(gray.cols) + "x" + std::to_string(gray.rows) +
                     " pixels, over the limit of " + std::to_string(limits.max_pixels));
  if (dpi) *dpi = header.dpi > 0 ? header.dpi : limits.assume_dpi;
  return gray;
}

PageResult recognize_image(const cv::Mat& gray, kernels::Network& model, const RunOptions& options,
                           double dpi) {
  digit_classes(model);  // throws for a model that does not read digits, before any image work
  kernels::Inference inference(model, kernels::Backend::cpu, 64);
  if (options.screen) inference.set_screen(*options.screen, options.screen_confidence);
  if (options.partner) inference.set_partner(*options.partner);
  return recognize_image(gray, inference, options, dpi);
}

PageResult recognize_image(const cv::Mat& gray, kernels::Inference& inference, const RunOptions& options,
                           double dpi) {
  const int classes = digit_classes(inference.network());
  PageResult result;
  result.width = gray.cols;
  result.height = gray.rows;
  try {
    CleanedPage cleaned = clean_page(gray, options.clean, dpi);
    Segmentation segmentation = find_strings(cleaned, options.segment);
    std::vector<float> probs(segmentation.pieces.size() * static_cast<size_t>(classes), 0.0f);
    score_pieces(segmentation, normalize_pieces(cleaned, segmentation), inference, classes, probs);
    score_pieces(segmentation, normalize_cuts(segmentation, probs, classes), inference, classes, probs);
    result.strings = read_strings(segmentation, probs.data(), classes, cleaned.to_page,
                                  result.width, result.height, options.read);
    if (options.page_template) apply_template(*options.page_template, result);
  } catch (const ImageError& e) {
    result.error = e.what();
  }
  return result;
}

PageResult recognize_drawing(const cv::Mat& drawn, kernels::Inference& inference, const RunOptions& options) {
  // The ground is what most of the border is (the ink seldom runs along all four edges):
  // a dark one is a pad in a dark colour scheme, its ink light. Read as dark on light.
  cv::Mat gray = drawn;
  if (drawn.rows > 2 && drawn.cols > 2) {
    const int w = drawn.cols, h = drawn.rows;
    const double border = cv::sum(drawn.row(0))[0] + cv::sum(drawn.row(h - 1))[0] +
                          cv::sum(drawn(cv::Rect(0, 1, 1, h - 2)))[0] + cv::sum(drawn(cv::Rect(w - 1, 1, 1, h - 2)))[0];
    if (border / (2.0 * w + 2.0 * (h - 2)) < 128) cv::bitwise_not(drawn, gray);
  }
  // The tallest piece of ink (dark on the light pad): the height of the writing, whatever
  // else was drawn or tapped beside it.
  double darkest = 0, lightest = 0;
  cv::minMaxLoc(gray, &darkest, &lightest);
  int tallest = 0;
  if (lightest - darkest >= 40) {
    cv::Mat labels, stats, centroids;
    const int n = cv::connectedComponentsWithStats(gray < (darkest + lightest) / 2, labels, stats, centroids, 8);
    for (int i = 1; i < n; ++i) tallest = std::max(tallest, stats.at<int>(i, cv::CC_STAT_HEIGHT));
  }
  // Taller than a form's digits: read as a scan of a higher resolution, which clean_page
  // brings down to its working one (and the boxes back to the drawing's pixels).
  const double high = 0.75 * options.segment.max_digit_height;
  const double dpi = tallest > high ? kWorkingDpi * tallest / high : 0;
  return recognize_image(gray, inference, options, dpi);
}

DigitResult recognize_digit(const cv::Mat& image, kernels::Network& model, kernels::Network* partner) {
  digit_classes(model);  // throws for a model that does not read digits
  kernels::Inference inference(model, kernels::Backend::cpu, 1);
  if (partner) inference.set_partner(*partner);  // throws when the two read differently shaped images or classes
  return recognize_digit(image, inference);
}

DigitResult recognize_digit(const cv::Mat& image, kernels::Inference& inference) {
  digit_classes(inference.network());
  const DigitPixels pixels = normalize_digit(image);
  const kernels::Tensor p = inference.probabilities(pixels, 1);
  std::vector<int> order(10);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int a, int b) { return p.data()[a] > p.data()[b]; });
  DigitResult digit;
  digit.digit = order[0];
  digit.confidence = p.data()[order[0]];
  digit.box = {0, 0, image.cols, image.rows};
  for (int k = 0; k < 3; ++k)
    digit.top.push_back({order[static_cast<size_t>(k)], p.data()[order[static_cast<size_t>(k)]]});
  return digit;
}

}  // namespace digitflow::pipeline

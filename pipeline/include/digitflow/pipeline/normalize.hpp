// A digit image normalised the way MNIST was made: light ink on black, cropped to the ink,
// scaled to fit 20x20 keeping its aspect ratio (anti-aliased), then placed in 28x28 so that
// its centre of mass sits at the centre. Works for dark-on-light and light-on-dark input.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <stdexcept>

#include <opencv2/core.hpp>

namespace digitflow::pipeline {

class ImageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

using DigitPixels = std::array<uint8_t, 28 * 28>;

// Any 8- or 16-bit gray, BGR or BGRA image. Throws ImageError when it holds no ink.
DigitPixels normalize_digit(const cv::Mat& image);

// Reads an image file (PNG, JPEG, BMP, TIFF, ...) as it is stored; throws ImageError naming
// the file when it is missing, empty or not an image.
cv::Mat read_image(const std::filesystem::path& path);

}  // namespace digitflow::pipeline

// A reviewed digit on disk: exactly the 28x28 image the CNN saw, as normalize_digit() made
// it (MNIST-style: light ink on black, 0..255), stored as an 8-bit grayscale PNG under the
// state directory (Sample::image). Retraining reads these back as training images as they are.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <span>

namespace digitflow::jobs {

inline constexpr int kSampleSide = 28;
using SamplePixels = std::array<uint8_t, kSampleSide * kSampleSide>;

// Writes the PNG atomically (a temporary file beside it, then a rename), creating its folder.
// Throws std::runtime_error naming the file when it cannot be written.
void save_sample_image(const std::filesystem::path& path,
                       std::span<const uint8_t, kSampleSide * kSampleSide> pixels);

// Reads a sample PNG (8-bit; a colour one is turned gray, never inverted); throws
// pipeline::ImageError naming the file when it is missing, not an image, or not 28x28.
SamplePixels load_sample_image(const std::filesystem::path& path);

}  // namespace digitflow::jobs

// Sample PNGs: written through a temporary file so that a reader never sees half an image.
#include "digitflow/jobs/sample_image.hpp"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "digitflow/pipeline/normalize.hpp"

namespace digitflow::jobs {

namespace fs = std::filesystem;

void save_sample_image(const fs::path& path,
                       std::span<const uint8_t, kSampleSide * kSampleSide> pixels) {
  static std::atomic<uint64_t> counter{0};
  if (path.has_parent_path()) fs::create_directories(path.parent_path());
  const cv::Mat image(kSampleSide, kSampleSide, CV_8UC1, const_cast<uint8_t*>(pixels.data()));
  std::vector<uint8_t> png;
  if (!cv::imencode(".png", image, png))
    throw std::runtime_error(path.string() + ": cannot encode the sample as PNG");
  fs::path temp = path;
  temp += std::string(".tmp-")
              .append(std::to_string(::getpid()))
              .append("-")
              .append(std::to_string(counter++));
  {
    FILE* f = std::fopen(temp.c_str(), "wb");
    if (!f)
      throw std::runtime_error(temp.string() + ": cannot write (" + std::strerror(errno) + ")");
    const bool written = std::fwrite(png.data(), 1, png.size(), f) == png.size();
    if (std::fclose(f) != 0 || !written) {
      fs::remove(temp);
      throw std::runtime_error(temp.string() + ": cannot write the sample image");
    }
  }
  fs::rename(temp, path);
}

SamplePixels load_sample_image(const fs::path& path) {
  cv::Mat image = pipeline::read_image(path);
  if (image.depth() != CV_8U)
    throw pipeline::ImageError(path.string() + ": a sample image must have 8-bit pixels");
  if (image.channels() == 3) cv::cvtColor(image, image, cv::COLOR_BGR2GRAY);
  if (image.channels() == 4) cv::cvtColor(image, image, cv::COLOR_BGRA2GRAY);
  if (image.channels() != 1)
    throw pipeline::ImageError(path.string() + ": a sample image must be gray");
  if (image.rows != kSampleSide || image.cols != kSampleSide)
    throw pipeline::ImageError(path.string() + ": a sample image must be 28x28, not " +
                               std::to_string(image.cols) + "x" + std::to_string(image.rows));
  SamplePixels pixels{};
  for (int y = 0; y < kSampleSide; ++y)
    std::memcpy(pixels.data() + y * kSampleSide, image.ptr<uint8_t>(y), kSampleSide);
  return pixels;
}

}  // namespace digitflow::jobs

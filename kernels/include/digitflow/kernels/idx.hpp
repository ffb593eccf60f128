// IDX files (the MNIST and Fashion-MNIST format): big-endian header, then raw bytes.
// Readers refuse a truncated file, a wrong magic number and image/label counts that
// disagree, with a message that names the file and the problem.
#pragma once

#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

namespace digitflow::kernels {

class DataError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// One IDX file of unsigned bytes (type code 0x08), any number of dimensions.
struct IdxArray {
  std::vector<int64_t> dims;
  std::vector<uint8_t> bytes;
};
IdxArray read_idx(const std::filesystem::path& path);  // throws DataError

// Images (N, rows, cols) with their labels 0..classes-1.
struct LabelledImages {
  int64_t count = 0;
  int rows = 0;
  int cols = 0;
  std::vector<uint8_t> pixels;  // count * rows * cols, row-major, 0 = background
  std::vector<uint8_t> labels;  // count
};
LabelledImages read_idx_images(const std::filesystem::path& images,
                               const std::filesystem::path& labels);  // throws DataError

// Appends `from`'s images and labels to `to`; an empty `to` takes `from`'s image size.
// Throws std::invalid_argument when both hold images of different sizes.
void append_images(LabelledImages& to, const LabelledImages& from);

enum class MnistSplit { train, test };
// Reads {train,t10k}-{images-idx3,labels-idx1}-ubyte from `dir`.
LabelledImages load_mnist(const std::filesystem::path& dir, MnistSplit split);

}  // namespace digitflow::kernels

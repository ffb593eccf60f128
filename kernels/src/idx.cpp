// IDX readers for MNIST-style files: the header is checked field by field against the file
// size before any payload is read, and the payload then comes in with a single read straight
// into the returned vector. Labels are accepted as any byte 0..255; the model checks classes.
#include "digitflow/kernels/idx.hpp"

#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <system_error>

namespace digitflow::kernels {
namespace {

constexpr uint8_t kUnsignedByteType = 0x08;
constexpr int kMaxDims = 8;
constexpr uint64_t kMaxPayloadBytes = uint64_t{1} << 31;

[[noreturn]] void fail(const std::filesystem::path& path, const std::string& problem) {
  throw DataError(path.string() + ": " + problem);
}

std::string type_name(uint8_t code) {
  switch (code) {
    case 0x08:
      return "unsigned byte";
    case 0x09:
      return "signed byte";
    case 0x0B:
      return "int16";
    case 0x0C:
      return "int32";
    case 0x0D:
      return "float32";
    case 0x0E:
      return "float64";
    default:
      return "unknown";
  }
}

std::string hex32(uint32_t value) {
  std::ostringstream out;
  out << "0x";
  out.width(8);
  out.fill('0');
  out << std::hex << value;
  return out.str();
}

uint32_t big_endian_u32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

// "60000 images of 28x28", "60000 items", "an array of 2x3x4x5"
std::string describe(const std::vector<int64_t>& dims) {
  if (dims.size() == 1) return std::to_string(dims[0]) + " items";
  if (dims.size() == 3) {
    return std::to_string(dims[0]) + " images of " + std::to_string(dims[1]) + "x" +
           std::to_string(dims[2]);
  }
  std::string text = "an array of ";
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i > 0) text += "x";
    text += std::to_string(dims[i]);
  }
  return text;
}

std::ifstream open_for_reading(const std::filesystem::path& path, uint64_t& file_size) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (!std::filesystem::exists(status)) fail(path, "no such file");
  if (std::filesystem::is_directory(status)) fail(path, "is a directory, not an IDX file");
  file_size = std::filesystem::file_size(path, ec);
  if (ec) fail(path, "cannot read its size: " + ec.message());
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, std::string("cannot open: ") + std::strerror(errno));
  return in;
}

void read_exactly(std::ifstream& in, const std::filesystem::path& path, void* out, uint64_t n) {
  in.read(static_cast<char*>(out), static_cast<std::streamsize>(n));
  if (static_cast<uint64_t>(in.gcount()) != n) {
    fail(path, "read failed after " + std::to_string(in.gcount()) + " of " + std::to_string(n) +
                   " bytes (file changed while reading?)");
  }
}

}  // namespace

IdxArray read_idx(const std::filesystem::path& path) {
  uint64_t file_size = 0;
  std::ifstream in = open_for_reading(path, file_size);
  if (file_size == 0) fail(path, "empty file (0 bytes): not an IDX file");
  if (file_size < 4) {
    fail(path, "truncated: " + std::to_string(file_size) +
                   " bytes, shorter than the 4-byte IDX magic number");
  }

  std::array<uint8_t, 4> magic{};
  read_exactly(in, path, magic.data(), magic.size());
  const uint32_t magic_value = big_endian_u32(magic.data());
  const uint8_t type_code = magic[2];
  const int ndims = magic[3];
  const bool known_type = type_name(type_code) != "unknown";
  if (magic[0] != 0 || magic[1] != 0 || !known_type || ndims == 0 || ndims > kMaxDims) {
    fail(path, "wrong magic number " + hex32(magic_value) + ": not an IDX file of unsigned bytes");
  }
  if (type_code != kUnsignedByteType) {
    std::ostringstream code;
    code << "0x" << std::hex << (type_code < 0x10 ? "0" : "") << int{type_code};
    fail(path, "IDX type code " + code.str() + " (" + type_name(type_code) +
                   ") is not supported: only unsigned bytes (0x08)");
  }

  const uint64_t header_bytes = 4 + 4 * static_cast<uint64_t>(ndims);
  if (file_size < header_bytes) {
    fail(path, "truncated: magic number says " + std::to_string(ndims) + " dimensions (" +
                   std::to_string(header_bytes) + "-byte header) but the file has " +
                   std::to_string(file_size) + " bytes");
  }
  std::array<uint8_t, 4 * kMaxDims> raw_dims{};
  read_exactly(in, path, raw_dims.data(), header_bytes - 4);

  IdxArray result;
  uint64_t payload = 1;
  for (int i = 0; i < ndims; ++i) {
    const uint32_t dim = big_endian_u32(raw_dims.data() + 4 * i);
    if (dim == 0) {
      fail(path, "dimension " + std::to_string(i + 1) + " of " + std::to_string(ndims) +
                     " is 0: an IDX file must hold at least one item");
    }
    payload *= dim;  // cannot overflow: checked against 2^31 at every step
    if (payload >= kMaxPayloadBytes) {
      fail(path, "absurd size: dimension " + std::to_string(i + 1) + " is " + std::to_string(dim) +
                     ", which makes the data 2 GiB or more (corrupt header?)");
    }
    result.dims.push_back(dim);
  }

  const uint64_t expected = header_bytes + payload;
  if (file_size < expected) {
    fail(path, "truncated: header says " + describe(result.dims) + " (" + std::to_string(expected) +
                   " bytes) but the file has " + std::to_string(file_size) + " bytes");
  }
  if (file_size > expected) {
    fail(path, "header says " + describe(result.dims) + " (" + std::to_string(expected) +
                   " bytes) but the file has " + std::to_string(file_size) + " bytes (" +
                   std::to_string(file_size - expected) + " unexplained trailing bytes)");
  }

  result.bytes.resize(payload);
  read_exactly(in, path, result.bytes.data(), payload);
  return result;
}

LabelledImages read_idx_images(const std::filesystem::path& images,
                               const std::filesystem::path& labels) {
  IdxArray image_array = read_idx(images);
  if (image_array.dims.size() != 3) {
    fail(images, "expected 3 dimensions (images, rows, cols) but the header has " +
                     std::to_string(image_array.dims.size()));
  }
  IdxArray label_array = read_idx(labels);
  if (label_array.dims.size() != 1) {
    fail(labels, "expected 1 dimension (labels) but the header has " +
                     std::to_string(label_array.dims.size()));
  }
  if (image_array.dims[0] != label_array.dims[0]) {
    throw DataError(images.string() + " has " + std::to_string(image_array.dims[0]) +
                    " images but " + labels.string() + " has " +
                    std::to_string(label_array.dims[0]) + " labels");
  }

  LabelledImages result;
  result.count = image_array.dims[0];
  result.rows = static_cast<int>(image_array.dims[1]);
  result.cols = static_cast<int>(image_array.dims[2]);
  result.pixels = std::move(image_array.bytes);
  result.labels = std::move(label_array.bytes);
  return result;
}

void append_images(LabelledImages& to, const LabelledImages& from) {
  if (from.count == 0) return;
  if (to.count == 0 && to.pixels.empty()) {
    to.rows = from.rows;
    to.cols = from.cols;
  } else if (to.rows != from.rows || to.cols != from.cols) {
    throw std::invalid_argument("append_images: " + std::to_string(from.rows) + "x" + std::to_string(from.cols) +
                                " images added to a set of " + std::to_string(to.rows) + "x" +
                                std::to_string(to.cols));
  }
  to.pixels.insert(to.pixels.end(), from.pixels.begin(), from.pixels.end());
  to.labels.insert(to.labels.end(), from.labels.begin(), from.labels.end());
  to.count += from.count;
}

LabelledImages load_mnist(const std::filesystem::path& dir, MnistSplit split) {
  const std::string prefix = split == MnistSplit::train ? "train" : "t10k";
  const std::filesystem::path images = dir / (prefix + "-images-idx3-ubyte");
  const std::filesystem::path labels = dir / (prefix + "-labels-idx1-ubyte");
  for (const auto& path : {images, labels}) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) {
      fail(path,
           "missing: run scripts/fetch-mnist.sh, or set DIGITFLOW_DATA to the folder "
           "that holds the four MNIST files");
    }
  }
  return read_idx_images(images, labels);
}

}  // namespace digitflow::kernels

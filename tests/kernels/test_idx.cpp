// Tests for the IDX readers: small files written byte by byte here, read back exactly, and
// every malformed case refused with a DataError that names the file and the problem. The real
// MNIST files are checked too when scripts/fetch-mnist.sh has put them in place.
#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <string>
#include <vector>

#include "digitflow/kernels/idx.hpp"
#include "test_support.hpp"

namespace {

namespace fs = std::filesystem;
using digitflow::kernels::DataError;
using digitflow::kernels::IdxArray;
using digitflow::kernels::LabelledImages;
using digitflow::kernels::load_mnist;
using digitflow::kernels::MnistSplit;
using digitflow::kernels::read_idx;
using digitflow::kernels::read_idx_images;
using digitflow::testing::TempDir;

void write_bytes(const fs::path& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

void append_u32_be(std::vector<uint8_t>& bytes, uint32_t value) {
  for (int shift = 24; shift >= 0; shift -= 8)
    bytes.push_back(static_cast<uint8_t>(value >> shift));
}

// An IDX file: magic (0, 0, type, ndims), big-endian dims, then `payload`.
std::vector<uint8_t> idx_bytes(const std::vector<uint32_t>& dims,
                               const std::vector<uint8_t>& payload, uint8_t type_code = 0x08) {
  std::vector<uint8_t> bytes = {0, 0, type_code, static_cast<uint8_t>(dims.size())};
  for (uint32_t d : dims) append_u32_be(bytes, d);
  bytes.insert(bytes.end(), payload.begin(), payload.end());
  return bytes;
}

std::vector<uint8_t> counting(size_t n) {
  std::vector<uint8_t> bytes(n);
  for (size_t i = 0; i < n; ++i) bytes[i] = static_cast<uint8_t>(i * 7 + 3);
  return bytes;
}

// Passes when `action` throws DataError whose message contains every one of `parts`.
::testing::AssertionResult throws_data_error(const std::function<void()>& action,
                                     std::initializer_list<std::string> parts) {
  return digitflow::testing::throws_with_message<DataError>(action, parts);
}

TEST(Idx, ReadsImagesAndLabelsBackExactly) {
  TempDir dir;
  const std::vector<uint8_t> pixels = counting(3 * 2 * 5);
  write_bytes(dir / "images", idx_bytes({3, 2, 5}, pixels));
  write_bytes(dir / "labels", idx_bytes({3}, {7, 0, 9}, 0x08));

  const LabelledImages data = read_idx_images(dir / "images", dir / "labels");
  EXPECT_EQ(data.count, 3);
  EXPECT_EQ(data.rows, 2);
  EXPECT_EQ(data.cols, 5);
  EXPECT_EQ(data.pixels, pixels);
  EXPECT_EQ(data.labels, (std::vector<uint8_t>{7, 0, 9}));
}

TEST(Idx, ReadsAnyNumberOfDimensions) {
  TempDir dir;
  const std::vector<uint8_t> payload = counting(2 * 3 * 1 * 4);
  write_bytes(dir / "four", idx_bytes({2, 3, 1, 4}, payload));
  const IdxArray array = read_idx(dir / "four");
  EXPECT_EQ(array.dims, (std::vector<int64_t>{2, 3, 1, 4}));
  EXPECT_EQ(array.bytes, payload);
}

TEST(Idx, AcceptsLabelsUpTo255) {
  // The reader does not know the class count; the caller checks labels against its model.
  TempDir dir;
  write_bytes(dir / "images", idx_bytes({2, 1, 1}, {1, 2}));
  write_bytes(dir / "labels", idx_bytes({2}, {200, 255}));
  EXPECT_EQ(read_idx_images(dir / "images", dir / "labels").labels,
            (std::vector<uint8_t>{200, 255}));
}

TEST(Idx, RefusesTruncatedPayload) {
  TempDir dir;
  std::vector<uint8_t> bytes = idx_bytes({3, 2, 5}, counting(30));
  bytes.resize(bytes.size() - 4);
  const fs::path path = dir / "short-images";
  write_bytes(path, bytes);
  EXPECT_TRUE(
      throws_data_error([&] { read_idx(path); },
                        {path.string() + ": truncated",
                         "header says 3 images of 2x5 (46 bytes) but the file has 42 bytes"}));
}

TEST(Idx, RefusesTruncatedHeader) {
  TempDir dir;
  std::vector<uint8_t> bytes = idx_bytes({3, 2, 5}, {});
  bytes.resize(9);
  const fs::path path = dir / "cut";
  write_bytes(path, bytes);
  EXPECT_TRUE(throws_data_error([&] { read_idx(path); },
                                {path.string(), "truncated", "3 dimensions", "9 bytes"}));
  write_bytes(path, {0, 0});
  EXPECT_TRUE(throws_data_error([&] { read_idx(path); }, {path.string(), "truncated", "2 bytes"}));
}

TEST(Idx, RefusesWrongMagic) {
  TempDir dir;
  const fs::path path = dir / "foreign";
  write_bytes(path, {0x12, 0x34, 0x56, 0x78, 0, 0, 0, 1, 0});
  EXPECT_TRUE(throws_data_error(
      [&] { read_idx(path); },
      {path.string() + ": wrong magic number 0x12345678: not an IDX file of unsigned bytes"}));
  // A PNG signature is a typical wrong file.
  write_bytes(path, {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'});
  EXPECT_TRUE(throws_data_error([&] { read_idx(path); }, {path.string(), "0x89504e47"}));
}

TEST(Idx, RefusesTypeCodeOtherThanUnsignedByte) {
  TempDir dir;
  const fs::path path = dir / "floats";
  write_bytes(path, idx_bytes({2}, counting(8), 0x0D));
  EXPECT_TRUE(throws_data_error(
      [&] { read_idx(path); }, {path.string(), "type code 0x0d (float32)", "only unsigned bytes"}));
}

TEST(Idx, RefusesCountMismatch) {
  TempDir dir;
  write_bytes(dir / "images", idx_bytes({3, 1, 2}, counting(6)));
  write_bytes(dir / "labels", idx_bytes({2}, {1, 2}));
  EXPECT_TRUE(throws_data_error([&] { read_idx_images(dir / "images", dir / "labels"); },
                                {(dir / "images").string() + " has 3 images but " +
                                 (dir / "labels").string() + " has 2 labels"}));
}

TEST(Idx, RefusesSwappedImagesAndLabels) {
  TempDir dir;
  write_bytes(dir / "images", idx_bytes({3, 1, 2}, counting(6)));
  write_bytes(dir / "labels", idx_bytes({3}, {1, 2, 3}));
  EXPECT_TRUE(throws_data_error([&] { read_idx_images(dir / "labels", dir / "images"); },
                                {(dir / "labels").string(), "expected 3 dimensions"}));
}

TEST(Idx, RefusesEmptyFile) {
  TempDir dir;
  const fs::path path = dir / "empty";
  write_bytes(path, {});
  EXPECT_TRUE(throws_data_error([&] { read_idx(path); }, {path.string() + ": empty file"}));
}

TEST(Idx, RefusesMissingFileAndDirectory) {
  TempDir dir;
  EXPECT_TRUE(throws_data_error([&] { read_idx(dir / "nothing"); },
                                {(dir / "nothing").string() + ": no such file"}));
  EXPECT_TRUE(throws_data_error([&] { read_idx(dir.path()); }, {"is a directory"}));
}

TEST(Idx, RefusesZeroAndAbsurdDimensions) {
  TempDir dir;
  const fs::path path = dir / "odd";
  write_bytes(path, idx_bytes({4, 0, 28}, {}));
  EXPECT_TRUE(throws_data_error([&] { read_idx(path); }, {path.string(), "dimension 2 of 3 is 0"}));
  write_bytes(path, idx_bytes({60000, 60000, 28}, {}));
  EXPECT_TRUE(throws_data_error([&] { read_idx(path); }, {path.string(), "absurd size"}));
}

TEST(Idx, RefusesTrailingBytes) {
  TempDir dir;
  const fs::path path = dir / "long";
  write_bytes(path, idx_bytes({2}, {1, 2, 3}));
  EXPECT_TRUE(
      throws_data_error([&] { read_idx(path); }, {path.string(), "1 unexplained trailing"}));
}

TEST(Idx, MissingMnistTellsHowToFetchIt) {
  TempDir dir;
  EXPECT_TRUE(throws_data_error([&] { load_mnist(dir.path(), MnistSplit::test); },
                                {(dir / "t10k-images-idx3-ubyte").string(), "missing",
                                 "scripts/fetch-mnist.sh", "DIGITFLOW_DATA"}));
  write_bytes(dir / "train-images-idx3-ubyte", idx_bytes({1, 1, 1}, {0}));
  EXPECT_TRUE(throws_data_error([&] { load_mnist(dir.path(), MnistSplit::train); },
                                {(dir / "train-labels-idx1-ubyte").string(), "missing"}));
}

TEST(Idx, LoadsRealMnist) {
  if (!digitflow::testing::mnist_available()) GTEST_SKIP() << "MNIST files not present";
  const LabelledImages test = load_mnist(digitflow::testing::mnist_dir(), MnistSplit::test);
  EXPECT_EQ(test.count, 10000);
  EXPECT_EQ(test.rows, 28);
  EXPECT_EQ(test.cols, 28);
  ASSERT_EQ(test.labels.size(), 10000u);
  EXPECT_EQ(test.labels[0], 7);
  const LabelledImages train = load_mnist(digitflow::testing::mnist_dir(), MnistSplit::train);
  EXPECT_EQ(train.count, 60000);
  ASSERT_EQ(train.pixels.size(), 60000u * 28 * 28);
  EXPECT_EQ(train.labels[0], 5);
  for (uint8_t label : train.labels) ASSERT_LT(label, 10);
}

}  // namespace

TEST(Idx, AppendedImagesFollowInOrderAndAForeignSizeIsRefused) {
  digitflow::kernels::LabelledImages a, b, odd;
  b.count = 2;
  b.rows = b.cols = 2;
  b.pixels = {1, 2, 3, 4, 5, 6, 7, 8};
  b.labels = {3, 10};
  digitflow::kernels::append_images(a, b);  // an empty set takes the size
  digitflow::kernels::append_images(a, b);
  EXPECT_EQ(a.count, 4);
  EXPECT_EQ(a.rows, 2);
  EXPECT_EQ(a.cols, 2);
  EXPECT_EQ(a.labels, (std::vector<uint8_t>{3, 10, 3, 10}));
  ASSERT_EQ(a.pixels.size(), 16u);
  EXPECT_EQ(a.pixels[8], 1);
  EXPECT_EQ(a.pixels[15], 8);
  odd.count = 1;
  odd.rows = odd.cols = 3;
  odd.pixels.assign(9, 0);
  odd.labels = {1};
  EXPECT_TRUE(digitflow::testing::throws_with_message<std::invalid_argument>(
      [&] { digitflow::kernels::append_images(a, odd); }, {"3x3", "2x2"}));
  EXPECT_EQ(a.count, 4);
}

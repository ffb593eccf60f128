// Tests for the safetensors reader and writer: bit-exact round trips (NaN, inf, denormals,
// empty tensors), hand-built malformed and foreign files refused with a message naming the
// file, and atomic saves that leave no temp file and never clobber the old file on failure.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "digitflow/kernels/safetensors.hpp"
#include "test_support.hpp"

namespace {

namespace fs = std::filesystem;
using digitflow::kernels::load_safetensors;
using digitflow::kernels::ModelFileError;
using digitflow::kernels::SafetensorsContent;
using digitflow::kernels::save_safetensors;
using digitflow::kernels::Shape;
using digitflow::kernels::Tensor;
using digitflow::testing::random_tensor;
using digitflow::testing::TempDir;

void write_text(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string read_text(const fs::path& path) {
  std::string bytes(fs::file_size(path), '\0');
  std::ifstream in(path, std::ios::binary);
  in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return bytes;
}

// A hand-built file: 8-byte little-endian `header_size` (the JSON's length unless given),
// the JSON, then `data_bytes` bytes of data.
void write_raw(const fs::path& path, const std::string& json, size_t data_bytes,
               uint64_t header_size = UINT64_MAX) {
  if (header_size == UINT64_MAX) header_size = json.size();
  std::string bytes(8, '\0');
  std::memcpy(bytes.data(), &header_size, 8);
  bytes += json;
  bytes.append(data_bytes, '\x01');
  write_text(path, bytes);
}

::testing::AssertionResult throws_model_error(const std::function<void()>& action,
                                     std::initializer_list<std::string> parts) {
  return digitflow::testing::throws_with_message<ModelFileError>(action, parts);
}

::testing::AssertionResult refused(const fs::path& path, std::initializer_list<std::string> parts) {
  const ::testing::AssertionResult named =
      throws_model_error([&] { load_safetensors(path); }, {path.string() + ": "});
  if (!named) return named;
  return throws_model_error([&] { load_safetensors(path); }, parts);
}

::testing::AssertionResult bit_equal(const Tensor& actual, const Tensor& expected) {
  if (!(actual.shape() == expected.shape())) {
    return ::testing::AssertionFailure()
           << "shape " << actual.shape().str() << " != " << expected.shape().str();
  }
  for (int64_t i = 0; i < expected.numel(); ++i) {
    const auto a = std::bit_cast<uint32_t>(actual[i]);
    const auto e = std::bit_cast<uint32_t>(expected[i]);
    if (a != e) {
      return ::testing::AssertionFailure()
             << "element " << i << ": bits 0x" << std::hex << a << " != 0x" << e;
    }
  }
  return ::testing::AssertionSuccess();
}

std::vector<std::string> directory_listing(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) names.push_back(entry.path().filename());
  std::sort(names.begin(), names.end());
  return names;
}

TEST(Safetensors, RoundTripIsBitExact) {
  TempDir dir;
  const std::vector<uint32_t> special_bits = {
      0x7fc00000u, 0x7fc00001u, 0xffc00000u, 0x7f800001u,  // quiet NaNs with payloads, signalling
      0x7f800000u, 0xff800000u,                            // +inf, -inf
      0x00000001u, 0x807fffffu,                            // smallest denormal, negative denormal
      0x80000000u, 0x7f7fffffu, 0x3f800000u,               // -0, max float, 1
  };
  std::vector<float> special;
  for (uint32_t bits : special_bits) special.push_back(std::bit_cast<float>(bits));
  const Tensor odd = Tensor::from(Shape{static_cast<int64_t>(special.size())}, special);
  const Tensor weights = random_tensor(Shape{13, 1, 3, 3}, 7);
  const Tensor bias = random_tensor(Shape{13}, 8);
  const std::map<std::string, std::string> metadata = {
      {"model_spec", R"({"layers": [{"type": "conv", "out": 13}]})"},
      {"quote\"and\nnewline", "ünïcödé \t \\ value"},
      {"empty", ""},
  };
  const fs::path path = dir / "model.safetensors";
  save_safetensors(path, {{"special", &odd}, {"conv1.weight", &weights}, {"conv1.bias", &bias}},
                   metadata);

  const SafetensorsContent loaded = load_safetensors(path);
  EXPECT_EQ(loaded.metadata, metadata);
  ASSERT_EQ(loaded.tensors.size(), 3u);
  EXPECT_EQ(loaded.tensors[0].first, "special");
  EXPECT_EQ(loaded.tensors[1].first, "conv1.weight");
  EXPECT_EQ(loaded.tensors[2].first, "conv1.bias");
  EXPECT_TRUE(bit_equal(loaded.tensors[0].second, odd));
  EXPECT_TRUE(bit_equal(loaded.tensors[1].second, weights));
  EXPECT_TRUE(bit_equal(loaded.tensors[2].second, bias));
}

TEST(Safetensors, HeaderIsPaddedToEightBytes) {
  TempDir dir;
  const Tensor t = random_tensor(Shape{3}, 1);
  save_safetensors(dir / "m", {{"abc", &t}}, {});
  const std::string bytes = read_text(dir / "m");
  uint64_t header_size = 0;
  std::memcpy(&header_size, bytes.data(), 8);
  EXPECT_EQ(header_size % 8, 0u);
  EXPECT_EQ(bytes.size(), 8 + header_size + 12);
}

TEST(Safetensors, EmptyMetadataAndNoTensors) {
  TempDir dir;
  save_safetensors(dir / "empty.safetensors", {}, {});
  const SafetensorsContent loaded = load_safetensors(dir / "empty.safetensors");
  EXPECT_TRUE(loaded.metadata.empty());
  EXPECT_TRUE(loaded.tensors.empty());
}

TEST(Safetensors, ManyTensorsKeepTheirOrder) {
  TempDir dir;
  std::vector<Tensor> tensors;
  for (int i = 0; i < 300; ++i) tensors.push_back(random_tensor(Shape{i % 7 + 1, 13}, i));
  std::vector<std::pair<std::string, const Tensor*>> named;
  for (int i = 0; i < 300; ++i) named.emplace_back(std::string("t").append(std::to_string(299 - i)), &tensors[i]);
  save_safetensors(dir / "many", named, {{"k", "v"}});
  const SafetensorsContent loaded = load_safetensors(dir / "many");
  ASSERT_EQ(loaded.tensors.size(), 300u);
  for (int i = 0; i < 300; ++i) {
    EXPECT_EQ(loaded.tensors[i].first, named[i].first);
    EXPECT_TRUE(bit_equal(loaded.tensors[i].second, tensors[i])) << named[i].first;
  }
}

TEST(Safetensors, ZeroElementTensor) {
  TempDir dir;
  const Tensor empty(Shape{0, 3});
  const Tensor one = Tensor::from(Shape{1}, std::vector<float>{2.5f});
  save_safetensors(dir / "z", {{"empty", &empty}, {"one", &one}}, {});
  const SafetensorsContent loaded = load_safetensors(dir / "z");
  ASSERT_EQ(loaded.tensors.size(), 2u);
  EXPECT_EQ(loaded.tensors[0].first, "empty");
  EXPECT_EQ(loaded.tensors[0].second.shape(), (Shape{0, 3}));
  EXPECT_TRUE(bit_equal(loaded.tensors[1].second, one));
}

TEST(Safetensors, SaveRefusesDuplicateAndReservedNames) {
  TempDir dir;
  const Tensor t = random_tensor(Shape{2}, 1);
  EXPECT_TRUE(throws_model_error(
      [&] {
        save_safetensors(dir / "d", {{"a", &t}, {"a", &t}}, {});
      },
      {(dir / "d").string(), "two tensors are named 'a'"}));
  EXPECT_TRUE(throws_model_error(
      [&] {
        save_safetensors(dir / "d", {{"__metadata__", &t}}, {});
      },
      {"__metadata__"}));
  EXPECT_FALSE(fs::exists(dir / "d"));
}

TEST(Safetensors, RefusesShortFile) {
  TempDir dir;
  write_text(dir / "short", "12345");
  EXPECT_TRUE(refused(dir / "short", {"truncated", "5 bytes"}));
  write_text(dir / "short", "");
  EXPECT_TRUE(refused(dir / "short", {"truncated", "0 bytes"}));
}

TEST(Safetensors, RefusesMissingFile) {
  TempDir dir;
  EXPECT_TRUE(refused(dir / "absent.safetensors", {"cannot open"}));
}

TEST(Safetensors, RefusesTruncatedFile) {
  TempDir dir;
  const Tensor t = random_tensor(Shape{64}, 3);
  save_safetensors(dir / "m", {{"w", &t}}, {{"k", "v"}});
  const std::string bytes = read_text(dir / "m");
  write_text(dir / "cut-data", bytes.substr(0, bytes.size() - 1));
  EXPECT_TRUE(refused(dir / "cut-data", {"outside the 255-byte data region"}));
  write_text(dir / "cut-header", bytes.substr(0, 20));
  EXPECT_TRUE(refused(dir / "cut-header", {"truncated", "12 bytes after the length field"}));
}

TEST(Safetensors, RefusesHugeHeaderLength) {
  TempDir dir;
  write_raw(dir / "huge", "{}", 0, 200'000'000);
  EXPECT_TRUE(refused(dir / "huge", {"not a safetensors file", "100 MB"}));
}

TEST(Safetensors, ATextFileIsCalledOne) {
  TempDir dir;
  std::ofstream(dir / "model.yaml") << "name: default\nlayers:\n  - conv2d: {out: 32}\n";
  EXPECT_TRUE(refused(dir / "model.yaml", {"is a text file (it begins \"name: default\"), not a model file"}));
  std::ofstream(dir / "long.txt") << std::string(50, 'x') << "\n";
  EXPECT_TRUE(refused(dir / "long.txt", {"(it begins \"" + std::string(40, 'x') + "...\")"}));
}

TEST(Safetensors, RefusesInvalidJson) {
  TempDir dir;
  write_raw(dir / "bad", R"({"w": {"dtype": "F32",)", 0);
  EXPECT_TRUE(refused(dir / "bad", {"not a safetensors file", "not valid JSON"}));
  write_raw(dir / "array", "[1, 2, 3]", 0);
  EXPECT_TRUE(refused(dir / "array", {"not a safetensors file", "array"}));
}

TEST(Safetensors, RefusesMissingKeys) {
  TempDir dir;
  write_raw(dir / "m", R"({"w": {"dtype": "F32", "data_offsets": [0, 4]}})", 4);
  EXPECT_TRUE(refused(dir / "m", {"tensor 'w' has no \"shape\""}));
  write_raw(dir / "m", R"({"w": {"shape": [1], "data_offsets": [0, 4]}})", 4);
  EXPECT_TRUE(refused(dir / "m", {"tensor 'w' has no \"dtype\""}));
  write_raw(dir / "m", R"({"w": {"dtype": "F32", "shape": [1]}})", 4);
  EXPECT_TRUE(refused(dir / "m", {"tensor 'w' has no \"data_offsets\""}));
  write_raw(dir / "m", R"({"w": 3})", 0);
  EXPECT_TRUE(refused(dir / "m", {"tensor 'w' is a JSON number"}));
}

TEST(Safetensors, RefusesOtherDtypes) {
  TempDir dir;
  write_raw(dir / "m", R"({"w": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]}})", 4);
  EXPECT_TRUE(refused(dir / "m", {"tensor 'w' has dtype F16; only F32 is supported"}));
}

TEST(Safetensors, RefusesBadOffsets) {
  TempDir dir;
  const fs::path path = dir / "m";
  write_raw(path, R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})", 4);
  EXPECT_TRUE(refused(path, {"tensor 'w'", "outside the 4-byte data region"}));
  write_raw(path, R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}})", 8);
  EXPECT_TRUE(refused(path, {"tensor 'w'", "outside"}));
  write_raw(path, R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, -8]}})", 8);
  EXPECT_TRUE(refused(path, {"tensor 'w'", "not [begin, end]"}));
  write_raw(path, R"({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", 8);
  EXPECT_TRUE(refused(path, {"tensor 'w' has shape [3] (12 bytes) but data_offsets span 8"}));
  write_raw(path, R"({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 8]}})", 8);
  EXPECT_TRUE(refused(path, {"tensor 'w'", "not a size"}));
  write_raw(path,
            R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
            12);
  EXPECT_TRUE(refused(path, {"tensor 'b' overlaps tensor 'a'"}));
}

TEST(Safetensors, RefusesDataNotFullyCovered) {
  TempDir dir;
  const fs::path path = dir / "m";
  write_raw(path,
            R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}})",
            12);
  EXPECT_TRUE(refused(path, {"data bytes 4..8 belong to no tensor"}));
  write_raw(path, R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})", 16);
  EXPECT_TRUE(refused(path, {"12 bytes after the last tensor"}));
}

TEST(Safetensors, RefusesNonStringMetadata) {
  TempDir dir;
  write_raw(dir / "m", R"({"__metadata__": {"epochs": 12}})", 0);
  EXPECT_TRUE(refused(dir / "m", {"__metadata__ value for 'epochs' is a JSON number"}));
  write_raw(dir / "m", R"({"__metadata__": ["x"]})", 0);
  EXPECT_TRUE(refused(dir / "m", {"__metadata__ is a JSON array"}));
}

TEST(Safetensors, RefusesForeignFiles) {
  TempDir dir;
  std::string png = "\x89PNG\r\n\x1a\n";
  png += std::string("\0\0\0\rIHDR\0\0\0\x10\0\0\0\x10\x08\x06\0\0\0", 25);
  write_text(dir / "image.png", png);
  EXPECT_TRUE(refused(dir / "image.png", {"not a safetensors file"}));

  std::mt19937 rng(42);
  std::string noise(4096, '\0');
  for (char& c : noise) c = static_cast<char>(rng());
  write_text(dir / "noise.bin", noise);
  EXPECT_TRUE(refused(dir / "noise.bin", {"not a safetensors file"}));

  write_text(dir / "config.json", "{\"layers\": [{\"type\": \"conv\"}], \"lr\": 0.1}\n");
  EXPECT_TRUE(refused(dir / "config.json", {"is a text file (it begins \"{\"layers\"", "not a model file"}));

  EXPECT_TRUE(throws_model_error([&] { load_safetensors(dir.path()); }, {"is a directory"}));
}

TEST(Safetensors, SaveCreatesParentsAndLeavesNoTempFile) {
  TempDir dir;
  const Tensor a = random_tensor(Shape{5}, 1);
  const Tensor b = random_tensor(Shape{6}, 2);
  const fs::path path = dir / "models" / "nested" / "m.safetensors";
  save_safetensors(path, {{"a", &a}}, {{"v", "1"}});
  save_safetensors(path, {{"b", &b}}, {{"v", "2"}});
  EXPECT_EQ(directory_listing(path.parent_path()), std::vector<std::string>{"m.safetensors"});
  const SafetensorsContent loaded = load_safetensors(path);
  EXPECT_EQ(loaded.metadata.at("v"), "2");
  ASSERT_EQ(loaded.tensors.size(), 1u);
  EXPECT_TRUE(bit_equal(loaded.tensors[0].second, b));
}

TEST(Safetensors, FailedSaveReportsAndLeavesNothing) {
  TempDir dir;
  write_text(dir / "plain-file", "not a directory");
  const Tensor a = random_tensor(Shape{5}, 1);
  const fs::path path = dir / "plain-file" / "m.safetensors";
  EXPECT_TRUE(throws_model_error(
      [&] {
        save_safetensors(path, {{"a", &a}}, {});
      },
      {path.string(), "cannot save"}));
  EXPECT_EQ(directory_listing(dir.path()), std::vector<std::string>{"plain-file"});
  EXPECT_EQ(read_text(dir / "plain-file"), "not a directory");
}

TEST(Safetensors, FailedSaveKeepsTheOldFile) {
  TempDir dir;
  const Tensor old_tensor = random_tensor(Shape{5}, 1);
  const Tensor new_tensor = random_tensor(Shape{5}, 2);
  const fs::path path = dir / "m.safetensors";
  save_safetensors(path, {{"w", &old_tensor}}, {{"v", "old"}});
  const std::string old_bytes = read_text(path);

  // A directory where the temp file should go makes the write fail before the rename.
  const fs::path blocker = dir / ("m.safetensors.tmp-" + std::to_string(::getpid()));
  fs::create_directory(blocker);
  EXPECT_TRUE(throws_model_error(
      [&] {
        save_safetensors(path, {{"w", &new_tensor}}, {});
      },
      {path.string(), "cannot save"}));
  EXPECT_EQ(read_text(path), old_bytes);
  fs::remove(blocker);
  EXPECT_EQ(directory_listing(dir.path()), std::vector<std::string>{"m.safetensors"});

  // Nor can a save replace something that is not a file.
  fs::create_directory(dir / "taken");
  EXPECT_TRUE(throws_model_error(
      [&] {
        save_safetensors(dir / "taken", {{"w", &new_tensor}}, {});
      },
      {(dir / "taken").string(), "cannot save"}));
  EXPECT_EQ(directory_listing(dir.path()), (std::vector<std::string>{"m.safetensors", "taken"}));
}

}  // namespace

// safetensors read/write for F32 tensors. Saves go through "<path>.tmp-<pid>", fsync, rename
// and a directory fsync so a crash leaves the old file or the new one, never half of one.
// Loads trust nothing: every header field is checked against the file size before any copy.
#include "digitflow/kernels/safetensors.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <system_error>

namespace digitflow::kernels {

static_assert(std::endian::native == std::endian::little,
              "safetensors stores little-endian data; this reader copies bytes as they are");

namespace {

constexpr uint64_t kMaxHeaderBytes = 100ull * 1000 * 1000;
constexpr const char* kMetadataKey = "__metadata__";

[[noreturn]] void fail(const std::filesystem::path& path, const std::string& problem) {
  throw ModelFileError(path.string() + ": " + problem);
}

std::string errno_text() { return std::strerror(errno); }

// Element count of `dims`, or -1 when it is negative or overflows 2^62.
int64_t checked_numel(const std::vector<int64_t>& dims) {
  int64_t n = 1;
  for (int64_t d : dims) {
    if (d < 0) return -1;
    if (d != 0 && n > (int64_t{1} << 62) / d) return -1;
    n *= d;
  }
  return n;
}

std::string shape_text(const std::vector<int64_t>& dims) {
  std::string text = "[";
  for (size_t i = 0; i < dims.size(); ++i) text += (i ? ", " : "") + std::to_string(dims[i]);
  return text + "]";
}

class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  ~FileDescriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  int get() const { return fd_; }
  int release_and_close() {
    const int rc = ::close(fd_);
    fd_ = -1;
    return rc;
  }

 private:
  int fd_;
};

void write_all(int fd, const void* data, size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd, p, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::system_error(errno, std::generic_category(), "write");
    }
    p += n;
    size -= static_cast<size_t>(n);
  }
}

void write_file_durably(const std::filesystem::path& path, const std::filesystem::path& temp,
                        const std::string& head,
                        const std::vector<std::pair<std::string, const Tensor*>>& tensors) {
  FileDescriptor fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (fd.get() < 0) fail(path, "cannot save: cannot create " + temp.string() + ": " + errno_text());
  try {
    write_all(fd.get(), head.data(), head.size());
    for (const auto& [name, tensor] : tensors) {
      if (tensor->numel() > 0) {
        write_all(fd.get(), tensor->data(), static_cast<size_t>(tensor->numel()) * sizeof(float));
      }
    }
    if (::fsync(fd.get()) != 0) throw std::system_error(errno, std::generic_category(), "fsync");
    if (fd.release_and_close() != 0) {
      throw std::system_error(errno, std::generic_category(), "close");
    }
  } catch (const std::system_error& e) {
    std::error_code ignored;
    std::filesystem::remove(temp, ignored);
    fail(path, "cannot save: " + std::string(e.what()) + " on " + temp.string());
  }
}

void fsync_directory(const std::filesystem::path& dir) {
  FileDescriptor fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() >= 0) ::fsync(fd.get());  // some file systems refuse; the rename already happened
}

}  // namespace

void save_safetensors(const std::filesystem::path& path,
                      const std::vector<std::pair<std::string, const Tensor*>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header[kMetadataKey] = metadata;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    if (name.empty() || name == kMetadataKey) {
      fail(path, "cannot save a tensor named '" + name + "'");
    }
    if (header.contains(name)) fail(path, "cannot save: two tensors are named '" + name + "'");
    if (tensor == nullptr) fail(path, "cannot save: tensor '" + name + "' is null");
    if (tensor->device() != Device::cpu) {
      fail(path, "cannot save: tensor '" + name + "' is not in host memory");
    }
    const std::vector<int64_t>& dims = tensor->shape().dims();
    if (dims.empty()) fail(path, "cannot save: tensor '" + name + "' has no shape");
    const uint64_t bytes = static_cast<uint64_t>(tensor->numel()) * sizeof(float);
    header[name] = {{"dtype", "F32"}, {"shape", dims}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }

  std::string json = header.dump();
  json.append((8 - json.size() % 8) % 8, ' ');
  const uint64_t header_size = json.size();
  std::string head(8, '\0');
  std::memcpy(head.data(), &header_size, 8);
  head += json;

  const std::filesystem::path target = std::filesystem::absolute(path);
  const std::filesystem::path dir = target.parent_path();
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) fail(path, "cannot save: cannot create directory " + dir.string() + ": " + ec.message());

  std::filesystem::path temp = target;
  temp += ".tmp-" + std::to_string(::getpid());
  write_file_durably(path, temp, head, tensors);
  if (::rename(temp.c_str(), target.c_str()) != 0) {
    const std::string reason = errno_text();
    std::filesystem::remove(temp, ec);
    fail(path, "cannot save: rename from " + temp.string() + " failed: " + reason);
  }
  fsync_directory(dir);
}

SafetensorsContent load_safetensors(const std::filesystem::path& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) fail(path, "is a directory, not a model file");
  const uint64_t file_size = std::filesystem::file_size(path, ec);
  if (ec) fail(path, "cannot open: " + ec.message());
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot open: " + errno_text());
  if (file_size < 8) {
    fail(path, "truncated: " + std::to_string(file_size) +
                   " bytes, shorter than the 8-byte safetensors header length");
  }
  std::string bytes(file_size, '\0');
  in.read(bytes.data(), static_cast<std::streamsize>(file_size));
  if (static_cast<uint64_t>(in.gcount()) != file_size) {
    fail(path, "read only " + std::to_string(in.gcount()) + " of " + std::to_string(file_size) +
                   " bytes (file changed while reading?)");
  }

  uint64_t header_size = 0;
  std::memcpy(&header_size, bytes.data(), 8);
  if (header_size > kMaxHeaderBytes) {
    // A text file given for a model (a model description in YAML, a note): say so.
    const std::string start = bytes.substr(0, std::min<size_t>(bytes.size(), 64));
    if (std::all_of(start.begin(), start.end(), [](unsigned char c) { return c == '\n' || c == '\r' || c == '\t' || (c >= 32 && c < 127); })) {
      const size_t line_end = std::min(start.find_first_of("\r\n"), start.size());
      std::string shown = start.substr(0, std::min<size_t>(line_end, 40)) + (line_end > 40 ? "..." : "");
      fail(path, "is a text file (it begins \"" + shown + "\"), not a model file: a model file is the binary "
                 "safetensors file that digitflow train writes");
    }
    fail(path, "not a safetensors file: its first 8 bytes give a header length of " +
                   std::to_string(header_size) + " bytes, over the 100 MB limit");
  }
  if (8 + header_size > file_size) {
    fail(path, "truncated: header length is " + std::to_string(header_size) +
                   " bytes but the file has only " + std::to_string(file_size - 8) +
                   " bytes after the length field");
  }

  nlohmann::json header;
  try {
    header = nlohmann::json::parse(bytes.begin() + 8,
                                   bytes.begin() + 8 + static_cast<std::ptrdiff_t>(header_size));
  } catch (const nlohmann::json::parse_error& e) {
    fail(path, "not a safetensors file: the header is not valid JSON (error at header byte " +
                   std::to_string(e.byte) + ")");
  }
  if (!header.is_object()) {
    fail(path, std::string("not a safetensors file: the header is a JSON ") + header.type_name() +
                   ", not an object");
  }

  const uint64_t data_size = file_size - 8 - header_size;
  const char* data = bytes.data() + 8 + header_size;
  SafetensorsContent content;

  struct Entry {
    std::string name;
    std::vector<int64_t> dims;
    uint64_t begin;
    uint64_t end;
  };
  std::vector<Entry> entries;
  for (const auto& [key, value] : header.items()) {
    if (key == kMetadataKey) {
      if (!value.is_object()) {
        fail(path, "__metadata__ is a JSON " + std::string(value.type_name()) + ", not an object");
      }
      for (const auto& [meta_key, meta_value] : value.items()) {
        if (!meta_value.is_string()) {
          fail(path, "__metadata__ value for '" + meta_key + "' is a JSON " +
                         meta_value.type_name() + ", not a string");
        }
        content.metadata[meta_key] = meta_value.get<std::string>();
      }
      continue;
    }
    const std::string what = "tensor '" + key + "'";
    if (!value.is_object()) {
      fail(path, what + " is a JSON " + value.type_name() + ", not an object");
    }
    for (const char* field : {"dtype", "shape", "data_offsets"}) {
      if (!value.contains(field)) fail(path, what + " has no \"" + field + "\"");
    }
    const auto& dtype = value["dtype"];
    if (!dtype.is_string()) fail(path, what + ": \"dtype\" is not a string");
    if (dtype.get<std::string>() != "F32") {
      fail(path, what + " has dtype " + dtype.get<std::string>() + "; only F32 is supported");
    }

    Entry entry{key, {}, 0, 0};
    const auto& shape = value["shape"];
    if (!shape.is_array()) fail(path, what + ": \"shape\" is not an array");
    for (const auto& d : shape) {
      if (!d.is_number_unsigned()) {
        fail(path, what + ": \"shape\" holds " + d.dump() + ", not a size");
      }
      if (d.get<uint64_t>() > (uint64_t{1} << 40))
        fail(path, what + ": absurd dimension " + d.dump());
      entry.dims.push_back(d.get<int64_t>());
    }
    if (entry.dims.empty())
      fail(path, what + " is a scalar (shape []), which digitflow does not use");
    const auto& offsets = value["data_offsets"];
    if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
        !offsets[1].is_number_unsigned()) {
      fail(path, what + ": \"data_offsets\" is " + offsets.dump() + ", not [begin, end]");
    }
    entry.begin = offsets[0].get<uint64_t>();
    entry.end = offsets[1].get<uint64_t>();
    if (entry.begin > entry.end || entry.end > data_size) {
      fail(path, what + " has data_offsets [" + std::to_string(entry.begin) + ", " +
                     std::to_string(entry.end) + "] outside the " + std::to_string(data_size) +
                     "-byte data region");
    }
    const int64_t numel = checked_numel(entry.dims);
    if (numel < 0 || static_cast<uint64_t>(numel) * sizeof(float) != entry.end - entry.begin) {
      fail(path, what + " has shape " + shape_text(entry.dims) + " (" +
                     (numel < 0 ? std::string("too many") : std::to_string(numel * 4)) +
                     " bytes) but data_offsets span " + std::to_string(entry.end - entry.begin) +
                     " bytes");
    }
    entries.push_back(std::move(entry));
  }

  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t covered = 0;
  const Entry* previous = nullptr;
  for (const Entry& entry : entries) {
    if (entry.begin < covered) {
      fail(path, "tensor '" + entry.name + "' overlaps tensor '" + previous->name + "' (bytes " +
                     std::to_string(entry.begin) + ".." + std::to_string(covered) + ")");
    }
    if (entry.begin > covered) {
      fail(path, "data bytes " + std::to_string(covered) + ".." + std::to_string(entry.begin) +
                     " belong to no tensor (corrupt header?)");
    }
    covered = entry.end;
    previous = &entry;
  }
  if (covered != data_size) {
    fail(path, std::to_string(data_size - covered) +
                   " bytes after the last tensor belong to no tensor (corrupt header?)");
  }

  content.tensors.reserve(entries.size());
  for (const Entry& entry : entries) {
    Tensor tensor{Shape(entry.dims)};
    if (entry.end > entry.begin) {
      std::memcpy(tensor.data(), data + entry.begin, entry.end - entry.begin);
    }
    content.tensors.emplace_back(entry.name, std::move(tensor));
  }
  return content;
}

}  // namespace digitflow::kernels

// Job uploads: the parts of a multipart request (or the entries of one zip) written into a
// fresh folder under the state directory, never outside it. A client's file name may carry
// a relative path (a folder upload); a name with "..", an absolute path, a backslash, a NUL
// or a control character is refused, and so is a zip entry like that (zip slip) or a symbolic
// link. Sizes are counted as the bytes arrive and, for a zip, both as its entries declare
// and as they actually inflate (a zip bomb stops at the limit).
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <string_view>

namespace digitflow::web {

struct UploadLimits {
  int64_t max_file_bytes = int64_t{50} << 20;
  int64_t max_job_bytes = int64_t{1024} << 20;
  int64_t max_files = 10000;
};

// The relative path a client's file name stands for ('/' separated); throws BadRequest
// naming it when it is empty, absolute, has "." or ".." parts, a backslash, NUL or another
// control character, or a part over 255 bytes.
std::filesystem::path safe_relative_path(std::string_view name);

// A temporary folder receiving one upload; removed when the object goes.
class UploadFolder {
 public:
  UploadFolder(const std::filesystem::path& parent, UploadLimits limits);
  ~UploadFolder();
  UploadFolder(const UploadFolder&) = delete;
  UploadFolder& operator=(const UploadFolder&) = delete;

  const std::filesystem::path& path() const { return root_; }
  int64_t files() const { return files_; }
  int64_t bytes() const { return bytes_; }

  // One uploaded file, streamed: begin_file, append as data arrives, end_file. Throw
  // BadRequest for a bad or repeated name, TooLarge over a limit (naming the setting).
  void begin_file(std::string_view client_name);
  void append(const char* data, size_t size);
  void end_file();

  // The upload as one zip instead: begin_zip, append, end_zip. The zip is kept beside the
  // folder until end_zip unpacks it (its entries count against the same limits).
  void begin_zip();
  void end_zip();

  // Unpacks a zip file into the folder (its entries count against the same limits).
  void add_zip(const std::filesystem::path& zip);

 private:
  std::filesystem::path begin_entry(std::string_view name);
  void count_bytes(int64_t size);
  std::filesystem::path root_;
  UploadLimits limits_;
  std::filesystem::path zip_;
  bool receiving_zip_ = false, zipped_ = false;
  std::ofstream out_;
  std::string current_;
  int64_t current_bytes_ = 0, files_ = 0, bytes_ = 0;
  std::set<std::string> names_;
};

}  // namespace digitflow::web

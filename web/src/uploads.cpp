// Uploads into a private temporary folder. Every name is checked before anything is created
// (safe_relative_path), files are opened with O_EXCL semantics by refusing a name seen
// before, and sizes are counted as bytes are written, so a lying Content-Length or zip
// header cannot get more onto the disk than the limits allow. libzip reads zips: none of
// the project's other dependencies reads the format.
#include "digitflow/web/uploads.hpp"

#include <sys/stat.h>
#include <zip.h>

#include <memory>

#include "digitflow/web/accounts.hpp"
#include "digitflow/web/errors.hpp"

namespace digitflow::web {

namespace fs = std::filesystem;

namespace {

std::string mb(int64_t bytes) { return std::to_string(bytes >> 20) + " MB"; }

std::string printable(std::string_view name) {
  std::string text;
  for (unsigned char c : name.substr(0, 200)) {
    if (c < 0x20 || c == 0x7f) {
      char esc[8];
      std::snprintf(esc, sizeof esc, "\\x%02x", c);
      text += esc;
    } else {
      text += static_cast<char>(c);
    }
  }
  return text;
}

}  // namespace

fs::path safe_relative_path(std::string_view name) {
  auto refuse = [&](const std::string& why) {
    std::string message = "the file name '";
    message.append(printable(name)).append("' is refused: ").append(why);
    throw BadRequest(message);
  };
  if (name.empty()) refuse("it is empty");
  if (name.size() > 1024) refuse("it is longer than 1024 bytes");
  for (unsigned char c : name)
    if (c < 0x20 || c == 0x7f) refuse("it holds a control character or NUL");
  if (name.find('\\') != std::string_view::npos) refuse("it holds a backslash");
  if (name.front() == '/') refuse("it is an absolute path");
  if (name.size() >= 2 && name[1] == ':') refuse("it is an absolute path");
  fs::path path;
  size_t start = 0;
  while (start <= name.size()) {
    size_t end = name.find('/', start);
    if (end == std::string_view::npos) end = name.size();
    const std::string_view part = name.substr(start, end - start);
    if (part == "..") refuse("'..' would leave the job folder");
    if (part == ".") refuse("it holds a '.' part");
    if (part.size() > 255) refuse("a part of it is longer than 255 bytes");
    if (part.empty() && end != name.size()) refuse("it holds an empty part ('//')");
    if (!part.empty()) path /= std::string(part);
    start = end + 1;
  }
  if (path.empty()) refuse("it names no file");
  return path;
}

UploadFolder::UploadFolder(const fs::path& parent, UploadLimits limits) : limits_(limits) {
  fs::create_directories(parent);
  root_ = parent / (".upload-" + random_token().substr(0, 16));
  fs::create_directory(root_);
  fs::permissions(root_, fs::perms::owner_all, fs::perm_options::replace);
  zip_ = root_.string() + ".zip";
}

UploadFolder::~UploadFolder() {
  out_.close();
  std::error_code ec;
  fs::remove_all(root_, ec);
  fs::remove(zip_, ec);
}

void UploadFolder::count_bytes(int64_t size) {
  current_bytes_ += size;
  bytes_ += size;
  if (receiving_zip_) {
    if (bytes_ > limits_.max_job_bytes)
      throw TooLarge("the zip is larger than web.max_job_mb (" + mb(limits_.max_job_bytes) + ")");
    return;
  }
  if (current_bytes_ > limits_.max_file_bytes)
    throw TooLarge("the file '" + printable(current_) + "' is larger than web.max_file_mb (" +
                   mb(limits_.max_file_bytes) + ")");
  if (bytes_ > limits_.max_job_bytes)
    throw TooLarge("the upload is larger than web.max_job_mb (" + mb(limits_.max_job_bytes) + ")");
}

fs::path UploadFolder::begin_entry(std::string_view name) {
  const fs::path relative = safe_relative_path(name);
  const std::string key = relative.generic_string();
  for (fs::path prefix; const fs::path& part : relative) {  // a file may not also be a folder
    prefix /= part;
    if (prefix != relative && names_.count(prefix.generic_string()))
      throw BadRequest("'" + printable(key) + "' is inside '" + prefix.generic_string() +
                       "', which is a file");
  }
  if (names_.count(key)) throw BadRequest("the file '" + printable(key) + "' is uploaded twice");
  std::string folder = key;
  folder += '/';
  if (const auto it = names_.lower_bound(folder); it != names_.end() && it->starts_with(folder))
    throw BadRequest("'" + printable(key) + "' is both a file and a folder");
  if (files_ + 1 > limits_.max_files)
    throw TooLarge("the upload has more than web.max_files (" + std::to_string(limits_.max_files) +
                   ") files");
  ++files_;
  names_.insert(key);
  current_ = key;
  current_bytes_ = 0;
  const fs::path target = root_ / relative;
  fs::create_directories(target.parent_path());
  return target;
}

void UploadFolder::begin_file(std::string_view client_name) {
  if (receiving_zip_ || zipped_) throw BadRequest("send one zip, or files, not both");
  const fs::path target = begin_entry(client_name);
  out_.close();
  out_.clear();
  out_.open(target, std::ios::binary | std::ios::trunc);
  if (!out_) throw std::runtime_error(target.string() + ": cannot write the upload");
}

void UploadFolder::append(const char* data, size_t size) {
  count_bytes(static_cast<int64_t>(size));
  out_.write(data, static_cast<std::streamsize>(size));
  if (!out_) throw std::runtime_error("writing the upload failed (disk full?)");
}

void UploadFolder::end_file() {
  out_.close();
  if (out_.fail()) throw std::runtime_error("writing the upload failed (disk full?)");
}

void UploadFolder::begin_zip() {
  if (receiving_zip_ || zipped_ || files_ > 0) throw BadRequest("send one zip, or files, not both");
  receiving_zip_ = zipped_ = true;
  current_bytes_ = 0;
  out_.open(zip_, std::ios::binary | std::ios::trunc);
  if (!out_) throw std::runtime_error(zip_.string() + ": cannot write the upload");
}

void UploadFolder::end_zip() {
  end_file();
  receiving_zip_ = false;
  bytes_ = 0;       // what counts is what it unpacks to
  zipped_ = false;  // add_zip writes the entries as files
  add_zip(zip_);
  zipped_ = true;
  std::error_code ec;
  fs::remove(zip_, ec);
}

void UploadFolder::add_zip(const fs::path& zip_path) {
  int error = 0;
  std::unique_ptr<zip_t, decltype(&zip_discard)> archive(
      zip_open(zip_path.c_str(), ZIP_RDONLY, &error), zip_discard);
  if (!archive) throw BadRequest("the zip cannot be read (not a zip file, or damaged)");
  const zip_int64_t entries = zip_get_num_entries(archive.get(), 0);
  // First every entry's name, kind and declared size, before anything is written.
  int64_t declared = 0, files = 0;
  for (zip_int64_t i = 0; i < entries; ++i) {
    zip_stat_t st;
    if (zip_stat_index(archive.get(), static_cast<zip_uint64_t>(i), 0, &st) != 0 ||
        !(st.valid & ZIP_STAT_NAME))
      throw BadRequest("the zip cannot be read: entry " + std::to_string(i) + " is damaged");
    std::string_view name = st.name;
    const bool folder = !name.empty() && name.back() == '/';
    if (folder) name.remove_suffix(1);
    const fs::path relative = safe_relative_path(name);  // zip slip: refused before any write
    (void)relative;
    zip_uint8_t system = 0;
    zip_uint32_t attributes = 0;
    if (zip_file_get_external_attributes(archive.get(), static_cast<zip_uint64_t>(i), 0, &system,
                                         &attributes) == 0 &&
        system == ZIP_OPSYS_UNIX && ((attributes >> 16) & S_IFMT) == S_IFLNK)
      throw BadRequest("the zip entry '" + printable(st.name) +
                       "' is a symbolic link; links are refused");
    if ((st.valid & ZIP_STAT_ENCRYPTION_METHOD) && st.encryption_method != ZIP_EM_NONE)
      throw BadRequest("the zip entry '" + printable(st.name) + "' is encrypted");
    if (folder) continue;
    ++files;
    const int64_t size = (st.valid & ZIP_STAT_SIZE) ? static_cast<int64_t>(st.size) : 0;
    if (size > limits_.max_file_bytes)
      throw TooLarge("the zip entry '" + printable(st.name) +
                     "' unpacks to more than web.max_file_mb (" + mb(limits_.max_file_bytes) + ")");
    declared += size;
  }
  if (files_ + files > limits_.max_files)
    throw TooLarge("the upload has more than web.max_files (" + std::to_string(limits_.max_files) +
                   ") files");
  if (bytes_ + declared > limits_.max_job_bytes)
    throw TooLarge("the zip unpacks to more than web.max_job_mb (" + mb(limits_.max_job_bytes) +
                   ")");

  // Then the contents, counted as they inflate: a header that lies stops at the limit.
  std::vector<char> buffer(1 << 16);
  for (zip_int64_t i = 0; i < entries; ++i) {
    zip_stat_t st;
    zip_stat_index(archive.get(), static_cast<zip_uint64_t>(i), 0, &st);
    const std::string_view name = st.name;
    if (name.back() == '/') continue;
    std::unique_ptr<zip_file_t, decltype(&zip_fclose)> file(
        zip_fopen_index(archive.get(), static_cast<zip_uint64_t>(i), 0), zip_fclose);
    if (!file) throw BadRequest("the zip entry '" + printable(name) + "' cannot be read");
    begin_file(name);
    const int64_t size = (st.valid & ZIP_STAT_SIZE) ? static_cast<int64_t>(st.size) : 0;
    for (;;) {
      const zip_int64_t got = zip_fread(file.get(), buffer.data(), buffer.size());
      if (got < 0) throw BadRequest("the zip entry '" + printable(name) + "' is damaged");
      if (got == 0) break;
      if (current_bytes_ + got > size)
        throw TooLarge("the zip entry '" + printable(name) +
                       "' unpacks to more than it declares (a zip bomb?)");
      append(buffer.data(), static_cast<size_t>(got));
    }
    end_file();
  }
}

}  // namespace digitflow::web

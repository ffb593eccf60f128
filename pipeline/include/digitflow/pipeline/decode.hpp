// Finding and decoding the pages of a job folder. Files are recognised by their first bytes,
// not their names; a file's header is read before its pixels so that a page over the pixel
// limit (a decompression bomb) is refused without being decoded. Nothing here throws for a
// bad file: the problem becomes the page's `error`, and the job goes on.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <opencv2/core.hpp>

namespace digitflow::pipeline {

struct DecodeLimits {
  int64_t max_pixels = 80'000'000;  // width x height of one page (A4 at 600 dpi is 35 MP)
  int pdf_dpi = 300;                // PDF pages are rendered at this resolution
  int assume_dpi = 0;               // the resolution of files that state none (0: unknown)
};

enum class FileFormat { unknown, png, jpeg, tiff, bmp, pdf };
const char* format_name(FileFormat format);

// One page of one file, as listed before decoding.
struct PageRef {
  std::filesystem::path file;  // absolute or as given
  std::string name;            // relative to the job folder, '/' separated
  int page_index = 0;          // inside a multi-page TIFF or PDF
  int width = 0, height = 0;   // from the header (0 when unknown)
  FileFormat format = FileFormat::unknown;
  std::string error;           // set when the file cannot be a page (unreadable, too large, ...)
  // The resolution the file states (PNG pHYs, JPEG JFIF, TIFF XResolution, BMP header; a PDF
  // page: pdf_dpi), in dots per inch. When it states none, or one no scanner writes (outside
  // 100-1200: 72 and 96 are the defaults of image software, not scans): DecodeLimits::
  // assume_dpi, 0 by default (unknown). clean_page resamples pages to 300 dpi by it.
  double dpi = 0;
  // A TIFF page: the file offset of its directory (IFD), so that it is read without walking
  // the directories before it; 0 when unknown.
  uint64_t tiff_directory = 0;
};

// One of `count` shares of a job folder, for fanning a job out over machines (digitflow run
// --shard K/N, joined again by merge.hpp). A file belongs to share shard_of(name, count):
// the 64-bit FNV-1a hash of its path relative to the job folder ('/' separated, as bytes)
// modulo count. So the split depends on nothing but the path: adding or removing a file
// moves no other file, every machine computes the same split, and all pages of a
// multi-page TIFF or PDF stay in one share.
struct Shard {
  int index = 0;  // 0 .. count-1, like Kubernetes' JOB_COMPLETION_INDEX
  int count = 1;  // 1: the whole folder
  bool operator==(const Shard&) const = default;
};
constexpr int kMaxShards = 1'000'000;
int shard_of(std::string_view name, int count);
// "K/N" with 0 <= K < N <= kMaxShards; throws std::invalid_argument saying what is wrong.
Shard parse_shard(std::string_view text);
std::string to_string(const Shard& shard);  // "K/N"

// Every page under `job_dir`, recursively, in a stable order: files by path (byte order),
// then pages inside a file. A file is a page when its name ends in a page extension (.png,
// .jpg, .jpeg, .tif, .tiff, .bmp, .pdf, any case) or its content is one of those formats;
// a page file that turns out unreadable (a text file named .png, a truncated scan) is
// listed with its error. Other files (notes, truth.jsonl, a template) and hidden files and
// folders are left out and, when `skipped` is given, their names go there. With a `shard`,
// only the files of that share are looked at (listed or skipped); the others are not opened.
// Throws std::runtime_error when job_dir is not a readable folder.
std::vector<PageRef> list_pages(const std::filesystem::path& job_dir, const DecodeLimits& limits,
                                std::vector<std::string>* skipped = nullptr, const Shard& shard = {});

// What the first bytes of an encoded image say: its format and, for PNG, JPEG and BMP, its
// size (0 x 0 when the header is cut short) and the resolution it states (as PageRef::dpi:
// 0 when none, or not a scanner's). A JPEG's frame size may come after an EXIF thumbnail:
// give it the file's first megabyte.
struct ImageHeader {
  FileFormat format = FileFormat::unknown;
  int64_t width = 0, height = 0;
  double dpi = 0;
};
ImageHeader read_header(std::span<const uint8_t> bytes);

// Walks the chunks of a whole PNG file in memory (length, type, data, CRC) up to IEND and
// checks the CRC of each critical one (IHDR, PLTE, IDAT, IEND). Throws ImageError, "truncated PNG ..." or "corrupt PNG: its IDAT
// chunk at byte N fails its checksum", where libpng would print a line of its own (naming
// no file) before it fails.
void check_png(std::span<const uint8_t> bytes);

// The pages one file holds (one entry with an error when it cannot be read).
std::vector<PageRef> probe_file(const std::filesystem::path& file, const std::string& name,
                                const DecodeLimits& limits);

// Decodes one page to 8-bit grey. Throws ImageError (normalize.hpp) with a message for the
// results line (without the file name) when the page cannot be decoded.
cv::Mat decode_page(const PageRef& page, const DecodeLimits& limits);

}  // namespace digitflow::pipeline

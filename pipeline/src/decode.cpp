// Listing and decoding pages. Image headers (PNG, JPEG, BMP, TIFF) are parsed here, a few
// hundred bytes each, to learn page counts and sizes before any pixel is decoded; OpenCV
// decodes the pixels and poppler renders PDF pages.
#include "digitflow/pipeline/decode.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cctype>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <memory>
#include <mutex>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <poppler-document.h>
#include <poppler-global.h>
#include <poppler-image.h>
#include <poppler-page-renderer.h>
#include <poppler-page.h>
#include <poppler/Object.h>
#include <poppler/PDFDoc.h>
#include <poppler/Page.h>
#include <poppler/Stream.h>
#include <span>
#include <sstream>
#include <stdexcept>
#include <unordered_set>
#include <zlib.h>

#include "digitflow/kernels/seed_mix.hpp"
#include "digitflow/pipeline/normalize.hpp"
// After OpenCV's headers: libtiff's own (deprecated) int64 typedef must not be the one they see.
#include <tiffio.h>

namespace digitflow::pipeline {

namespace fs = std::filesystem;

const char* format_name(FileFormat format) {
  switch (format) {
    case FileFormat::png: return "PNG";
    case FileFormat::jpeg: return "JPEG";
    case FileFormat::tiff: return "TIFF";
    case FileFormat::bmp: return "BMP";
    case FileFormat::pdf: return "PDF";
    case FileFormat::unknown: break;
  }
  return "unknown";
}

namespace {

// Up to `count` bytes at `offset` of an open file (fewer at its end).
std::vector<uint8_t> read_bytes(std::ifstream& in, uint64_t offset, size_t count) {
  in.clear();
  std::vector<uint8_t> bytes(count);
  in.seekg(static_cast<std::streamoff>(offset));
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(count));
  bytes.resize(in ? count : static_cast<size_t>(std::max<std::streamsize>(0, in.gcount())));
  return bytes;
}

std::vector<uint8_t> read_bytes(const fs::path& file, uint64_t offset, size_t count) {
  std::ifstream in(file, std::ios::binary);
  return read_bytes(in, offset, count);
}

uint32_t be16(const uint8_t* p) { return static_cast<uint32_t>(p[0] << 8 | p[1]); }
uint32_t be32(const uint8_t* p) { return static_cast<uint32_t>(p[0]) << 24 | static_cast<uint32_t>(p[1]) << 16 | be16(p + 2); }
uint32_t le16(const uint8_t* p) { return static_cast<uint32_t>(p[1] << 8 | p[0]); }
uint32_t le32(const uint8_t* p) { return static_cast<uint32_t>(p[3]) << 24 | static_cast<uint32_t>(p[2]) << 16 | le16(p); }

FileFormat sniff(std::span<const uint8_t> b) {
  auto starts = [&](std::initializer_list<uint8_t> magic) {
    return b.size() >= magic.size() && std::equal(magic.begin(), magic.end(), b.begin());
  };
  if (starts({0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A})) return FileFormat::png;
  if (starts({0xFF, 0xD8, 0xFF})) return FileFormat::jpeg;
  if (starts({'I', 'I', 42, 0}) || starts({'M', 'M', 0, 42})) return FileFormat::tiff;
  if (starts({'B', 'M'}) && b.size() >= 26) return FileFormat::bmp;
  if (starts({'%', 'P', 'D', 'F', '-'})) return FileFormat::pdf;
  return FileFormat::unknown;
}

struct Size {
  int64_t width = 0, height = 0;
};

// A stated resolution in dots per inch, or 0 when it is not one a scanner writes.
double scan_dpi(double dpi) { return dpi >= 100 && dpi <= 1200 ? dpi : 0; }
constexpr double kInchesPerMetre = 1 / 0.0254;

// Width and height from a JPEG's start-of-frame marker ({0, 0} when there is none), and in
// `dpi` the resolution its JFIF header states.
Size jpeg_frame(std::span<const uint8_t> b, double& dpi) {
  size_t i = 2;
  while (i + 9 < b.size()) {
    if (b[i] != 0xFF) return {};
    const uint8_t marker = b[i + 1];
    if (marker == 0xFF) { ++i; continue; }
    const uint32_t length = be16(&b[i + 2]);
    // APP0 "JFIF\0": version, units (1 per inch, 2 per cm), then the horizontal density.
    if (marker == 0xE0 && length >= 16 && i + 16 <= b.size() && std::equal(b.begin() + static_cast<long>(i) + 4, b.begin() + static_cast<long>(i) + 9, "JFIF"))
      dpi = scan_dpi(b[i + 11] == 1 ? be16(&b[i + 12]) : b[i + 11] == 2 ? be16(&b[i + 12]) * 2.54 : 0.0);
    const bool sof = marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
    if (sof) return {be16(&b[i + 7]), be16(&b[i + 5])};
    if (marker == 0xD9 || marker == 0xDA || length < 2) return {};
    i += 2 + length;
  }
  return {};
}

// The resolution a PNG's pHYs chunk states (it comes before the image data, if at all).
double png_dpi(std::span<const uint8_t> b) {
  size_t at = 8;  // the signature; then chunks of length, type, data, CRC
  for (int chunk = 0; chunk < 64 && at + 8 <= b.size(); ++chunk) {
    const uint32_t length = be32(&b[at]);
    const std::string type(b.begin() + static_cast<long>(at) + 4, b.begin() + static_cast<long>(at) + 8);
    if (type == "IDAT" || type == "IEND") return 0;
    if (type == "pHYs")
      return length == 9 && at + 17 <= b.size() && b[at + 16] == 1 ? scan_dpi(be32(&b[at + 8]) / kInchesPerMetre) : 0;
    at += 12ull + length;
  }
  return 0;
}

struct TiffPage {
  Size size;
  double dpi = 0;
  uint64_t directory = 0;  // file offset of its IFD
};

// The size and resolution of every page (IFD) of a TIFF; empty when the structure is broken.
std::vector<TiffPage> tiff_pages(const fs::path& path, uint64_t file_size) {
  std::ifstream file(path, std::ios::binary);  // one open for all the directories
  std::vector<uint8_t> head = read_bytes(file, 0, 8);
  if (head.size() < 8) return {};
  const bool little = head[0] == 'I';
  auto u16 = [&](const uint8_t* p) { return little ? le16(p) : be16(p); };
  auto u32 = [&](const uint8_t* p) { return little ? le32(p) : be32(p); };
  std::vector<TiffPage> pages;
  uint64_t offset = u32(&head[4]);
  std::unordered_set<uint64_t> seen;  // a directory met twice: a loop, a broken file
  while (offset != 0) {
    if (offset + 2 > file_size || !seen.insert(offset).second) return {};
    std::vector<uint8_t> count_bytes = read_bytes(file, offset, 2);
    if (count_bytes.size() < 2) return {};
    const uint32_t entries = u16(count_bytes.data());
    std::vector<uint8_t> ifd = read_bytes(file, offset + 2, entries * 12u + 4u);
    if (ifd.size() < entries * 12u + 4u) return {};
    TiffPage page;
    page.directory = offset;
    uint32_t unit = 2;                // ResolutionUnit: 1 none, 2 inch (the default), 3 cm
    double resolution = 0;
    for (uint32_t e = 0; e < entries; ++e) {
      const uint8_t* p = &ifd[e * 12u];
      const uint32_t tag = u16(p), type = u16(p + 2);
      const uint32_t value = type == 3 ? u16(p + 8) : u32(p + 8);
      if (tag == 256) page.size.width = value;
      if (tag == 257) page.size.height = value;
      if (tag == 296) unit = value;
      if (tag == 282 && type == 5) {  // XResolution, a RATIONAL stored at `value`
        const std::vector<uint8_t> r = read_bytes(file, value, 8);
        if (r.size() == 8 && u32(&r[4]) != 0) resolution = static_cast<double>(u32(&r[0])) / u32(&r[4]);
      }
    }
    page.dpi = scan_dpi(unit == 2 ? resolution : unit == 3 ? resolution * 2.54 : 0.0);
    pages.push_back(page);
    offset = u32(&ifd[entries * 12u]);
  }
  return pages;
}

std::string too_large(int64_t w, int64_t h, const DecodeLimits& limits) {
  return "page too large: " + std::to_string(w) + " x " + std::to_string(h) + " pixels is over the limit of " +
         std::to_string(limits.max_pixels) + " (pipeline.max_page_pixels)";
}

void quiet_poppler(const std::string&, void*) {}

// poppler builds its process-wide colour-management state (the LittleCMS profiles kept in
// statics of GfxState) in the first GfxState it makes, that is while it renders its first
// page, and without a lock: two first renders at once can corrupt the heap. So PDF calls
// run one at a time until a page has been rendered; after that the state exists, and the
// calls, each with a document of its own, run in parallel (PDF pages are rendered on every
// thread of the run, not on one).
std::atomic<bool> pdf_rendered_once{false};

class PopplerTurn {
 public:
  PopplerTurn() {
    if (!pdf_rendered_once.load(std::memory_order_acquire)) hold_ = std::unique_lock<std::mutex>(lock());
  }
  // After a page has been rendered: from now on PDF calls need no turn.
  static void rendered() { pdf_rendered_once.store(true, std::memory_order_release); }

 private:
  static std::mutex& lock() {
    static std::mutex m;
    return m;
  }
  std::unique_lock<std::mutex> hold_;
};

std::unique_ptr<poppler::document> open_pdf(const fs::path& file) {
  static const bool silenced = [] {
    poppler::set_debug_error_function(quiet_poppler, nullptr);
    return true;
  }();
  (void)silenced;
  std::unique_ptr<poppler::document> doc(poppler::document::load_from_file(file.string()));
  if (!doc) throw ImageError("not a readable PDF (corrupt or truncated)");
  if (doc->is_locked()) throw ImageError("the PDF is password-protected");
  return doc;
}

// The bytes of a stream (decoded by its filters; its undecoded stream gives them as stored),
// at most `limit` and one more.
std::string stream_bytes(Stream* stream, size_t limit) {
  std::string bytes;
  if (!stream) return bytes;
  stream->reset();
  unsigned char chunk[65536];
  for (int n; bytes.size() <= limit && (n = stream->doGetChars(static_cast<int>(sizeof chunk), chunk)) > 0;)
    bytes.append(reinterpret_cast<const char*>(chunk), static_cast<size_t>(n));
  stream->close();
  return bytes;
}

// A page of a scanned PDF is one image drawn over the whole page. Where a page is exactly
// that (its content "q W 0 0 H X Y cm /Name Do Q" over its media box, not rotated, with no
// annotations, the image with no mask), its pixels are taken from the image as stored instead
// of being rendered, which costs several times more (Splash resamples an image even at 1:1):
// - a JPEG of 8-bit grey or RGB with no decode array is decoded by OpenCV, the scanner's
//   pixels;
// - a grey image of 1 or 8 bits in any other coding poppler reads (CCITT G4 and JBIG2 from
//   black-and-white scanners, Flate, LZW), decode array [0 1] or [1 0], is read through
//   poppler's own filters.
// An image of another pixel size than the page renders to (a 200-dpi scan on a page rendered
// at 300) is resized to that size, as rendering would. Empty for any other page, and for an
// image over the pixel limit, which are rendered. Reads the file with poppler's own parser
// while the caller holds a poppler-cpp document open (which keeps poppler's global parameters
// alive); it builds no colour state, so it needs no PopplerTurn.
cv::Mat scanned_image(const PageRef& page, const DecodeLimits& limits) {
  PDFDoc doc(std::make_unique<GooString>(page.file.string()));
  if (!doc.isOk() || page.page_index >= doc.getNumPages()) return {};
  Page* p = doc.getPage(page.page_index + 1);
  if (!p || p->getRotate() % 360 != 0) return {};
  if (Object annots = p->getAnnotsObject(); annots.isArray() && annots.arrayGetLength() > 0) return {};
  const PDFRectangle* media = p->getMediaBox();
  Object contents = p->getContents();
  if (!contents.isStream()) return {};
  std::istringstream ops(stream_bytes(contents.getStream(), 256));
  std::string q, cm, name, draw, end;
  double a = 0, b = 0, c = 0, d = 0, e = 0, f = 0;
  if (!(ops >> q >> a >> b >> c >> d >> e >> f >> cm >> name >> draw >> end) || q != "q" || cm != "cm" ||
      draw != "Do" || end != "Q" || name.size() < 2 || name[0] != '/')
    return {};
  std::string rest;
  if (ops >> rest) return {};
  auto near = [](double x, double y) { return std::abs(x - y) < 0.01; };
  if (!near(b, 0) || !near(c, 0) || !near(a, media->x2 - media->x1) || !near(d, media->y2 - media->y1) ||
      !near(e, media->x1) || !near(f, media->y1))
    return {};
  Dict* resources = p->getResourceDict();
  if (!resources) return {};
  Object images = resources->lookup("XObject");
  if (!images.isDict()) return {};
  Object image = images.dictLookup(name.substr(1).c_str());
  if (!image.isStream()) return {};
  Dict* info = image.streamGetDict();
  Object filter = info->lookup("Filter");
  if (filter.isArray() && filter.arrayGetLength() == 1) filter = filter.arrayGet(0);
  const Object space = info->lookup("ColorSpace");
  const double bits = info->lookup("BitsPerComponent").getNumWithDefaultValue(0);
  const Object mask = info->lookup("ImageMask");
  if (!info->lookup("Subtype").isName("Image") || (bits != 1 && bits != 8) || !info->lookup("SMask").isNull() ||
      !info->lookup("Mask").isNull() || (mask.isBool() && mask.getBool()))
    return {};
  const double columns = info->lookup("Width").getNumWithDefaultValue(0), rows = info->lookup("Height").getNumWithDefaultValue(0);
  if (!(columns >= 1 && rows >= 1 && columns * rows <= static_cast<double>(limits.max_pixels))) return {};
  const int image_w = static_cast<int>(columns), image_h = static_cast<int>(rows);
  // The decode array: absent or [0 1] keeps the samples, [1 0] inverts them.
  bool inverted = false;
  if (Object decode = info->lookup("Decode"); !decode.isNull()) {
    if (!decode.isArray() || decode.arrayGetLength() != 2) return {};
    const double d0 = decode.arrayGet(0).getNumWithDefaultValue(-1), d1 = decode.arrayGet(1).getNumWithDefaultValue(-1);
    if (d0 == 1 && d1 == 0) inverted = true;
    else if (!(d0 == 0 && d1 == 1)) return {};
  }
  cv::Mat pixels;
  if (filter.isName("DCTDecode") && bits == 8 && (space.isName("DeviceGray") || space.isName("DeviceRGB")) && !inverted) {
    const std::string jpeg = stream_bytes(image.getStream()->getUndecodedStream(), 1u << 30);
    try {
      pixels = cv::imdecode(cv::Mat(1, static_cast<int>(jpeg.size()), CV_8U, const_cast<char*>(jpeg.data())),
                            cv::IMREAD_GRAYSCALE);
    } catch (const cv::Exception&) {
      return {};
    }
    if (pixels.cols != image_w || pixels.rows != image_h) return {};
  } else if (space.isName("DeviceGray") && !filter.isName("DCTDecode") && !filter.isName("JPXDecode")) {
    const size_t row_bytes = bits == 1 ? (static_cast<size_t>(image_w) + 7) / 8 : static_cast<size_t>(image_w);
    const size_t expected = row_bytes * static_cast<size_t>(image_h);
    const std::string samples = stream_bytes(image.getStream(), expected);
    if (samples.size() < expected) return {};  // cut short: rendered, as far as poppler can
    pixels.create(image_h, image_w, CV_8U);
    const auto* in = reinterpret_cast<const uint8_t*>(samples.data());
    for (int y = 0; y < image_h; ++y, in += row_bytes) {
      uint8_t* out = pixels.ptr<uint8_t>(y);
      if (bits == 8)
        std::copy(in, in + image_w, out);
      else
        for (int x = 0; x < image_w; ++x) out[x] = (in[x >> 3] >> (7 - (x & 7))) & 1 ? 255 : 0;
    }
    if (inverted) cv::bitwise_not(pixels, pixels);
  } else {
    return {};
  }
  const cv::Size rendered(static_cast<int>(std::lround((media->x2 - media->x1) * limits.pdf_dpi / 72.0)),
                          static_cast<int>(std::lround((media->y2 - media->y1) * limits.pdf_dpi / 72.0)));
  if (rendered.width < 1 || rendered.height < 1 || static_cast<int64_t>(rendered.width) * rendered.height > limits.max_pixels) return {};
  if (pixels.size() != rendered) {
    cv::Mat resized;
    // Enlarged as clean_page enlarges a scan: grey bicubic, black and white bilinear.
    const bool smaller = rendered.width < pixels.cols;
    cv::resize(pixels, resized, rendered, 0, 0, smaller ? cv::INTER_AREA : bits == 1 ? cv::INTER_LINEAR : cv::INTER_CUBIC);
    pixels = resized;
  }
  return pixels;
}

void tiff_quiet(const char*, const char*, va_list) {}

// A TIFF seen through its header with the first-directory offset (bytes 4-7) changed to
// `directory`: libtiff opens the page there as the file's first, without walking (or, as
// TIFFSetSubDirectory does, counting) the directories before it.
struct TiffFromDirectory {
  std::FILE* file = nullptr;
  uint64_t size = 0;
  uint8_t offset[4] = {};  // `directory` in the file's byte order
};

tmsize_t tiff_from_read(thandle_t h, void* data, tmsize_t n) {
  auto* t = static_cast<TiffFromDirectory*>(h);
  const long at = std::ftell(t->file);
  const size_t got = std::fread(data, 1, static_cast<size_t>(n), t->file);
  for (size_t i = 0; i < got; ++i) {
    const long byte = at + static_cast<long>(i);
    if (byte >= 4 && byte < 8) static_cast<uint8_t*>(data)[i] = t->offset[byte - 4];
  }
  return static_cast<tmsize_t>(got);
}
tmsize_t tiff_from_write(thandle_t, void*, tmsize_t) { return 0; }
toff_t tiff_from_seek(thandle_t h, toff_t offset, int whence) {
  auto* t = static_cast<TiffFromDirectory*>(h);
  if (offset > static_cast<toff_t>(std::numeric_limits<long>::max()) ||
      std::fseek(t->file, static_cast<long>(offset), whence) != 0)
    return static_cast<toff_t>(-1);
  return static_cast<toff_t>(std::ftell(t->file));
}
int tiff_from_close(thandle_t) { return 0; }
toff_t tiff_from_size(thandle_t h) { return static_cast<TiffFromDirectory*>(h)->size; }

// A page of a TIFF read by libtiff from its own directory, whose offset the listing kept:
// OpenCV's imreadmulti reaches page n by reading the n directories before it, so the pages
// of a long TIFF would cost more the further in they are. The pixels as stored (not turned
// as the Orientation tag says), grey. Empty when libtiff cannot read the page this way; the
// caller then decodes it with OpenCV.
cv::Mat tiff_page(const PageRef& page) {
  if (page.tiff_directory == 0 || page.tiff_directory > 0xFFFFFFFFu) return {};
  static const bool quiet = [] {
    TIFFSetWarningHandler(tiff_quiet);
    TIFFSetErrorHandler(tiff_quiet);
    return true;
  }();
  (void)quiet;
  TiffFromDirectory source;
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(page.file.c_str(), "rb"), std::fclose);
  if (!file) return {};
  source.file = file.get();
  uint8_t order[2] = {};
  if (std::fread(order, 1, 2, source.file) != 2 || std::fseek(source.file, 0, SEEK_END) != 0) return {};
  source.size = static_cast<uint64_t>(std::ftell(source.file));
  std::rewind(source.file);
  const uint32_t d = static_cast<uint32_t>(page.tiff_directory);
  for (int i = 0; i < 4; ++i)
    source.offset[i] = static_cast<uint8_t>(order[0] == 'I' ? d >> (8 * i) : d >> (8 * (3 - i)));
  // "m": no memory mapping, so that every read goes through tiff_from_read.
  std::unique_ptr<TIFF, void (*)(TIFF*)> tiff(
      TIFFClientOpen(page.file.c_str(), "rm", &source, tiff_from_read, tiff_from_write, tiff_from_seek,
                     tiff_from_close, tiff_from_size, nullptr, nullptr),
      TIFFClose);
  if (!tiff) return {};
  char message[1024];
  TIFFRGBAImage image;
  if (!TIFFRGBAImageOK(tiff.get(), message) || !TIFFRGBAImageBegin(&image, tiff.get(), 0, message)) return {};
  uint16_t orientation = ORIENTATION_TOPLEFT;
  TIFFGetFieldDefaulted(tiff.get(), TIFFTAG_ORIENTATION, &orientation);
  image.req_orientation = orientation;  // as stored: row 0 of the raster is the first row stored
  cv::Mat rgba;
  if (static_cast<int64_t>(image.width) * image.height == static_cast<int64_t>(page.width) * page.height &&
      image.width > 0 && image.height > 0) {
    rgba.create(static_cast<int>(image.height), static_cast<int>(image.width), CV_8UC4);
    if (!TIFFRGBAImageGet(&image, reinterpret_cast<uint32_t*>(rgba.data), image.width, image.height)) rgba.release();
  }
  TIFFRGBAImageEnd(&image);
  if (rgba.empty()) return {};
  cv::Mat gray;
  cv::cvtColor(rgba, gray, cv::COLOR_RGBA2GRAY);  // libtiff packs R, G, B, A in that byte order
  return gray;
}

Size pdf_page_size(const poppler::page& page, int dpi) {
  poppler::rectf r = page.page_rect(poppler::media_box);
  const bool turned = page.orientation() == poppler::page::landscape || page.orientation() == poppler::page::seascape;
  double w = r.width() * dpi / 72.0, h = r.height() * dpi / 72.0;
  if (!std::isfinite(w) || !std::isfinite(h)) w = h = 0;
  w = std::clamp(w, 0.0, 1e9), h = std::clamp(h, 0.0, 1e9);
  if (turned) std::swap(w, h);
  return {static_cast<int64_t>(std::lround(w)), static_cast<int64_t>(std::lround(h))};
}

}  // namespace

ImageHeader read_header(std::span<const uint8_t> b) {
  ImageHeader header;
  header.format = sniff(b);
  switch (header.format) {
    case FileFormat::png:
      if (b.size() < 24) break;
      header.width = be32(&b[16]), header.height = be32(&b[20]);
      header.dpi = png_dpi(b);
      break;
    case FileFormat::bmp:
      header.width = std::abs(static_cast<int64_t>(static_cast<int32_t>(le32(&b[18]))));
      header.height = std::abs(static_cast<int64_t>(static_cast<int32_t>(le32(&b[22]))));
      if (b.size() >= 42) header.dpi = scan_dpi(static_cast<int32_t>(le32(&b[38])) / kInchesPerMetre);
      break;
    case FileFormat::jpeg: {
      const Size s = jpeg_frame(b, header.dpi);
      header.width = s.width, header.height = s.height;
      break;
    }
    case FileFormat::tiff:
    case FileFormat::pdf:
    case FileFormat::unknown:
      break;
  }
  return header;
}

namespace {

// probe_file, with the resolution each file states (0 where it states none).
std::vector<PageRef> probe_as_stated(const fs::path& file, const std::string& name, const DecodeLimits& limits) {
  PageRef one{file, name, 0, 0, 0, FileFormat::unknown, ""};
  std::error_code ec;
  const uint64_t size = fs::file_size(file, ec);
  if (ec) {
    one.error = "cannot read the file (" + ec.message() + ")";
    return {one};
  }
  if (size == 0) {
    one.error = "empty file (0 bytes)";
    return {one};
  }
  std::vector<uint8_t> head = read_bytes(file, 0, 64);
  one.format = sniff(head);
  if (one.format == FileFormat::png || one.format == FileFormat::jpeg || one.format == FileFormat::bmp) {
    // The header and its resolution: a PNG's chunks before its image data are small; a
    // JPEG's frame marker may come after an EXIF thumbnail.
    const uint64_t enough = one.format == FileFormat::png ? 1 << 16 : one.format == FileFormat::jpeg ? 1 << 20 : 64;
    head = read_bytes(file, 0, static_cast<size_t>(std::min<uint64_t>(size, enough)));
    const ImageHeader header = read_header(head);
    one.width = static_cast<int>(std::min<int64_t>(header.width, 1 << 30));
    one.height = static_cast<int>(std::min<int64_t>(header.height, 1 << 30));
    one.dpi = header.dpi;
  }
  switch (one.format) {
    case FileFormat::unknown:
      one.error = "not an image: unrecognised content (PNG, JPEG, TIFF, BMP or PDF expected)";
      return {one};
    case FileFormat::png:
      if (head.size() < 24) {
        one.error = "truncated PNG header";
        return {one};
      }
      break;
    case FileFormat::bmp:
      break;
    case FileFormat::jpeg:
      if (one.width == 0) {
        one.error = "corrupt JPEG: no frame header";
        return {one};
      }
      break;
    case FileFormat::tiff: {
      const std::vector<TiffPage> sizes = tiff_pages(file, size);
      if (sizes.empty()) {
        one.error = "corrupt or truncated TIFF: its page directory cannot be read";
        return {one};
      }
      std::vector<PageRef> pages;
      for (size_t i = 0; i < sizes.size(); ++i) {
        PageRef p = one;
        const Size& page_size = sizes[i].size;
        p.page_index = static_cast<int>(i);
        p.width = static_cast<int>(std::min<int64_t>(page_size.width, 1 << 30));
        p.height = static_cast<int>(std::min<int64_t>(page_size.height, 1 << 30));
        p.dpi = sizes[i].dpi;
        p.tiff_directory = sizes[i].directory;
        if (page_size.width == 0 || page_size.height == 0)
          p.error = "corrupt TIFF: page " + std::to_string(i + 1) + " has zero width or height";
        else if (page_size.width > limits.max_pixels / page_size.height)
          p.error = too_large(page_size.width, page_size.height, limits);
        pages.push_back(std::move(p));
      }
      return pages;
    }
    case FileFormat::pdf: {
      const PopplerTurn turn;
      std::unique_ptr<poppler::document> doc;
      try {
        doc = open_pdf(file);
      } catch (const ImageError& e) {
        one.error = e.what();
        return {one};
      }
      if (doc->pages() < 1) {
        one.error = "the PDF has no pages";
        return {one};
      }
      std::vector<PageRef> pages;
      for (int i = 0; i < doc->pages(); ++i) {
        PageRef p = one;
        p.page_index = i;
        p.dpi = limits.pdf_dpi;
        std::unique_ptr<poppler::page> page(doc->create_page(i));
        if (!page) {
          p.error = "PDF page " + std::to_string(i + 1) + " cannot be read";
        } else {
          Size s = pdf_page_size(*page, limits.pdf_dpi);
          p.width = static_cast<int>(std::min<int64_t>(s.width, 1 << 30));
          p.height = static_cast<int>(std::min<int64_t>(s.height, 1 << 30));
          if (s.width == 0 || s.height == 0)
            p.error = "PDF page " + std::to_string(i + 1) + " has no size";
          else if (s.width > limits.max_pixels / s.height)
            p.error = too_large(s.width, s.height, limits);
        }
        pages.push_back(std::move(p));
      }
      return pages;
    }
  }
  if (static_cast<int64_t>(one.width) * one.height > limits.max_pixels)
    one.error = too_large(one.width, one.height, limits);
  else if (one.width == 0 || one.height == 0)
    one.error = std::string("corrupt ") + format_name(one.format) + ": zero width or height";
  return {one};
}

}  // namespace

void check_png(std::span<const uint8_t> b) {
  size_t at = 8;
  while (at + 12 <= b.size()) {
    const uint32_t length = be32(&b[at]);
    const uint8_t* type = &b[at + 4];
    if (length > 0x7FFFFFFFu)  // over PNG's limit: the length itself is damaged
      throw ImageError("corrupt PNG: a chunk at byte " + std::to_string(at) + " states a length of " +
                       std::to_string(length) + " bytes");
    if (length > b.size() - at - 12) break;  // cut off inside this chunk
    const uint32_t stored = be32(&b[at + 8 + length]);
    // Critical chunks only (an upper-case first letter: IHDR, PLTE, IDAT, IEND): libpng
    // passes over an ancillary one (a resolution, a comment) that fails, and the image is whole.
    const bool critical = (type[0] & 0x20) == 0;
    if (critical && crc32(crc32(0L, Z_NULL, 0), type, 4 + length) != stored) {
      // A damaged length puts the walk off the chunks: then the "type" is no name.
      const bool named = std::all_of(type, type + 4, [](uint8_t c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); });
      throw ImageError("corrupt PNG: its " +
                       (named ? std::string(reinterpret_cast<const char*>(type), 4) + " chunk" : std::string("data")) +
                       " at byte " + std::to_string(at) + " fails its checksum");
    }
    if (std::memcmp(type, "IEND", 4) == 0) return;
    at += 12 + static_cast<size_t>(length);
  }
  throw ImageError("truncated PNG (its data ends before the image does)");
}

std::vector<PageRef> probe_file(const fs::path& file, const std::string& name, const DecodeLimits& limits) {
  std::vector<PageRef> pages = probe_as_stated(file, name, limits);
  for (PageRef& page : pages)
    if (page.dpi == 0) page.dpi = limits.assume_dpi;
  return pages;
}

namespace {

bool page_extension(const fs::path& path) {
  std::string ext = path.extension().string();
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const char* known : {".png", ".jpg", ".jpeg", ".jpe", ".tif", ".tiff", ".bmp", ".pdf"})
    if (ext == known) return true;
  return false;
}

}  // namespace

int shard_of(std::string_view name, int count) {
  if (count < 1) throw std::invalid_argument("shard count must be at least 1");
  return static_cast<int>(kernels::fnv1a64(name.data(), name.size()) % static_cast<uint64_t>(count));
}

Shard parse_shard(std::string_view text) {
  const size_t slash = text.find('/');
  auto whole_number = [](std::string_view digits, int64_t& value) {
    if (digits.empty() || digits.size() > 9) return false;
    value = 0;
    for (char c : digits) {
      if (c < '0' || c > '9') return false;
      value = value * 10 + (c - '0');
    }
    return true;
  };
  int64_t k = 0, n = 0;
  if (slash == std::string_view::npos || !whole_number(text.substr(0, slash), k) ||
      !whole_number(text.substr(slash + 1), n))
    throw std::invalid_argument("expected K/N, two whole numbers such as 0/4");
  if (n < 1 || n > kMaxShards) {
    std::string message = "N must be between 1 and ";
    message += std::to_string(kMaxShards);
    throw std::invalid_argument(message);
  }
  if (k >= n) {
    std::string message = "K counts from 0 and must be below N: the shards of N = ";
    message += std::to_string(n);
    message += " are 0/";
    message += std::to_string(n);
    message += " .. ";
    message += std::to_string(n - 1);
    message += "/";
    message += std::to_string(n);
    throw std::invalid_argument(message);
  }
  return {static_cast<int>(k), static_cast<int>(n)};
}

std::string to_string(const Shard& shard) {
  std::string text = std::to_string(shard.index);
  text += '/';
  text += std::to_string(shard.count);
  return text;
}

std::vector<PageRef> list_pages(const fs::path& job_dir, const DecodeLimits& limits, std::vector<std::string>* skipped,
                                const Shard& shard) {
  if (shard.count < 1 || shard.index < 0 || shard.index >= shard.count)
    throw std::invalid_argument("list_pages: shard index must be 0 .. count-1");
  std::error_code ec;
  if (!fs::is_directory(job_dir, ec))
    throw std::runtime_error(job_dir.string() + ": " + (fs::exists(job_dir, ec) ? "not a folder" : "no such folder"));
  std::vector<std::pair<std::string, fs::path>> files;
  fs::recursive_directory_iterator it(job_dir, fs::directory_options::skip_permission_denied, ec), end;
  if (ec) throw std::runtime_error(job_dir.string() + ": cannot list (" + ec.message() + ")");
  for (; it != end; it.increment(ec)) {
    if (ec) throw std::runtime_error(job_dir.string() + ": cannot list (" + ec.message() + ")");
    const std::string leaf = it->path().filename().string();
    if (!leaf.empty() && leaf[0] == '.') {
      if (it->is_directory(ec)) it.disable_recursion_pending();
      continue;
    }
    if (!it->is_regular_file(ec)) continue;
    files.emplace_back(fs::relative(it->path(), job_dir, ec).generic_string(), it->path());
  }
  std::sort(files.begin(), files.end());
  std::vector<PageRef> pages;
  for (const auto& [name, path] : files) {
    if (shard.count > 1 && shard_of(name, shard.count) != shard.index) continue;
    if (!page_extension(path) && sniff(read_bytes(path, 0, 32)) == FileFormat::unknown) {
      if (skipped) skipped->push_back(name);
      continue;
    }
    std::vector<PageRef> more = probe_file(path, name, limits);
    pages.insert(pages.end(), std::make_move_iterator(more.begin()), std::make_move_iterator(more.end()));
  }
  return pages;
}

cv::Mat decode_page(const PageRef& page, const DecodeLimits& limits) {
  if (!page.error.empty()) throw ImageError(page.error);
  cv::Mat gray;
  if (page.format == FileFormat::pdf) {
    std::unique_ptr<poppler::document> doc;
    {
      const PopplerTurn turn;
      doc = open_pdf(page.file);
    }
    if (cv::Mat scan = scanned_image(page, limits); !scan.empty()) return scan;
    const PopplerTurn turn;
    std::unique_ptr<poppler::page> p(doc->create_page(page.page_index));
    if (!p) throw ImageError("PDF page " + std::to_string(page.page_index + 1) + " cannot be read");
    poppler::page_renderer renderer;
    renderer.set_render_hint(poppler::page_renderer::antialiasing, true);
    renderer.set_image_format(poppler::image::format_gray8);
    poppler::image image = renderer.render_page(p.get(), limits.pdf_dpi, limits.pdf_dpi);
    if (!image.is_valid() || image.width() <= 0)
      throw ImageError("PDF page " + std::to_string(page.page_index + 1) + " cannot be rendered");
    PopplerTurn::rendered();
    cv::Mat view(image.height(), image.width(), CV_8UC1, const_cast<char*>(image.const_data()),
                 static_cast<size_t>(image.bytes_per_row()));
    return view.clone();
  }
  // PNG and JPEG: the file is read once, checked, and decoded from memory.
  std::vector<uint8_t> bytes;
  if (page.format == FileFormat::png || page.format == FileFormat::jpeg) {
    std::error_code ec;
    const uint64_t size = fs::file_size(page.file, ec);
    if (ec) throw ImageError("the file cannot be read (" + ec.message() + ")");
    if (size > static_cast<uint64_t>(std::numeric_limits<int>::max()))
      throw ImageError("the file is " + std::to_string(size >> 20) + " MB, over the 2 GB a " +
                       format_name(page.format) + " may be");
    bytes = read_bytes(page.file, 0, static_cast<size_t>(size));
    if (bytes.size() != size) throw ImageError("the file cannot be read");
  }
  if (page.format == FileFormat::png) check_png(bytes);
  if (page.format == FileFormat::jpeg) {
    // libjpeg fills a truncated file's missing rows with grey and only warns: refuse it here.
    // The end marker may sit before trailing data (a phone's appended video): look for it
    // anywhere after the start of scan, where the coded data cannot contain FF D9.
    size_t scan = 2;
    while (scan + 4 < bytes.size() && bytes[scan] == 0xFF && bytes[scan + 1] != 0xDA)
      scan += bytes[scan + 1] == 0xFF ? 1 : 2 + be16(&bytes[scan + 2]);
    bool end_marker = false;
    for (size_t i = scan; i + 1 < bytes.size() && !end_marker; ++i) end_marker = bytes[i] == 0xFF && bytes[i + 1] == 0xD9;
    if (!end_marker) throw ImageError("truncated JPEG (the end-of-image marker is missing)");
  }
  try {
    if (page.format == FileFormat::tiff) {
      gray = tiff_page(page);
      std::vector<cv::Mat> mats;
      if (gray.empty() &&
          cv::imreadmulti(page.file.string(), mats, page.page_index, 1, cv::IMREAD_GRAYSCALE | cv::IMREAD_IGNORE_ORIENTATION) &&
          !mats.empty())
        gray = mats[0];
    } else if (!bytes.empty()) {
      // Stored pixels, not the EXIF display orientation: boxes are in the page as stored.
      gray = cv::imdecode(cv::Mat(1, static_cast<int>(bytes.size()), CV_8U, bytes.data()),
                          cv::IMREAD_GRAYSCALE | cv::IMREAD_IGNORE_ORIENTATION);
    } else {
      gray = cv::imread(page.file.string(), cv::IMREAD_GRAYSCALE | cv::IMREAD_IGNORE_ORIENTATION);
    }
  } catch (const cv::Exception&) {
    gray.release();
  }
  if (gray.empty())
    throw ImageError(std::string("corrupt or truncated ") + format_name(page.format) + ": it cannot be decoded");
  if (gray.depth() != CV_8U) gray.convertTo(gray, CV_8U, 1.0 / 257);
  return gray;
}

}  // namespace digitflow::pipeline

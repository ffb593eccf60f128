// Listing and decoding PDF pages: many threads render at once and get what one thread gets,
// and PDFs that are broken in each way become page errors that say what is wrong.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <map>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <thread>

#include "digitflow/pipeline/decode.hpp"
#include "digitflow/pipeline/normalize.hpp"
#include "digitflow/pipeline/read.hpp"
#include "digitflow/pipeline/synth.hpp"
#include "test_support.hpp"
// After OpenCV's headers: libtiff's own (deprecated) int64 typedef must not be the one they see.
#include <tiffio.h>

namespace digitflow::pipeline {
namespace {

namespace fs = std::filesystem;
namespace t = digitflow::testing;

// A page unlike every other: its number in large print, and boxes placed by the number.
cv::Mat numbered_page(int number) {
  cv::Mat page(520, 400, CV_8U, cv::Scalar(235));
  cv::putText(page, std::to_string(number), {60, 300}, cv::FONT_HERSHEY_SIMPLEX, 6.0, cv::Scalar(20), 12);
  for (int k = 0; k <= number; ++k)
    cv::rectangle(page, cv::Rect(20 + 37 * k, 400 + 9 * (k % 3), 25, 40), cv::Scalar(60), cv::FILLED);
  return page;
}

// A file of PDF objects with a correct xref table: bodies[i] is object i + 1.
void write_pdf_objects(const fs::path& path, const std::vector<std::string>& bodies) {
  std::string pdf = "%PDF-1.4\n";
  std::vector<size_t> offsets;
  for (size_t i = 0; i < bodies.size(); ++i) {
    offsets.push_back(pdf.size());
    pdf += std::to_string(i + 1) + " 0 obj\n" + bodies[i] + "\nendobj\n";
  }
  const size_t xref = pdf.size();
  pdf += "xref\n0 " + std::to_string(bodies.size() + 1) + "\n0000000000 65535 f \n";
  for (size_t offset : offsets) {
    char entry[24];
    std::snprintf(entry, sizeof entry, "%010zu 00000 n \n", offset);
    pdf += entry;
  }
  pdf += "trailer\n<< /Size " + std::to_string(bodies.size() + 1) + " /Root 1 0 R >>\nstartxref\n" +
         std::to_string(xref) + "\n%%EOF\n";
  std::ofstream(path, std::ios::binary) << pdf;
}

// A one-page PDF, 96 x 124.8 points (400 x 520 pixels at 300 dpi), whose content is `draw`
// and whose XObject /Im0 is `image` (an object's body).
void write_image_page(const fs::path& path, const std::string& extra, const std::string& draw, const std::string& image) {
  write_pdf_objects(path, {"<< /Type /Catalog /Pages 2 0 R >>", "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
                           "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 96 124.8] " + extra +
                               "/Resources << /XObject << /Im0 5 0 R >> >> /Contents 4 0 R >>",
                           "<< /Length " + std::to_string(draw.size()) + " >>\nstream\n" + draw + "\nendstream",
                           image});
}

TEST(Decode, PdfPagesDecodedOnManyThreadsAtOnceAreThePagesDecodedOneByOne) {
  t::TempDir dir;
  std::vector<cv::Mat> originals;
  for (int file = 0; file < 3; ++file) {
    const std::vector<cv::Mat> pages = {numbered_page(2 * file), numbered_page(2 * file + 1)};
    // Two files of images at 200 dpi on their pages: rendered (at 300 dpi); the third's are
    // 300 dpi scans, decoded as stored.
    write_pdf(dir / ("scan-" + std::to_string(file) + ".pdf"), pages, 92, file < 2 ? 200 : 300);
    originals.insert(originals.end(), pages.begin(), pages.end());
  }
  const std::vector<PageRef> listed = list_pages(dir.path(), {});
  ASSERT_EQ(listed.size(), 6u);
  auto size_of = [](const PageRef& page) {
    return page.name == "scan-2.pdf" ? cv::Size(400, 520) : cv::Size(600, 780);
  };
  for (const PageRef& page : listed) {
    EXPECT_EQ(page.error, "") << page.name;
    EXPECT_EQ(cv::Size(page.width, page.height), size_of(page)) << page.name;
  }

  // Eight threads, each decoding every page twice in an order of its own, before any page
  // has been decoded one by one.
  const int threads = 8;
  std::vector<std::vector<cv::Mat>> seen(threads, std::vector<cv::Mat>(listed.size()));
  std::vector<std::string> failures(threads);
  std::vector<std::thread> workers;
  for (int w = 0; w < threads; ++w)
    workers.emplace_back([&, w] {
      try {
        for (size_t round = 0; round < 2 * listed.size(); ++round) {
          const size_t i = (round * 5 + static_cast<size_t>(w)) % listed.size();
          seen[static_cast<size_t>(w)][i] = decode_page(listed[i], {});
        }
      } catch (const std::exception& e) {
        failures[static_cast<size_t>(w)] = e.what();
      }
    });
  for (std::thread& worker : workers) worker.join();
  for (const std::string& failure : failures) EXPECT_EQ(failure, "");

  for (size_t i = 0; i < listed.size(); ++i) {
    const cv::Mat alone = decode_page(listed[i], {});
    ASSERT_EQ(alone.size(), size_of(listed[i])) << listed[i].name << " page " << listed[i].page_index;
    // The right page (JPEG in the PDF: close to the original, not equal).
    cv::Mat back;
    cv::resize(alone, back, originals[i].size(), 0, 0, cv::INTER_AREA);
    EXPECT_LT(cv::norm(back, originals[i], cv::NORM_L1) / static_cast<double>(back.total()), 4.0)
        << listed[i].name << " page " << listed[i].page_index;
    for (int w = 0; w < threads; ++w) {
      const cv::Mat& mine = seen[static_cast<size_t>(w)][i];
      ASSERT_EQ(mine.size(), alone.size()) << "thread " << w << ", page " << i;
      EXPECT_EQ(cv::countNonZero(mine != alone), 0) << "thread " << w << ", page " << i;
    }
  }
}

TEST(Decode, AScannedPdfPageIsItsJpegAsStoredAndAnyOtherPageIsRendered) {
  t::TempDir dir;
  const cv::Mat scan = numbered_page(7);
  write_pdf(dir / "scan.pdf", {scan}, 88);
  // The scanner's pixels: the JPEG in the PDF, decoded, not a rendering of it.
  std::vector<uint8_t> jpeg;
  cv::imencode(".jpg", scan, jpeg, {cv::IMWRITE_JPEG_QUALITY, 88});
  const cv::Mat stored = cv::imdecode(jpeg, cv::IMREAD_GRAYSCALE);
  const PageRef page = probe_file(dir / "scan.pdf", "scan.pdf", {}).at(0);
  const cv::Mat decoded = decode_page(page, {});
  ASSERT_EQ(decoded.size(), stored.size());
  EXPECT_EQ(cv::countNonZero(decoded != stored), 0);

  // The same image on a page that is not 300 dpi of it: at the page's size.
  write_pdf(dir / "scan-200.pdf", {scan}, 88, 200);
  const cv::Mat rendered = decode_page(probe_file(dir / "scan-200.pdf", "scan-200.pdf", {}).at(0), {});
  EXPECT_EQ(rendered.size(), cv::Size(600, 780));
  cv::Mat back;
  cv::resize(rendered, back, scan.size(), 0, 0, cv::INTER_AREA);
  EXPECT_LT(cv::norm(back, scan, cv::NORM_L1) / static_cast<double>(scan.total()), 4.0);

  // A page turned a quarter, and a page with more on it than the image: rendered too.
  auto jpeg_object = [](const std::vector<uint8_t>& bytes, const char* space) {
    return "<< /Type /XObject /Subtype /Image /Width 400 /Height 520 /ColorSpace /" + std::string(space) +
           " /BitsPerComponent 8 /Filter /DCTDecode /Length " + std::to_string(bytes.size()) + " >>\nstream\n" +
           std::string(bytes.begin(), bytes.end()) + "\nendstream";
  };
  std::string image = jpeg_object(jpeg, "DeviceGray");
  auto one_page = [&](const fs::path& path, const std::string& extra, const std::string& draw) {
    write_image_page(path, extra, draw, image);
  };
  const std::string plain = "q 96 0 0 124.8 0 0 cm /Im0 Do Q";
  one_page(dir / "plain.pdf", "", plain);
  one_page(dir / "turned.pdf", "/Rotate 90 ", plain);
  one_page(dir / "framed.pdf", "", plain + " 0 0 0 RG 4 w 10 10 76 104.8 re S");
  const cv::Mat as_stored = decode_page(probe_file(dir / "plain.pdf", "plain.pdf", {}).at(0), {});
  ASSERT_EQ(as_stored.size(), stored.size());
  EXPECT_EQ(cv::countNonZero(as_stored != stored), 0);
  const cv::Mat turned = decode_page(probe_file(dir / "turned.pdf", "turned.pdf", {}).at(0), {});
  EXPECT_EQ(turned.size(), cv::Size(520, 400));
  cv::Mat upright;
  cv::rotate(turned, upright, cv::ROTATE_90_COUNTERCLOCKWISE);
  EXPECT_LT(cv::norm(upright, stored, cv::NORM_L1) / static_cast<double>(stored.total()), 6.0);
  const cv::Mat framed = decode_page(probe_file(dir / "framed.pdf", "framed.pdf", {}).at(0), {});
  ASSERT_EQ(framed.size(), stored.size());
  EXPECT_LT(framed.at<uint8_t>(260, 42), 100) << "the frame drawn over the image is missing";
  EXPECT_GT(stored.at<uint8_t>(260, 42), 150);

  // A colour scan: its JPEG decoded to grey.
  cv::Mat colour;
  cv::cvtColor(scan, colour, cv::COLOR_GRAY2BGR);
  colour.col(200) = cv::Scalar(40, 160, 220);  // an orange stripe
  std::vector<uint8_t> colour_jpeg;
  cv::imencode(".jpg", colour, colour_jpeg, {cv::IMWRITE_JPEG_QUALITY, 90});
  image = jpeg_object(colour_jpeg, "DeviceRGB");
  one_page(dir / "colour.pdf", "", plain);
  const cv::Mat grey = decode_page(probe_file(dir / "colour.pdf", "colour.pdf", {}).at(0), {});
  const cv::Mat expected = cv::imdecode(colour_jpeg, cv::IMREAD_GRAYSCALE);
  ASSERT_EQ(grey.size(), expected.size());
  EXPECT_EQ(cv::countNonZero(grey != expected), 0);
}

TEST(Decode, ABlackAndWhitePdfPageIsItsBitsAsStored) {
  t::TempDir dir;
  cv::Mat page = numbered_page(4), bitonal;
  cv::threshold(page, bitonal, 128, 255, cv::THRESH_BINARY);
  auto decoded = [&](const std::string& name) { return decode_page(probe_file(dir / name, name, {}).at(0), {}); };

  // CCITT G4, as black-and-white scanners store pages: the bits as they were.
  write_pdf(dir / "g4.pdf", {bitonal}, 90, 300, true);
  cv::Mat g4 = decoded("g4.pdf");
  ASSERT_EQ(g4.size(), bitonal.size());
  EXPECT_EQ(cv::countNonZero(g4 != bitonal), 0);
  // Scanned at 200 dpi: at the size the page renders to at 300, the same page.
  write_pdf(dir / "g4-200.pdf", {bitonal}, 90, 200, true);
  g4 = decoded("g4-200.pdf");
  ASSERT_EQ(g4.size(), cv::Size(600, 780));
  cv::Mat back;
  cv::resize(g4, back, bitonal.size(), 0, 0, cv::INTER_AREA);
  EXPECT_LT(cv::norm(back, bitonal, cv::NORM_L1) / static_cast<double>(bitonal.total()), 12.0);

  // Samples stored without a filter: 1 bit with the decode array [1 0] (a 1 is black), and
  // 8-bit grey.
  const std::string plain = "q 96 0 0 124.8 0 0 cm /Im0 Do Q";
  auto raw_image = [](const std::string& samples, int bits, const std::string& extra) {
    return "<< /Type /XObject /Subtype /Image /Width 400 /Height 520 /ColorSpace /DeviceGray /BitsPerComponent " +
           std::to_string(bits) + " " + extra + "/Length " + std::to_string(samples.size()) + " >>\nstream\n" + samples +
           "\nendstream";
  };
  std::string bits(50 * 520, '\0');  // 400 px: 50 bytes a row
  for (int y = 0; y < 520; ++y)
    for (int x = 0; x < 400; ++x)
      if (bitonal.at<uint8_t>(y, x) == 0) bits[static_cast<size_t>(y * 50 + x / 8)] |= static_cast<char>(0x80 >> (x % 8));
  write_image_page(dir / "ones-black.pdf", "", plain, raw_image(bits, 1, "/Decode [1 0] "));
  const cv::Mat ones = decoded("ones-black.pdf");
  ASSERT_EQ(ones.size(), bitonal.size());
  EXPECT_EQ(cv::countNonZero(ones != bitonal), 0);
  write_image_page(dir / "grey.pdf", "", plain, raw_image(std::string(page.datastart, page.dataend), 8, ""));
  const cv::Mat grey = decoded("grey.pdf");
  ASSERT_EQ(grey.size(), page.size());
  EXPECT_EQ(cv::countNonZero(grey != page), 0);

  // Samples cut short: rendered as far as they go, a page of the right size, no error.
  write_image_page(dir / "short.pdf", "", plain, raw_image(bits.substr(0, bits.size() / 2), 1, "/Decode [1 0] "));
  EXPECT_EQ(decoded("short.pdf").size(), bitonal.size());
}

TEST(Decode, EveryPageOfALongTiffIsReadFromItsOwnDirectory) {
  // 60 pages, each numbered; some 8-bit grey (Deflate), some 1-bit CCITT G4: page n read
  // alone, in any order, is page n as OpenCV reads it walking the file.
  t::TempDir dir;
  std::vector<cv::Mat> pages;
  for (int n = 0; n < 60; ++n) pages.push_back(numbered_page(n % 10 == 9 ? 9 : n));
  ASSERT_TRUE(cv::imwritemulti((dir / "grey.tif").string(), pages, {cv::IMWRITE_TIFF_COMPRESSION, 8}));
  std::vector<cv::Mat> bitonal(pages.size());
  for (size_t n = 0; n < pages.size(); ++n) cv::threshold(pages[n], bitonal[n], 128, 255, cv::THRESH_BINARY);
  write_bitonal_tiff(dir / "g4.tif", bitonal, 300);
  for (const std::string name : {"grey.tif", "g4.tif"}) {
    const std::vector<PageRef> listed = probe_file(dir / name, name, {});
    ASSERT_EQ(listed.size(), pages.size()) << name;
    for (int n : {59, 0, 31, 1, 58}) {
      SCOPED_TRACE(name + " page " + std::to_string(n));
      EXPECT_GT(listed[static_cast<size_t>(n)].tiff_directory, 0u);
      const cv::Mat& expected = name == "grey.tif" ? pages[static_cast<size_t>(n)] : bitonal[static_cast<size_t>(n)];
      const cv::Mat page = decode_page(listed[static_cast<size_t>(n)], {});
      ASSERT_EQ(page.size(), expected.size());
      EXPECT_EQ(cv::countNonZero(page != expected), 0);
    }
  }

  // A scanner's batch of more than 10,000 pages: every one listed, the last one read.
  std::vector<cv::Mat> many(10'050, cv::Mat(8, 16, CV_8U, cv::Scalar(255)));
  many.back() = cv::Mat(8, 16, CV_8U, cv::Scalar(0));
  write_bitonal_tiff(dir / "many.tif", many, 200);
  const std::vector<PageRef> all = probe_file(dir / "many.tif", "many.tif", {});
  ASSERT_EQ(all.size(), many.size());
  EXPECT_EQ(all.back().page_index, 10'049);
  EXPECT_EQ(cv::countNonZero(decode_page(all.back(), {})), 0) << "the last page is black";

  // A page whose Orientation tag says it is stored upside down (3): its rows as stored, as
  // OpenCV reads them when told to ignore the tag; boxes are in the page as stored.
  {
    const cv::Mat& page = pages[7];
    TIFF* tiff = TIFFOpen((dir / "turned.tif").c_str(), "w");
    ASSERT_NE(tiff, nullptr);
    for (int k = 0; k < 2; ++k) {  // two pages: the second is the one read through its directory
      TIFFSetField(tiff, TIFFTAG_IMAGEWIDTH, static_cast<uint32_t>(page.cols));
      TIFFSetField(tiff, TIFFTAG_IMAGELENGTH, static_cast<uint32_t>(page.rows));
      TIFFSetField(tiff, TIFFTAG_BITSPERSAMPLE, 8);
      TIFFSetField(tiff, TIFFTAG_SAMPLESPERPIXEL, 1);
      TIFFSetField(tiff, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_MINISBLACK);
      TIFFSetField(tiff, TIFFTAG_ROWSPERSTRIP, 32u);
      TIFFSetField(tiff, TIFFTAG_ORIENTATION, ORIENTATION_BOTRIGHT);
      for (int y = 0; y < page.rows; ++y) ASSERT_EQ(TIFFWriteScanline(tiff, const_cast<uint8_t*>(page.ptr<uint8_t>(y)), static_cast<uint32_t>(y), 0), 1);
      ASSERT_EQ(TIFFWriteDirectory(tiff), 1);
    }
    TIFFClose(tiff);
    const std::vector<PageRef> turned = probe_file(dir / "turned.tif", "turned.tif", {});
    ASSERT_EQ(turned.size(), 2u);
    const cv::Mat read = decode_page(turned[1], {});
    ASSERT_EQ(read.size(), page.size());
    EXPECT_EQ(cv::countNonZero(read != page), 0) << "not the rows as stored";
  }

  // Colour and 16-bit pages: grey as OpenCV makes it (within a level of rounding).
  cv::Mat colour, deep;
  cv::cvtColor(pages[3], colour, cv::COLOR_GRAY2BGR);
  colour.col(100) = cv::Scalar(40, 160, 220);
  pages[3].convertTo(deep, CV_16U, 257);
  ASSERT_TRUE(cv::imwritemulti((dir / "mixed.tif").string(), std::vector<cv::Mat>{pages[0], colour, deep}));
  std::vector<cv::Mat> opencv;
  ASSERT_TRUE(cv::imreadmulti((dir / "mixed.tif").string(), opencv, cv::IMREAD_GRAYSCALE | cv::IMREAD_IGNORE_ORIENTATION));
  const std::vector<PageRef> mixed = probe_file(dir / "mixed.tif", "mixed.tif", {});
  ASSERT_EQ(mixed.size(), 3u);
  for (size_t n = 1; n < 3; ++n) {
    cv::Mat expected = opencv[n];
    if (expected.depth() != CV_8U) expected.convertTo(expected, CV_8U, 1.0 / 257);
    const cv::Mat page = decode_page(mixed[n], {});
    ASSERT_EQ(page.size(), expected.size()) << "page " << n;
    cv::Mat difference;
    cv::absdiff(page, expected, difference);
    double most = 0;
    cv::minMaxLoc(difference, nullptr, &most);
    EXPECT_LE(most, 1.0) << "page " << n;
  }
}

// A JPEG whose JFIF header states `density` per `unit` (1: inch, 2: cm).
std::string jpeg_with_density(const cv::Mat& image, uint8_t unit, uint16_t density) {
  std::string jpeg = encode_scan(image, false, 90, 0);
  EXPECT_EQ(jpeg.substr(6, 5), std::string("JFIF\0", 5));  // APP0 right after the start marker
  jpeg[13] = static_cast<char>(unit);
  jpeg[14] = static_cast<char>(density >> 8), jpeg[15] = static_cast<char>(density & 0xFF);
  jpeg[16] = jpeg[14], jpeg[17] = jpeg[15];
  return jpeg;
}

TEST(Decode, TheResolutionAFileStatesIsReadAndSoftwareDefaultsAreNot) {
  t::TempDir dir;
  const cv::Mat image(60, 80, CV_8U, cv::Scalar(200));
  auto write = [&](const std::string& name, const std::string& bytes) {
    std::ofstream(dir / name, std::ios::binary) << bytes;
  };
  write("png-200.png", encode_scan(image, true, 0, 200));  // a pHYs chunk of 7874 px/m
  write("png-72.png", encode_scan(image, true, 0, 72));    // image software's default
  std::string unitless = encode_scan(image, true, 0, 200);
  unitless[49] = 0;  // the pHYs unit: an aspect ratio, no size (and a CRC that no longer fits)
  write("png-unitless.png", unitless);
  write("png-none.png", encode_scan(image, true, 0, 0));
  write("jpeg-240.jpg", jpeg_with_density(image, 1, 240));
  write("jpeg-per-cm.jpg", jpeg_with_density(image, 2, 118));  // 118 per cm = 299.7 dpi
  write("jpeg-aspect.jpg", jpeg_with_density(image, 0, 1));
  std::vector<uint8_t> bmp_bytes;
  cv::imencode(".bmp", image, bmp_bytes);
  std::string bmp(bmp_bytes.begin(), bmp_bytes.end());
  for (int k = 0; k < 2; ++k) {  // 11811 px/m = 300 dpi, across and down
    bmp[38 + 4 * k] = static_cast<char>(11811 & 0xFF), bmp[39 + 4 * k] = static_cast<char>(11811 >> 8);
    bmp[40 + 4 * k] = 0, bmp[41 + 4 * k] = 0;
  }
  write("bmp-300.bmp", bmp);
  cv::imwritemulti((dir / "tiff-two.tif").string(), std::vector<cv::Mat>{image, image},
                   {cv::IMWRITE_TIFF_RESUNIT, 2, cv::IMWRITE_TIFF_XDPI, 400, cv::IMWRITE_TIFF_YDPI, 400});
  cv::imwrite((dir / "tiff-per-cm.tif").string(), image,
              {cv::IMWRITE_TIFF_RESUNIT, 3, cv::IMWRITE_TIFF_XDPI, 80, cv::IMWRITE_TIFF_YDPI, 80});
  write_pdf(dir / "scan.pdf", {image}, 90);

  std::map<std::string, std::vector<double>> dpi;
  for (const PageRef& page : list_pages(dir.path(), {})) {
    EXPECT_EQ(page.error, "") << page.name;
    dpi[page.name].push_back(page.dpi);
  }
  EXPECT_NEAR(dpi["png-200.png"].at(0), 200, 0.01);
  EXPECT_EQ(dpi["png-72.png"].at(0), 0);
  EXPECT_EQ(dpi["png-unitless.png"].at(0), 0);
  EXPECT_EQ(dpi["png-none.png"].at(0), 0);
  EXPECT_EQ(dpi["jpeg-240.jpg"].at(0), 240);
  EXPECT_NEAR(dpi["jpeg-per-cm.jpg"].at(0), 299.72, 0.01);
  EXPECT_EQ(dpi["jpeg-aspect.jpg"].at(0), 0);
  EXPECT_NEAR(dpi["bmp-300.bmp"].at(0), 300, 0.01);
  EXPECT_EQ(dpi["tiff-two.tif"], (std::vector<double>{400, 400}));
  EXPECT_NEAR(dpi["tiff-per-cm.tif"].at(0), 203.2, 0.01);
  DecodeLimits limits;
  limits.pdf_dpi = 150;  // a PDF page is stored at the resolution it is rendered at
  EXPECT_EQ(probe_file(dir / "scan.pdf", "scan.pdf", limits).at(0).dpi, 150);
  // The same from the bytes alone (an upload), the size with it.
  for (const PageRef& page : list_pages(dir.path(), {})) {
    if (page.format == FileFormat::tiff || page.format == FileFormat::pdf) continue;
    std::ifstream in(dir / page.name, std::ios::binary);
    const std::vector<uint8_t> bytes{std::istreambuf_iterator<char>(in), {}};
    const ImageHeader header = read_header(bytes);
    EXPECT_EQ(header.format, page.format) << page.name;
    EXPECT_EQ(header.width, 80) << page.name;
    EXPECT_EQ(header.height, 60) << page.name;
    EXPECT_EQ(header.dpi, page.dpi) << page.name;
  }
  EXPECT_EQ(read_header(std::vector<uint8_t>{0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0}).width, 0);  // cut short

  // Where a file states no resolution (or a software default), the one assumed for the job.
  DecodeLimits assumed;
  assumed.assume_dpi = 200;
  assumed.pdf_dpi = 150;
  EXPECT_EQ(probe_file(dir / "png-none.png", "png-none.png", assumed).at(0).dpi, 200);
  EXPECT_EQ(probe_file(dir / "png-72.png", "png-72.png", assumed).at(0).dpi, 200);
  EXPECT_EQ(probe_file(dir / "jpeg-240.jpg", "jpeg-240.jpg", assumed).at(0).dpi, 240);
  EXPECT_EQ(probe_file(dir / "scan.pdf", "scan.pdf", assumed).at(0).dpi, 150);
  // The files still decode as before.
  for (const PageRef& page : list_pages(dir.path(), {})) EXPECT_EQ(decode_page(page, {}).size(), image.size()) << page.name;

  // A pHYs chunk that claims the wrong length, or runs past the end of the file, states nothing.
  std::string odd = encode_scan(image, true, 0, 200);
  odd[36] = 4;  // the chunk's length: 4 instead of 9
  write("odd.png", odd);
  EXPECT_EQ(probe_file(dir / "odd.png", "odd.png", {}).at(0).dpi, 0);
  write("cut.png", encode_scan(image, true, 0, 200).substr(0, 45));
  EXPECT_EQ(probe_file(dir / "cut.png", "cut.png", {}).at(0).dpi, 0);
}

TEST(Decode, APngCutShortIsCalledTruncatedBeforeLibpngReadsIt) {
  t::TempDir dir;
  cv::Mat page(400, 300, CV_8UC1, cv::Scalar(240));
  cv::randu(page, 0, 255);  // noise: image data spread over many chunks
  std::vector<uint8_t> png;
  ASSERT_TRUE(cv::imencode(".png", page, png));
  std::ofstream(dir / "whole.png", std::ios::binary).write(reinterpret_cast<const char*>(png.data()),
                                                          static_cast<std::streamsize>(png.size()));
  std::ofstream(dir / "cut.png", std::ios::binary).write(reinterpret_cast<const char*>(png.data()),
                                                        static_cast<std::streamsize>(png.size() / 2));
  // Without its last 12 bytes (the IEND chunk): every image byte is there, the end is not.
  std::ofstream(dir / "no-end.png", std::ios::binary).write(reinterpret_cast<const char*>(png.data()),
                                                           static_cast<std::streamsize>(png.size() - 12));
  std::map<std::string, PageRef> by_name;
  for (const PageRef& p : list_pages(dir.path(), {})) by_name[p.name] = p;
  ASSERT_EQ(by_name.size(), 3u);
  EXPECT_EQ(decode_page(by_name["whole.png"], {}).size(), page.size());
  for (const char* name : {"cut.png", "no-end.png"})
    EXPECT_TRUE(t::throws_with_message<ImageError>([&] { decode_page(by_name[name], {}); },
                                                   {"truncated PNG (its data ends before the image does)"}))
        << name;
}

TEST(Decode, APngDamagedInTheMiddleIsCalledCorruptAndLibpngPrintsNothing) {
  t::TempDir dir;
  cv::Mat page(400, 300, CV_8UC1);
  cv::randu(page, 0, 255);
  std::vector<uint8_t> png;
  ASSERT_TRUE(cv::imencode(".png", page, png));
  // The first image data chunk: a byte of it flipped, as a bad sector or a broken copy does.
  size_t idat = 8;
  while (std::memcmp(&png[idat + 4], "IDAT", 4) != 0)
    idat += 12 + (static_cast<size_t>(png[idat]) << 24 | static_cast<size_t>(png[idat + 1]) << 16 |
                  static_cast<size_t>(png[idat + 2]) << 8 | png[idat + 3]);
  std::vector<uint8_t> flipped = png;
  flipped[idat + 8 + 100] ^= 0x5A;
  std::ofstream(dir / "flipped.png", std::ios::binary).write(reinterpret_cast<const char*>(flipped.data()),
                                                            static_cast<std::streamsize>(flipped.size()));
  // A damaged length of image data: its CRC is taken over the wrong bytes.
  std::vector<uint8_t> bad_length = png;
  bad_length[idat + 3] ^= 0x01;
  // A damaged length of a comment (ancillary: its CRC is not checked) puts the walk off the
  // chunks, into the comment's text, where it finds no chunk's name: 1 byte, type 01 02 03 04.
  const std::string text = std::string("Comment\0", 8) + std::string("\0\0\0\1\1\2\3\4xCRC!", 13) + "tail";
  std::vector<uint8_t> comment(png.begin(), png.begin() + 33);  // the signature and IHDR
  comment.insert(comment.end(), {0, 0, 0, 4});  // its length: 25, damaged to 4
  comment.insert(comment.end(), {'t', 'E', 'X', 't'});
  comment.insert(comment.end(), text.begin(), text.end());
  comment.insert(comment.end(), 4, 0);  // its CRC, not checked
  const size_t fake = 33 + 8 + 8;  // the fake header: where the walk goes next (data at 41, 4 + 4 past it)
  comment.insert(comment.end(), png.begin() + 33, png.end());
  const std::string said = "corrupt PNG: its IDAT chunk at byte " + std::to_string(idat) + " fails its checksum";
  const std::vector<PageRef> pages = list_pages(dir.path(), {});
  ASSERT_EQ(pages.size(), 1u);
  ::testing::internal::CaptureStderr();
  EXPECT_TRUE(t::throws_with_message<ImageError>([&] { decode_page(pages[0], {}); }, {said}));
  // The bytes of an upload (predict, the web's recognise) are checked the same way.
  EXPECT_TRUE(t::throws_with_message<ImageError>([&] { decode_image(flipped, {}); }, {said}));
  EXPECT_TRUE(t::throws_with_message<ImageError>([&] { decode_image(bad_length, {}); },
                                                 {"corrupt PNG: its IDAT chunk at byte " + std::to_string(idat)}));
  EXPECT_TRUE(t::throws_with_message<ImageError>(
      [&] { decode_image(comment, {}); },
      {"corrupt PNG: its data at byte " + std::to_string(fake) + " fails its checksum"}));
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
  // The file undamaged reads as it was written.
  EXPECT_EQ(cv::norm(decode_image(png, {}), page, cv::NORM_INF), 0.0);
}

TEST(Decode, BrokenPdfsBecomePageErrorsThatSayWhatIsWrong) {
  t::TempDir dir;
  const std::string page_tree = "<< /Type /Pages /Kids [3 0 R] /Count 1 >>";
  // Not a PDF past its first line.
  std::ofstream(dir / "junk.pdf", std::ios::binary) << "%PDF-1.4\nthis is where the scanner gave up\n";
  // A PDF whose page tree is empty.
  write_pdf_objects(dir / "no-pages.pdf",
                    {"<< /Type /Catalog /Pages 2 0 R >>", "<< /Type /Pages /Kids [] /Count 0 >>"});
  // A page of 2 x 2 metres: 23,622 x 23,622 pixels at 300 dpi, over the pixel limit.
  write_pdf_objects(dir / "poster.pdf", {"<< /Type /Catalog /Pages 2 0 R >>", page_tree,
                                         "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 5669.29 5669.29] >>"});
  // A good two-page PDF cut off half way through.
  write_pdf(dir / "whole.pdf", {numbered_page(1), numbered_page(2)}, 90);
  std::string bytes;
  {
    std::ifstream in(dir / "whole.pdf", std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  fs::remove(dir / "whole.pdf");
  std::ofstream(dir / "truncated.pdf", std::ios::binary) << bytes.substr(0, bytes.size() / 2);

  std::map<std::string, std::vector<PageRef>> by_file;
  for (const PageRef& page : list_pages(dir.path(), {})) by_file[page.name].push_back(page);
  ASSERT_EQ(by_file.size(), 4u);
  auto only_error = [&](const std::string& file) {
    const std::vector<PageRef>& pages = by_file[file];
    return pages.size() == 1 ? pages[0].error : "expected one entry, got " + std::to_string(pages.size());
  };
  EXPECT_EQ(only_error("junk.pdf"), "not a readable PDF (corrupt or truncated)");
  EXPECT_EQ(only_error("no-pages.pdf"), "the PDF has no pages");
  EXPECT_NE(only_error("poster.pdf").find("page too large: 23622 x 23622 pixels"), std::string::npos)
      << only_error("poster.pdf");
  // A page listed with its error and decoded anyway throws that error.
  for (const PageRef& page : by_file["junk.pdf"])
    EXPECT_TRUE(t::throws_with_message<ImageError>([&] { decode_page(page, {}); }, {"not a readable PDF"}));

  // Cut off in the first page's image: whatever poppler recovers of the file, every page
  // is either listed with an error, refused when decoded, or decoded at its listed size.
  const std::vector<PageRef>& cut = by_file["truncated.pdf"];
  ASSERT_FALSE(cut.empty());
  for (const PageRef& page : cut) {
    if (!page.error.empty()) continue;
    try {
      const cv::Mat pixels = decode_page(page, {});
      EXPECT_EQ(pixels.cols, page.width);
      EXPECT_EQ(pixels.rows, page.height);
    } catch (const ImageError& e) {
      EXPECT_NE(std::string(e.what()), "");
    }
  }
}

}  // namespace
}  // namespace digitflow::pipeline

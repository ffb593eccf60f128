// Listing and decoding PDF pages: many threads render at once and get what one thread gets,
// and PDFs that are broken in each way become page errors that say what is wrong.
#include <gtest/gtest.h>

#include <fstream>
#include <opencv2/imgproc.hpp>
#include <thread>

#include "digitflow/pipeline/decode.hpp"
#include "digitflow/pipeline/normalize.hpp"
#include "digitflow/pipeline/synth.hpp"
#include "test_support.hpp"

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

TEST(Decode, PdfPagesRenderedOnManyThreadsAtOnceAreThePagesRenderedOneByOne) {
  t::TempDir dir;
  std::vector<cv::Mat> originals;
  for (int file = 0; file < 3; ++file) {
    const std::vector<cv::Mat> pages = {numbered_page(2 * file), numbered_page(2 * file + 1)};
    write_pdf(dir / ("scan-" + std::to_string(file) + ".pdf"), pages, 92);
    originals.insert(originals.end(), pages.begin(), pages.end());
  }
  const std::vector<PageRef> listed = list_pages(dir.path(), {});
  ASSERT_EQ(listed.size(), 6u);
  for (const PageRef& page : listed) {
    EXPECT_EQ(page.error, "") << page.name;
    EXPECT_EQ(page.width, 400) << page.name;  // 300 dpi: the stored pixels back
    EXPECT_EQ(page.height, 520) << page.name;
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
    ASSERT_EQ(alone.size(), originals[i].size()) << listed[i].name << " page " << listed[i].page_index;
    // The right page (JPEG in the PDF: close to the original, not equal).
    EXPECT_LT(cv::norm(alone, originals[i], cv::NORM_L1) / static_cast<double>(alone.total()), 3.0)
        << listed[i].name << " page " << listed[i].page_index;
    for (int w = 0; w < threads; ++w) {
      const cv::Mat& mine = seen[static_cast<size_t>(w)][i];
      ASSERT_EQ(mine.size(), alone.size()) << "thread " << w << ", page " << i;
      EXPECT_EQ(cv::countNonZero(mine != alone), 0) << "thread " << w << ", page " << i;
    }
  }
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

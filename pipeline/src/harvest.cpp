// Pieces of pages with known truth, labelled for training: the same stages digitflow run
// chains (decode, clean, find strings, normalise, cut), with the truth in place of the CNN.
#include "digitflow/pipeline/harvest.hpp"

#include <tbb/parallel_for.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <stdexcept>
#include <utility>

#include "digitflow/pipeline/negatives.hpp"

namespace digitflow::pipeline {

namespace fs = std::filesystem;

namespace {

int64_t overlap(const Box& a, const Box& b) {
  const int w = std::min(a.right(), b.right()) - std::max(a.x, b.x);
  const int h = std::min(a.bottom(), b.bottom()) - std::max(a.y, b.y);
  return w > 0 && h > 0 ? static_cast<int64_t>(w) * h : 0;
}

void append(kernels::LabelledImages& out, const DigitPixels& pixels, uint8_t label) {
  out.pixels.insert(out.pixels.end(), pixels.begin(), pixels.end());
  out.labels.push_back(label);
  ++out.count;
}

}  // namespace

void label_pieces(const Segmentation& segmentation, const cv::Mat& to_page, int width, int height,
                  const PageResult& truth, const HarvestOptions& options, kernels::LabelledImages& out,
                  HarvestReport& report) {
  out.rows = 28;
  out.cols = 28;
  struct TruthDigit {
    Box box;
    int digit;
    int piece = -1;  // the piece that matches it best
    double iou = 0;
  };
  std::vector<TruthDigit> digits;
  for (const StringResult& s : truth.strings)
    for (const DigitResult& d : s.digits) digits.push_back({d.box, d.digit});
  std::vector<Box> boxes(segmentation.pieces.size());  // on the page as stored
  for (size_t p = 0; p < segmentation.pieces.size(); ++p)
    if (segmentation.pieces[p].usable) boxes[p] = map_box(segmentation.pieces[p].box, to_page, width, height);

  // Digits: of every piece, uncut or cut, the one that matches a truth digit best. A blob's
  // reading with a form line's ink (Hypothesis::on_line) is no piece of the page as the
  // model reads it: only a 7 turned into a 2 is ever read so.
  std::vector<bool> with_line(segmentation.pieces.size(), false);
  for (const StringCandidate& candidate : segmentation.strings)
    for (const Slot& slot : candidate.slots)
      for (const Hypothesis& h : slot.hypotheses)
        if (h.on_line)
          for (int piece : h.pieces) with_line[static_cast<size_t>(piece)] = true;
  std::vector<bool> matches(segmentation.pieces.size(), false);
  for (size_t p = 0; p < segmentation.pieces.size(); ++p) {
    if (!segmentation.pieces[p].usable || with_line[p]) continue;
    double best = 0, second = 0;
    size_t best_at = 0;
    for (size_t i = 0; i < digits.size(); ++i) {
      const double v = iou(boxes[p], digits[i].box);
      if (v > best) {
        second = best;
        best = v;
        best_at = i;
      } else if (v > second) {
        second = v;
      }
    }
    if (best < options.digit_iou || second * 3 >= best) continue;
    matches[p] = true;
    if (best > digits[best_at].iou) {
      digits[best_at].iou = best;
      digits[best_at].piece = static_cast<int>(p);
    }
  }
  for (const TruthDigit& d : digits) {
    if (d.piece < 0) {
      ++report.missed;
      continue;
    }
    append(out, segmentation.pieces[static_cast<size_t>(d.piece)].pixels, static_cast<uint8_t>(d.digit));
    ++report.digits;
  }
  // "Not a digit": blobs read whole that hold two digits or more, or no handwriting at all.
  // Their cuts are left out: a slice of a digit or of a printed word may well look like a digit.
  for (const StringCandidate& candidate : segmentation.strings)
    for (const Slot& slot : candidate.slots) {
      if (slot.hypotheses.empty()) continue;
      const auto p = static_cast<size_t>(slot.hypotheses[0].pieces[0]);
      if (!segmentation.pieces[p].usable || matches[p]) continue;
      const Box& box = boxes[p];
      int covered = 0;  // truth digits with most of their box inside the piece's
      bool touches = false;
      for (const TruthDigit& d : digits) {
        const int64_t o = overlap(box, d.box);
        touches = touches || o > 0;
        if (d.box.area() > 0 && o * 10 >= d.box.area() * 6) ++covered;
      }
      if (covered >= 2) {
        append(out, segmentation.pieces[p].pixels, kNotDigitClass);
        ++report.glued;
      } else if (!touches && std::none_of(truth.strings.begin(), truth.strings.end(),
                                          [&](const StringResult& s) { return overlap(box, s.box) > 0; })) {
        append(out, segmentation.pieces[p].pixels, kNotDigitClass);
        ++report.not_digit;
      } else {
        ++report.ambiguous;
      }
    }
}

kernels::LabelledImages harvest_pieces(const fs::path& dir, const HarvestOptions& options, HarvestReport* report,
                                       const std::function<void(int64_t, int64_t)>& progress) {
  const fs::path truth_path = dir / "truth.jsonl";
  std::error_code ec;
  if (!fs::is_regular_file(truth_path, ec))
    throw std::runtime_error(truth_path.string() +
                             ": no such file; pieces are labelled from the truth that synthetic pages come with");
  std::map<std::pair<std::string, int>, PageResult> truth;
  for (PageResult& page : read_results(truth_path.string())) {
    auto key = std::make_pair(page.page, page.page_index);
    truth.emplace(std::move(key), std::move(page));
  }
  std::vector<PageRef> pages;
  for (PageRef& ref : list_pages(dir, options.limits))
    if (truth.contains({ref.name, ref.page_index})) pages.push_back(std::move(ref));
  if (pages.empty())
    throw std::runtime_error(dir.string() + ": none of its pages is in " + truth_path.string());

  std::vector<kernels::LabelledImages> per_page(pages.size());
  std::vector<HarvestReport> reports(pages.size());
  int64_t done = 0;  // under progress_mutex
  std::mutex progress_mutex;
  tbb::parallel_for(size_t{0}, pages.size(), [&](size_t i) {
    HarvestReport& r = reports[i];
    r.pages = 1;
    try {
      const PageRef& ref = pages[i];
      if (!ref.error.empty()) throw ImageError(ref.error);
      const cv::Mat gray = decode_page(ref, options.limits);
      const PageResult& page_truth = truth.at({ref.name, ref.page_index});
      // Boxes in a page of another size (a PDF rendered at another resolution) would label
      // every digit as missed and the digits themselves as print.
      if (gray.cols != page_truth.width || gray.rows != page_truth.height)
        throw ImageError("decoded at another size than its truth");
      const CleanedPage cleaned = clean_page(gray, options.clean, ref.dpi);
      Segmentation segmentation = find_strings(cleaned, options.segment);
      normalize_pieces(cleaned, segmentation);
      std::vector<float> probs(segmentation.pieces.size() * kClassesWithNotDigit, 0.0f);
      normalize_cuts(segmentation, probs, kClassesWithNotDigit);
      label_pieces(segmentation, cleaned.to_page, gray.cols, gray.rows, page_truth, options, per_page[i], r);
    } catch (const std::exception& e) {
      r.failed_pages = 1;
      r.first_failure = pages[i].name + (pages[i].page_index > 0 ? " page " + std::to_string(pages[i].page_index + 1) : "") +
                        ": " + e.what();
    }
    std::lock_guard lock(progress_mutex);
    ++done;
    if (progress) progress(done, static_cast<int64_t>(pages.size()));
  });

  kernels::LabelledImages out;
  out.rows = 28;
  out.cols = 28;
  HarvestReport total;
  for (size_t i = 0; i < pages.size(); ++i) {
    kernels::append_images(out, per_page[i]);
    const HarvestReport& r = reports[i];
    total.pages += r.pages;
    total.failed_pages += r.failed_pages;
    total.digits += r.digits;
    total.glued += r.glued;
    total.not_digit += r.not_digit;
    total.ambiguous += r.ambiguous;
    total.missed += r.missed;
    if (total.first_failure.empty()) total.first_failure = r.first_failure;
  }
  if (report) *report = total;
  return out;
}

}  // namespace digitflow::pipeline

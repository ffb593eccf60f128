// Training images cut from pages by the pipeline itself: every piece that find_strings,
// normalize_pieces and normalize_cuts make of a page with known truth (a folder written by
// `digitflow synth --training-digits`), labelled by the truth digit it covers. A model
// trained on these sees digits as the page stages leave them (deskewed, binarised, a form
// line taken from under them, cut from a neighbour) rather than as MNIST drew them.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>

#include "digitflow/kernels/idx.hpp"
#include "digitflow/pipeline/clean.hpp"
#include "digitflow/pipeline/decode.hpp"
#include "digitflow/pipeline/results.hpp"
#include "digitflow/pipeline/segment.hpp"

namespace digitflow::pipeline {

struct HarvestOptions {
  DecodeLimits limits;
  CleanOptions clean;
  SegmentOptions segment;
  // A piece is a truth digit's image when their boxes (on the page as stored) overlap at
  // least this much (IoU), and three times more than the piece overlaps any other digit.
  double digit_iou = 0.6;
};

struct HarvestReport {
  int64_t pages = 0, failed_pages = 0;
  int64_t digits = 0;     // truth digits found, each once (the piece that matches it best)
  int64_t glued = 0;      // blobs holding most of two truth digits or more: "not a digit"
  int64_t not_digit = 0;  // blobs touching no handwritten string (print, lines): "not a digit"
  int64_t ambiguous = 0;  // blobs read whole that are neither (part of a digit): left out
  int64_t missed = 0;     // truth digits no piece matched
  std::string first_failure;  // the first failed page (in page order) and why: "a/b.png: ..."
};

// Labels the pieces of one page's segmentation against the truth of that page (boxes in the
// page as stored; `to_page` maps the segmentation's deskewed coordinates there) and appends
// them to `out` (28x28): for each truth digit, the piece (read whole or cut) that matches
// it best, labelled 0..9; then, of the blobs read whole, those holding two digits or more
// and those away from every handwritten string (print, lines, a signature) as 10, "not a
// digit". Cut pieces that match no digit are left out. Counts go to `report`.
void label_pieces(const Segmentation& segmentation, const cv::Mat& to_page, int width, int height,
                  const PageResult& truth, const HarvestOptions& options, kernels::LabelledImages& out,
                  HarvestReport& report);

// Every page of `dir` (listed as digitflow run lists a job; truth from dir/truth.jsonl,
// paired by page and page_index) through clean_page, find_strings, normalize_pieces and
// normalize_cuts (every blob wide enough for two digits cut, as if the model doubted it),
// then label_pieces. Pages in parallel; the result is in page order whatever the threads.
// A page that fails to decode or clean, or decodes at another size than its truth says, is
// counted as failed and skipped; pages without truth are not listed.
// `progress` gets (pages done, pages in all). Throws std::runtime_error naming the file when
// dir/truth.jsonl is missing or malformed, or when no page of `dir` has truth.
kernels::LabelledImages harvest_pieces(const std::filesystem::path& dir, const HarvestOptions& options,
                                       HarvestReport* report = nullptr,
                                       const std::function<void(int64_t, int64_t)>& progress = {});

}  // namespace digitflow::pipeline

// Synthetic scanned pages with their truth: printed forms, bank checks or plain sheets with
// handwritten digit strings made only of MNIST *test* digits (never seen in training), then
// rotated, shaded, blurred, noised and saved as PNG, JPEG, multi-page TIFF and PDF.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

namespace digitflow::pipeline {

struct SynthOptions {
  std::filesystem::path out;        // folder to write into (created when missing)
  int pages = 12;                   // pages in all, >= 1
  uint64_t seed = 1;                // same seed, same options -> byte-identical files
  std::string kind = "forms";       // forms | checks | free
  std::filesystem::path mnist_dir;  // holds t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte
  // The digits written: MNIST's test set, for pages to score on; or, `training_digits`, its
  // training set (train-images-idx3-ubyte, ...), for pages whose digits a model may learn
  // from (digitflow train --pages). Never score a model on pages of its training digits.
  bool training_digits = false;
  double jpeg_share = 0.2;          // share of the single-page files stored as JPEG (else PNG)
  // Share of the handwritten strings in which one pair of neighbouring digits touch, their
  // ink running together (0..1). Pages to train on may hold more of them than a scan does.
  double touching_share = 0.12;
  bool one_pdf = false;             // every page in one PDF, batch1/STEM-001.pdf (a scanner's batch)
  // The scanner: pages are drawn at 300 dpi and scanned at `dpi` (100..1200), in grey or,
  // `bitonal`, black and white (then no JPEG files); the files state their resolution unless
  // `untagged`. PDF pages hold the scan and are the paper's size: their truth is in pixels
  // at 300 dpi, as digitflow renders them.
  int dpi = 300;
  bool bitonal = false;
  bool untagged = false;
  // Also write out/sources.jsonl: per page, in truth.jsonl's order, each string's text and
  // the index in the MNIST set (`set`: "t10k" or "train") of the image each digit was drawn
  // from, to trace a misread back to its digit (digitflow eval --json lists the set's misreads).
  bool sources = false;
};

struct SynthReport {
  int pages = 0;                             // pages made (each page of a multi-page file counts)
  int files = 0;                             // page files written
  int png = 0, jpeg = 0, tiff = 0, pdf = 0;  // files by format
  int strings = 0;                           // handwritten strings in the truth
  int digits = 0;
  std::filesystem::path truth;          // out/truth.jsonl
  std::filesystem::path template_file;  // out/template.yaml; empty for kind free
  std::filesystem::path sources;        // out/sources.jsonl; empty unless options.sources
};

// Called after each page with (pages done, pages in all).
using SynthProgress = std::function<void(int done, int total)>;

// Writes the page files under out/ (in subfolders batch1/ and batch2/), out/truth.jsonl
// (one PageResult per page: every handwritten string and digit with its box in the page as
// stored, confidence 1, and for forms and checks the template fields) and, for forms and
// checks, out/template.yaml. With pages >= 6 one multi-page TIFF (2-3 pages) and one PDF
// (2 pages) are among the files. Throws std::runtime_error for an unknown kind, pages < 1,
// missing MNIST test files (naming the folder) or a missing DejaVu font.
SynthReport make_synthetic_job(const SynthOptions& options, const SynthProgress& progress = {});

// Writes a minimal PDF 1.4: one page per 8-bit gray image, each page the image at `dpi` (at
// 300, a reader rendering at 300 dpi gets the stored pixel size back, and truth boxes hold)
// with the image kept as JPEG (DCTDecode) at `quality`, or, `bitonal`, as 1-bit CCITT G4
// (what black-and-white scanners store; pixels under 128 are black). Written by hand: a few
// objects and an xref table are all a PDF needs, and no PDF writer is among the dependencies.
// Throws std::runtime_error naming the file when it cannot be encoded or written.
void write_pdf(const std::filesystem::path& path, const std::vector<cv::Mat>& images, int quality, int dpi = 300,
               bool bitonal = false);

// Writes a multi-page TIFF of 1-bit pages coded CCITT G4, as black-and-white scanners store
// them (pixels under 128 are black), stating `dpi` unless it is 0. Throws std::runtime_error
// naming the file when it cannot be written.
void write_bitonal_tiff(const std::filesystem::path& path, const std::vector<cv::Mat>& images, int dpi);

// A page encoded as a scanner stores it: PNG (or JPEG at `quality`) stating `dpi` in its pHYs
// chunk (JFIF header); 0 states no resolution. Throws std::runtime_error when OpenCV cannot
// encode the image.
std::string encode_scan(const cv::Mat& image, bool png, int quality, int dpi);

}  // namespace digitflow::pipeline

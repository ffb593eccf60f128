// Reading a job folder: the page flow graph (list -> decode -> clean -> find strings ->
// normalise -> batch across pages -> CNN -> assemble -> write, in input order) and the
// files it writes: results.jsonl, results.csv, summary.json and, on request, overlays.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "digitflow/kernels/backend.hpp"
#include "digitflow/kernels/network.hpp"
#include "digitflow/pipeline/clean.hpp"
#include "digitflow/pipeline/decode.hpp"
#include "digitflow/pipeline/fields.hpp"
#include "digitflow/pipeline/segment.hpp"

namespace digitflow::pipeline {

struct RunOptions {
  std::filesystem::path job_dir;
  std::filesystem::path out_dir;
  Shard shard;                              // run_job reads only this share of the files
  DecodeLimits limits;
  CleanOptions clean;
  SegmentOptions segment;
  ReadOptions read;
  const Template* page_template = nullptr;  // fields to read; none: the whole page is searched
  bool overlays = false;                    // OUT/overlays/<page>.png with boxes and text
  int pages_in_flight = 0;                  // pages decoded but not yet written; 0 = 4 per thread
  int batch_digits = 512;                   // CNN batch across pages
  double low_confidence = 0.9;              // strings below this are counted for review
  bool decode_clean_only = false;           // benchmarks: decode and clean each page, read nothing
  // Where the CNN scores the digits: the CPU, or a GPU (kernels::Inference: weights copied
  // once, batches of pipeline.batch_digits). auto takes the fastest that starts. A GPU
  // backend that cannot start makes run_pages throw kernels::BackendUnavailable.
  kernels::Backend backend = kernels::Backend::cpu;
  // A small model that reads every piece first (kernels::Inference::set_screen): pieces it
  // gives at least screen_confidence keep its reading, the rest are read by the model.
  // Null: the model reads every piece.
  kernels::Network* screen = nullptr;
  float screen_confidence = 0.94f;
  // A second model trained apart (kernels::Inference::set_partner): it reads every piece the
  // model reads, and the two readings are averaged. Null: the model reads alone.
  kernels::Network* partner = nullptr;
  // On the CPU, read through int8 inference where the model (and the screen and the
  // partner) carry their calibration (kernels::Inference::set_int8); fp32 otherwise.
  bool int8 = false;
  // run_job goes on with a run that was stopped (Ctrl-C) or cut short (a crash) in out_dir:
  // the pages its results.jsonl holds whole are kept, the rest are read (see run_job).
  bool resume = false;
};

struct RunProgress {
  int64_t pages_done = 0, pages_total = 0, failed = 0, strings = 0;
  double seconds = 0, pages_per_s = 0;
};

// Seconds spent in each stage, summed over threads (stages overlap in time).
struct StageSeconds {
  double list = 0, decode = 0, clean = 0, find = 0, normalize = 0, infer = 0, assemble = 0, overlay = 0, write = 0;
  double cut = 0;  // making and normalising the cuts between the two CNN passes (not in `infer`)
};

struct RunSummary {
  int64_t pages = 0, failed_pages = 0, strings = 0, digits = 0, low_confidence_strings = 0;
  int64_t fields = 0, valid_fields = 0;
  int64_t images_scored = 0;  // 28x28 images through the CNN: digits, print, and candidate cuts
  int64_t images_read_in_full = 0;  // of those, read by the model and its partner (the rest by the screen alone)
  bool int8 = false;                // the model (and its partner) read them through int8 inference
  // Where RunOptions::int8 asked for int8 and a model read in fp32 instead, why
  // (kernels::Inference::int8_fallback); empty otherwise.
  std::string int8_fallback;
  double seconds = 0, pages_per_s = 0;
  StageSeconds stages;
  bool cancelled = false;
  std::vector<std::string> skipped_files;  // under the job folder, not pages (run_job only)
  // Pages listed whose files state no resolution (PageRef::dpi 0: read as they are stored, as
  // if at 300 dpi; pipeline.assume_dpi gives them one) (run_job only).
  int64_t pages_without_resolution = 0;
  int64_t resumed_after = 0;  // pages kept from the stopped run this one went on with (run_job only)
};
nlohmann::json to_json(const RunSummary& summary);

// The classes of a model the pipeline reads with: 10, or 11 with "not a digit". Throws
// std::invalid_argument naming the model's input shape and classes for any other model.
int digit_classes(const kernels::Network& model);

// Reads every page under options.job_dir (of options.shard's files only) with `model` (1x28x28 input, 10 classes or 11 with
// "not a digit") and writes the outputs into options.out_dir (created if needed; existing
// results there are replaced). `progress` is called from one thread after each page is
// written; setting `*cancel` stops feeding pages, lets those in flight finish and be
// written, and returns with cancelled = true. A bad page never stops the run: it becomes a
// results line with an error. Throws only when the folder cannot be listed or the outputs
// cannot be written.
// With options.resume, out_dir holds a run of the same job and options that was stopped or
// cut short (no summary.json, or one saying "cancelled"): the lines of its results.jsonl
// that are whole (a last line cut short is dropped), each the page the listing has at that
// place, are kept with their overlays; results.csv is written again from them; the rest of
// the pages are read and written after them, so that the outputs are those of one run
// (summary.json adds "resumed_after": the pages kept). Its counts cover every page; seconds,
// stage seconds and images scored add the stopped run's where it left a summary.json.
// Throws std::runtime_error, naming the file and line, when there is nothing to go on with
// or its results are not this job's.
RunSummary run_job(const RunOptions& options, kernels::Network& model,
                   const std::function<void(const RunProgress&)>& progress = {},
                   const std::atomic<bool>* cancel = nullptr);

// The same graph on pages already listed, with results handed to `write` in input order
// instead of files (the building block of run_job; also what tests drive).
RunSummary run_pages(const std::vector<PageRef>& pages, const RunOptions& options, kernels::Network& model,
                     const std::function<void(const PageResult&, const cv::Mat* overlay)>& write,
                     const std::function<void(const RunProgress&)>& progress = {},
                     const std::atomic<bool>* cancel = nullptr);

// The file name of a page's overlay under OUT/overlays: its path ("a/b.jpg"; a ".png"
// extension dropped), "-p<n>" for page n > 1 of a multi-page file, then ".png": a/b.jpg.png,
// a/scan.tif-p2.png, a/c.png. Pages of one folder never share an overlay name.
std::string overlay_name(const PageResult& result);

// The page with its strings drawn: boxes coloured by confidence (green >= 0.99, amber >=
// low, red below), the text above each string; scaled so its longer side is <= max_side.
cv::Mat draw_overlay(const cv::Mat& gray, const PageResult& result, double low_confidence, int max_side = 1800);

}  // namespace digitflow::pipeline

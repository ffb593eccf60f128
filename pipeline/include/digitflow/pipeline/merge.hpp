// Joining the outputs of `digitflow run --shard K/N` into the output one unsharded run would
// have written: results.jsonl and results.csv byte for byte (lines copied, never re-encoded,
// in run_job's page order), summary.json with the counts summed. Every shard of the split
// must be given; anything that would make the join silently incomplete or ambiguous (a
// missing shard, two splits, a page twice, a cut-short or malformed file) is refused.
#pragma once

#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

namespace digitflow::pipeline {

// An input that cannot be merged; the message names the folder or file (and line) and why.
class MergeError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct MergeReport {
  int shards = 0;  // N of the split
  int64_t pages = 0, failed_pages = 0, strings = 0;
  bool overlays = false;              // some input had overlays/, copied to out_dir/overlays
  std::vector<std::string> warnings;  // merged anyway (e.g. shards that name different job paths)
};

// Reads every input (an output folder of `run --shard K/N`: summary.json, results.jsonl,
// results.csv, optionally overlays/) and writes the merged output into `out_dir` (created;
// files there are replaced, each written to a temporary file and renamed into place, and
// summary.json last, so a folder with a summary.json holds a finished merge).
// - Order: pages by path (byte order), then page_index, as run_job writes them.
// - summary.json: counts (pages, failed_pages, strings, digits, ...) and stage_seconds are
//   sums over the shards; seconds is the longest shard's (shards run side by side) and
//   pages_per_s is pages / seconds; skipped_files is the sorted union; shard is 0/1.
// - Refused, with a MergeError, before anything in out_dir changes: out_dir equal to an input, a
//   folder given twice, a missing or corrupt summary.json, a stopped (cancelled) run, shards
//   of different N, a shard given twice, a missing shard, a results.jsonl or results.csv that
//   cannot be read or has a malformed line (file and line named), pages out of order or of
//   another shard, the same page in two inputs, a results.jsonl shorter than its summary, a
//   results.csv whose rows do not match its results.jsonl.
MergeReport merge_outputs(const std::vector<std::filesystem::path>& inputs,
                          const std::filesystem::path& out_dir);

}  // namespace digitflow::pipeline

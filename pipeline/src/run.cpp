// The page flow graph. Every stage is a node; compute stages run with unlimited concurrency
// (oneTBB sizes them to the threads), the CNN and the writer are serial. A limiter holds the
// number of pages between decode and write, so memory does not grow with the folder; the
// writer releases a token per page. Pages are batched across pages for the CNN; the batcher
// flushes when a batch is large enough, when it holds half the pages in flight, or when it
// holds the page the writer waits for, and run_pages flushes whatever is left when the
// graph goes idle.
#include "digitflow/pipeline/run.hpp"

#include <tbb/flow_graph.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <set>
#include <thread>
#include <type_traits>

#include "digitflow/kernels/inference.hpp"
#include "digitflow/kernels/parallel.hpp"
#include "digitflow/kernels/trainer.hpp"
#include "digitflow/pipeline/normalize.hpp"

namespace digitflow::pipeline {

namespace fs = std::filesystem;
namespace flow = tbb::flow;
using Clock = std::chrono::steady_clock;

nlohmann::json to_json(const RunSummary& s) {
  const StageSeconds& t = s.stages;
  auto r3 = [](double v) { return std::round(v * 1000) / 1000; };
  return {{"pages", s.pages},
          {"failed_pages", s.failed_pages},
          {"strings", s.strings},
          {"digits", s.digits},
          {"low_confidence_strings", s.low_confidence_strings},
          {"fields", s.fields},
          {"valid_fields", s.valid_fields},
          {"images_scored", s.images_scored},
          {"images_read_in_full", s.images_read_in_full},
          {"int8", s.int8},
          {"int8_fallback", s.int8_fallback},
          {"pages_without_resolution", s.pages_without_resolution},
          {"seconds", r3(s.seconds)},
          {"pages_per_s", r3(s.pages_per_s)},
          {"cancelled", s.cancelled},
          {"stage_seconds",
           {{"list", r3(t.list)}, {"decode", r3(t.decode)}, {"clean", r3(t.clean)}, {"find_strings", r3(t.find)},
            {"normalize", r3(t.normalize)}, {"cut", r3(t.cut)}, {"infer", r3(t.infer)}, {"assemble", r3(t.assemble)},
            {"overlay", r3(t.overlay)}, {"write", r3(t.write)}}}};
}

namespace {

// A written page in the summary's counts (a string's confidence as written, so that a page
// counted again from results.jsonl counts the same).
void count_page(RunSummary& summary, const PageResult& r, double low_confidence) {
  ++summary.pages;
  if (r.error) ++summary.failed_pages;
  summary.strings += static_cast<int64_t>(r.strings.size());
  for (const StringResult& s : r.strings) {
    summary.digits += static_cast<int64_t>(s.digits.size());
    if (as_written(s.confidence) < low_confidence) ++summary.low_confidence_strings;  // as results.jsonl has it
  }
  for (const FieldResult& f : r.fields) {
    ++summary.fields;
    if (f.valid) ++summary.valid_fields;
  }
}

// One page on its way through the graph.
struct PageWork {
  size_t seq = 0;
  PageRef ref;
  cv::Mat gray;
  CleanedPage cleaned;
  Segmentation segmentation;
  std::vector<int> to_score;  // pieces waiting for the CNN
  std::vector<float> probs;   // per piece, `classes` wide
  PageResult result;
  cv::Mat overlay;
};
using PageMsg = std::shared_ptr<PageWork>;
using BatchMsg = std::shared_ptr<std::vector<PageMsg>>;

// Stage time accumulated across threads, in nanoseconds.
struct StageClock {
  std::atomic<int64_t> ns{0};
  template <typename F>
  auto time(F&& f) {
    const auto start = Clock::now();
    struct Add {
      std::atomic<int64_t>& ns;
      Clock::time_point start;
      ~Add() { ns += std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count(); }
    } add{ns, start};
    return f();
  }
  double seconds() const { return static_cast<double>(ns.load()) * 1e-9; }
};

struct Clocks {
  StageClock decode, clean, find, normalize, cut, infer, assemble, overlay, write;
};

std::string page_label(const PageRef& ref) {
  return ref.name + (ref.page_index > 0 || ref.format == FileFormat::tiff || ref.format == FileFormat::pdf
                         ? " page " + std::to_string(ref.page_index + 1)
                         : "");
}

// Holds pages until there are enough digits for a CNN batch.
class Batcher {
 public:
  Batcher(int batch_digits, size_t flush_pages, const std::atomic<size_t>& next_to_write)
      : batch_digits_(batch_digits), flush_pages_(flush_pages), next_to_write_(next_to_write) {}

  // A null message asks for a flush.
  BatchMsg add(const PageMsg& page) {
    if (page) {
      held_.push_back(page);
      digits_ += static_cast<int64_t>(page->to_score.size());
    }
    const size_t wanted = next_to_write_.load();
    const bool writer_waits = std::any_of(held_.begin(), held_.end(), [&](const PageMsg& p) { return p->seq == wanted; });
    if (held_.empty() || (page && digits_ < batch_digits_ && held_.size() < flush_pages_ && !writer_waits)) return nullptr;
    auto batch = std::make_shared<std::vector<PageMsg>>(std::move(held_));
    held_.clear();
    digits_ = 0;
    return batch;
  }
  bool pending() const { return !held_.empty(); }

 private:
  int batch_digits_;
  size_t flush_pages_;
  const std::atomic<size_t>& next_to_write_;
  std::vector<PageMsg> held_;
  int64_t digits_ = 0;
};

}  // namespace

int digit_classes(const kernels::Network& model) {
  const kernels::ModelSpec& spec = model.spec();
  if (spec.input_channels != 1 || spec.input_height != 28 || spec.input_width != 28 || spec.classes < 10 ||
      spec.classes > 11)
    throw std::invalid_argument("the model takes " + model.input_shape(1).str() + " inputs and " +
                                std::to_string(spec.classes) +
                                " classes; digits need a 1x28x28 model with 10 classes (11 with 'not a digit')");
  return spec.classes;
}

RunSummary run_pages(const std::vector<PageRef>& pages, const RunOptions& options, kernels::Network& model,
                     const std::function<void(const PageResult&, const cv::Mat* overlay)>& write,
                     const std::function<void(const RunProgress&)>& progress, const std::atomic<bool>* cancel) {
  const int classes = digit_classes(model);
  // On the CPU, passes of 64 images; on a GPU, the whole batch in one pass.
  const kernels::Backend backend = kernels::start_backend(options.backend);
  kernels::Inference inference(model, backend, backend == kernels::Backend::cpu ? 64 : std::max(64, options.batch_digits));
  if (options.screen) inference.set_screen(*options.screen, options.screen_confidence);
  if (options.partner) inference.set_partner(*options.partner);
  const bool int8 = inference.set_int8(options.int8);
  // The stages before the CNN keep every thread busy; its share of the work is about an
  // eighth (benchmarks/RESULTS.md). A pass on all of them would make oneDNN's threads wait
  // for cores the page stages hold (on 2 threads, the whole run took 4% longer): one pass
  // thread per six of the run's keeps the CNN up with the rest (measured on 2 threads only).
  inference.set_int8_threads(std::max(1, (kernels::thread_count() + 5) / 6));
  const size_t in_flight = static_cast<size_t>(
      options.pages_in_flight > 0 ? options.pages_in_flight : 4 * std::max(1, kernels::thread_count()));

  RunSummary summary;
  Clocks clocks;
  const auto started = Clock::now();
  std::atomic<size_t> next_to_write{0};
  RunProgress state;
  state.pages_total = static_cast<int64_t>(pages.size());
  size_t next_input = 0;

  flow::graph g;
  flow::input_node<PageMsg> source(g, [&](tbb::flow_control& control) -> PageMsg {
    if (next_input >= pages.size() || (cancel && cancel->load())) {
      control.stop();
      return nullptr;
    }
    auto work = std::make_shared<PageWork>();
    work->seq = next_input;
    work->ref = pages[next_input++];
    work->result.page = work->ref.name;
    work->result.page_index = work->ref.page_index;
    work->result.width = work->ref.width;
    work->result.height = work->ref.height;
    return work;
  });
  flow::limiter_node<PageMsg> limiter(g, in_flight);

  // Each stage skips pages that already failed; a failure becomes the page's error.
  auto stage = [](StageClock& clock, auto&& body) {
    return [&clock, body](PageMsg m) -> PageMsg {
      if (m->result.error) return m;
      try {
        clock.time([&] { body(*m); });
      } catch (const std::exception& e) {
        m->result.error = e.what();
        m->gray.release();
        m->cleaned = CleanedPage{};
        m->segmentation = Segmentation{};
      }
      return m;
    };
  };
  flow::function_node<PageMsg, PageMsg> decode(g, flow::unlimited, stage(clocks.decode, [&](PageWork& w) {
    w.gray = decode_page(w.ref, options.limits);
    w.result.width = w.gray.cols;
    w.result.height = w.gray.rows;
  }));
  flow::function_node<PageMsg, PageMsg> clean(g, flow::unlimited, stage(clocks.clean, [&](PageWork& w) {
    w.cleaned = clean_page(w.gray, options.clean, w.ref.dpi);
    if (!options.overlays) w.gray.release();
    if (options.decode_clean_only) w.cleaned = CleanedPage{};
  }));
  flow::function_node<PageMsg, PageMsg> find(g, flow::unlimited, stage(clocks.find, [&](PageWork& w) {
    if (!options.decode_clean_only) w.segmentation = find_strings(w.cleaned, options.segment);
  }));
  flow::function_node<PageMsg, PageMsg> normalize(g, flow::unlimited, stage(clocks.normalize, [&](PageWork& w) {
    if (options.decode_clean_only) return;
    w.to_score = normalize_pieces(w.cleaned, w.segmentation);
    w.cleaned.flat.release();  // what is left is small: the map back to the page
    w.cleaned.ink.release();
    w.cleaned.lines.release();
  }));

  Batcher batcher_state(options.batch_digits, std::max<size_t>(1, in_flight / 2), next_to_write);
  // serial: the batcher's state is its own.
  flow::multifunction_node<PageMsg, std::tuple<BatchMsg>> batcher(
      g, flow::serial, [&](const PageMsg& m, auto& ports) {
        if (BatchMsg batch = batcher_state.add(m)) std::get<0>(ports).try_put(batch);
      });
  // Scores the pieces each page of a batch has waiting, in one CNN pass over the batch.
  auto score_waiting = [&](const std::vector<PageMsg>& batch) {
    std::vector<uint8_t> pixels;
    int64_t count = 0;
    for (const PageMsg& m : batch)
      for (int i : m->to_score) {
        const DigitPixels& d = m->segmentation.pieces[static_cast<size_t>(i)].pixels;
        pixels.insert(pixels.end(), d.begin(), d.end());
        ++count;
      }
    summary.images_scored += count;
    if (count == 0) return;
    // On the CPU, 64 images per forward pass (see `inference`): the network's activations at
    // 256 held about 700 MB; at 64 the whole run peaks near 260 MB, at the same speed within
    // this machine's noise. `inference` pads the last pass (few batch shapes, few kept
    // convolution primitives).
    kernels::Tensor probs = inference.probabilities(pixels, count);
    const float* p = probs.data();
    for (const PageMsg& m : batch)
      for (int i : m->to_score) {
        std::copy(p, p + classes, m->probs.begin() + static_cast<std::ptrdiff_t>(i) * classes);
        p += classes;
      }
  };
  // serial: one network (its passes run on the threads set_int8_threads gives them above).
  flow::function_node<BatchMsg, BatchMsg> infer(g, flow::serial, [&](BatchMsg batch) {
    try {
      for (const PageMsg& m : *batch) m->probs.assign(m->segmentation.pieces.size() * static_cast<size_t>(classes), 0.0f);
      clocks.infer.time([&] { score_waiting(*batch); });  // every slot read whole
      // Cuts are made page by page in parallel; the pass over the network waits for them.
      clocks.cut.time([&] {
        tbb::parallel_for(size_t{0}, batch->size(), [&](size_t k) {
          PageWork& w = *(*batch)[k];
          w.to_score = normalize_cuts(w.segmentation, w.probs, classes);
        });
      });
      clocks.infer.time([&] { score_waiting(*batch); });  // cuts, where the whole reading was unsure
    } catch (const std::exception& e) {  // the batch's pages fail; the run goes on
      for (const PageMsg& m : *batch)
        if (!m->result.error) m->result.error = std::string("recognition failed: ") + e.what();
    }
    return batch;
  });
  flow::multifunction_node<BatchMsg, std::tuple<PageMsg>> unbatch(
      g, flow::serial, [](const BatchMsg& batch, auto& ports) {
        for (const PageMsg& m : *batch) std::get<0>(ports).try_put(m);
      });
  flow::function_node<PageMsg, PageMsg> assemble(g, flow::unlimited, stage(clocks.assemble, [&](PageWork& w) {
    if (options.decode_clean_only) return;
    w.result.strings = read_strings(w.segmentation, w.probs.data(), classes, w.cleaned.to_page, w.result.width,
                                    w.result.height, options.read);
    w.segmentation = Segmentation{};
    w.probs.clear();
    if (options.page_template) apply_template(*options.page_template, w.result);
  }));
  flow::function_node<PageMsg, PageMsg> overlay(g, flow::unlimited, [&](PageMsg m) {
    if (options.overlays && !m->gray.empty()) {
      try {
        clocks.overlay.time([&] { m->overlay = draw_overlay(m->gray, m->result, options.low_confidence); });
      } catch (const std::exception&) {
        m->overlay.release();  // the page keeps its results, without an overlay
      }
    }
    m->gray.release();
    return m;
  });
  flow::sequencer_node<PageMsg> in_order(g, [](const PageMsg& m) { return m->seq; });
  // serial: one writer keeps the files in input order.
  flow::function_node<PageMsg, flow::continue_msg> writer(g, flow::serial, [&](PageMsg m) {
    clocks.write.time([&] {
      PageResult& r = m->result;
      if (r.error && r.error->rfind(r.page, 0) != 0) r.error = page_label(m->ref) + ": " + *r.error;
      write(r, m->overlay.empty() ? nullptr : &m->overlay);
      count_page(summary, r, options.low_confidence);
    });
    next_to_write = m->seq + 1;
    if (progress) {
      state.pages_done = summary.pages;
      state.failed = summary.failed_pages;
      state.strings = summary.strings;
      state.seconds = std::chrono::duration<double>(Clock::now() - started).count();
      state.pages_per_s = state.seconds > 0 ? static_cast<double>(state.pages_done) / state.seconds : 0;
      progress(state);
    }
    return flow::continue_msg{};
  });

  flow::make_edge(source, limiter);
  flow::make_edge(limiter, decode);
  flow::make_edge(decode, clean);
  flow::make_edge(clean, find);
  flow::make_edge(find, normalize);
  flow::make_edge(normalize, batcher);
  flow::make_edge(flow::output_port<0>(batcher), infer);
  flow::make_edge(infer, unbatch);
  flow::make_edge(flow::output_port<0>(unbatch), assemble);
  flow::make_edge(assemble, overlay);
  flow::make_edge(overlay, in_order);
  flow::make_edge(in_order, writer);
  flow::make_edge(writer, limiter.decrementer());

  source.activate();
  g.wait_for_all();
  // Pages left in the batcher when the graph idles (the last ones, or all tokens held).
  while (batcher_state.pending()) {
    batcher.try_put(nullptr);
    g.wait_for_all();
  }

  summary.images_read_in_full = inference.images_read_in_full();
  summary.int8 = int8 && inference.int8();  // false when a pass fell back to fp32
  summary.int8_fallback = inference.int8_fallback();
  summary.seconds = std::chrono::duration<double>(Clock::now() - started).count();
  summary.pages_per_s = summary.seconds > 0 ? static_cast<double>(summary.pages) / summary.seconds : 0;
  summary.cancelled = summary.pages < static_cast<int64_t>(pages.size());
  summary.stages = {0, clocks.decode.seconds(), clocks.clean.seconds(), clocks.find.seconds(),
                    clocks.normalize.seconds(), clocks.infer.seconds(), clocks.assemble.seconds(),
                    clocks.overlay.seconds(), clocks.write.seconds(), clocks.cut.seconds()};
  return summary;
}

cv::Mat draw_overlay(const cv::Mat& gray, const PageResult& result, double low_confidence, int max_side) {
  const double scale = std::min(1.0, static_cast<double>(max_side) / std::max(gray.cols, gray.rows));
  cv::Mat small, color;
  const cv::Size fitted(std::max(1, static_cast<int>(std::lround(gray.cols * scale))),
                        std::max(1, static_cast<int>(std::lround(gray.rows * scale))));
  cv::resize(gray, small, fitted, 0, 0, scale < 1 ? cv::INTER_AREA : cv::INTER_LINEAR);
  cv::cvtColor(small, color, cv::COLOR_GRAY2BGR);
  auto rect = [&](const Box& b) {
    return cv::Rect(static_cast<int>(b.x * scale), static_cast<int>(b.y * scale),
                    std::max(1, static_cast<int>(b.w * scale)), std::max(1, static_cast<int>(b.h * scale)));
  };
  auto colour = [&](double c) {
    if (c >= 0.99) return cv::Scalar(40, 160, 40);    // green
    if (c >= low_confidence) return cv::Scalar(0, 150, 235);  // amber
    return cv::Scalar(40, 40, 220);                   // red
  };
  const double font = std::max(0.5, 0.9 * small.cols / 1400.0);
  for (const StringResult& s : result.strings) {
    for (const DigitResult& d : s.digits) cv::rectangle(color, rect(d.box), colour(d.confidence), 1);
    const cv::Rect r = rect(s.box);
    cv::rectangle(color, r, colour(s.confidence), 2);
    char label[64];
    std::snprintf(label, sizeof label, "%s  %.0f%%", s.text.c_str(), 100 * s.confidence);
    int base = 0;
    const cv::Size size = cv::getTextSize(label, cv::FONT_HERSHEY_SIMPLEX, font, 2, &base);
    const cv::Point at(r.x, std::max(size.height + 4, r.y - 4));
    cv::rectangle(color, cv::Rect(at.x - 2, at.y - size.height - 3, size.width + 4, size.height + base + 4),
                  cv::Scalar(255, 255, 255), cv::FILLED);
    cv::putText(color, label, at, cv::FONT_HERSHEY_SIMPLEX, font, colour(s.confidence), 2, cv::LINE_AA);
  }
  for (const FieldResult& f : result.fields) {
    if (!f.found) continue;
    const cv::Rect r = rect(f.box) + cv::Size(8, 8) - cv::Point(4, 4);
    cv::rectangle(color, r, f.valid ? cv::Scalar(160, 90, 0) : cv::Scalar(40, 40, 220), 1, cv::LINE_4);
    std::string label = f.name + (f.valid ? " ok" : " invalid");
    cv::putText(color, label, cv::Point(r.x, r.y + r.height + static_cast<int>(22 * font)), cv::FONT_HERSHEY_SIMPLEX,
                font * 0.8, f.valid ? cv::Scalar(160, 90, 0) : cv::Scalar(40, 40, 220), 1, cv::LINE_AA);
  }
  if (result.error) cv::putText(color, *result.error, cv::Point(10, 40), cv::FONT_HERSHEY_SIMPLEX, font, cv::Scalar(40, 40, 220), 2);
  return color;
}

namespace {

// Writes a file whole or not at all.
void write_atomically(const fs::path& path, const std::string& text) {
  const fs::path temp = path.string() + ".part";
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    out << text;
    out.flush();
    if (!out) throw std::runtime_error(temp.string() + ": cannot write");
  }
  fs::rename(temp, path);
}

// What a stopped run left in its output folder to go on from.
struct Resumed {
  size_t pages = 0;        // its whole results lines, each the page the listing has there
  uintmax_t bytes = 0;     // of results.jsonl they take
  nlohmann::json summary;  // its summary.json ("cancelled"), or null when it left none
};

// Reads the stopped run's results line by line (a night's folder does not fit in memory as
// results), handing each kept page to `keep`; checks them all before anything is written.
Resumed resume_from(const fs::path& out_dir, const std::vector<PageRef>& pages,
                    const std::function<void(const PageResult&)>& keep) {
  const fs::path jsonl_path = out_dir / "results.jsonl", summary_path = out_dir / "summary.json";
  const std::string again = ": run without --resume to read the folder again";
  std::error_code ec;
  if (!fs::is_regular_file(jsonl_path, ec))
    throw std::runtime_error(jsonl_path.string() + ": not there, so there is no run to go on with" + again);
  Resumed out;
  if (fs::exists(summary_path, ec)) {
    std::ifstream in(summary_path);
    out.summary = nlohmann::json::parse(in, nullptr, false);
    if (!out.summary.is_object())
      throw std::runtime_error(summary_path.string() + ": not a summary (JSON object); it cannot say where the run stopped" + again);
    const nlohmann::json cancelled = out.summary.value("cancelled", nlohmann::json());
    if (!cancelled.is_boolean())
      throw std::runtime_error(summary_path.string() + ": has no \"cancelled\": true or false; it cannot say where the run stopped" + again);
    if (!cancelled.get<bool>())
      throw std::runtime_error(summary_path.string() + ": the run finished, so there is nothing to go on with" + again);
  }
  // Names that are not UTF-8 were written with U+FFFD: compared as written, then taken back
  // as listed (the CSV has them so).
  auto written = [](const std::string& text) {
    return nlohmann::json(text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  };
  std::ifstream in(jsonl_path, std::ios::binary);
  std::string line;
  for (size_t number = 1; std::getline(in, line); ++number) {
    if (in.eof()) break;  // no newline after it: the run was cut short while writing it
    PageResult r;
    try {
      r = parse_results_line(line);
    } catch (const ResultsFormatError& e) {
      throw std::runtime_error(jsonl_path.string() + ":" + std::to_string(number) + ": not a results line (" + e.what() +
                               ")" + again);
    }
    const size_t at = number - 1;
    if (at >= pages.size() || written(pages[at].name) != written(r.page) || pages[at].page_index != r.page_index)
      throw std::runtime_error(jsonl_path.string() + ":" + std::to_string(number) + ": page \"" + r.page + "\" (" +
                               std::to_string(r.page_index + 1) + "), where the job now has " +
                               (at < pages.size() ? "\"" + pages[at].name + "\" (" + std::to_string(pages[at].page_index + 1) + ")"
                                                  : std::string("no more pages")) +
                               ": the folder or the options changed since" + again);
    out.bytes += line.size() + 1;
    ++out.pages;
    if (r.error && r.error->rfind(r.page, 0) == 0) r.error = pages[at].name + r.error->substr(r.page.size());
    r.page = pages[at].name;
    if (keep) keep(r);
  }
  return out;
}

}  // namespace

std::string overlay_name(const PageResult& r) {
  // a.png keeps its name; a.jpg becomes a.jpg.png, so a.png and a.jpg in one folder do
  // not overwrite each other's overlay.
  std::string name = r.page;
  const size_t dot = name.rfind('.');
  const size_t slash = name.rfind('/');
  const bool has_ext = dot != std::string::npos && (slash == std::string::npos || dot > slash);
  std::string ext = has_ext ? name.substr(dot) : std::string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (ext == ".png") name.resize(dot);
  if (r.page_index > 0) name.append("-p").append(std::to_string(r.page_index + 1));
  return name + ".png";
}

RunSummary run_job(const RunOptions& options, kernels::Network& model,
                   const std::function<void(const RunProgress&)>& progress, const std::atomic<bool>* cancel) {
  const auto list_start = Clock::now();
  std::vector<std::string> skipped;
  std::vector<PageRef> pages = list_pages(options.job_dir, options.limits, &skipped, options.shard);
  const double list_seconds = std::chrono::duration<double>(Clock::now() - list_start).count();

  std::error_code ec;
  const fs::path jsonl_path = options.out_dir / "results.jsonl", csv_path = options.out_dir / "results.csv";
  // First a pass that only checks (an error leaves the folder as it was), then one that keeps.
  const Resumed resumed = options.resume ? resume_from(options.out_dir, pages, {}) : Resumed{};
  if (!options.resume) remove_earlier_overlays(options.out_dir, options.job_dir);  // replaced, or gone when none are asked for now
  fs::create_directories(options.out_dir, ec);
  if (ec) throw std::runtime_error(options.out_dir.string() + ": cannot create the output folder (" + ec.message() + ")");
  if (options.resume) {
    fs::resize_file(jsonl_path, resumed.bytes);  // a last line cut short goes
    // and an overlay a crash left half written (its page is read again)
    for (const fs::directory_entry& e : fs::recursive_directory_iterator(options.out_dir / "overlays", ec))
      if (e.path().string().ends_with(".part.png")) fs::remove(e.path(), ec);
  }
  std::ofstream jsonl(jsonl_path, options.resume ? std::ios::app : std::ios::trunc), csv(csv_path, std::ios::trunc);
  if (!jsonl) throw std::runtime_error(jsonl_path.string() + ": cannot write");
  if (!csv) throw std::runtime_error(csv_path.string() + ": cannot write");
  // A stopped run's summary stays until this one's replaces it: should this one be cut short
  // too, the next --resume still has the figures of the first.
  if (!options.resume) fs::remove(options.out_dir / "summary.json", ec);
  write_csv_header(csv);
  std::set<std::pair<std::string, int>> read_ok;  // pages written with no error
  RunSummary before;  // the pages kept from the stopped run
  if (options.resume)
    resume_from(options.out_dir, std::vector<PageRef>(pages.begin(), pages.begin() + static_cast<std::ptrdiff_t>(resumed.pages)),
                [&](const PageResult& r) {
                  write_csv_rows(csv, r);
                  count_page(before, r, options.low_confidence);
                  if (!r.error) read_ok.emplace(r.page, r.page_index);
                });
  csv.flush();
  if (!csv) throw std::runtime_error(csv_path.string() + ": cannot write");

  auto write = [&](const PageResult& r, const cv::Mat* overlay) {
    // Flushed per page: a crash loses at most the pages in flight.
    // File names that are not UTF-8 (old Windows archives) are written with U+FFFD.
    if (!r.error) read_ok.emplace(r.page, r.page_index);
    // The overlay before the line, whole (written aside, then renamed): a page whose line is
    // in results.jsonl has its overlay, which --resume counts on.
    if (overlay) {
      const fs::path path = options.out_dir / "overlays" / overlay_name(r);
      const fs::path part = path.string() + ".part.png";
      fs::create_directories(path.parent_path());
      if (!cv::imwrite(part.string(), *overlay))
        throw std::runtime_error(path.string() + ": cannot write the overlay (disk full?)");
      fs::rename(part, path);
    }
    jsonl << to_json(r).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n' << std::flush;
    write_csv_rows(csv, r);
    csv.flush();
    if (!jsonl || !csv) throw std::runtime_error(options.out_dir.string() + ": writing the results failed (disk full?)");
  };
  const std::vector<PageRef> rest(pages.begin() + static_cast<std::ptrdiff_t>(resumed.pages), pages.end());
  RunSummary summary = run_pages(rest, options, model, write, progress, cancel);
  const double read_seconds = summary.seconds;
  const int64_t read_now = summary.pages;
  if (options.resume) {
    summary.resumed_after = static_cast<int64_t>(resumed.pages);
    summary.pages += before.pages;
    summary.failed_pages += before.failed_pages;
    summary.strings += before.strings;
    summary.digits += before.digits;
    summary.low_confidence_strings += before.low_confidence_strings;
    summary.fields += before.fields;
    summary.valid_fields += before.valid_fields;
    summary.cancelled = summary.pages < static_cast<int64_t>(pages.size());
    if (const nlohmann::json& p = resumed.summary; p.is_object()) {  // the stopped run's own figures
      auto add = [&](const nlohmann::json& from, const char* key, auto& to) {
        if (from.contains(key) && from[key].is_number()) to += from[key].template get<std::decay_t<decltype(to)>>();
      };
      add(p, "images_scored", summary.images_scored);
      add(p, "images_read_in_full", summary.images_read_in_full);
      add(p, "seconds", summary.seconds);
      const nlohmann::json t = p.value("stage_seconds", nlohmann::json::object());
      StageSeconds& st = summary.stages;
      add(t, "decode", st.decode), add(t, "clean", st.clean), add(t, "find_strings", st.find);
      add(t, "normalize", st.normalize), add(t, "cut", st.cut), add(t, "infer", st.infer);
      add(t, "assemble", st.assemble), add(t, "overlay", st.overlay), add(t, "write", st.write);
    }
  }
  summary.stages.list = list_seconds;
  summary.skipped_files = std::move(skipped);
  summary.pages_without_resolution = std::count_if(pages.begin(), pages.end(), [&](const PageRef& p) {
    return p.dpi == 0 && read_ok.count({p.name, p.page_index});  // read, not only listed
  });
  summary.seconds += list_seconds;
  // Where the stopped run's seconds are not known (cut short: no summary), the rate is this run's.
  const bool all_known = !options.resume || resumed.summary.is_object();
  summary.pages_per_s = all_known ? (summary.seconds > 0 ? static_cast<double>(summary.pages) / summary.seconds : 0)
                                  : (read_seconds > 0 ? static_cast<double>(read_now) / read_seconds : 0);
  nlohmann::json s = to_json(summary);
  if (options.resume) s["resumed_after"] = summary.resumed_after;
  s["job"] = options.job_dir.string();
  s["pages_listed"] = pages.size();
  s["shard"] = {{"index", options.shard.index}, {"count", options.shard.count}};  // 0 of 1: the whole folder
  s["skipped_files"] = summary.skipped_files;  // under the job folder, not pages
  write_atomically(options.out_dir / "summary.json", s.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
  return summary;
}

}  // namespace digitflow::pipeline

// digitflow: one binary, one subcommand per job. Errors are one line on stderr: exit 2 for
// a usage mistake, 1 for anything else.
#include <cstring>
#include <iostream>
#include <string>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "cli.hpp"
#include "commands.hpp"

namespace {

constexpr const char* kUsage =
    "digitflow " DIGITFLOW_VERSION " - reads handwritten digits off scanned documents\n"
    "\n"
    "Usage: digitflow COMMAND [options]   (digitflow COMMAND --help for its options)\n"
    "\n"
    "Commands:\n"
    "  run       read every page of a job folder: results.jsonl, results.csv, summary.json\n"
    "  merge     join the outputs of run --shard K/N into the output of one run\n"
    "  train     train a CNN on MNIST and save it as a model file\n"
    "  eval      accuracy, per-class accuracy and confusion matrix of a model\n"
    "  calibrate record in a model file the ranges int8 inference quantizes to\n"
    "  predict   recognise the digit in each of some image files\n"
    "  bench     time training (bench train) or inference (bench infer)\n"
    "  score     compare results.jsonl with the truth: exact-match rate, digit accuracy\n"
    "  synth     write synthetic scanned forms, checks or sheets and their truth.jsonl\n"
    "\n"
    "Jobs (the nightly batch, on a store under the state directory or PostgreSQL):\n"
    "  submit    queue a folder of pages as a job (the folder is copied first)\n"
    "  jobs      list the jobs: id, name, owner, state, progress\n"
    "  job       one job in detail; --results prints or exports its results\n"
    "  cancel    cancel a queued or running job\n"
    "  worker    run queued jobs (and the drop folder) until stopped\n"
    "  user      add or list users (the first administrator comes from here)\n"
    "  serve     the web pages and JSON API, with job workers inside (plain HTTP)\n"
    "  retrain   fine-tune the default model on the reviewed samples; promote it if not worse\n";

}  // namespace

int main(int argc, char** argv) {
  using namespace digitflow::cli;
  // "digitflow help run" is "digitflow run --help".
  char help_option[] = "--help";
  char* help_argv[] = {argv[0], argc >= 3 ? argv[2] : nullptr, help_option, nullptr};
  if (argc == 3 && !std::strcmp(argv[1], "help")) {
    argc = 3;
    argv = help_argv;
  }
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") ||
      !std::strcmp(argv[1], "help")) {
    std::cout << kUsage;
    return argc < 2 ? 2 : 0;
  }
  if (!std::strcmp(argv[1], "--version")) {
    std::cout << "digitflow " DIGITFLOW_VERSION "\n";
    return 0;
  }
  const std::string command = argv[1];
#if defined(__GLIBC__)
  // Every page allocates and frees page-sized buffers: an A4 page at 300 dpi is 8.7 MB of
  // grey, 35 MB of component labels. Above glibc's mmap threshold each would be a fresh
  // mapping whose pages the kernel faults in and zeroes again for every page; kept in the
  // heap (and not trimmed back) they are reused. `digitflow run` on 60 forms pages, 2
  // threads: 0.81x the wall time (system time 7.8 s -> 1.1 s), 1.2x the peak memory
  // (benchmarks/RESULTS.md, "Throughput and memory").
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
#endif
  try {
    if (command == "run") return run_run(argc - 1, argv + 1);
    if (command == "merge") return run_merge(argc - 1, argv + 1);
    if (command == "train") return run_train(argc - 1, argv + 1);
    if (command == "eval") return run_eval(argc - 1, argv + 1);
    if (command == "calibrate") return run_calibrate(argc - 1, argv + 1);
    if (command == "predict") return run_predict(argc - 1, argv + 1);
    if (command == "bench") return run_bench(argc - 1, argv + 1);
    if (command == "score") return run_score(argc - 1, argv + 1);
    if (command == "synth") return run_synth(argc - 1, argv + 1);
    if (command == "submit") return run_submit(argc - 1, argv + 1);
    if (command == "jobs") return run_jobs(argc - 1, argv + 1);
    if (command == "job") return run_job(argc - 1, argv + 1);
    if (command == "cancel") return run_cancel(argc - 1, argv + 1);
    if (command == "worker") return run_worker(argc - 1, argv + 1);
    if (command == "user") return run_user(argc - 1, argv + 1);
    if (command == "serve") return run_serve(argc - 1, argv + 1);
    if (command == "retrain") return run_retrain(argc - 1, argv + 1);
    std::cerr << "digitflow: unknown command '" << command << "'\n\n" << kUsage;
    return 2;
  } catch (const UsageError& e) {
    std::cerr << "digitflow " << command << ": " << e.what() << "\n(see digitflow " << command
              << " --help)\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "digitflow " << command << ": " << e.what() << "\n";
    return 1;
  }
}

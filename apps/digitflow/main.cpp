// digitflow: one binary, one subcommand per job. Errors are one line on stderr: exit 2 for
// a usage mistake, 1 for anything else.
#include <cstring>
#include <iostream>
#include <string>

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
    "  train     train a CNN on MNIST and save it as a model file\n"
    "  eval      accuracy, per-class accuracy and confusion matrix of a model\n"
    "  predict   recognise the digit in each of some image files\n"
    "  bench     time training (bench train) or inference (bench infer)\n"
    "  score     compare results.jsonl with the truth: exact-match rate, digit accuracy\n"
    "  synth     write synthetic scanned forms, checks or sheets and their truth.jsonl\n";

}  // namespace

int main(int argc, char** argv) {
  using namespace digitflow::cli;
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
  try {
    if (command == "run") return run_run(argc - 1, argv + 1);
    if (command == "train") return run_train(argc - 1, argv + 1);
    if (command == "eval") return run_eval(argc - 1, argv + 1);
    if (command == "predict") return run_predict(argc - 1, argv + 1);
    if (command == "bench") return run_bench(argc - 1, argv + 1);
    if (command == "score") return run_score(argc - 1, argv + 1);
    if (command == "synth") return run_synth(argc - 1, argv + 1);
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

// digitflow train: trains a model YAML on MNIST (plus generated "not a digit" images as
// class 10 when data.negatives > 0, and the pieces cut from pages with truth when
// data.pages is set, each MNIST digit data.mnist_repeats times an epoch; from a model file's
// weights with --init), keeps the best epoch (by validation accuracy) on disk as
// it goes, writes per-epoch metrics to a CSV beside the model, and reports the test accuracy
// of what it saved (and, with negatives, how many held-out negatives and digits it rejects).
// After each epoch it writes a checkpoint beside the model (NAME.checkpoint); a training
// stopped by Ctrl-C, or cut short, goes on from there with --resume.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "cli.hpp"
#include "commands.hpp"
#include "digitflow/kernels/int8.hpp"
#include "digitflow/kernels/model_file.hpp"
#include "digitflow/kernels/parallel.hpp"
#include "digitflow/kernels/seed_mix.hpp"
#include "digitflow/kernels/trainer.hpp"
#include "digitflow/pipeline/negatives.hpp"

namespace digitflow::cli {

namespace fs = std::filesystem;
namespace k = digitflow::kernels;

namespace {

// FNV-1a over the training images and labels: a checkpoint goes on only with the set it
// was made on.
std::string data_fingerprint(const k::LabelledImages& set) {
  const uint64_t h = k::fnv1a64(set.labels.data(), set.labels.size(), k::fnv1a64(set.pixels.data(), set.pixels.size()));
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(h));
  return text;
}

// What differs between the run a checkpoint was made by and this one, as "key was A, is B".
std::vector<std::string> run_differences(const nlohmann::json& then, const nlohmann::json& now,
                                         const std::string& prefix = "") {
  std::vector<std::string> out;
  std::set<std::string> keys;
  for (const auto& [key, v] : then.items()) keys.insert(key);
  for (const auto& [key, v] : now.items()) keys.insert(key);
  for (const std::string& key : keys) {
    const nlohmann::json a = then.contains(key) ? then[key] : nlohmann::json(), b = now.contains(key) ? now[key] : nlohmann::json();
    if (a == b) continue;
    if (a.is_object() && b.is_object()) {
      for (std::string& d : run_differences(a, b, prefix + key + ".")) out.push_back(std::move(d));
      continue;
    }
    auto show = [](const nlohmann::json& v) {
      char number[32];
      if (v.is_number_float()) std::snprintf(number, sizeof number, "%.6g", v.get<double>());
      std::string text = v.is_null() ? std::string("(none)") : v.is_number_float() ? std::string(number) : v.dump();
      return text.size() > 60 ? text.substr(0, 57) + "..." : text;
    };
    out.push_back(prefix + key + " was " + show(a) + ", is " + show(b));
  }
  return out;
}

}  // namespace

int run_train(int argc, char** argv) {
  CommonOptions common;
  std::string model_yaml, out, data_dir, init;
  bool resume = false;
  po::options_description options("Options");
  options.add_options()
      ("model", po::value(&model_yaml)->value_name("YAML"),
       "model description (default: model.spec, config/models/default.yaml)")
      ("epochs", po::value<int>()->value_name("N"), "epochs (train.epochs)")
      ("threads", po::value<int>()->value_name("N"), "worker threads, 0 = every core (runtime.threads)")
      ("seed", po::value<uint64_t>()->value_name("S"), "random seed (train.seed)")
      ("out", po::value(&out)->value_name("FILE"),
       "model file to write (default: models/<model name>.safetensors)")
      ("data-dir", po::value(&data_dir)->value_name("DIR"),
       "folder of the MNIST IDX files (default: DIGITFLOW_DATA or data.dir)")
      ("train-images", po::value<int64_t>()->value_name("N"),
       "use only the first N training images (quick trials); default: all")
      ("negatives", po::value<int>()->value_name("N"),
       "add N generated 'not a digit' images as class 10 (data.negatives); needs an 11-class model")
      ("pages", po::value<std::string>()->value_name("DIR"),
       "also train on the pieces digitflow run cuts from these pages, labelled by their truth "
       "(data.pages): a folder made by digitflow synth --training-digits, or a folder of them")
      ("init", po::value(&init)->value_name("FILE"),
       "start from this model's weights (its architecture; --model is then not used) instead "
       "of random ones: a fine-tuning")
      ("resume", po::bool_switch(&resume),
       "go on with a training that was stopped (Ctrl-C) or cut short, from the checkpoint its "
       "last finished epoch left beside the model (NAME.checkpoint): give the options it was "
       "started with; on the same thread count the result is the one it would have given "
       "uninterrupted");
  add_config_options(options, common);
  add_backend_option(options, common);
  po::variables_map vm;
  if (!parse(argc, argv, "digitflow train [--config config/train.yaml] [--model config/models/X.yaml | --init M] "
             "[--pages DIR] [--epochs N] [--negatives N] [--threads N] [--seed S] [--out models/NAME.safetensors] [--resume]",
             "Trains a CNN on the MNIST training set (a validation split held out), keeps the\n"
             "epoch with the best validation accuracy in the model file, writes per-epoch\n"
             "metrics to NAME.metrics.csv beside it and prints the final test accuracy.\n"
             "With --pages, also on the digit images digitflow run cuts from pages of MNIST\n"
             "training digits (digitflow synth --training-digits), and --set data.mnist_repeats=N\n"
             "draws each MNIST digit N times an epoch to keep its weight beside them; with\n"
             "--init, from a model's weights instead of random ones (config/train-pages.yaml:\n"
             "the shipped model's second stage).\n"
             "After each epoch a checkpoint is written beside the model (NAME.checkpoint; on the\n"
             "CPU backend) and removed when the training ends. Ctrl-C stops at the next batch,\n"
             "keeping the finished epochs there; --resume goes on from them. Exit status: 0 when\n"
             "trained, 130 when stopped, 1 on errors, 2 on usage mistakes.",
             options, nullptr, vm))
    return 0;

  std::vector<std::string> sets;
  if (vm.count("epochs")) sets.push_back("train.epochs=" + std::to_string(vm["epochs"].as<int>()));
  if (vm.count("negatives")) {
    if (vm["negatives"].as<int>() < 0) throw UsageError("--negatives must be 0 or more");
    sets.push_back("data.negatives=" + std::to_string(vm["negatives"].as<int>()));
  }
  if (vm.count("seed")) sets.push_back("train.seed=" + std::to_string(vm["seed"].as<uint64_t>()));
  if (vm.count("pages")) sets.push_back("data.pages=" + vm["pages"].as<std::string>());
  if (vm.count("threads")) {
    threads_option(vm, 0);  // refuses what no setting would take, naming --threads
    sets.push_back("runtime.threads=" + std::to_string(vm["threads"].as<int>()));
    sets.push_back("train.threads=" + std::to_string(vm["threads"].as<int>()));
  }
  config::Settings settings = load_settings(common, sets);
  if (!init.empty() && !model_yaml.empty()) throw UsageError("--init and --model: give one (--init brings its architecture)");
  std::optional<k::LoadedModel> start;
  if (!init.empty()) {
    if (!fs::exists(init)) throw UsageError("--init " + init + ": no such file");
    start.emplace(k::load_model(init));
  }
  fs::path spec_path = start ? fs::path(init) : resolve(model_yaml.empty() ? settings.model.spec : model_yaml);
  if (!start && !fs::exists(spec_path))
    throw UsageError((model_yaml.empty() ? "model.spec " : "--model ") + spec_path.string() +
                     ": no such file");
  k::ModelSpec spec = start ? start->network.spec() : config::load_model_spec(spec_path);
  const int negatives = settings.data.negatives;
  if (negatives > 0 && spec.classes != pipeline::kClassesWithNotDigit)
    throw std::runtime_error(spec_path.string() + ": the model has " + std::to_string(spec.classes) +
                             " classes, but data.negatives is " + std::to_string(negatives) +
                             ": negatives are class 10 (\"not a digit\"), so the model needs classes: 11 "
                             "and a last dense layer of 11 (or set data.negatives to 0)");
  if (negatives == 0 && spec.classes == pipeline::kClassesWithNotDigit)
    throw std::runtime_error(spec_path.string() + ": the model has 11 classes (10 = \"not a digit\") but "
                             "data.negatives is 0, so class 10 would get no training images; set "
                             "data.negatives (--negatives N; config/train.yaml uses 12000)");
  if (!settings.data.pages.empty() && negatives == 0)
    throw UsageError("data.pages needs data.negatives > 0 and an 11-class model: glued digits and print "
                     "cut from the pages are class 10");
  fs::path out_path = out.empty() ? fs::path("models") / (spec.name + ".safetensors") : fs::path(out);
  std::error_code same_error;
  if (start && fs::equivalent(out_path, init, same_error))
    throw UsageError("--init " + init + " would be overwritten by the model being trained (" + out_path.string() +
                     "): name another file with --out");
  fs::path csv_path = out_path;
  csv_path.replace_extension(".metrics.csv");
  fs::path checkpoint_path = out_path;
  checkpoint_path.replace_extension(".checkpoint");
  if (out_path.extension() == ".checkpoint")
    throw UsageError("--out " + out_path.string() + ": .checkpoint is the name of the checkpoint written beside the "
                     "model; name the model .safetensors");
  // What a save cut short left ("<checkpoint>.tmp-<pid>"): one training writes this path.
  {
    std::error_code ec;
    const std::string stem = checkpoint_path.filename().string() + ".tmp-";
    const fs::path folder = checkpoint_path.has_parent_path() ? checkpoint_path.parent_path() : fs::path(".");
    for (const fs::directory_entry& e : fs::directory_iterator(folder, ec))
      if (e.path().filename().string().rfind(stem, 0) == 0) fs::remove(e.path(), ec);
  }
  std::optional<k::LoadedCheckpoint> from;
  if (resume) {
    if (!fs::exists(checkpoint_path))
      throw UsageError("--resume: there is no checkpoint " + checkpoint_path.string() +
                       " (one is written after each finished epoch and removed when the training ends)");
    from.emplace(k::load_checkpoint(checkpoint_path));
  } else if (fs::exists(checkpoint_path)) {
    int done = 0;
    try {
      done = k::load_checkpoint(checkpoint_path).checkpoint.epochs_done();
    } catch (const k::ModelFileError&) {
    }
    throw UsageError(checkpoint_path.string() + " holds " +
                     (done > 0 ? std::to_string(done) + (done == 1 ? " epoch" : " epochs") : std::string("the epochs")) +
                     " of a training that did not finish: add --resume to go on with it (the same options), "
                     "or delete it to start again");
  }

  const k::TrainConfig& tc = settings.train;
  const k::Backend backend = start_backend(settings);
  if (from && backend != k::Backend::cpu)
    throw UsageError("--resume trains on the CPU only; add --backend cpu (the checkpoint was written by the CPU backend)");
  k::set_threads(tc.threads);
  // Cut from pages of training digits: digits as the page stages leave them, glued digits
  // and the pages' print as class 10. Before MNIST is read, so that a wrong folder is said soon.
  const k::LabelledImages cut =
      settings.data.pages.empty() ? k::LabelledImages{} : harvest_page_folders(resolve(settings.data.pages), "data.pages", settings);
  fs::path data = mnist_dir(settings, data_dir);
  k::LabelledImages train_set = k::load_mnist(data, k::MnistSplit::train);
  k::LabelledImages test_set = k::load_mnist(data, k::MnistSplit::test);
  if (vm.count("train-images")) {
    const int64_t n = vm["train-images"].as<int64_t>();
    if (n <= 0 || n > train_set.count)
      throw UsageError("--train-images must be between 1 and " + std::to_string(train_set.count));
    train_set.count = n;
    train_set.pixels.resize(static_cast<size_t>(n * train_set.rows * train_set.cols));
    train_set.labels.resize(static_cast<size_t>(n));
  }
  // Negatives are drawn the way the page pipeline draws digits; so that the drawing is no sign
  // of "not a digit", half the training digits are redrawn that way too (without them a trial
  // rejected 12.6% of redrawn test digits and 0% of MNIST's). Negatives are spread through
  // the set by a seeded shuffle (the validation split is drawn from the whole set); pairs and
  // slices come from training digits only. The held-out negatives are cut from test digits
  // with a fixed seed, as `digitflow eval` makes them.
  constexpr double kDigitsThroughPage = 0.5;
  k::LabelledImages held_out;
  int64_t page_images = 0;
  std::vector<bool> mnist_digit;  // per image of train_set
  if (negatives > 0) {
    k::LabelledImages generated = pipeline::make_negatives(negatives, tc.seed, &train_set);
    if (cut.count > 0) {  // spread through the set with the negatives
      page_images = cut.count;
      k::append_images(generated, cut);
    }
    train_set = pipeline::with_negatives(pipeline::digits_through_page(train_set, tc.seed, kDigitsThroughPage),
                                         generated, tc.seed, &mnist_digit);
    held_out = pipeline::make_negatives(pipeline::kHeldOutNegatives, pipeline::kHeldOutNegativesSeed, &test_set);
  }
  // data.mnist_repeats: each MNIST digit drawn that many times per epoch; the negatives and
  // the pieces cut from pages once.
  const int mnist_repeats = settings.data.mnist_repeats;
  std::vector<uint8_t> repeats;
  if (mnist_repeats > 1) {
    repeats.assign(static_cast<size_t>(train_set.count), 1);
    for (size_t i = 0; i < repeats.size(); ++i)
      if (mnist_digit.empty() || mnist_digit[i]) repeats[i] = static_cast<uint8_t>(mnist_repeats);
  }

  // What this run is, to be sure a checkpoint goes on with the same one (the thread count
  // may change: the run goes on, though its sums then round otherwise).
  nlohmann::json run_json = {{"train", k::to_json(tc)},
                             {"model", k::to_json(spec)},
                             {"images", train_set.count},
                             {"data", data_fingerprint(train_set)},
                             {"mnist_repeats", mnist_repeats}};
  run_json["train"].erase("threads");
  if (from) {
    // Sums are split by thread count: on another count the run goes on, but its weights come
    // out a little different from those the run left alone would have had.
    const nlohmann::json then_threads = from->run.value("threads", nlohmann::json());
    if (then_threads.is_number_integer() && then_threads.get<int>() != k::thread_count())
      std::cerr << "warning: " << checkpoint_path.string() << " was written on " << then_threads.get<int>()
                << " threads and this run has " << k::thread_count()
                << ": it goes on, but its weights will differ a little from an uninterrupted run's\n";
    from->run.erase("threads");
    const std::vector<std::string> differences = run_differences(from->run, run_json);
    if (!differences.empty()) {
      std::string list;
      for (size_t i = 0; i < differences.size() && i < 6; ++i) list += (i ? "; " : "") + differences[i];
      if (differences.size() > 6) list += "; ...";
      throw UsageError("--resume: " + checkpoint_path.string() + " was written by another training (" + list +
                       "): give the options it was started with, or delete it to start again");
    }
  }

  k::Network net = start ? std::move(start->network) : k::Network(spec, tc.seed);
  // The ranges int8 inference uses belong to the weights they were measured on: a model saved
  // before training ends (the best epoch so far) holds none, as one trained from scratch.
  net.set_int8_calibration({});
  std::cerr << "training " << spec.name << " (" << net.parameter_count() << " parameters, "
            << net.forward_macs() / 1000000.0 << "M multiply-adds per image) on "
            << train_set.count - tc.validation_images << " images";
  std::vector<std::string> notes;
  if (negatives > 0)
    notes.push_back(std::to_string(negatives) +
                    " of the set are generated negatives, half the digits redrawn as on a page" +
                    (page_images > 0 ? ", " + std::to_string(page_images) + " cut from pages" : std::string()));
  if (mnist_repeats > 1)
    notes.push_back("each MNIST digit drawn " + std::to_string(mnist_repeats) + " times an epoch");
  for (size_t i = 0; i < notes.size(); ++i) std::cerr << (i == 0 ? " (" : "; ") << notes[i];
  std::cerr << (notes.empty() ? "" : ")")
            << (start ? ", starting from " + init : std::string())
            << (from ? ", going on after epoch " + std::to_string(from->checkpoint.epochs_done()) + " (" +
                           checkpoint_path.string() + ")"
                     : std::string())
            << ", " << tc.validation_images << " held out; " << tc.epochs << " epochs, " << tc.optimizer << ", "
            << k::thread_count() << " threads\n";

  if (out_path.has_parent_path()) fs::create_directories(out_path.parent_path());
  std::ofstream csv(csv_path);
  if (!csv) throw std::runtime_error(csv_path.string() + ": cannot write");
  csv << "epoch,lr,train_loss,train_accuracy,val_loss,val_accuracy,seconds,images_per_s\n";

  ProgressLine progress;
  nlohmann::json history = nlohmann::json::array();
  auto record = [&](const k::EpochMetrics& m) {
    csv << m.epoch << ',' << m.lr << ',' << m.train_loss << ',' << m.train_accuracy << ','
        << m.val_loss << ',' << m.val_accuracy << ',' << m.seconds << ',' << m.images_per_s << '\n'
        << std::flush;
    history.push_back({{"epoch", m.epoch}, {"train_loss", m.train_loss},
                       {"train_accuracy", m.train_accuracy}, {"val_loss", m.val_loss},
                       {"val_accuracy", m.val_accuracy}, {"seconds", m.seconds}});
  };
  if (from)
    for (const k::EpochMetrics& m : from->checkpoint.done.epochs) record(m);
  k::TrainCallbacks callbacks;
  int64_t batches_per_epoch = 0;
  callbacks.on_batch = [&](const k::TrainProgress& p) {
    batches_per_epoch = p.batches;
    char line[200];
    std::snprintf(line, sizeof line,
                  "epoch %d/%d  %3.0f%%  %6.0f img/s  loss %.4f  acc %.2f%%  lr %.2e  ETA %s",
                  p.epoch, p.epochs, 100.0 * static_cast<double>(p.batch) / static_cast<double>(p.batches),
                  p.images_per_s, p.loss, 100 * p.accuracy, p.lr, format_duration(p.eta_s).c_str());
    progress.update(line);
  };
  callbacks.on_epoch = [&](const k::EpochMetrics& m, k::Network& current) {
    char line[220];
    std::snprintf(line, sizeof line,
                  "epoch %d/%d  %6.0f img/s  loss %.4f  train %.2f%%  val loss %.4f  val %.2f%%  %s%s",
                  m.epoch, tc.epochs, m.images_per_s, m.train_loss, 100 * m.train_accuracy,
                  m.val_loss, 100 * m.val_accuracy, format_duration(m.seconds).c_str(),
                  m.improved ? "  (best, saved)" : "");
    progress.update(line, true);
    progress.finish();
    record(m);
    if (m.improved)
      k::save_model(out_path, current, k::to_json(tc),
                    {{"best_epoch", m.epoch}, {"val_accuracy", m.val_accuracy}, {"history", history}});
  };
  nlohmann::json checkpoint_run = run_json;
  checkpoint_run["threads"] = k::thread_count();
  callbacks.on_checkpoint = [&](k::TrainCheckpoint&& checkpoint) {
    k::save_checkpoint(checkpoint_path, checkpoint, checkpoint_run);
  };
  callbacks.should_stop = [] { return CtrlC::requested(); };
  std::optional<CtrlC> ctrl_c(std::in_place);
  // A checkpoint of a run that had trained every epoch (cut short in its test or int8
  // ranges) trains no further: the best epoch is tested and saved.
  const k::TrainResult result =
      k::train(net, train_set, tc, callbacks, backend, repeats, from ? &from->checkpoint : nullptr);
  ctrl_c.reset();
  progress.finish();
  if (result.stopped) {
    const int finished = static_cast<int>(result.epochs.size());
    if (finished == 0) {
      std::printf("stopped in epoch 1 of %d, before any epoch finished: nothing was kept\n", tc.epochs);
    } else if (!fs::exists(checkpoint_path)) {  // a GPU backend writes none
      std::printf("stopped in epoch %d of %d. The best finished epoch (epoch %d, validation %.2f%%) is in %s; "
                  "on the %s backend no checkpoint is written, so this training cannot go on.\n",
                  finished + 1, tc.epochs, result.best_epoch, 100 * result.best_val_accuracy, out_path.c_str(),
                  k::to_string(backend).c_str());
    } else {
      const std::string kept = finished == 1 ? "Epoch 1 is" : "Epochs 1-" + std::to_string(finished) + " are";
      std::printf("stopped in epoch %d of %d. %s kept in %s, the best (epoch %d, validation %.2f%%) in %s.\n"
                  "The same command with --resume goes on from epoch %d.\n",
                  finished + 1, tc.epochs, kept.c_str(), checkpoint_path.c_str(), result.best_epoch,
                  100 * result.best_val_accuracy, out_path.c_str(), finished + 1);
    }
    return 130;
  }

  k::EvalResult test = k::evaluate(net, test_set, 500, backend);
  nlohmann::json metrics = {{"test_accuracy", test.accuracy},
                            {"test_loss", test.loss},
                            {"val_accuracy", result.best_val_accuracy},
                            {"best_epoch", result.best_epoch},
                            {"epochs_run", result.epochs.size()},
                            {"train_seconds", result.seconds},
                            {"threads", k::thread_count()},
                            {"mnist_repeats", mnist_repeats},
                            {"images_per_epoch", batches_per_epoch * tc.batch_size},
                            {"per_class", test.per_class},
                            {"confusion", test.confusion},
                            {"history", history}};
  if (negatives > 0) {
    const double negatives_rejected = pipeline::rejected_share(k::evaluate(net, held_out));
    const double digits_rejected = pipeline::rejected_share(test);
    const k::EvalResult page = k::evaluate(net, pipeline::digits_through_page(test_set, pipeline::kHeldOutNegativesSeed));
    metrics["negatives"] = negatives;
    metrics["held_out_negatives"] = held_out.count;
    metrics["negatives_rejected"] = negatives_rejected;
    metrics["digits_rejected"] = digits_rejected;
    metrics["page_digits_accuracy"] = page.accuracy;
    metrics["page_digits_rejected"] = pipeline::rejected_share(page);
    std::printf("not a digit: %.2f%% of %lld held-out negatives rejected; %.2f%% of the %lld test digits "
                "wrongly rejected (%.2f%% when redrawn as on a page, accuracy then %.2f%%)\n",
                100 * negatives_rejected, static_cast<long long>(held_out.count), 100 * digits_rejected,
                static_cast<long long>(test.count), 100 * pipeline::rejected_share(page), 100 * page.accuracy);
  }
  // The ranges int8 inference quantizes to (runtime.int8), over training images.
  net.set_int8_calibration(k::calibrate_int8(net, train_set, 12000));
  k::save_model(out_path, net, k::to_json(tc), metrics);
  std::error_code removed;
  fs::remove(checkpoint_path, removed);  // the training is done: nothing to go on with
  std::printf("test accuracy %.2f%% (%lld images), best epoch %d of %zu, %s; saved %s\n",
              100 * test.accuracy, static_cast<long long>(test.count), result.best_epoch,
              result.epochs.size(), format_duration(result.seconds).c_str(), out_path.c_str());
  return 0;
}

}  // namespace digitflow::cli

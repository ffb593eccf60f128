// digitflow serve: the web pages and JSON API (digitflow::web) plus in-process job workers
// on the configured store, until SIGINT or SIGTERM.
#include <csignal>
#include <cstdio>
#include <ctime>
#include <opencv2/core/utils/logger.hpp>
#include <thread>

#include "cli.hpp"
#include "commands.hpp"
#include "digitflow/kernels/parallel.hpp"
#include "digitflow/web/server.hpp"
#include "store_options.hpp"

namespace digitflow::cli {

namespace fs = std::filesystem;

namespace {

std::atomic<bool> stop_serving{false};
extern "C" void on_serve_signal(int) { stop_serving = true; }

std::string clock_text() {
  const std::time_t t = std::time(nullptr);
  std::tm local{};
  localtime_r(&t, &local);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S", &local);
  return text;
}

std::pair<std::string, int> split_listen(const std::string& listen) {
  const size_t colon = listen.rfind(':');
  try {
    if (colon != std::string::npos && colon > 0) {
      size_t end = 0;
      const std::string port_text = listen.substr(colon + 1);
      const int port = std::stoi(port_text, &end);
      if (end == port_text.size() && port >= 0 && port <= 65535) {
        std::string host = listen.substr(0, colon);
        if (host.size() > 2 && host.front() == '[' && host.back() == ']')
          host = host.substr(1, host.size() - 2);
        return {host, port};
      }
    }
  } catch (const std::exception&) {
  }
  throw UsageError("--listen " + listen +
                   ": expects HOST:PORT, e.g. 127.0.0.1:8080 (port 0: any free one)");
}

}  // namespace

int run_serve(int argc, char** argv) {
  CommonOptions common;
  StoreOptions store_options;
  std::string listen;
  int workers = -1;
  bool no_inbox = false;
  po::options_description options("Options");
  // clang-format off
  options.add_options()
      ("listen", po::value(&listen)->value_name("HOST:PORT"), "where to listen (default: web.listen, 127.0.0.1:8080)")
      ("workers", po::value(&workers)->value_name("N"), "job workers inside the server, 0 = none (default: web.workers, 1)")
      ("threads", po::value<int>()->value_name("N"), "threads for the page pipeline, 0 = every core (runtime.threads)")
      ("no-inbox", po::bool_switch(&no_inbox), "do not turn READY folders of STATE/inbox/<user>/ into jobs");
  // clang-format on
  add_store_options(options, store_options);
  add_config_options(options, common);
  po::variables_map vm;
  if (!parse(
          argc, argv,
          "digitflow serve [--listen HOST:PORT] [--workers N] [--state-dir DIR | --db URL]",
          "Serves the web pages and the JSON API (docs/api.md) over plain HTTP, and runs N job\n"
          "workers on the same store (the first also watches the drop folder STATE/inbox/).\n"
          "Accounts: register on /register (unless web.registration_open is false), or add\n"
          "one with digitflow user add. Ctrl-C or SIGTERM stops it; a job in progress goes back\n"
          "to the queue. For HTTPS, put a reverse proxy in front: it speaks only HTTP.",
          options, nullptr, vm))
    return 0;
  if (workers < -1 || workers > 256) throw UsageError("--workers expects 0..256");
  if (!listen.empty()) split_listen(listen);  // a mistake is named before the store is opened
  Opened o = open_jobs(common, store_options);
  const auto [host, port] = split_listen(listen.empty() ? o.settings.web.listen : listen);
  start_backend(o.settings);
  kernels::set_threads(threads_option(vm, o.settings.runtime.threads));
  cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_SILENT);

  web::ServerOptions s;
  s.store = o.location;
  s.state = o.state;
  s.web = o.settings.web;
  s.assets = o.settings.web.assets.empty() ? project_root() / "web" / "assets"
                                           : fs::path(resolve(o.settings.web.assets));
  s.templates = project_root() / "config" / "templates";
  s.model = fs::absolute(resolve(o.settings.model.default_model));
  s.mnist = mnist_dir(o.settings, "");
  s.run = run_options(o.settings);
  s.workers = workers >= 0 ? workers : o.settings.web.workers;
  s.worker = worker_options(o);
  s.worker.scan_inbox = !no_inbox;
  s.log = [](const std::string& line) {
    std::fprintf(stderr, "%s  %s\n", clock_text().c_str(), line.c_str());
  };
  o.store.reset();  // the server opens its own connections

  web::Server server(s);
  const int bound = server.bind(host, port);
  const bool v6 = host.find(':') != std::string::npos;
  std::printf("digitflow serve: listening on http://%s%s%s:%d/ (%d worker%s on %s)\n",
              v6 ? "[" : "", host.c_str(), v6 ? "]" : "", bound, s.workers,
              s.workers == 1 ? "" : "s", s.store.c_str());
  std::fflush(stdout);
  stop_serving = false;
  std::signal(SIGINT, on_serve_signal);
  std::signal(SIGTERM, on_serve_signal);
  std::atomic<bool> served{false};
  std::thread watcher([&server, &served] {
    while (!served) {  // stop() again until run() returns: a signal may come before it listens
      if (stop_serving) server.stop();
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  server.run();
  served = true;
  watcher.join();
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  std::fprintf(stderr, "%s  digitflow serve stopped\n", clock_text().c_str());
  return 0;
}

}  // namespace digitflow::cli

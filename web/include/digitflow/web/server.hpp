// digitflow serve: the JSON API of docs/api.md and the pages (web/assets) over cpp-httplib,
// plus in-process job workers on the same store. Authentication happens once per request,
// before routing (a session cookie with its CSRF token, or an API token); handlers are short
// and call into Service; every HttpError becomes {"error": "..."} with its status in one
// exception handler. HTTPS is left to a reverse proxy in front.
#pragma once

#include <atomic>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "digitflow/config/config.hpp"
#include "digitflow/jobs/submit.hpp"
#include "digitflow/jobs/worker.hpp"
#include "digitflow/pipeline/run.hpp"

namespace httplib {
class Server;
}

namespace digitflow::web {

struct ServerOptions {
  std::string store;                // as jobs::open_store takes it
  jobs::StateDir state;             // uploads, job outputs, samples
  config::WebSettings web;          // limits, sessions, registration
  std::filesystem::path assets;     // <page>.html, /static/ files, common-passwords.txt
  std::filesystem::path templates;  // form templates offered to uploads (*.yaml)
  std::filesystem::path model;      // model.default: used until a retrained version is the default
  std::filesystem::path mnist;      // MNIST IDX files, for retraining
  pipeline::RunOptions run;         // pipeline settings for recognize (int8 included)
  int workers = 0;                  // in-process job workers
  jobs::WorkerOptions worker;       // their settings (the first also scans the inbox); recognize
                                    // reads with its screen_model and partner_model too
  std::function<void(const std::string&)> log;  // one line per event; none = quiet
};

class Service;

class Server {
 public:
  // Opens the store, loads the model and the password list; throws naming what is missing.
  explicit Server(ServerOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds to host:port (port 0: any free port); returns the port. Throws when it cannot.
  int bind(const std::string& host, int port);
  // Starts the workers and serves until stop(); then stops the workers (a job in progress
  // goes back to the queue) and returns.
  void run();
  // From any thread; run() returns soon after.
  void stop();
  // Whether the server accepts connections (for tests waiting on a start).
  bool ready() const;

 private:
  void routes();
  ServerOptions options_;
  std::unique_ptr<Service> service_;
  std::unique_ptr<httplib::Server> http_;
  std::atomic<bool> stop_workers_{false};
  std::vector<std::thread> workers_;
};

}  // namespace digitflow::web

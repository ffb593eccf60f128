// The test PostgreSQL server. postgres is started directly as a child of a thread that
// lives as long as the test process, with a parent-death signal (SIGQUIT, what
// `pg_ctl stop -m immediate` sends), so a test process that crashes takes its server with
// it; a normal exit sends the same signal, waits, and removes the directory.
#include "postgres_server.hpp"

#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <future>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

namespace digitflow::testing {

namespace {

namespace fs = std::filesystem;

// Who the server's programs run as: the `postgres` user when we are root, else ourselves.
struct RunAs {
  bool switch_user = false;
  uid_t uid = 0;
  gid_t gid = 0;
};

// In a forked child, before exec: only async-signal-safe calls.
void become(const RunAs& as) {
  if (!as.switch_user) return;
  if (setgroups(0, nullptr) != 0 || setgid(as.gid) != 0 || setuid(as.uid) != 0) _exit(126);
}

// argv for execv, built before fork: the child of a threaded process must not allocate.
std::vector<char*> c_args(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  return argv;
}

[[noreturn]] void exec_or_die(const std::vector<char*>& argv) {
  execv(argv[0], argv.data());
  const char failed[] = "cannot execute ";
  (void)!write(2, failed, sizeof failed - 1);
  (void)!write(2, argv[0], strlen(argv[0]));
  (void)!write(2, "\n", 1);
  _exit(127);
}

struct Finished {
  int status = -1;  // exit status, or -1 when killed by a signal
  std::string output;  // stdout and stderr together
};

// Runs a program to completion and returns its exit status and output.
Finished run_program(const std::vector<std::string>& args, const RunAs& as) {
  const std::vector<char*> argv = c_args(args);
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error(std::string("pipe: ").append(std::strerror(errno)));
  const pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    throw std::runtime_error(std::string("fork: ").append(std::strerror(errno)));
  }
  if (pid == 0) {
    const int null = open("/dev/null", O_RDONLY);
    dup2(null, 0);
    dup2(fds[1], 1);
    dup2(fds[1], 2);
    become(as);
    exec_or_die(argv);
  }
  close(fds[1]);
  Finished done;
  char buffer[4096];
  for (;;) {
    const ssize_t n = read(fds[0], buffer, sizeof buffer);
    if (n > 0) {
      done.output.append(buffer, static_cast<size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      break;
    }
  }
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  done.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return done;
}

// Starts postgres in the background from a thread that never ends, so that the
// parent-death signal fires only when the whole test process goes.
pid_t start_postmaster(const std::vector<std::string>& args, const RunAs& as, const fs::path& log) {
  std::promise<pid_t> started;
  std::future<pid_t> pid = started.get_future();
  std::thread([args, as, log, started = std::move(started)]() mutable {
    const std::vector<char*> argv = c_args(args);
    const int out = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    const pid_t parent = getpid();
    const pid_t child = fork();
    if (child == 0) {
      const int null = open("/dev/null", O_RDONLY);
      dup2(null, 0);
      dup2(out, 1);
      dup2(out, 2);
      become(as);
      prctl(PR_SET_PDEATHSIG, SIGQUIT);  // after setuid, which clears it
      if (getppid() != parent) _exit(1);
      exec_or_die(argv);
    }
    if (out >= 0) close(out);
    started.set_value(child);
    for (;;) pause();
  }).detach();
  return pid.get();
}

// A port nobody listens on at the moment (the kernel's choice for an ephemeral bind).
int free_port() {
  const int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  int port = 0;
  if (s >= 0 && bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      getsockname(s, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
    port = ntohs(addr.sin_port);
  if (s >= 0) close(s);
  if (port == 0) throw std::runtime_error(std::string("cannot find a free port: ").append(std::strerror(errno)));
  return port;
}

// The newest /usr/lib/postgresql/<version>/bin with an initdb, or $DIGITFLOW_PG_BIN.
fs::path find_bin_dir() {
  if (const char* given = std::getenv("DIGITFLOW_PG_BIN")) return given;
  fs::path best;
  int best_version = -1;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/usr/lib/postgresql", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || !std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; }))
      continue;
    if (!fs::exists(entry.path() / "bin" / "initdb")) continue;
    const int version = std::stoi(name);
    if (version > best_version) {
      best_version = version;
      best = entry.path() / "bin";
    }
  }
  if (best.empty())
    throw std::runtime_error("no PostgreSQL server found under /usr/lib/postgresql/*/bin (scripts/deps.sh installs it)");
  return best;
}

// Who runs initdb and postgres: the `postgres` user when we are root, else ourselves.
RunAs server_user() {
  if (geteuid() != 0) return {};
  const passwd* pw = getpwnam("postgres");
  if (!pw)
    throw std::runtime_error(
        "running as root, and initdb refuses root, but there is no 'postgres' user to run it as"
        " (the Debian postgresql package creates it)");
  return {true, pw->pw_uid, pw->pw_gid};
}

std::string read_tail(const fs::path& file, size_t max) {
  std::ifstream in(file, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  std::string all = text.str();
  return all.size() > max ? all.substr(all.size() - max) : all;
}

}  // namespace

PostgresServer& PostgresServer::instance() {
  static PostgresServer server;
  return server;
}

PostgresServer::PostgresServer() {
  try {
    start();
  } catch (const std::exception& e) {
    failure_ = "the PostgreSQL test server did not start: ";
    failure_.append(e.what());
    const std::string log = log_tail();
    if (!log.empty()) failure_.append("\n--- server log (end) ---\n").append(log);
    stop();
  }
}

PostgresServer::~PostgresServer() { stop(); }

void PostgresServer::start() {
  bin_ = find_bin_dir();
  for (const char* program : {"initdb", "postgres", "pg_isready", "psql"})
    if (access((bin_ / program).c_str(), X_OK) != 0)
      throw std::runtime_error(std::string("no ").append(program).append(" to run in ").append(bin_.string()));
  std::string pattern = (fs::temp_directory_path() / "digitflow-pg-XXXXXX").string();
  if (!mkdtemp(pattern.data()))
    throw std::runtime_error(std::string("cannot create a temporary directory: ").append(std::strerror(errno)));
  dir_ = pattern;

  const RunAs as = server_user();
  if (as.switch_user && chown(dir_.c_str(), as.uid, as.gid) != 0)
    throw std::runtime_error(std::string("chown ").append(dir_.string()).append(": ").append(std::strerror(errno)));

  const Finished init = run_program({(bin_ / "initdb").string(), "-D", (dir_ / "data").string(), "-U", "postgres",
                                     "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"},
                                    as);
  {
    std::ofstream(dir_ / "initdb.log") << init.output;
  }
  if (init.status != 0) {
    std::string message = "initdb failed (status ";
    message.append(std::to_string(init.status)).append("):\n").append(init.output);
    throw std::runtime_error(message);
  }

  // A port can be taken between choosing it and binding it: try a few.
  for (int attempt = 0; attempt < 3; ++attempt) {
    port_ = free_port();
    if (launch()) return;
  }
  throw std::runtime_error("postgres exited at start three times");
}

bool PostgresServer::launch() {
  postmaster_ = start_postmaster({(bin_ / "postgres").string(), "-D", (dir_ / "data").string(), "-p",
                                  std::to_string(port_), "-c", "listen_addresses=127.0.0.1", "-c",
                                  std::string("unix_socket_directories=").append(dir_.string()), "-c", "fsync=off",
                                  "-c", "full_page_writes=off", "-c", "max_connections=200"},
                                 server_user(), dir_ / "server.log");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (waitpid(postmaster_, &status, WNOHANG) == postmaster_) {
      postmaster_ = -1;
      return false;
    }
    const Finished ready = run_program(
        {(bin_ / "pg_isready").string(), "-q", "-h", "127.0.0.1", "-p", std::to_string(port_), "-t", "1"}, {});
    if (ready.status == 0) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  throw std::runtime_error("postgres did not accept connections within 60 s");
}

void PostgresServer::kill_postmaster() {
  if (postmaster_ <= 0) return;
  kill(postmaster_, SIGQUIT);  // an immediate shutdown, like pg_ctl stop -m immediate
  int status = 0;
  while (waitpid(postmaster_, &status, 0) < 0 && errno == EINTR) {
  }
  postmaster_ = -1;
}

void PostgresServer::restart() {
  check_started();
  kill_postmaster();
  try {
    if (launch()) return;
    failure_ = "the PostgreSQL test server did not start again on its port";
  } catch (const std::exception& e) {
    failure_ = std::string("the PostgreSQL test server did not start again: ").append(e.what());
  }
  failure_.append("\n--- server log (end) ---\n").append(log_tail());
  check_started();
}

void PostgresServer::stop() {
  kill_postmaster();
  if (!dir_.empty()) {
    std::error_code ec;
    fs::remove_all(dir_, ec);
    dir_.clear();
  }
}

std::string PostgresServer::log_tail() const {
  if (dir_.empty()) return {};
  std::string out = read_tail(dir_ / "server.log", 4000);
  if (out.empty()) out = read_tail(dir_ / "initdb.log", 4000);
  return out;
}

void PostgresServer::check_started() const {
  if (!failure_.empty()) throw std::runtime_error(failure_);
}

std::string PostgresServer::psql(const std::string& database, const std::string& sql) {
  check_started();
  const Finished done = run_program({(bin_ / "psql").string(), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h",
                                     "127.0.0.1", "-p", std::to_string(port_), "-U", "postgres", "-d",
                                     database.empty() ? "postgres" : database, "-c", sql},
                                    {});
  if (done.status != 0) {
    std::string message = "psql failed on '";
    message.append(sql).append("': ").append(done.output);
    message.append("\n--- server log (end) ---\n").append(log_tail());
    throw std::runtime_error(message);
  }
  std::string out = done.output;
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

std::string PostgresServer::fresh_database() {
  check_started();
  std::string name = "digitflow_";
  {
    std::lock_guard lock(mutex_);
    name.append(std::to_string(getpid())).append("_").append(std::to_string(++databases_));
  }
  psql("", std::string("CREATE DATABASE ").append(name).append(" STRATEGY FILE_COPY"));
  std::string url = "postgres://postgres@127.0.0.1:";
  url.append(std::to_string(port_)).append("/").append(name);
  return url;
}

}  // namespace digitflow::testing

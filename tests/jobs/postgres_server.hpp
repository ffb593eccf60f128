// A throwaway PostgreSQL server for the job-store tests: started on first use, once per
// test process (initdb in a fresh temporary directory, postgres on a free port on
// 127.0.0.1, fsync off), stopped immediately and removed at exit. As root it runs as the
// `postgres` system user, since initdb and postgres refuse root. When it cannot start,
// every call throws with the server's log, so a test that needs it fails, never skips.
#pragma once

#include <filesystem>
#include <mutex>
#include <string>
#include <sys/types.h>

namespace digitflow::testing {

class PostgresServer {
 public:
  // The process's server, started on the first call.
  static PostgresServer& instance();

  // Creates a new empty database and returns its URL, postgres://postgres@127.0.0.1:PORT/NAME.
  // Throws std::runtime_error, with the server's log, when the server did not start.
  std::string fresh_database();

  // Runs SQL with psql as the superuser on `database` ("" = the maintenance database) and
  // returns what it printed (unaligned, tuples only). Throws std::runtime_error with
  // psql's output when the statement fails.
  std::string psql(const std::string& database, const std::string& sql);

  // Stops the server at once, as a crash would, and starts it again on the same port and
  // data; returns when it accepts connections. Every open connection to it breaks.
  void restart();

  int port() const { return port_; }
  // The last lines of the server's log, for failure messages.
  std::string log_tail() const;

  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;

 private:
  PostgresServer();
  ~PostgresServer();
  void start();
  bool launch();  // starts postgres on port_; false when it exited before accepting connections
  void kill_postmaster();
  void stop();
  void check_started() const;

  std::filesystem::path dir_;  // temporary: data/, socket dir, logs
  std::filesystem::path bin_;  // /usr/lib/postgresql/<version>/bin
  int port_ = 0;
  pid_t postmaster_ = -1;
  std::string failure_;  // why the server did not start, with its log; empty when it did
  std::mutex mutex_;
  int databases_ = 0;
};

}  // namespace digitflow::testing

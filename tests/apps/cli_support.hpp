// Running the digitflow binary from the apps tests: its exit status and everything it
// printed, from the source folder (where config/digitflow.yaml is).
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <string>

namespace digitflow::testing {

struct CommandResult {
  int status;          // exit status, -1 when killed by a signal
  std::string output;  // stdout and stderr
};

// The shell command that runs the binary from the source folder (exec'd: a signal sent to
// the shell's pid reaches the binary).
inline std::string digitflow_command(const std::string& args) {
  std::string command = "cd '";
  command += DIGITFLOW_SOURCE_DIR;
  command += "' && exec '";
  command += DIGITFLOW_BINARY;
  command += "' ";
  command += args;
  return command;
}

inline CommandResult run_digitflow(const std::string& args) {
  const std::string command = digitflow_command(args) + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) out.append(buf.data(), n);
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

// Starts the binary in the background, as run_digitflow would run it, its output to `log`;
// returns its pid (signals reach the binary itself, not a shell).
inline pid_t start_digitflow(const std::string& args, const std::filesystem::path& log) {
  const pid_t pid = fork();
  if (pid == 0) {
    const std::string command = digitflow_command(args) + " > '" + log.string() + "' 2>&1";
    execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  return pid;
}

// 'path' for the shell (built by appending: GCC 12 warns falsely on "'" + std::string).
inline std::string quoted(const std::filesystem::path& path) {
  std::string out = "'";
  out += path.string();
  out += "'";
  return out;
}

}  // namespace digitflow::testing

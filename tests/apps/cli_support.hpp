// Running the digitflow binary from the apps tests: its exit status and everything it
// printed, from the source folder (where config/digitflow.yaml is).
#pragma once

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <string>

namespace digitflow::testing {

struct CommandResult {
  int status;          // exit status, -1 when killed by a signal
  std::string output;  // stdout and stderr
};

inline CommandResult run_digitflow(const std::string& args) {
  std::string command = "cd '";
  command += DIGITFLOW_SOURCE_DIR;
  command += "' && '";
  command += DIGITFLOW_BINARY;
  command += "' ";
  command += args;
  command += " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) out.append(buf.data(), n);
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

// 'path' for the shell (built by appending: GCC 12 warns falsely on "'" + std::string).
inline std::string quoted(const std::filesystem::path& path) {
  std::string out = "'";
  out += path.string();
  out += "'";
  return out;
}

}  // namespace digitflow::testing

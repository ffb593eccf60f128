// digitflow serve from the shell: it prints the URL it listens on, answers HTTP there, and
// stops cleanly (exit 0) on SIGTERM; a bad --listen is a usage error.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <regex>
#include <thread>

#include "cli_support.hpp"
#include "test_support.hpp"

namespace digitflow::testing {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::string read_file(const fs::path& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), {}};
}

// The status line of GET `path` on 127.0.0.1:port, over a plain socket.
std::string status_line(int port, const std::string& path) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string answer;
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0) {
    std::string request = "GET ";
    request.append(path).append(" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    if (write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size())) {
      char buf[4096];
      for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;)
        answer.append(buf, static_cast<size_t>(n));
    }
  }
  close(fd);
  return answer.substr(0, answer.find("\r\n"));
}

TEST(ServeCli, PrintsItsUrlAnswersAndStopsOnSigterm) {
  TempDir dir;
  const fs::path out = dir / "out.txt", err = dir / "err.txt";
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (chdir(DIGITFLOW_SOURCE_DIR) != 0) _exit(127);
    const std::string state = (dir / "state").string();
    if (!freopen(out.c_str(), "w", stdout) || !freopen(err.c_str(), "w", stderr)) _exit(126);
    execl(DIGITFLOW_BINARY, DIGITFLOW_BINARY, "serve", "--listen", "127.0.0.1:0", "--workers", "1",
          "--state-dir", state.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  int port = 0;
  const std::regex url(R"(listening on http://127\.0\.0\.1:(\d+)/)");
  for (const auto deadline = Clock::now() + std::chrono::seconds(30);
       port == 0 && Clock::now() < deadline;) {
    std::smatch m;
    const std::string text = read_file(out);
    if (std::regex_search(text, m, url)) port = std::stoi(m[1]);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_GT(port, 0) << read_file(out) << read_file(err);
  EXPECT_EQ(status_line(port, "/login"), "HTTP/1.1 200 OK");
  EXPECT_EQ(status_line(port, "/api/v1/me"), "HTTP/1.1 401 Unauthorized");
  EXPECT_EQ(status_line(port, "/jobs"), "HTTP/1.1 302 Found");

  kill(pid, SIGTERM);
  int status = -1;
  for (const auto deadline = Clock::now() + std::chrono::seconds(20); Clock::now() < deadline;) {
    if (waitpid(pid, &status, WNOHANG) == pid) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (!WIFEXITED(status)) kill(pid, SIGKILL);
  ASSERT_TRUE(WIFEXITED(status)) << "serve did not stop on SIGTERM";
  EXPECT_EQ(WEXITSTATUS(status), 0) << read_file(err);
  EXPECT_NE(read_file(err).find("digitflow serve stopped"), std::string::npos) << read_file(err);
}

TEST(ServeCli, HelpAndUsageMistakes) {
  CommandResult r = run_digitflow("serve --help");
  EXPECT_EQ(r.status, 0);
  for (const std::string word : {"--listen", "--workers", "--state-dir", "--db", "reverse proxy"})
    EXPECT_NE(r.output.find(word), std::string::npos) << word << "\n" << r.output;
  r = run_digitflow("serve --listen nowhere");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("HOST:PORT"), std::string::npos) << r.output;
  r = run_digitflow("--help");
  EXPECT_NE(r.output.find("serve"), std::string::npos);
}

}  // namespace
}  // namespace digitflow::testing

// A digitflow server on a free loopback port for each test, on an SQLite store in a temporary
// directory: started on a thread, waited for until it accepts connections, stopped and
// joined in teardown. Clients talk to it over real HTTP with httplib::Client.
#pragma once

#include <gtest/gtest.h>
#include <httplib.h>

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "digitflow/web/server.hpp"
#include "test_support.hpp"

namespace digitflow::web::testing {

namespace fs = std::filesystem;
using nlohmann::json;

// A logged-in browser: its cookie and CSRF token.
struct Browser {
  std::string cookie, csrf;
  json user;
};

class WebTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  // Starts the server; `adjust` changes the options first (a test that needs other limits
  // calls stop() then start() again).
  void start(const std::function<void(ServerOptions&)>& adjust = {});
  void stop();

  httplib::Client client() const;
  httplib::Headers with(const Browser& b, bool csrf = true) const;
  static httplib::Headers bearer(const std::string& token);

  // POST with a JSON body; the answer or fails the test when there is none.
  httplib::Result post(const std::string& path, const json& body,
                       const httplib::Headers& headers = {});
  httplib::Result get(const std::string& path, const httplib::Headers& headers = {});
  Browser register_user(const std::string& name,
                        const std::string& password = "violet-harbour-lantern");
  Browser login(const std::string& name, const std::string& password = "violet-harbour-lantern");
  std::string api_token(const std::string& name,
                        const std::string& password = "violet-harbour-lantern");
  void make_admin(const std::string& name);
  // Pages of synthetic checks (MNIST digits); empty when MNIST is missing.
  fs::path synthetic_pages(int count);

  digitflow::testing::TempDir dir_;
  ServerOptions options_;
  std::unique_ptr<Server> server_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace digitflow::web::testing

// The server fixture of the web tests.
#include "web_fixture.hpp"

#include <chrono>

#include "digitflow/jobs/store.hpp"
#include "digitflow/pipeline/synth.hpp"

namespace digitflow::web::testing {

namespace t = digitflow::testing;

void WebTest::SetUp() {
  options_.state.root = dir_ / "state";
  options_.store = options_.state.sqlite_file().string();
  options_.assets = t::source_dir() / "web" / "assets";
  options_.templates = t::source_dir() / "config" / "templates";
  options_.model = t::source_dir() / "models" / "digits.safetensors";
  options_.mnist = t::mnist_dir();
  options_.web.argon2_ops = 1;  // the cheapest Argon2id libsodium allows: tests hash many passwords
  options_.web.argon2_memory_mb = 8;
  options_.web.max_file_mb = 1;
  options_.web.max_job_mb = 3;
  options_.web.max_files = 5;
  options_.workers = 1;
  options_.worker.default_model = options_.model;
  options_.worker.run.overlays = true;
  options_.worker.lease_ms = 5'000;
  options_.worker.heartbeat_ms = 100;
  options_.worker.poll_ms = 50;
  options_.worker.scan_inbox = true;
  start();
}

void WebTest::TearDown() { stop(); }

void WebTest::start(const std::function<void(ServerOptions&)>& adjust) {
  if (adjust) adjust(options_);
  server_ = std::make_unique<Server>(options_);
  port_ = server_->bind("127.0.0.1", 0);
  thread_ = std::thread([this] { server_->run(); });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!server_->ready() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_TRUE(server_->ready()) << "the server did not start";
}

void WebTest::stop() {
  if (!server_) return;
  server_->stop();
  if (thread_.joinable()) thread_.join();
  server_.reset();
}

httplib::Client WebTest::client() const {
  httplib::Client c("127.0.0.1", port_);
  c.set_read_timeout(60, 0);
  return c;
}

httplib::Headers WebTest::with(const Browser& b, bool csrf) const {
  httplib::Headers h{{"Cookie", "digitflow_session=" + b.cookie}};
  if (csrf) h.emplace("X-CSRF-Token", b.csrf);
  return h;
}

httplib::Headers WebTest::bearer(const std::string& token) {
  return {{"Authorization", "Bearer " + token}};
}

httplib::Result WebTest::post(const std::string& path, const json& body,
                              const httplib::Headers& headers) {
  auto r = client().Post(path, headers, body.dump(), "application/json");
  EXPECT_TRUE(r) << "POST " << path << ": no answer";
  return r;
}

httplib::Result WebTest::get(const std::string& path, const httplib::Headers& headers) {
  auto r = client().Get(path, headers);
  EXPECT_TRUE(r) << "GET " << path << ": no answer";
  return r;
}

namespace {
Browser browser_from(const httplib::Result& r) {
  Browser b;
  const std::string cookie = r->get_header_value("Set-Cookie");
  const size_t eq = cookie.find('='), semi = cookie.find(';');
  b.cookie = cookie.substr(eq + 1, semi - eq - 1);
  const json body = json::parse(r->body);
  b.csrf = body.value("csrf", "");
  b.user = body["user"];
  return b;
}
}  // namespace

Browser WebTest::register_user(const std::string& name, const std::string& password) {
  auto r = post("/api/v1/register",
                {{"username", name}, {"email", name + "@example.org"}, {"password", password}});
  EXPECT_EQ(r->status, 201) << r->body;
  return browser_from(r);
}

Browser WebTest::login(const std::string& name, const std::string& password) {
  auto r = post("/api/v1/login", {{"username", name}, {"password", password}});
  EXPECT_EQ(r->status, 200) << r->body;
  return browser_from(r);
}

std::string WebTest::api_token(const std::string& name, const std::string& password) {
  auto r =
      post("/api/v1/login",
           {{"username", name}, {"password", password}, {"token", true}, {"token_name", "cli"}});
  EXPECT_EQ(r->status, 200) << r->body;
  return json::parse(r->body).value("token", "");
}

void WebTest::make_admin(const std::string& name) {
  auto store = jobs::open_store(options_.store);
  jobs::User u = *store->user_by_name(name);
  u.role = "admin";
  store->update_user(u);
}

fs::path WebTest::synthetic_pages(int count) {
  if (!t::mnist_available()) return {};
  pipeline::SynthOptions synth;
  synth.out = dir_ / ("synth-" + std::to_string(count));
  synth.pages = count;
  synth.seed = 3;
  synth.kind = "checks";
  synth.jpeg_share = 0;
  synth.mnist_dir = t::mnist_dir();
  pipeline::make_synthetic_job(synth);
  fs::remove(synth.out / "truth.jsonl");
  fs::remove(synth.out / "template.yaml");
  return synth.out;
}

}  // namespace digitflow::web::testing

// Accounts over HTTP: registration rules, login and sessions, CSRF, throttling, tokens,
// password changes, admin routes, and the headers every answer carries.
#include "digitflow/jobs/store.hpp"
#include "digitflow/web/accounts.hpp"
#include "digitflow/web/errors.hpp"
#include "web_fixture.hpp"

namespace digitflow::web::testing {
namespace {

TEST_F(WebTest, EveryAnswerCarriesTheSecurityHeaders) {
  const Browser ana = register_user("ana");
  for (const auto& [path, headers] :
       std::vector<std::pair<std::string, httplib::Headers>>{{"/login", {}},
                                                             {"/api/v1/me", {}},
                                                             {"/api/v1/me", with(ana)},
                                                             {"/static/app.css", {}},
                                                             {"/no-such", {}},
                                                             {"/jobs", {}},
                                                             {"/jobs", with(ana)}}) {
    auto r = get(path, headers);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->get_header_value("Content-Security-Policy"),
              "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src "
              "'self'; connect-src 'self'; "
              "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
        << path;
    EXPECT_EQ(r->get_header_value("X-Content-Type-Options"), "nosniff") << path;
    EXPECT_EQ(r->get_header_value("Referrer-Policy"), "same-origin") << path;
    if (path != "/static/app.css" && path != "/no-such") {
      EXPECT_EQ(r->get_header_value("Cache-Control"), "no-store") << path;
    }
  }
}

TEST_F(WebTest, PagesNeedASessionExceptLoginAndRegister) {
  auto r = get("/jobs");
  EXPECT_EQ(r->status, 302);
  EXPECT_EQ(r->get_header_value("Location"), "/login");
  EXPECT_EQ(get("/jobs/3")->status, 302);
  EXPECT_EQ(get("/admin")->status, 302);
  r = get("/login");
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Type"), "text/html; charset=utf-8");
  EXPECT_EQ(get("/register")->status, 200);
  const Browser ana = register_user("ana");
  for (const std::string page :
       {"/jobs", "/submit", "/jobs/1", "/review", "/model", "/pad", "/account", "/admin"})
    EXPECT_EQ(get(page, with(ana, false))->status, 200) << page;
  EXPECT_EQ(get("/", with(ana, false))->get_header_value("Location"), "/jobs");
}

TEST_F(WebTest, MeGivesTheConfidenceBelowWhichStringsAreCountedForChecking) {
  stop();
  start([](ServerOptions& o) { o.worker.run.low_confidence = 0.8; });
  const Browser ana = register_user("ana");
  auto r = get("/api/v1/me", with(ana));
  ASSERT_EQ(r->status, 200);
  EXPECT_DOUBLE_EQ(json::parse(r->body)["low_confidence"].get<double>(), 0.8);
  EXPECT_EQ(json::parse(r->body)["user"]["name"], "ana");
}

TEST_F(WebTest, AnAddressThatIsNoPageShowsABrowserAPageSayingSo) {
  for (const std::string path : {"/jobs/abc", "/no/such/page"}) {
    auto r = get(path, {{"Accept", "text/html,application/xhtml+xml,*/*;q=0.8"}});
    EXPECT_EQ(r->status, 404) << path;
    EXPECT_EQ(r->get_header_value("Content-Type"), "text/html; charset=utf-8") << path;
    EXPECT_NE(r->body.find("<h1>No such page</h1>"), std::string::npos) << r->body;
    EXPECT_NE(r->body.find("href=\"/jobs\""), std::string::npos) << r->body;
  }
  // A program, and any address under /api/, still gets the JSON error.
  auto r = get("/no/such/page");
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(json::parse(r->body)["error"], "no such route: GET /no/such/page");
  httplib::Headers html = with(register_user("ana"), false);
  html.emplace("Accept", "text/html");
  r = get("/api/v1/nothing", html);
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(json::parse(r->body)["error"], "no such route: GET /api/v1/nothing");
}

TEST_F(WebTest, AMissingPageIs404NamingIt) {
  stop();
  fs::create_directories(dir_ / "assets");
  fs::copy_file(options_.assets / "common-passwords.txt", dir_ / "assets" / "common-passwords.txt");
  start([&](ServerOptions& o) { o.assets = dir_ / "assets"; });
  auto r = get("/login");
  EXPECT_EQ(r->status, 404);
  EXPECT_NE(r->body.find("login.html"), std::string::npos) << r->body;
}

TEST_F(WebTest, RegisterLogsInWithAStrictCookieAndLogoutEndsTheSession) {
  auto r = post(
      "/api/v1/register",
      {{"username", "ana"}, {"email", "ana@example.org"}, {"password", "violet-harbour-lantern"}});
  ASSERT_EQ(r->status, 201) << r->body;
  const std::string cookie = r->get_header_value("Set-Cookie");
  EXPECT_NE(cookie.find("HttpOnly"), std::string::npos) << cookie;
  EXPECT_NE(cookie.find("SameSite=Strict"), std::string::npos) << cookie;
  EXPECT_NE(cookie.find("Path=/"), std::string::npos) << cookie;
  const json body = json::parse(r->body);
  EXPECT_EQ(body["user"]["name"], "ana");
  EXPECT_EQ(body["user"]["role"], "user");
  EXPECT_EQ(body["csrf"].get<std::string>().size(), 64u);

  EXPECT_EQ(cookie.find("Secure"), std::string::npos) << cookie;  // plain HTTP
  r = client().Post("/api/v1/login", {{"X-Forwarded-Proto", "https"}},
                    R"({"username": "ana", "password": "violet-harbour-lantern"})",
                    "application/json");
  EXPECT_NE(r->get_header_value("Set-Cookie").find("; Secure"), std::string::npos);  // behind TLS

  const Browser first = login("ana");
  const Browser second = login("ana");
  EXPECT_NE(first.cookie, second.cookie);  // a new token at each login
  EXPECT_EQ(first.cookie.size(), 64u);     // 256 bits
  r = get("/api/v1/me", with(first));
  ASSERT_EQ(r->status, 200);
  EXPECT_EQ(json::parse(r->body)["csrf"], first.csrf);

  EXPECT_EQ(post("/api/v1/logout", json::object(), with(first, false))->status, 403);
  EXPECT_EQ(post("/api/v1/logout", json::object(), with(first))->status, 204);
  EXPECT_EQ(get("/api/v1/me", with(first))->status, 401);
  EXPECT_EQ(get("/api/v1/me", with(second))->status, 200);
  EXPECT_EQ(
      post("/api/v1/login", {{"username", "ana"}, {"password", "wrong-password-here"}})->status,
      401);
}

TEST_F(WebTest, WeakCommonAndBadRegistrationsAreRefused) {
  auto refused = [&](const json& body, int status, const std::string& says) {
    auto r = post("/api/v1/register", body);
    EXPECT_EQ(r->status, status) << body.dump() << " -> " << r->body;
    EXPECT_NE(r->body.find(says), std::string::npos) << r->body;
  };
  const json ok = {
      {"username", "ana"}, {"email", "ana@example.org"}, {"password", "violet-harbour-lantern"}};
  json j = ok;
  j["password"] = "short1!";
  refused(j, 400, "at least 10");
  for (const std::string common :
       {"password123", "qwertyuiop", "Password1234", "1234567890", "iloveyou123"}) {
    j["password"] = common;
    refused(j, 400, "common");
  }
  j = ok;
  j["password"] = "ana-is-my-name-2024";
  refused(j, 400, "user name");
  j = ok;
  j["username"] = "../ana";
  refused(j, 400, "user name");
  j = ok;
  j["email"] = "not an address";
  refused(j, 400, "e-mail");
  j = ok;
  j.erase("password");
  refused(j, 400, "password");
  EXPECT_EQ(post("/api/v1/register", ok)->status, 201);
  refused(ok, 409, "taken");
}

TEST_F(WebTest, ClosedRegistrationIsRefused) {
  stop();
  start([](ServerOptions& o) { o.web.registration_open = false; });
  auto r = post(
      "/api/v1/register",
      {{"username", "ana"}, {"email", "ana@example.org"}, {"password", "violet-harbour-lantern"}});
  EXPECT_EQ(r->status, 403);
  EXPECT_NE(r->body.find("closed"), std::string::npos) << r->body;
}

TEST_F(WebTest, MalformedJsonIs400) {
  register_user("ana");
  const Browser ana = login("ana");
  for (const std::string path : {"/api/v1/login", "/api/v1/register", "/api/v1/password",
                                 "/api/v1/tokens", "/api/v1/review"}) {
    auto r = client().Post(path, with(ana), "{\"username\": ", "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400) << path << " " << r->body;
    EXPECT_NE(r->body.find("malformed JSON"), std::string::npos) << r->body;
    r = client().Post(path, with(ana), "[1, 2]", "application/json");
    EXPECT_EQ(r->status, 400) << path << " " << r->body;
    EXPECT_TRUE(json::parse(r->body).contains("error"));
  }
  // A body that is not an upload is small.
  auto r = client().Post("/api/v1/login", std::string(100 * 1024, ' ') + "{}", "application/json");
  EXPECT_EQ(r->status, 413) << r->body;
  // JSON sent as a form would send it (a cross-site form posting a login) is refused.
  r = client().Post("/api/v1/login", R"({"username": "ana", "password": "violet-harbour-lantern"})",
                    "text/plain");
  EXPECT_EQ(r->status, 400) << r->body;
  EXPECT_NE(r->body.find("application/json"), std::string::npos) << r->body;
  EXPECT_TRUE(r->get_header_value("Set-Cookie").empty());
}

TEST_F(WebTest, MissingAuthIs401AndABadTokenToo) {
  for (const std::string path :
       {"/api/v1/me", "/api/v1/jobs", "/api/v1/jobs/1", "/api/v1/tokens", "/api/v1/review",
        "/api/v1/model", "/api/v1/templates", "/api/v1/users"}) {
    auto r = get(path);
    EXPECT_EQ(r->status, 401) << path;
    EXPECT_TRUE(json::parse(r->body).contains("error")) << r->body;
  }
  EXPECT_EQ(post("/api/v1/logout", json::object())->status, 401);
  EXPECT_EQ(post("/api/v1/jobs/1/cancel", json::object())->status, 401);
  EXPECT_EQ(get("/api/v1/me", bearer("dft_not-a-token"))->status, 401);
  EXPECT_EQ(get("/api/v1/me", {{"Cookie", "digitflow_session=0123"}})->status, 401);
}

TEST_F(WebTest, StateChangesWithACookieNeedTheCsrfToken) {
  const Browser ana = register_user("ana");
  auto r = post("/api/v1/tokens", {{"name", "laptop"}}, with(ana, false));
  EXPECT_EQ(r->status, 403);
  EXPECT_NE(r->body.find("X-CSRF-Token"), std::string::npos);
  httplib::Headers wrong = with(ana, false);
  wrong.emplace("X-CSRF-Token", std::string(64, 'a'));
  EXPECT_EQ(post("/api/v1/tokens", {{"name", "laptop"}}, wrong)->status, 403);
  EXPECT_EQ(client().Delete("/api/v1/tokens/1", with(ana, false))->status, 403);
  EXPECT_EQ(post("/api/v1/tokens", {{"name", "laptop"}}, with(ana))->status, 201);
  // GET needs none; a bearer token needs none.
  EXPECT_EQ(get("/api/v1/tokens", with(ana, false))->status, 200);
  const std::string token = api_token("ana");
  EXPECT_EQ(post("/api/v1/tokens", {{"name", "ci"}}, bearer(token))->status, 201);
}

TEST_F(WebTest, RepeatedFailedLoginsAreThrottledPerAccountAndPerAddress) {
  register_user("ana");
  for (int i = 0; i < LoginThrottle::kMaxFailures; ++i)
    EXPECT_EQ(
        post("/api/v1/login", {{"username", "ana"}, {"password", "not-the-password"}})->status,
        401);
  auto r = post("/api/v1/login", {{"username", "ana"}, {"password", "violet-harbour-lantern"}});
  EXPECT_EQ(r->status, 429) << r->body;
  const int retry = std::stoi(r->get_header_value("Retry-After"));
  EXPECT_GT(retry, 0);
  EXPECT_LE(retry, 15 * 60);

  // Per address, whatever the name: the loopback address has five failures already.
  r = post("/api/v1/login", {{"username", "someone-else"}, {"password", "whatever-it-is"}});
  EXPECT_EQ(r->status, 429);

  LoginThrottle throttle;  // the same rule, with a clock
  for (int i = 0; i < 5; ++i) throttle.failed("bob", "10.0.0." + std::to_string(i), 1000 * i);
  EXPECT_EQ(throttle.retry_after_s("bob", "10.0.0.9", 5000),
            15 * 60 - 5);  // until the first is 15 min old
  EXPECT_EQ(throttle.retry_after_s("BOB", "10.0.0.9", 5000), 15 * 60 - 5);
  EXPECT_EQ(throttle.retry_after_s("carol", "10.0.0.9", 5000), 0);
  EXPECT_EQ(throttle.retry_after_s("bob", "10.0.0.9", LoginThrottle::kWindowMs + 1),
            0);  // the first aged out
  throttle.succeeded("bob");
  EXPECT_EQ(throttle.retry_after_s("bob", "10.0.0.9", 5000), 0);
}

TEST_F(WebTest, AnExpiredSessionAndADisabledUsersTokenAreRefused) {
  const Browser ana = register_user("ana");
  const std::string token = api_token("ana");
  {
    auto store = jobs::open_store(options_.store);
    jobs::Session old = *store->session(sha256_hex(ana.cookie));
    old.expires_ms = jobs::now_ms() - 1;
    store->delete_session(old.token_hash);
    store->add_session(old);
  }
  auto r = get("/api/v1/me", with(ana));
  EXPECT_EQ(r->status, 401);
  EXPECT_NE(r->body.find("session has ended"), std::string::npos) << r->body;
  EXPECT_EQ(get("/jobs", with(ana, false))->status, 302);
  EXPECT_EQ(get("/api/v1/me", bearer(token))->status, 200);
  {
    auto store = jobs::open_store(options_.store);
    jobs::User u = *store->user_by_name("ana");
    u.disabled = true;
    store->update_user(u);
  }
  EXPECT_EQ(get("/api/v1/me", bearer(token))->status, 401);
}

TEST_F(WebTest, ApiTokensAreCreatedListedUsedAndRevoked) {
  const Browser ana = register_user("ana");
  auto r = post("/api/v1/tokens", {{"name", "laptop"}}, with(ana));
  ASSERT_EQ(r->status, 201);
  const json created = json::parse(r->body);
  const std::string token = created["token"];
  EXPECT_TRUE(token.starts_with("dft_"));
  EXPECT_EQ(get("/api/v1/me", bearer(token))->status, 200);
  r = get("/api/v1/tokens", with(ana));
  const json list = json::parse(r->body)["tokens"];
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0]["name"], "laptop");
  EXPECT_FALSE(list[0].contains("token"));
  EXPECT_GT(list[0]["last_used_ms"].get<int64_t>(), 0);
  const std::string path = "/api/v1/tokens/" + std::to_string(created["id"].get<int64_t>());
  EXPECT_EQ(client().Delete(path, with(ana))->status, 204);
  EXPECT_EQ(client().Delete(path, with(ana))->status, 404);
  EXPECT_EQ(get("/api/v1/me", bearer(token))->status, 401);
  EXPECT_EQ(post("/api/v1/tokens", {{"name", ""}}, with(ana))->status, 400);
}

TEST_F(WebTest, ChangingThePasswordEndsOtherSessions) {
  const Browser here = register_user("ana");
  const Browser elsewhere = login("ana");
  EXPECT_EQ(post("/api/v1/password",
                 {{"current", "wrong-one-entirely"}, {"new", "copper-kettle-morning"}}, with(here))
                ->status,
            401);
  EXPECT_EQ(post("/api/v1/password",
                 {{"current", "violet-harbour-lantern"}, {"new", "password123"}}, with(here))
                ->status,
            400);
  EXPECT_EQ(
      post("/api/v1/password",
           {{"current", "violet-harbour-lantern"}, {"new", "copper-kettle-morning"}}, with(here))
          ->status,
      204);
  EXPECT_EQ(get("/api/v1/me", with(here))->status, 200);
  EXPECT_EQ(get("/api/v1/me", with(elsewhere))->status, 401);
  EXPECT_EQ(
      post("/api/v1/login", {{"username", "ana"}, {"password", "violet-harbour-lantern"}})->status,
      401);
  login("ana", "copper-kettle-morning");
}

TEST_F(WebTest, AdminRoutesAreForAdminsOnly) {
  const Browser ana = register_user("ana");
  const Browser bob = register_user("bob");
  EXPECT_EQ(get("/api/v1/users", with(bob))->status, 403);
  EXPECT_EQ(post("/api/v1/users/1", {{"disabled", true}}, with(bob))->status, 403);
  EXPECT_EQ(post("/api/v1/retrain", json::object(), with(bob))->status, 403);
  make_admin("ana");
  auto r = get("/api/v1/users", with(ana));
  ASSERT_EQ(r->status, 200);
  EXPECT_EQ(json::parse(r->body)["users"].size(), 2u);
  const std::string bob_path = "/api/v1/users/" + std::to_string(bob.user["id"].get<int64_t>());
  r = post(bob_path, {{"role", "admin"}}, with(ana));
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(json::parse(r->body)["role"], "admin");
  EXPECT_EQ(post(bob_path, {{"role", "emperor"}}, with(ana))->status, 400);
  EXPECT_EQ(post("/api/v1/users/999", {{"disabled", true}}, with(ana))->status, 404);
  // Disabling ends the user's sessions and refuses their logins.
  r = post(bob_path, {{"disabled", true}}, with(ana));
  ASSERT_EQ(r->status, 200);
  EXPECT_TRUE(json::parse(r->body)["disabled"].get<bool>());
  EXPECT_EQ(get("/api/v1/me", with(bob))->status, 401);
  EXPECT_EQ(
      post("/api/v1/login", {{"username", "bob"}, {"password", "violet-harbour-lantern"}})->status,
      403);
  EXPECT_EQ(post(bob_path, {{"disabled", false}}, with(ana))->status, 200);
  login("bob");
  // An admin cannot lock themself out; retraining needs reviewed samples first.
  EXPECT_EQ(post("/api/v1/users/" + std::to_string(ana.user["id"].get<int64_t>()),
                 {{"disabled", true}}, with(ana))
                ->status,
            400);
  r = post("/api/v1/retrain", json::object(), with(ana));
  EXPECT_EQ(r->status, 409) << r->body;
  EXPECT_TRUE(json::parse(r->body).contains("error"));
}

}  // namespace
}  // namespace digitflow::web::testing

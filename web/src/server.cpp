// The HTTP side. One pre-routing step sets the security headers and authenticates: a
// bearer token, else the session cookie (and, for state-changing requests, its CSRF token in
// X-CSRF-Token); pages without a session redirect to /login. A refused request without a
// body is answered there; one with a body is answered by its handler once the body has been
// read, so that the connection stays in step with the client. Handlers are one-liners into
// Service; HttpError and the store's, the pipeline's and JSON's errors map to statuses in one
// exception handler.
#include "digitflow/web/server.hpp"

#include <httplib.h>

#include <algorithm>
#include <cctype>
#include <optional>
#include <set>

#include "digitflow/pipeline/normalize.hpp"
#include "digitflow/web/errors.hpp"
#include "digitflow/web/service.hpp"

namespace digitflow::web {

namespace fs = std::filesystem;
using httplib::Request;
using httplib::Response;
using nlohmann::json;

namespace {

constexpr const char* kCookie = "digitflow_session";
constexpr const char* kPolicy =
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

// Who the current request comes from, set by the pre-routing step (same thread as the
// handler); `refusal` is the answer for a request refused after its body is read.
struct RequestAuth {
  std::optional<Caller> caller;
  int refusal_status = 0;
  std::string refusal;
};
thread_local RequestAuth current;

const Caller& caller() {
  if (current.refusal_status == 403) throw Forbidden(current.refusal);
  if (current.refusal_status != 0 || !current.caller)
    throw Unauthorized(current.refusal.empty() ? "log in first" : current.refusal);
  return *current.caller;
}

const Caller& admin() {
  const Caller& c = caller();
  if (!c.is_admin()) throw Forbidden("only administrators may do this");
  return c;
}

void send_json(Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

void send_error(Response& res, int status, const std::string& message) {
  send_json(res, status, {{"error", message}});
}

// A JSON body, sent as application/json: a cross-site HTML form cannot send that type
// without the browser asking first, so a form on another site cannot log a visitor in.
json body_json(const Request& req) {
  std::string type = req.get_header_value("Content-Type");
  std::transform(type.begin(), type.end(), type.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (!type.starts_with("application/json"))
    throw BadRequest("the body must be JSON, sent as Content-Type: application/json");
  json body;
  try {
    body = json::parse(req.body);
  } catch (const json::parse_error& e) {
    throw BadRequest(std::string("malformed JSON: ") + e.what());
  }
  if (!body.is_object()) throw BadRequest("the body must be a JSON object");
  return body;
}

std::string text(const json& body, const char* key, bool required = true) {
  if (!body.contains(key)) {
    if (required) throw BadRequest(std::string("the body lacks \"") + key + "\"");
    return {};
  }
  if (!body.at(key).is_string()) throw BadRequest(std::string("\"") + key + "\" must be a string");
  return body.at(key).get<std::string>();
}

int64_t path_id(const Request& req) {
  try {
    return std::stoll(req.matches[1].str());
  } catch (const std::exception&) {
    throw NotFound("no such id");
  }
}

int64_t query_int(const Request& req, const char* key, int64_t fallback) {
  if (!req.has_param(key)) return fallback;
  try {
    size_t end = 0;
    const std::string v = req.get_param_value(key);
    const long long n = std::stoll(v, &end);
    if (end == v.size()) return n;
  } catch (const std::exception&) {
  }
  throw BadRequest(std::string("?") + key + " expects an integer");
}

std::string cookie_value(const Request& req, const std::string& name) {
  const std::string header = req.get_header_value("Cookie");
  size_t at = 0;
  while (at < header.size()) {
    size_t end = header.find(';', at);
    if (end == std::string::npos) end = header.size();
    std::string pair = header.substr(at, end - at);
    pair.erase(0, pair.find_first_not_of(' '));
    if (pair.size() > name.size() && pair.compare(0, name.size(), name) == 0 &&
        pair[name.size()] == '=')
      return pair.substr(name.size() + 1);
    at = end + 1;
  }
  return {};
}

// The session cookie; Secure as well when a reverse proxy says the client came over HTTPS
// (the flag only narrows where the browser sends it, so the header need not be trusted).
void set_session_cookie(const Request& req, Response& res, const std::string& token,
                        int64_t max_age_s) {
  std::string cookie = kCookie;
  cookie.append("=").append(token).append("; Path=/; HttpOnly; SameSite=Strict; Max-Age=");
  cookie.append(std::to_string(max_age_s));
  if (req.get_header_value("X-Forwarded-Proto") == "https") cookie.append("; Secure");
  res.set_header("Set-Cookie", cookie);
}

bool has_body(const Request& req) {
  return req.get_header_value("Transfer-Encoding").find("chunked") != std::string::npos ||
         (req.has_header("Content-Length") && req.get_header_value("Content-Length") != "0");
}

bool changes_state(const std::string& method) {
  return method == "POST" || method == "PUT" || method == "PATCH" || method == "DELETE";
}

const std::vector<std::string>& page_names() {
  static const std::vector<std::string> names = {"login", "register", "jobs",    "submit", "review",
                                                 "model", "pad",      "account", "admin"};
  return names;
}

// The page a path shows ("" when it is not a page): /jobs/7 -> job.
std::string page_of(const std::string& path) {
  if (path.size() > 6 && path.starts_with("/jobs/") &&
      path.find_first_not_of("0123456789", 6) == std::string::npos)
    return "job";
  for (const std::string& name : page_names())
    if (path == "/" + name) return name;
  return {};
}

// Drains what is left of a streamed body, so the answer goes out on a connection in step.
void drain(const httplib::ContentReader& reader, const Request& req) {
  auto discard = [](const char*, size_t) { return true; };
  if (req.is_multipart_form_data())
    reader([](const httplib::MultipartFormData&) { return true; }, discard);
  else
    reader(discard);
}

// The largest body of a route that is not an upload: JSON, or nothing.
constexpr size_t kMaxSmallBody = 64 * 1024;

// A handler for a route whose body is small: the body is read here, at most kMaxSmallBody
// of it kept (the rest drained, then 413), instead of httplib reading any body up to the
// upload limit into memory first. The Request is httplib's own, handed over as const
// because content-reader handlers usually leave its body empty; it is filled here as
// httplib's plain handlers would find it.
httplib::Server::HandlerWithContentReader small_body(httplib::Server::Handler handler) {
  return [handler](const Request& req, Response& res, const httplib::ContentReader& reader) {
    if (req.is_multipart_form_data()) {
      drain(reader, req);
      throw BadRequest("this route takes JSON, not multipart/form-data");
    }
    std::string body;
    bool over = false;
    reader([&](const char* data, size_t size) {
      if (body.size() + size > kMaxSmallBody)
        over = true;
      else if (!over)
        body.append(data, size);
      return true;
    });
    if (over) throw TooLarge("the body is larger than 64 KB");
    const_cast<Request&>(req).body = std::move(body);
    handler(req, res);
  };
}

}  // namespace

Server::Server(ServerOptions options) : options_(std::move(options)) {
  service_ = std::make_unique<Service>(options_);
  http_ = std::make_unique<httplib::Server>();
  routes();
}

Server::~Server() {
  stop();
  for (std::thread& t : workers_)
    if (t.joinable()) t.join();
}

int Server::bind(const std::string& host, int port) {
  if (port == 0) {
    const int bound = http_->bind_to_any_port(host);
    if (bound <= 0) throw std::runtime_error("cannot listen on " + host + " (any port)");
    return bound;
  }
  if (!http_->bind_to_port(host, port))
    throw std::runtime_error("cannot listen on " + host + ":" + std::to_string(port) +
                             " (in use, or not allowed)");
  return port;
}

bool Server::ready() const { return http_->is_running(); }

void Server::stop() {
  stop_workers_ = true;
  http_->stop();
}

void Server::run() {
  stop_workers_ = false;
  for (int i = 0; i < options_.workers; ++i) {
    jobs::WorkerOptions w = options_.worker;
    w.state = options_.state;
    w.scan_inbox = i == 0 && options_.worker.scan_inbox;
    if (!w.name.empty()) w.name.append("-").append(std::to_string(i + 1));
    workers_.emplace_back([this, w] {
      auto log = [this](const jobs::WorkerEvent& e) {
        if (e.kind == jobs::WorkerEvent::progress || !options_.log) return;
        std::string line;
        if (e.job) line.append("job ").append(std::to_string(e.job)).append(": ");
        options_.log(line.append(e.text));
      };
      try {
        std::unique_ptr<jobs::JobStore> store = jobs::open_store(options_.store);
        jobs::Worker worker(*store, w, log);
        worker.run(stop_workers_);
      } catch (const std::exception& e) {
        if (options_.log) options_.log(std::string("a worker stopped: ") + e.what());
      }
    });
  }
  http_->listen_after_bind();
  stop_workers_ = true;
  service_->stop_retrain();
  for (std::thread& t : workers_)
    if (t.joinable()) t.join();
  workers_.clear();
}

void Server::routes() {
  httplib::Server& http = *http_;
  Service& s = *service_;
  const config::WebSettings& web = options_.web;
  // The largest request read: a whole job's upload, with room for the multipart framing.
  http.set_payload_max_length(static_cast<size_t>(web.max_job_mb) * (1 << 20) + (size_t{1} << 20));
  // An answer goes out as two writes (headers, body): with Nagle's algorithm on, the body
  // waited for the client's delayed ACK, about 40 ms on every kept-alive request after the first.
  http.set_tcp_nodelay(true);
  http.set_default_headers({{"Content-Security-Policy", kPolicy},
                            {"X-Content-Type-Options", "nosniff"},
                            {"Referrer-Policy", "same-origin"}});

  http.set_pre_routing_handler([&s](const Request& req, Response& res) {
    current = RequestAuth{};
    const bool api = req.path.starts_with("/api/");
    const std::string page = page_of(req.path);
    if (api || !page.empty() || req.path == "/") res.set_header("Cache-Control", "no-store");
    if (!api && page.empty())
      return httplib::Server::HandlerResponse::Unhandled;  // static files, 404s

    const std::string authorization = req.get_header_value("Authorization");
    const bool open_route =
        req.method == "POST" && (req.path == "/api/v1/login" || req.path == "/api/v1/register");
    if (authorization.starts_with("Bearer ")) {
      current.caller = s.accounts().by_api_token(authorization.substr(7));
      if (!current.caller) {
        current.refusal_status = 401;
        current.refusal = "the API token is not valid (revoked, or its user is disabled)";
      }
    } else if (const std::string token = cookie_value(req, kCookie); !token.empty()) {
      current.caller = s.accounts().by_session(token);
      if (!current.caller) {
        current.refusal_status = 401;
        current.refusal = "the session has ended; log in again";
      } else if (changes_state(req.method) && !open_route &&
                 !same_secret(req.get_header_value("X-CSRF-Token"), current.caller->csrf)) {
        current.refusal_status = 403;
        current.refusal = "missing or wrong X-CSRF-Token header (GET /api/v1/me gives the token)";
      }
    }
    if (!api) {  // a page
      if (current.caller || page == "login" || page == "register")
        return httplib::Server::HandlerResponse::Unhandled;
      res.set_redirect("/login");
      return httplib::Server::HandlerResponse::Handled;
    }
    if (open_route) {
      current = RequestAuth{};  // logging in needs no session, and ignores a stale one
      return httplib::Server::HandlerResponse::Unhandled;
    }
    if (!current.caller && current.refusal_status == 0) {
      current.refusal_status = 401;
      current.refusal = "log in first (a session cookie, or Authorization: Bearer TOKEN)";
    }
    if (current.refusal_status != 0 && !has_body(req)) {
      send_error(res, current.refusal_status, current.refusal);
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });

  http.set_exception_handler([](const Request&, Response& res, std::exception_ptr ep) {
    try {
      std::rethrow_exception(ep);
    } catch (const Throttled& e) {
      res.set_header("Retry-After", std::to_string(e.retry_after_s));
      send_error(res, e.status(), e.what());
    } catch (const HttpError& e) {
      send_error(res, e.status(), e.what());
    } catch (const jobs::TransientError& e) {  // the store is busy: worth trying again
      res.set_header("Retry-After", "1");
      send_error(res, 503, std::string("the job store is busy; try again: ") + e.what());
    } catch (const jobs::Conflict& e) {
      send_error(res, 409, e.what());
    } catch (const jobs::SubmitError& e) {
      send_error(res, 400, e.what());
    } catch (const pipeline::ImageError& e) {
      send_error(res, 400, e.what());
    } catch (const json::exception& e) {
      send_error(res, 400, std::string("malformed JSON: ") + e.what());
    } catch (const std::exception& e) {
      send_error(res, 500, std::string("internal error: ") + e.what());
    } catch (...) {
      send_error(res, 500, "internal error");
    }
  });

  // A line for each answer that is a bug on our side.
  http.set_logger([this](const Request& req, const Response& res) {
    if (res.status < 500 || !options_.log) return;
    std::string line = req.method;
    line.append(" ").append(req.path).append(": ").append(std::to_string(res.status)).append(" ");
    options_.log(line.append(res.body.substr(0, 300)));
  });

  // Errors httplib answers itself (no route, a body over the limit, a malformed request) get
  // a JSON body too.
  http.set_error_handler(httplib::Server::HandlerWithResponse([&web, this](const Request& req,
                                                                           Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    // A browser asking for a page that is not one: a page that says so, with a way back.
    if (res.status == 404 && req.method == "GET" && req.path.rfind("/api/", 0) != 0 &&
        req.get_header_value("Accept").find("text/html") != std::string::npos) {
      std::ifstream in(fs::path(options_.assets) / "notfound.html", std::ios::binary);
      if (in) {
        res.set_content(std::string(std::istreambuf_iterator<char>(in), {}), "text/html; charset=utf-8");
        return httplib::Server::HandlerResponse::Handled;
      }
    }
    if (res.status == 413)
      send_error(
          res, 413,
          "the request is larger than web.max_job_mb (" + std::to_string(web.max_job_mb) + " MB)");
    else if (res.status == 404)
      send_error(res, 404, "no such route: " + req.method + " " + req.path.substr(0, 200));
    else
      send_error(res, res.status, res.status == 400 ? "malformed request" : "the request failed");
    return httplib::Server::HandlerResponse::Handled;
  }));

  // Pages and static files.
  const fs::path assets = options_.assets;
  http.set_mount_point("/static", assets.string());
  http.Get("/", [](const Request&, Response& res) { res.set_redirect("/jobs"); });
  auto page = [assets](const Request& req, Response& res) {
    const std::string name = page_of(req.path);
    const fs::path file = assets / (name + ".html");
    std::ifstream in(file, std::ios::binary);
    if (!in) throw NotFound("the page " + name + ".html is missing from " + assets.string());
    res.set_content(std::string(std::istreambuf_iterator<char>(in), {}),
                    "text/html; charset=utf-8");
  };
  http.Get(R"(/(login|register|jobs|submit|review|model|pad|account|admin))", page);
  http.Get(R"(/jobs/\d+)", page);

  // Accounts.
  http.Post("/api/v1/register", small_body([&s](const Request& req, Response& res) {
              const json body = body_json(req);
              const LoginResult r = s.accounts().register_user(
                  text(body, "username"), text(body, "email"), text(body, "password"));
              set_session_cookie(req, res, r.session_token,
                                 s.accounts().options().session_ms / 1000);
              send_json(res, 201, {{"user", to_json(r.user)}, {"csrf", r.csrf}});
            }));
  http.Post(
      "/api/v1/login", small_body([&s](const Request& req, Response& res) {
        const json body = body_json(req);
        const bool token =
            body.contains("token") && body["token"].is_boolean() && body["token"].get<bool>();
        const LoginResult r =
            s.accounts().login(text(body, "username"), text(body, "password"), req.remote_addr,
                               token, text(body, "token_name", false));
        if (token)
          return send_json(
              res, 200,
              {{"user", to_json(r.user)}, {"token", r.api_token}, {"token_id", r.api_token_id}});
        set_session_cookie(req, res, r.session_token, s.accounts().options().session_ms / 1000);
        send_json(res, 200, {{"user", to_json(r.user)}, {"csrf", r.csrf}});
      }));
  http.Post("/api/v1/logout", small_body([&s](const Request& req, Response& res) {
              s.accounts().logout(caller());
              set_session_cookie(req, res, "", 0);
              res.status = 204;
            }));
  // low_confidence: below it the job workers count a string for checking (the pages' colours
  // turn red there).
  http.Get("/api/v1/me", [this](const Request&, Response& res) {
    send_json(res, 200,
              {{"user", to_json(caller().user)},
               {"csrf", caller().csrf},
               {"low_confidence", options_.worker.run.low_confidence}});
  });
  http.Post("/api/v1/password", small_body([&s](const Request& req, Response& res) {
              const json body = body_json(req);
              s.accounts().change_password(caller(), text(body, "current"), text(body, "new"));
              res.status = 204;
            }));
  http.Get("/api/v1/tokens", [&s](const Request&, Response& res) {
    json list = json::array();
    for (const jobs::ApiToken& t : s.accounts().tokens(caller()))
      list.push_back({{"id", t.id},
                      {"name", t.name},
                      {"created_ms", t.created_ms},
                      {"last_used_ms", t.last_used_ms}});
    send_json(res, 200, {{"tokens", list}});
  });
  http.Post("/api/v1/tokens", small_body([&s](const Request& req, Response& res) {
              const Caller& c = caller();
              const std::string name = text(body_json(req), "name");
              const LoginResult r = s.accounts().create_token(c, name);
              send_json(res, 201, {{"id", r.api_token_id}, {"name", name}, {"token", r.api_token}});
            }));
  http.Delete(R"(/api/v1/tokens/(\d+))", small_body([&s](const Request& req, Response& res) {
                s.accounts().revoke_token(caller(), path_id(req));
                res.status = 204;
              }));
  http.Get("/api/v1/users",
           [&s](const Request&, Response& res) { send_json(res, 200, s.users(admin())); });
  http.Post(R"(/api/v1/users/(\d+))", small_body([&s](const Request& req, Response& res) {
              const Caller& a = admin();
              const json body = body_json(req);
              std::optional<std::string> role;
              std::optional<bool> disabled;
              if (body.contains("role")) role = text(body, "role");
              if (body.contains("disabled")) {
                if (!body["disabled"].is_boolean())
                  throw BadRequest("\"disabled\" must be true or false");
                disabled = body["disabled"].get<bool>();
              }
              send_json(res, 200,
                        to_json(s.accounts().update_user(a, path_id(req), role, disabled)));
            }));

  // Jobs.
  http.Get("/api/v1/templates", [&s](const Request&, Response& res) {
    caller();
    send_json(res, 200, s.templates());
  });
  http.Post("/api/v1/jobs", [&s](const Request& req, Response& res,
                                 const httplib::ContentReader& reader) {
    if (current.refusal_status != 0 || !current.caller || !req.is_multipart_form_data()) {
      drain(reader, req);
      caller();
      throw BadRequest("a job is sent as multipart/form-data: parts named files, or one zip");
    }
    UploadFolder upload(s.uploads_dir(), s.upload_limits());
    std::string field, name, template_name, template_file, *text_part = nullptr;
    std::set<std::string> text_parts_seen;  // a field sent twice is refused, not joined
    std::exception_ptr problem;  // the first one; the rest of the body is still read
    bool in_file = false, in_zip = false;
    auto guard = [&](auto&& step) {
      if (problem) return;
      try {
        step();
      } catch (...) {
        problem = std::current_exception();
      }
    };
    auto close_part = [&] {
      if (in_file) guard([&] { upload.end_file(); });
      if (in_zip) guard([&] { upload.end_zip(); });
      in_file = in_zip = false;
    };
    const bool read = reader(
        [&](const httplib::MultipartFormData& part) {
          close_part();
          text_part = nullptr;
          if (part.name == "files") {
            guard([&] { upload.begin_file(part.filename); });
            in_file = !problem;
          } else if (part.name == "zip") {
            guard([&] { upload.begin_zip(); });
            in_zip = !problem;
          } else if (part.name == "name") {
            text_part = &name;
          } else if (part.name == "template") {
            text_part = &template_name;
          } else if (part.name == "template_file") {
            text_part = &template_file;
          } else {
            guard([&] {
              throw BadRequest("unknown part '" + part.name.substr(0, 60) +
                               "' (files, zip, name, template, template_file)");
            });
          }
          if (text_part && !text_parts_seen.insert(part.name).second) {
            guard([&] { throw BadRequest("the field '" + part.name + "' is sent twice"); });
            text_part = nullptr;
          }
          return true;
        },
        [&](const char* data, size_t size) {
          if (text_part) {
            if (text_part->size() + size > 1000)
              guard([] { throw BadRequest("a name or template field over 1000 bytes"); });
            else
              text_part->append(data, size);
          } else if (in_file || in_zip) {
            guard([&] { upload.append(data, size); });
            if (problem) in_file = in_zip = false;
          }
          return true;
        });
    close_part();
    if (problem) std::rethrow_exception(problem);
    if (!read) {
      if (res.status == 413)
        throw TooLarge("the upload is larger than web.max_job_mb (" +
                       std::to_string(s.options().web.max_job_mb) + " MB)");
      throw BadRequest("malformed multipart/form-data body");
    }
    send_json(res, 201, {{"id", s.submit(caller(), upload, name, template_name, template_file)}});
  });
  http.Get("/api/v1/jobs", [&s](const Request& req, Response& res) {
    send_json(res, 200, s.jobs(caller(), req.get_param_value("mine") == "1"));
  });
  http.Get(R"(/api/v1/jobs/(\d+))", [&s](const Request& req, Response& res) {
    send_json(res, 200, to_json(s.job(caller(), path_id(req))));
  });
  http.Post(R"(/api/v1/jobs/(\d+)/cancel)", small_body([&s](const Request& req, Response& res) {
              send_json(res, 200, s.cancel(caller(), path_id(req)));
            }));
  http.Get(R"(/api/v1/jobs/(\d+)/results)", [&s](const Request& req, Response& res) {
    const std::string format = req.has_param("format") ? req.get_param_value("format") : "jsonl";
    const int64_t id = path_id(req);
    res.set_content(s.results(caller(), id, format),
                    format == "csv" ? "text/csv; charset=utf-8" : "application/x-ndjson");
    if (req.get_param_value("download") == "1")
      res.set_header("Content-Disposition", "attachment; filename=\"job-" + std::to_string(id) +
                                                "-results." + format + "\"");
  });
  http.Get(R"(/api/v1/jobs/(\d+)/pages)", [&s](const Request& req, Response& res) {
    const std::string filter = req.has_param("filter") ? req.get_param_value("filter") : "all";
    send_json(res, 200,
              s.pages(caller(), path_id(req), query_int(req, "from", 0),
                      query_int(req, "limit", 50), filter));
  });
  http.Get(R"(/api/v1/jobs/(\d+)/overlay)", [&s](const Request& req, Response& res) {
    res.set_content(s.overlay_png(caller(), path_id(req), req.get_param_value("page")),
                    "image/png");
  });
  http.Get(R"(/api/v1/jobs/(\d+)/crop)", [&s](const Request& req, Response& res) {
    res.set_content(
        s.crop_png(caller(), path_id(req), req.get_param_value("page"), req.get_param_value("box")),
        "image/png");
  });

  // Reading, review, model.
  http.Post("/api/v1/recognize", [&s](const Request& req, Response& res,
                                      const httplib::ContentReader& reader) {
    const int64_t limit = s.upload_limits().max_file_bytes;
    std::string image;
    bool over = false;
    reader([&](const char* data, size_t size) {
      if (static_cast<int64_t>(image.size() + size) > limit)
        over = true;
      else
        image.append(data, size);
      return true;
    });
    caller();
    if (over)
      throw TooLarge("the image is larger than web.max_file_mb (" + std::to_string(limit >> 20) +
                     " MB)");
    const auto* bytes = reinterpret_cast<const uint8_t*>(image.data());
    send_json(res, 200,
              s.recognize({bytes, image.size()}, req.get_param_value("digits") == "1",
                          req.get_param_value("drawn") == "1"));
  });
  http.Get("/api/v1/review", [&s](const Request& req, Response& res) {
    send_json(res, 200, s.review_queue(caller(), query_int(req, "limit", 40)));
  });
  http.Post("/api/v1/review", small_body([&s](const Request& req, Response& res) {
              const Caller& c = caller();
              send_json(res, 201, s.add_sample(c, body_json(req)));
            }));
  http.Get("/api/v1/model", [&s](const Request&, Response& res) {
    caller();
    send_json(res, 200, s.model());
  });
  http.Post("/api/v1/retrain", small_body([&s](const Request&, Response& res) {
              send_json(res, 202, s.retrain(admin()));
            }));
}

}  // namespace digitflow::web

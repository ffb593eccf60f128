// digitflow submit, jobs, job, cancel, user and worker: the nightly batch from the shell,
// on the store the configuration names (SQLite in the state directory by default).
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <opencv2/core/utils/logger.hpp>

#include "cli.hpp"
#include "commands.hpp"
#include "store_options.hpp"
#include "digitflow/config/template.hpp"
#include "digitflow/jobs/store.hpp"
#include "digitflow/jobs/submit.hpp"
#include "digitflow/jobs/worker.hpp"
#include "digitflow/kernels/parallel.hpp"
#include "digitflow/pipeline/results.hpp"
#include "digitflow/web/client.hpp"
#include "digitflow/web/accounts.hpp"

namespace digitflow::cli {

namespace fs = std::filesystem;

void add_store_options(po::options_description& options, StoreOptions& store) {
  // clang-format off
  options.add_options()
      ("state-dir", po::value(&store.state_dir)->value_name("DIR"),
       "where jobs keep their files (default: $DIGITFLOW_STATE, else jobs.state_dir, var/)")
      ("db", po::value(&store.db)->value_name("URL"),
       "job store: postgres://user:password@host:port/db (default: jobs.db, else SQLite in the state dir)");
  // clang-format on
}

Opened open_jobs(const CommonOptions& common, const StoreOptions& options) {
  Opened o;
  o.settings = load_settings(common);
  std::string state = options.state_dir;
  if (state.empty())
    if (const char* env = std::getenv("DIGITFLOW_STATE"); env && *env) state = env;
  if (state.empty()) state = o.settings.jobs.state_dir;
  o.state.root = fs::absolute(state);
  std::string db = options.db.empty() ? o.settings.jobs.db : options.db;
  if (!db.empty() && !db.starts_with("postgres://") && !db.starts_with("postgresql://"))
    throw UsageError("--db " + db + ": expects a postgres:// URL (SQLite is the default, in the state dir)");
  o.location = db.empty() ? o.state.sqlite_file().string() : db;
  o.store = jobs::open_store(o.location);
  return o;
}

jobs::WorkerOptions worker_options(const Opened& o) {
  jobs::WorkerOptions w;
  w.state = o.state;
  w.run = run_options(o.settings);
  w.run.overlays = o.settings.jobs.overlays;
  w.default_model = fs::absolute(resolve(o.settings.model.default_model));
  w.screen_model = screen_for(o.settings, w.default_model);
  w.partner_model = partner_for(o.settings, w.default_model);
  w.lease_ms = int64_t{o.settings.jobs.lease_seconds} * 1000;
  w.heartbeat_ms = int64_t{o.settings.jobs.heartbeat_seconds} * 1000;
  w.scan_inbox = true;
  if (w.heartbeat_ms * 2 > w.lease_ms)
    throw UsageError("jobs.heartbeat_seconds must be at most half of jobs.lease_seconds");
  fs::create_directories(o.state.inbox());
  return w;
}

namespace {

std::string time_text(int64_t ms) {
  if (ms <= 0) return "-";
  const std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm local{};
  localtime_r(&t, &local);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S", &local);
  return text;
}

std::string progress_text(const jobs::Job& j) {
  if (j.pages_total < 0) return j.state == jobs::JobState::queued ? "-" : "listing";
  std::string text = std::to_string(j.pages_done) + "/" + std::to_string(j.pages_total);
  if (j.pages_total > 0) text += " (" + std::to_string(100 * j.pages_done / j.pages_total) + "%)";
  return text;
}

int64_t parse_id(const std::string& text) {
  try {
    size_t end = 0;
    const long long id = std::stoll(text, &end);
    if (end == text.size() && id > 0) return id;
  } catch (const std::exception&) {
  }
  throw UsageError("'" + text + "' is not a job id (a number, as digitflow jobs shows)");
}

std::string default_user() {
  for (const char* name : {"DIGITFLOW_USER", "USER", "LOGNAME"})
    if (const char* v = std::getenv(name); v && *v) return v;
  return "";
}

}  // namespace

int run_submit(int argc, char** argv) {
  CommonOptions common;
  StoreOptions store_options;
  jobs::Submission s;
  std::string folder, template_file, user = default_user(), server, token;
  po::options_description options("Options");
  // clang-format off
  options.add_options()
      ("name", po::value(&s.name)->value_name("N"), "job name (default: the folder's name)")
      ("template", po::value(&template_file)->value_name("T"),
       "form template for every page: a YAML file (see digitflow run --help); with --server, a\n"
       "template name the server lists (GET /api/v1/templates), or a YAML file inside DIR")
      ("model", po::value(&s.model)->value_name("FILE"), "model file (default: the worker's, model.default)")
      ("user", po::value(&user)->value_name("NAME"), "owner of the job (default: $DIGITFLOW_USER, else $USER)")
      ("server", po::value(&server)->value_name("URL"),
       "send the job to a digitflow serve at URL (http://host:port) instead of the local store")
      ("token", po::value(&token)->value_name("TOKEN"),
       "with --server: an API token (account page; default: $DIGITFLOW_TOKEN); the job is its user's")
      ("folder", po::value(&folder)->value_name("DIR"), "job folder (positional)");
  // clang-format on
  add_store_options(options, store_options);
  add_config_options(options, common);
  po::positional_options_description positional;
  positional.add("folder", 1);
  po::variables_map vm;
  if (!parse(argc, argv,
             "digitflow submit DIR [--name N] [--template T.yaml] [--user NAME]\n"
             "       digitflow submit DIR --server URL --token TOKEN [--name N] [--template NAME|DIR/T.yaml]",
             "Queues the pages under DIR as a job. The folder is copied into the state directory\n"
             "first, so it may be deleted once this returns; symbolic links that lead outside it\n"
             "are refused. A worker (digitflow worker) reads the job; follow it with digitflow jobs.\n"
             "With --server the pages are uploaded to a digitflow serve instead (held in memory\n"
             "while they are sent, up to 2 GB); follow the job on its web page.",
             options, &positional, vm))
    return 0;
  if (folder.empty()) throw UsageError("no DIR given");
  if (!server.empty()) {
    if (token.empty())
      if (const char* env = std::getenv("DIGITFLOW_TOKEN"); env && *env) token = env;
    if (token.empty()) throw UsageError("--server needs --token TOKEN (or $DIGITFLOW_TOKEN)");
    if (vm.count("model") || vm.count("state-dir") || vm.count("db") || vm.count("user"))
      throw UsageError("--model, --user, --state-dir and --db are for the local store, not with --server");
    web::RemoteSubmission r;
    r.server = server;
    r.token = token;
    r.folder = folder;
    r.name = s.name;
    // A path (a YAML file, or a name with a folder in it) is the folder's own template.
    const bool is_file = template_file.find('/') != std::string::npos || template_file.ends_with(".yaml") ||
                         template_file.ends_with(".yml") || fs::is_regular_file(template_file);
    if (is_file)
      r.template_file = template_file;
    else
      r.template_name = template_file;
    const int64_t id = web::submit_remote(r);
    std::string base = server;
    while (base.ends_with("/")) base.pop_back();
    std::printf("job %lld queued on %s: %s/jobs/%lld\n", static_cast<long long>(id), base.c_str(), base.c_str(),
                static_cast<long long>(id));
    note_unused_folder_template(folder, !template_file.empty());
    return 0;
  }
  if (!token.empty()) throw UsageError("--token goes with --server");
  if (user.empty()) throw UsageError("no --user given and $USER is not set");
  Opened o = open_jobs(common, store_options);
  s.folder = folder;
  s.owner = user;
  s.template_file = template_file;
  if (!s.model.empty()) s.model = fs::absolute(s.model).string();
  const int64_t id = jobs::submit_job(*o.store, o.state, s);
  const std::optional<jobs::Job> job = o.store->job(id);
  std::printf("job %lld queued: %s (owner %s)\n", static_cast<long long>(id), job->name.c_str(), user.c_str());
  note_unused_folder_template(folder, !template_file.empty());
  return 0;
}

int run_jobs(int argc, char** argv) {
  CommonOptions common;
  StoreOptions store_options;
  std::string user;
  bool json = false;
  po::options_description options("Options");
  // clang-format off
  options.add_options()
      ("user", po::value(&user)->value_name("NAME"), "only this user's jobs")
      ("json", po::bool_switch(&json), "one JSON object per job");
  // clang-format on
  add_store_options(options, store_options);
  add_config_options(options, common);
  po::variables_map vm;
  if (!parse(argc, argv, "digitflow jobs [--user NAME] [--json]", "Lists the jobs, newest first.", options, nullptr, vm))
    return 0;
  Opened o = open_jobs(common, store_options);
  int64_t owner = 0;
  if (!user.empty()) {
    const auto u = o.store->user_by_name(user);
    if (!u) throw UsageError("--user " + user + ": no such user");
    owner = u->id;
  }
  const std::vector<jobs::Job> list = o.store->jobs(owner);
  if (json) {
    for (const jobs::Job& j : list)
      std::cout << nlohmann::json{{"id", j.id},           {"name", j.name},
                                  {"owner", j.owner_name}, {"state", jobs::to_string(j.state)},
                                  {"pages_done", j.pages_done}, {"pages_total", j.pages_total},
                                  {"pages_failed", j.pages_failed}, {"strings", j.strings},
                                  {"created_ms", j.created_ms}}
                       .dump()
                << "\n";
    return 0;
  }
  if (list.empty()) {
    std::printf("no jobs yet (queue one with: digitflow submit DIR)\n");
    return 0;
  }
  std::printf("%6s  %-24s  %-12s  %-9s  %-16s  %s\n", "ID", "NAME", "OWNER", "STATE", "PAGES", "CREATED");
  for (const jobs::Job& j : list) {
    std::string name = j.name.size() > 24 ? j.name.substr(0, 23) + "~" : j.name;
    std::printf("%6lld  %-24s  %-12s  %-9s  %-16s  %s\n", static_cast<long long>(j.id), name.c_str(),
                j.owner_name.c_str(), std::string(jobs::to_string(j.state)).c_str(), progress_text(j).c_str(),
                time_text(j.created_ms).c_str());
  }
  return 0;
}

int run_job(int argc, char** argv) {
  CommonOptions common;
  StoreOptions store_options;
  std::string id_text, format = "jsonl", out;
  bool results = false;
  po::options_description options("Options");
  // clang-format off
  options.add_options()
      ("results", po::bool_switch(&results), "print the job's results (the pages stored so far)")
      ("format", po::value(&format)->value_name("F"), "with --results: jsonl (default) or csv")
      ("out", po::value(&out)->value_name("FILE"), "with --results: write to FILE instead of the terminal")
      ("id", po::value(&id_text)->value_name("ID"), "job id (positional)");
  // clang-format on
  add_store_options(options, store_options);
  add_config_options(options, common);
  po::positional_options_description positional;
  positional.add("id", 1);
  po::variables_map vm;
  if (!parse(argc, argv, "digitflow job ID [--results [--format jsonl|csv] [--out FILE]]",
             "Shows one job: state, progress, counts, times, its worker and error. With --results,\n"
             "its results in the results.jsonl format (or results.csv), in page order.",
             options, &positional, vm))
    return 0;
  if (id_text.empty()) throw UsageError("no job ID given");
  if (format != "jsonl" && format != "csv") throw UsageError("--format " + format + ": expects jsonl or csv");
  const int64_t id = parse_id(id_text);
  Opened o = open_jobs(common, store_options);
  const std::optional<jobs::Job> job = o.store->job(id);
  if (!job) throw std::runtime_error("no job " + id_text);
  if (results) {
    std::ofstream file;
    if (!out.empty()) {
      file.open(out, std::ios::trunc);
      if (!file) throw std::runtime_error(out + ": cannot write");
    }
    std::ostream& sink = out.empty() ? std::cout : file;
    if (format == "csv") pipeline::write_csv_header(sink);
    int64_t written = 0;
    for (int64_t from = 0;;) {
      const auto slice = o.store->pages(id, from, 1000);
      for (const jobs::PageRecord& p : slice) {
        if (format == "csv")
          pipeline::write_csv_rows(sink, pipeline::page_from_json(nlohmann::json::parse(p.result_json)));
        else
          sink << p.result_json << '\n';
        ++written;
      }
      if (slice.size() < 1000) break;
      from = slice.back().seq + 1;
    }
    sink.flush();
    if (!sink) throw std::runtime_error((out.empty() ? std::string("stdout") : out) + ": writing failed");
    if (!out.empty())
      std::printf("%lld pages of job %lld written to %s\n", static_cast<long long>(written), static_cast<long long>(id),
                  out.c_str());
    return 0;
  }
  const jobs::Job& j = *job;
  std::printf("job %lld: %s\n", static_cast<long long>(j.id), j.name.c_str());
  std::printf("  owner      %s\n", j.owner_name.c_str());
  std::printf("  state      %s%s\n", std::string(jobs::to_string(j.state)).c_str(),
              j.cancel_requested && j.state == jobs::JobState::running ? " (cancel requested)" : "");
  std::printf("  pages      %s, %lld failed\n", progress_text(j).c_str(), static_cast<long long>(j.pages_failed));
  std::printf("  strings    %lld, %lld below the confidence threshold\n", static_cast<long long>(j.strings),
              static_cast<long long>(j.low_confidence));
  std::printf("  created    %s\n  started    %s\n  finished   %s\n", time_text(j.created_ms).c_str(),
              time_text(j.started_ms).c_str(), time_text(j.finished_ms).c_str());
  if (!j.worker.empty()) std::printf("  worker     %s (attempt %d)\n", j.worker.c_str(), j.attempts);
  if (!j.template_path.empty()) {
    std::string title;  // the form's name, as the web's job page shows it
    try {
      title = config::load_template(j.template_path).name;
    } catch (const std::exception&) {
      title = "(it does not load)";
    }
    std::printf("  template   %s (%s)\n", title.c_str(), j.template_path.c_str());
  }
  if (!j.model.empty()) std::printf("  model      %s\n", j.model.c_str());
  std::printf("  pages from %s\n", j.input_dir.c_str());
  if (j.state == jobs::JobState::done)
    std::printf("  results    %s\n", o.state.job_output(j.id).c_str());
  if (!j.error.empty()) std::printf("  error      %s\n", j.error.c_str());
  return 0;
}

int run_cancel(int argc, char** argv) {
  CommonOptions common;
  StoreOptions store_options;
  std::string id_text;
  po::options_description options("Options");
  options.add_options()("id", po::value(&id_text)->value_name("ID"), "job id (positional)");
  add_store_options(options, store_options);
  add_config_options(options, common);
  po::positional_options_description positional;
  positional.add("id", 1);
  po::variables_map vm;
  if (!parse(argc, argv, "digitflow cancel ID",
             "Cancels a job: a queued job at once; a running one stops within seconds, at its\n"
             "worker's next heartbeat (the pages it stored are kept).",
             options, &positional, vm))
    return 0;
  if (id_text.empty()) throw UsageError("no job ID given");
  const int64_t id = parse_id(id_text);
  Opened o = open_jobs(common, store_options);
  const std::optional<jobs::Job> before = o.store->job(id);
  if (!before) throw std::runtime_error("no job " + id_text);
  if (jobs::is_final(before->state)) {
    std::printf("job %lld is already %s\n", static_cast<long long>(id), std::string(jobs::to_string(before->state)).c_str());
    return 0;
  }
  const std::optional<jobs::JobState> after = o.store->cancel_job(id);
  if (after == jobs::JobState::running)
    std::printf("job %lld: cancel requested; its worker stops within %d s\n", static_cast<long long>(id),
                o.settings.jobs.heartbeat_seconds + 1);
  else
    std::printf("job %lld %s\n", static_cast<long long>(id), std::string(jobs::to_string(*after)).c_str());
  return 0;
}

int run_user(int argc, char** argv) {
  CommonOptions common;
  StoreOptions store_options;
  std::vector<std::string> words;
  std::string email;
  bool admin = false, password_stdin = false;
  po::options_description options("Options");
  // clang-format off
  options.add_options()
      ("admin", po::bool_switch(&admin), "with add: the user is an administrator")
      ("password-stdin", po::bool_switch(&password_stdin),
       "with add: read the user's password for the web pages (digitflow serve) from the first line of stdin")
      ("email", po::value(&email)->value_name("ADDRESS"), "with add: the user's e-mail address")
      ("words", po::value(&words)->composing(), "add NAME | list (positional)");
  // clang-format on
  add_store_options(options, store_options);
  add_config_options(options, common);
  po::positional_options_description positional;
  positional.add("words", 2);
  po::variables_map vm;
  if (!parse(argc, argv, "digitflow user add NAME [--admin] [--email ADDRESS] [--password-stdin] | digitflow user list",
             "Creates users from the shell (the first administrator comes from here) or lists them.",
             options, &positional, vm))
    return 0;
  if (words.empty()) throw UsageError("expects 'add NAME' or 'list'");
  if (words[0] == "list") {
    if (words.size() > 1) throw UsageError("list takes no NAME");
    Opened o = open_jobs(common, store_options);
    const auto users = o.store->users();
    if (users.empty()) std::printf("no users yet (create one with: digitflow user add NAME --admin)\n");
    for (const jobs::User& u : users)
      std::printf("%5lld  %-20s  %-5s  %s%s\n", static_cast<long long>(u.id), u.name.c_str(), u.role.c_str(),
                  u.email.c_str(), u.disabled ? "  (disabled)" : "");
    return 0;
  }
  if (words[0] != "add") throw UsageError("unknown action '" + words[0] + "' (expects add or list)");
  if (words.size() < 2) throw UsageError("add needs a NAME");
  const std::string& name = words[1];
  const bool valid = !name.empty() && name.size() <= 64 && name[0] != '.' &&
                     name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") ==
                         std::string::npos;
  if (!valid) throw UsageError("'" + name + "' is not a user name: 1 to 64 of a-z A-Z 0-9 . _ -, not starting with '.'");
  Opened o = open_jobs(common, store_options);
  jobs::User u;
  u.name = name;
  u.email = email;
  u.role = admin ? "admin" : "user";
  if (password_stdin) {  // the rules of web registration, and its Argon2id cost
    std::string password;
    std::getline(std::cin, password);
    if (!password.empty() && password.back() == '\r') password.pop_back();
    const config::WebSettings& web = o.settings.web;
    const fs::path assets = web.assets.empty() ? project_root() / "web" / "assets" : resolve(web.assets);
    web::PasswordPolicy(assets / "common-passwords.txt").check(password, name);
    u.password_hash = web::hash_password(password, static_cast<uint64_t>(web.argon2_ops),
                                         static_cast<size_t>(web.argon2_memory_mb) << 20);
  }
  const int64_t id = o.store->add_user(u);
  std::printf("user %s added (id %lld%s)\n", name.c_str(), static_cast<long long>(id), admin ? ", admin" : "");
  return 0;
}

namespace {
std::atomic<bool> stop_worker{false};
extern "C" void on_stop_signal(int) { stop_worker = true; }
}  // namespace

int run_worker(int argc, char** argv) {
  CommonOptions common;
  StoreOptions store_options;
  std::string name;
  bool once = false, no_inbox = false;
  po::options_description options("Options");
  // clang-format off
  options.add_options()
      ("threads", po::value<int>()->value_name("N"), "threads for the page pipeline, 0 = every core (runtime.threads)")
      ("name", po::value(&name)->value_name("NAME"), "this worker's name in the store (default: host:pid:1)")
      ("once", po::bool_switch(&once), "exit when no job is left instead of waiting for more")
      ("no-inbox", po::bool_switch(&no_inbox), "do not turn READY folders of STATE/inbox/<user>/ into jobs");
  // clang-format on
  add_store_options(options, store_options);
  add_config_options(options, common);
  add_backend_option(options, common);
  po::variables_map vm;
  if (!parse(argc, argv, "digitflow worker [--db URL] [--threads N] [--once]",
             "Runs queued jobs one after the other, until Ctrl-C or SIGTERM (the job in progress\n"
             "then goes back to the queue, its stored pages kept). Many workers, on one machine\n"
             "or many (with a postgres:// store and a shared state dir), share one queue.\n"
             "Also watches the drop folder STATE/inbox/<user>/<job>/: a folder becomes a job once\n"
             "a file named READY appears in it, and is moved to STATE/inbox/.taken/.",
             options, nullptr, vm))
    return 0;
  Opened o = open_jobs(common, store_options);
  start_backend(o.settings);
  kernels::set_threads(threads_option(vm, o.settings.runtime.threads));
  cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_SILENT);

  jobs::WorkerOptions w = worker_options(o);
  w.name = name;
  w.exit_when_idle = once;
  w.scan_inbox = !no_inbox;

  auto log = [](const jobs::WorkerEvent& e) {
    if (e.kind == jobs::WorkerEvent::progress) return;  // the store has the counts
    const std::string when = time_text(jobs::now_ms());
    if (e.job)
      std::fprintf(stderr, "%s  job %lld: %s\n", when.c_str(), static_cast<long long>(e.job), e.text.c_str());
    else
      std::fprintf(stderr, "%s  %s\n", when.c_str(), e.text.c_str());
  };
  jobs::Worker worker(*o.store, w, log);
  stop_worker = false;
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
  std::fprintf(stderr, "%s  worker %s on %s, state %s%s\n", time_text(jobs::now_ms()).c_str(), worker.name().c_str(),
               o.store->describe().c_str(), o.state.root.c_str(), once ? " (until the queue is empty)" : "");
  const int ended = worker.run(stop_worker);
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  std::fprintf(stderr, "%s  worker %s stopped after %d job%s\n", time_text(jobs::now_ms()).c_str(),
               worker.name().c_str(), ended, ended == 1 ? "" : "s");
  return stop_worker ? 130 : 0;
}

}  // namespace digitflow::cli

// Submission copies into inputs/.<token>.partial and renames it to inputs/<token> only when
// every file is there, then queues the job; a failure removes what it copied. The drop
// folder moves a READY folder aside with one rename before queueing it, and the move is
// the lock: of two scanners, only one rename succeeds.
#include <algorithm>
#include <fstream>
#include <random>

#include "digitflow/config/template.hpp"
#include "digitflow/jobs/submit.hpp"

namespace digitflow::jobs {

namespace fs = std::filesystem;

namespace {

std::string random_token() {
  static thread_local std::mt19937_64 rng{std::random_device{}() ^ static_cast<uint64_t>(now_ms())};
  const char* hex = "0123456789abcdef";
  std::string token;
  for (int i = 0; i < 16; ++i) token += hex[rng() % 16];
  return token;
}

bool inside(const fs::path& path, const fs::path& folder) {
  const auto [f_end, p_at] = std::mismatch(folder.begin(), folder.end(), path.begin(), path.end());
  return f_end == folder.end();
}

}  // namespace

std::vector<std::pair<fs::path, fs::path>> job_files(const fs::path& folder, const std::vector<std::string>& exclude) {
  std::error_code ec;
  const fs::path root = fs::canonical(folder, ec);
  if (ec) throw SubmitError(folder.string() + ": " + ec.message());
  std::vector<std::pair<fs::path, fs::path>> files;
  fs::recursive_directory_iterator it(root, fs::directory_options::none, ec), end;
  if (ec) throw SubmitError(folder.string() + ": cannot list the folder (" + ec.message() + ")");
  for (; it != end; it.increment(ec)) {
    if (ec) throw SubmitError(folder.string() + ": cannot list the folder (" + ec.message() + ")");
    const fs::path relative = it->path().lexically_relative(root);
    if (it.depth() == 0 && std::find(exclude.begin(), exclude.end(), relative.string()) != exclude.end()) continue;
    const fs::file_status link_status = it->symlink_status();
    fs::path source = it->path();
    if (fs::is_symlink(link_status)) {
      const fs::path target = fs::weakly_canonical(it->path(), ec);
      if (ec || !inside(target, root)) {
        std::string message = (folder / relative).string();
        message.append(": a symbolic link to ").append(fs::read_symlink(it->path(), ec).string());
        message.append(", which is outside the submitted folder; links that lead out are not followed");
        throw SubmitError(message);
      }
      if (fs::is_directory(target)) continue;  // its files are taken where they really are
      source = target;
    }
    const fs::file_status status = fs::status(source, ec);
    if (fs::is_directory(status)) continue;
    if (!fs::is_regular_file(status))
      throw SubmitError((folder / relative).string() + ": not a regular file (a device, socket or pipe)");
    files.emplace_back(source, relative);
  }
  std::sort(files.begin(), files.end(), [](const auto& a, const auto& b) { return a.second < b.second; });
  return files;
}

namespace {

void take_file(const fs::path& from, const fs::path& to, bool link) {
  std::error_code ec;
  fs::create_directories(to.parent_path(), ec);
  if (ec) throw SubmitError(to.parent_path().string() + ": cannot create (" + ec.message() + ")");
  if (link) {
    fs::create_hard_link(from, to, ec);
    if (!ec) return;  // else another file system: copy
  }
  fs::copy_file(from, to, fs::copy_options::overwrite_existing, ec);
  if (ec) throw SubmitError(from.string() + ": cannot copy into the job (" + ec.message() + ")");
}

}  // namespace

int64_t submit_job(JobStore& store, const StateDir& state, const Submission& s) {
  if (!fs::is_directory(s.folder))
    throw SubmitError(s.folder.string() + ": " + (fs::exists(s.folder) ? "not a folder" : "no such folder"));
  const std::optional<User> owner = store.user_by_name(s.owner);
  if (!owner) throw SubmitError("no user named '" + s.owner + "' (add one with: digitflow user add " + s.owner + ")");
  if (owner->disabled) throw SubmitError("user '" + s.owner + "' is disabled");
  if (!s.template_file.empty()) {
    try {
      config::load_template(s.template_file);
    } catch (const std::exception& e) {
      throw SubmitError(e.what());
    }
  }
  const auto files = job_files(s.folder, s.exclude);
  if (files.empty()) throw SubmitError(s.folder.string() + ": the folder holds no files");

  const std::string token = random_token();
  const fs::path partial = state.inputs() / ("." + token + ".partial");
  const fs::path input = state.inputs() / token;
  const fs::path template_copy = s.template_file.empty() ? fs::path() : state.templates() / (token + ".yaml");
  auto clean_up = [&] {
    std::error_code ec;
    fs::remove_all(partial, ec);
    fs::remove_all(input, ec);
    if (!template_copy.empty()) fs::remove(template_copy, ec);
  };
  try {
    for (const auto& [from, relative] : files) take_file(from, partial / relative, s.link);
    if (!template_copy.empty()) take_file(s.template_file, template_copy, false);
    fs::rename(partial, input);
    NewJob job;
    job.owner = owner->id;
    job.name = s.name.empty() ? fs::absolute(s.folder).lexically_normal().filename().string() : s.name;
    if (job.name.empty()) job.name = fs::absolute(s.folder).lexically_normal().parent_path().filename().string();
    job.input_dir = fs::absolute(input);
    job.template_path = template_copy.empty() ? std::string() : fs::absolute(template_copy).string();
    job.model = s.model;
    job.source = s.source;
    return store.create_job(job);
  } catch (const fs::filesystem_error& e) {
    clean_up();
    throw SubmitError(std::string("cannot copy the job into ") + state.inputs().string() + ": " + e.what());
  } catch (...) {
    clean_up();
    throw;
  }
}

InboxScan scan_inbox(JobStore& store, const StateDir& state, const fs::path& inbox) {
  InboxScan scan;
  std::error_code ec;
  if (!fs::is_directory(inbox)) return scan;
  const fs::path taken_root = inbox / ".taken";

  // First the folders taken before (a crash may have come between the move and the queue).
  auto queue_taken = [&](const std::string& user, const fs::path& taken, const std::string& name) {
    if (fs::exists(taken / ".queued")) return;
    Submission s;
    s.folder = taken;
    s.owner = user;
    s.name = name;
    s.source = "inbox:" + fs::absolute(taken).lexically_normal().string();
    s.link = true;
    s.exclude = {"READY", ".queued"};
    // A folder may bring the template of its form, as template.yaml beside its pages (a
    // file, not a link: one leading out of the folder is refused with the pages' links).
    if (std::error_code link_ec; fs::symlink_status(taken / "template.yaml", link_ec).type() == fs::file_type::regular) {
      s.template_file = taken / "template.yaml";
      s.exclude.push_back("template.yaml");
    }
    try {
      scan.submitted.push_back(submit_job(store, state, s));
    } catch (const Conflict&) {
      // queued before the crash: only the marker was missing
    } catch (const std::exception& e) {
      scan.problems.push_back(taken.string() + ": " + e.what());
      return;
    }
    std::ofstream(taken / ".queued") << "queued\n";
  };
  for (fs::directory_iterator users(taken_root, ec), end; !ec && users != end; users.increment(ec))
    for (fs::directory_iterator jobs(users->path(), ec), jend; !ec && jobs != jend; jobs.increment(ec))
      if (jobs->is_directory())
        queue_taken(users->path().filename().string(), jobs->path(), jobs->path().filename().string());

  for (fs::directory_iterator users(inbox, ec), end; !ec && users != end; users.increment(ec)) {
    const std::string user = users->path().filename().string();
    if (!users->is_directory() || user.starts_with(".")) continue;
    std::vector<fs::path> ready;
    std::error_code jec;
    for (fs::directory_iterator jobs(users->path(), jec), jend; !jec && jobs != jend; jobs.increment(jec))
      if (jobs->is_directory() && !jobs->path().filename().string().starts_with(".") &&
          fs::exists(jobs->path() / "READY"))
        ready.push_back(jobs->path());
    if (ready.empty()) continue;
    const std::optional<User> owner = store.user_by_name(user);
    if (!owner || owner->disabled) {
      scan.problems.push_back(users->path().string() + ": " + (owner ? "user '" + user + "' is disabled"
                                                                     : "no user named '" + user + "'") +
                              "; its folders are left where they are");
      continue;
    }
    std::sort(ready.begin(), ready.end());
    for (const fs::path& folder : ready) {
      fs::create_directories(taken_root / user, ec);
      fs::path taken = taken_root / user / folder.filename();
      for (int n = 2; fs::exists(taken); ++n) taken = taken_root / user / (folder.filename().string() + "-" + std::to_string(n));
      fs::rename(folder, taken, ec);
      if (ec) {
        if (fs::exists(folder)) scan.problems.push_back(folder.string() + ": cannot move it aside (" + ec.message() + ")");
        continue;  // else another scanner took it
      }
      queue_taken(user, taken, folder.filename().string());
    }
  }
  return scan;
}

}  // namespace digitflow::jobs

// One multipart POST to /api/v1/jobs: a part `files` per file, its filename the path inside
// the folder, and the fields name and template (or template_file). The server's {"error"} is passed on as it is.
#include "digitflow/web/client.hpp"

#include <httplib.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "digitflow/jobs/submit.hpp"

namespace digitflow::web {

namespace fs = std::filesystem;

int64_t submit_remote(const RemoteSubmission& s) {
  if (!s.server.starts_with("http://") && !s.server.starts_with("https://"))
    throw ClientError("--server " + s.server + ": expects http://host:port or https://host");
  if (s.token.empty()) throw ClientError("no API token (create one on the account page, then --token TOKEN)");
  if (!fs::is_directory(s.folder))
    throw ClientError(s.folder.string() + ": " + (fs::exists(s.folder) ? "not a folder" : "no such folder"));
  // A template of the folder's own goes up with the pages, named by its path among them.
  std::string template_file;
  if (!s.template_file.empty()) {
    if (!s.template_name.empty()) throw ClientError("a template name or a template file, not both");
    // A relative path that is no file here may be one as it lies in the folder.
    fs::path given = s.template_file;
    if (given.is_relative() && !fs::exists(given) && fs::is_regular_file(s.folder / given)) given = s.folder / given;
    std::error_code file_ec, folder_ec;
    const fs::path inside =
        fs::weakly_canonical(given, file_ec).lexically_relative(fs::weakly_canonical(s.folder, folder_ec));
    if (!fs::is_regular_file(given)) throw ClientError(s.template_file.string() + ": no such template file");
    if (file_ec || folder_ec || inside.empty() || *inside.begin() == "..")
      throw ClientError(s.template_file.string() + ": a template file sent to a server must lie inside " +
                        s.folder.string() + ", to go up with the pages; or give the name of one the server lists");
    template_file = inside.generic_string();
  }
  const auto files = jobs::job_files(s.folder);
  if (files.empty()) throw ClientError(s.folder.string() + ": the folder holds no files");

  httplib::MultipartFormDataItems items;
  int64_t total = 0;
  for (const auto& [path, relative] : files) {
    std::ifstream in(path, std::ios::binary);
    std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!in.good() && !in.eof()) throw ClientError(path.string() + ": cannot read");
    total += static_cast<int64_t>(content.size());
    if (total > s.max_bytes)
      throw ClientError(s.folder.string() + ": more than " + std::to_string(s.max_bytes >> 20) +
                        " MB; submit it in parts, or through the server's drop folder");
    items.push_back({"files", std::move(content), relative.generic_string(), "application/octet-stream"});
  }
  std::string name = s.name;
  if (name.empty()) name = fs::absolute(s.folder).lexically_normal().filename().string();
  if (name.empty()) name = fs::absolute(s.folder).lexically_normal().parent_path().filename().string();
  items.push_back({"name", name, "", ""});
  if (!s.template_name.empty()) items.push_back({"template", s.template_name, "", ""});
  if (!template_file.empty()) items.push_back({"template_file", template_file, "", ""});

  std::string base = s.server;
  while (base.ends_with("/")) base.pop_back();
  httplib::Client client(base);
  client.set_connection_timeout(10);
  client.set_write_timeout(600);
  client.set_read_timeout(600);
  const httplib::Headers headers = {{"Authorization", "Bearer " + s.token}};
  const httplib::Result r = client.Post("/api/v1/jobs", headers, items);
  if (!r) throw ClientError(base + ": " + httplib::to_string(r.error()));
  nlohmann::json answer = nlohmann::json::parse(r->body, nullptr, false);
  if (r->status != 201) {
    std::string message = base + ": ";
    message += std::to_string(r->status);
    message += " ";
    message += answer.is_object() && answer.contains("error") ? answer["error"].get<std::string>()
                                                               : r->body.substr(0, 200);
    throw ClientError(message);
  }
  if (!answer.is_object() || !answer.contains("id") || !answer["id"].is_number_integer())
    throw ClientError(base + ": the answer holds no job id: " + r->body.substr(0, 200));
  return answer["id"].get<int64_t>();
}

}  // namespace digitflow::web

// The API client side of `digitflow submit --server URL --token TOKEN`: the folder's pages
// sent as one multipart upload, as a folder upload from the browser sends them.
#pragma once

#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>

namespace digitflow::web {

// The server refused the request or could not be reached; the message says which and why.
class ClientError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct RemoteSubmission {
  std::string server;                // http://host:port or https://host (behind a proxy)
  std::string token;                 // an API token (account page, or login with {"token": true})
  std::filesystem::path folder;      // the pages, searched recursively
  std::string name;                  // "" = the folder's name
  std::string template_name;         // "" = none; a name from GET /api/v1/templates
  std::filesystem::path template_file;  // or "" = none; a template YAML inside `folder`
                                        // (a relative path: from here, else from `folder`)
  int64_t max_bytes = int64_t{2} << 30;  // the upload is held in memory: refuse beyond this
};

// Uploads the folder as a job; returns the job's id on the server. Links that lead out of the
// folder are refused before anything is sent.
int64_t submit_remote(const RemoteSubmission& submission);

}  // namespace digitflow::web

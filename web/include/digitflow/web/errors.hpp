// What a request can get wrong, as exceptions that carry their HTTP status: handlers throw
// them, and the server's one exception handler turns each into {"error": "..."} with its
// status (and Retry-After for Throttled).
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace digitflow::web {

class HttpError : public std::runtime_error {
 public:
  HttpError(int status, const std::string& message)
      : std::runtime_error(message), status_(status) {}
  int status() const { return status_; }

 private:
  int status_;
};

struct BadRequest : HttpError {  // malformed JSON or multipart, a bad name, a weak password
  explicit BadRequest(const std::string& m) : HttpError(400, m) {}
};
struct Unauthorized : HttpError {  // not logged in, wrong password, a revoked token
  explicit Unauthorized(const std::string& m) : HttpError(401, m) {}
};
struct Forbidden : HttpError {  // wrong CSRF token, not an admin, registration closed
  explicit Forbidden(const std::string& m) : HttpError(403, m) {}
};
struct NotFound : HttpError {  // no such thing, also another user's job
  explicit NotFound(const std::string& m) : HttpError(404, m) {}
};
struct Taken : HttpError {  // a name in use
  explicit Taken(const std::string& m) : HttpError(409, m) {}
};
struct TooLarge : HttpError {  // an upload over a limit; the message names it
  explicit TooLarge(const std::string& m) : HttpError(413, m) {}
};
struct Throttled : HttpError {  // too many failed logins
  Throttled(const std::string& m, int64_t seconds) : HttpError(429, m), retry_after_s(seconds) {}
  int64_t retry_after_s;
};
struct NotImplemented : HttpError {  // a route this server does not offer yet
  explicit NotImplemented(const std::string& m) : HttpError(501, m) {}
};

}  // namespace digitflow::web

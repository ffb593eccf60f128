// Accounts, sessions and API tokens. Passwords are hashed with Argon2id (libsodium's
// crypto_pwhash_str, its cost in the hash so that old hashes still verify after the cost is
// raised). Session cookies and API tokens are 256 random bits; the store keeps only their
// SHA-256, so a copy of the database lets nobody in. Failed logins are counted in memory
// per account and per client address: the fifth failure within 15 minutes locks that
// account (or address) out until the oldest of them is 15 minutes old.
#pragma once

#include <cstdint>
#include <deque>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "digitflow/jobs/store.hpp"
#include "digitflow/web/store_pool.hpp"

namespace digitflow::web {

// 32 random bytes (libsodium's randombytes_buf) as 64 hex digits.
std::string random_token();
// SHA-256 of `text` as 64 lower-case hex digits.
std::string sha256_hex(std::string_view text);
// Equal without leaking where they differ (sodium_memcmp).
bool same_secret(std::string_view a, std::string_view b);

// Argon2id hash in crypto_pwhash_str's text form; `ops` passes over `memory_bytes`.
std::string hash_password(const std::string& password, uint64_t ops, size_t memory_bytes);
bool verify_password(const std::string& hash, const std::string& password);

// Throws BadRequest unless `name` is 1 to 64 of a-z A-Z 0-9 . _ -, not starting with '.'
// (the rule of digitflow user add).
void check_username(const std::string& name);
// Throws BadRequest unless `email` looks like an address (one @, no spaces, <= 254 bytes).
void check_email(const std::string& email);

// Passwords of at least 10 characters that are not in the list of common passwords (one a
// line, compared without case) and are not the user name.
class PasswordPolicy {
 public:
  explicit PasswordPolicy(const std::filesystem::path& common_passwords);  // throws naming the file
  void check(const std::string& password, const std::string& username) const;  // throws BadRequest
  size_t common_count() const { return common_.size(); }

 private:
  std::unordered_set<std::string> common_;
};

class LoginThrottle {
 public:
  static constexpr int kMaxFailures = 5;
  static constexpr int64_t kWindowMs = 15 * 60 * 1000;
  // Seconds until `account` and `address` may try again; 0 when they may now.
  int64_t retry_after_s(const std::string& account, const std::string& address, int64_t now_ms);
  void failed(const std::string& account, const std::string& address, int64_t now_ms);
  void succeeded(const std::string& account);  // the account's count starts again

 private:
  int64_t wait_ms(const std::string& key, int64_t now_ms);
  std::mutex mutex_;
  std::map<std::string, std::deque<int64_t>> failures_;  // "u:name" / "a:address" -> times
};

struct AccountOptions {
  bool registration_open = true;
  int64_t session_ms = 7 * 24 * 3600 * 1000LL;
  uint64_t argon2_ops = 2;
  size_t argon2_memory_bytes = size_t{19} << 20;
};

// Who is calling: through a session cookie (with its CSRF token) or an API token.
struct Caller {
  jobs::User user;
  std::string session_hash;  // empty with an API token
  std::string csrf;
  bool is_admin() const { return user.role == "admin"; }
};

// What a login or a registration hands back.
struct LoginResult {
  jobs::User user;
  std::string session_token, csrf;  // a browser login: the cookie's value
  std::string api_token;            // a login with "token": true
  int64_t api_token_id = 0;
};

class Accounts {
 public:
  Accounts(StorePool& stores, const PasswordPolicy& passwords, AccountOptions options);
  const AccountOptions& options() const { return options_; }

  // Throws Forbidden when registration is closed, BadRequest for a bad name, address or
  // password, Taken when the name is in use. Logs the new user in.
  LoginResult register_user(const std::string& name, const std::string& email,
                            const std::string& password);
  // Throws Throttled, Unauthorized (wrong name or password: one message for both), Forbidden
  // for a disabled user. With `token`, an API token named token_name instead of a session.
  LoginResult login(const std::string& name, const std::string& password,
                    const std::string& address, bool token, const std::string& token_name);
  void logout(const Caller& caller);
  // Throws Unauthorized when `current` is wrong; every other session of the user ends.
  void change_password(const Caller& caller, const std::string& current, const std::string& next);

  std::optional<Caller> by_session(
      const std::string& cookie_token);  // none: unknown, expired or disabled
  std::optional<Caller> by_api_token(const std::string& token);

  std::vector<jobs::ApiToken> tokens(const Caller& caller);
  LoginResult create_token(const Caller& caller,
                           const std::string& name);    // api_token, api_token_id
  void revoke_token(const Caller& caller, int64_t id);  // NotFound

  // Admin: change a user's role ("user" | "admin") and disabled flag; a disabled user's
  // sessions end. Throws NotFound, BadRequest (a bad role, or an admin changing themself).
  jobs::User update_user(const Caller& admin, int64_t id, const std::optional<std::string>& role,
                         const std::optional<bool>& disabled);

 private:
  std::pair<std::string, std::string> start_session(jobs::JobStore& store,
                                                    int64_t user);  // token, csrf
  StorePool& stores_;
  const PasswordPolicy& passwords_;
  AccountOptions options_;
  LoginThrottle throttle_;
  std::string dummy_hash_;  // verified against when the user does not exist, to take as long
};

}  // namespace digitflow::web

// Accounts over the job store, with libsodium for every secret: Argon2id password hashes,
// random session and API tokens, their SHA-256 in the store, constant-time comparisons.
#include "digitflow/web/accounts.hpp"

#include <sodium.h>

#include <algorithm>
#include <cctype>
#include <fstream>

#include "digitflow/web/errors.hpp"

namespace digitflow::web {

namespace {

std::string hex(const unsigned char* bytes, size_t size) {
  std::string text(size * 2 + 1, '\0');
  sodium_bin2hex(text.data(), text.size(), bytes, size);
  text.pop_back();
  return text;
}

std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

void start_sodium() {
  static const int started = sodium_init();
  if (started < 0) throw std::runtime_error("libsodium could not start");
}

}  // namespace

std::string random_token() {
  start_sodium();
  unsigned char bytes[32];
  randombytes_buf(bytes, sizeof bytes);
  return hex(bytes, sizeof bytes);
}

std::string sha256_hex(std::string_view text) {
  start_sodium();
  unsigned char digest[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(digest, reinterpret_cast<const unsigned char*>(text.data()), text.size());
  return hex(digest, sizeof digest);
}

bool same_secret(std::string_view a, std::string_view b) {
  return a.size() == b.size() && sodium_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string hash_password(const std::string& password, uint64_t ops, size_t memory_bytes) {
  start_sodium();
  char hash[crypto_pwhash_STRBYTES];
  if (crypto_pwhash_str_alg(hash, password.data(), password.size(), ops, memory_bytes,
                            crypto_pwhash_ALG_ARGON2ID13) != 0)
    throw std::runtime_error("hashing a password ran out of memory");
  return hash;
}

bool verify_password(const std::string& hash, const std::string& password) {
  start_sodium();
  if (hash.empty() || hash.size() >= crypto_pwhash_STRBYTES) return false;
  return crypto_pwhash_str_verify(hash.c_str(), password.data(), password.size()) == 0;
}

void check_username(const std::string& name) {
  const bool valid =
      !name.empty() && name.size() <= 64 && name[0] != '.' &&
      name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") ==
          std::string::npos;
  if (!valid)
    throw BadRequest("a user name is 1 to 64 of a-z A-Z 0-9 . _ -, not starting with '.'");
}

void check_email(const std::string& email) {
  const size_t at = email.find('@');
  const bool valid = email.size() <= 254 && at != std::string::npos && at > 0 &&
                     at + 1 < email.size() && email.find('@', at + 1) == std::string::npos &&
                     std::none_of(email.begin(), email.end(),
                                  [](unsigned char c) { return c <= ' ' || c == 0x7f; });
  if (!valid) throw BadRequest("the e-mail address is not valid (name@host, no spaces)");
}

PasswordPolicy::PasswordPolicy(const std::filesystem::path& common_passwords) {
  std::ifstream in(common_passwords);
  if (!in)
    throw std::runtime_error(common_passwords.string() +
                             ": cannot read the list of common passwords");
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty() && line[0] != '#') common_.insert(lower(line));
  }
  if (common_.empty())
    throw std::runtime_error(common_passwords.string() + ": the list of common passwords is empty");
}

void PasswordPolicy::check(const std::string& password, const std::string& username) const {
  const auto characters = std::count_if(password.begin(), password.end(),
                                        [](unsigned char c) { return (c & 0xC0) != 0x80; });
  if (characters < 10) throw BadRequest("the password is too short: at least 10 characters");
  if (password.size() > 1024) throw BadRequest("the password is too long: at most 1024 bytes");
  const std::string folded = lower(password);
  if (common_.count(folded))
    throw BadRequest("the password is one of the most common passwords; choose another");
  if (username.size() >= 3 && folded.find(lower(username)) != std::string::npos)
    throw BadRequest("the password must not contain the user name");
}

int64_t LoginThrottle::wait_ms(const std::string& key, int64_t now_ms) {
  auto it = failures_.find(key);
  if (it == failures_.end()) return 0;
  auto& times = it->second;
  while (!times.empty() && times.front() <= now_ms - kWindowMs) times.pop_front();
  if (times.empty()) {
    failures_.erase(it);
    return 0;
  }
  if (static_cast<int>(times.size()) < kMaxFailures) return 0;
  return times[times.size() - kMaxFailures] + kWindowMs - now_ms;
}

int64_t LoginThrottle::retry_after_s(const std::string& account, const std::string& address,
                                     int64_t now_ms) {
  std::lock_guard lock(mutex_);
  const int64_t ms =
      std::max(wait_ms("u:" + lower(account), now_ms), wait_ms("a:" + address, now_ms));
  return ms <= 0 ? 0 : (ms + 999) / 1000;
}

void LoginThrottle::failed(const std::string& account, const std::string& address, int64_t now_ms) {
  std::lock_guard lock(mutex_);
  if (failures_.size() > 100'000)  // forget what has aged out before growing further
    for (auto it = failures_.begin(); it != failures_.end();)
      it = !it->second.empty() && it->second.back() > now_ms - kWindowMs ? std::next(it)
                                                                         : failures_.erase(it);
  for (const std::string& key : {"u:" + lower(account), "a:" + address}) {
    auto& times = failures_[key];
    times.push_back(now_ms);
    while (static_cast<int>(times.size()) > kMaxFailures) times.pop_front();
  }
}

void LoginThrottle::succeeded(const std::string& account) {
  std::lock_guard lock(mutex_);
  failures_.erase("u:" + lower(account));
}

Accounts::Accounts(StorePool& stores, const PasswordPolicy& passwords, AccountOptions options)
    : stores_(stores), passwords_(passwords), options_(options) {
  dummy_hash_ = hash_password(random_token(), options_.argon2_ops, options_.argon2_memory_bytes);
}

std::pair<std::string, std::string> Accounts::start_session(jobs::JobStore& store, int64_t user) {
  jobs::Session session;
  const std::string token = random_token();
  session.token_hash = sha256_hex(token);
  session.user = user;
  session.csrf = random_token();
  session.created_ms = jobs::now_ms();
  session.expires_ms = session.created_ms + options_.session_ms;
  store.add_session(session);
  return {token, session.csrf};
}

LoginResult Accounts::register_user(const std::string& name, const std::string& email,
                                    const std::string& password) {
  if (!options_.registration_open)
    throw Forbidden("registration is closed: an administrator adds users");
  check_username(name);
  check_email(email);
  passwords_.check(password, name);
  auto store = stores_.acquire();
  jobs::User user;
  user.name = name;
  user.email = email;
  user.password_hash = hash_password(password, options_.argon2_ops, options_.argon2_memory_bytes);
  try {
    user.id = store->add_user(user);
  } catch (const jobs::Conflict&) {
    throw Taken("the user name '" + name + "' is taken");
  }
  user = *store->user_by_id(user.id);
  LoginResult result;
  std::tie(result.session_token, result.csrf) = start_session(*store, user.id);
  result.user = user;
  return result;
}

LoginResult Accounts::login(const std::string& name, const std::string& password,
                            const std::string& address, bool token, const std::string& token_name) {
  const int64_t now = jobs::now_ms();
  if (const int64_t wait = throttle_.retry_after_s(name, address, now); wait > 0)
    throw Throttled("too many failed logins; try again in " + std::to_string(wait) + " s", wait);
  auto store = stores_.acquire();
  const std::optional<jobs::User> user = store->user_by_name(name);
  const bool right = user ? verify_password(user->password_hash, password)
                          : (verify_password(dummy_hash_, password), false);
  if (!right) {
    throttle_.failed(name, address, now);
    throw Unauthorized("wrong username or password");
  }
  if (user->disabled) throw Forbidden("this account is disabled");
  throttle_.succeeded(name);
  LoginResult result;
  result.user = *user;
  if (token) {
    Caller caller;
    caller.user = *user;
    return create_token(caller, token_name.empty() ? "login" : token_name);
  }
  std::tie(result.session_token, result.csrf) = start_session(*store, user->id);
  return result;
}

void Accounts::logout(const Caller& caller) {
  if (caller.session_hash.empty()) return;
  stores_.acquire()->delete_session(caller.session_hash);
}

void Accounts::change_password(const Caller& caller, const std::string& current,
                               const std::string& next) {
  auto store = stores_.acquire();
  std::optional<jobs::User> user = store->user_by_id(caller.user.id);
  if (!user || !verify_password(user->password_hash, current))
    throw Unauthorized("the current password is wrong");
  passwords_.check(next, user->name);
  user->password_hash = hash_password(next, options_.argon2_ops, options_.argon2_memory_bytes);
  store->update_user(*user);
  const std::optional<jobs::Session> kept =
      caller.session_hash.empty() ? std::nullopt : store->session(caller.session_hash);
  store->delete_sessions(user->id);
  if (kept) store->add_session(*kept);
}

std::optional<Caller> Accounts::by_session(const std::string& cookie_token) {
  if (cookie_token.empty()) return std::nullopt;
  auto store = stores_.acquire();
  const std::string hash = sha256_hex(cookie_token);
  const std::optional<jobs::Session> session = store->session(hash);
  if (!session) return std::nullopt;
  if (session->expires_ms <= jobs::now_ms()) {
    store->delete_session(hash);
    return std::nullopt;
  }
  const std::optional<jobs::User> user = store->user_by_id(session->user);
  if (!user || user->disabled) {
    store->delete_session(hash);
    return std::nullopt;
  }
  return Caller{*user, hash, session->csrf};
}

std::optional<Caller> Accounts::by_api_token(const std::string& token) {
  if (token.empty()) return std::nullopt;
  auto store = stores_.acquire();
  const std::optional<jobs::ApiToken> found = store->api_token(sha256_hex(token));
  if (!found) return std::nullopt;
  const std::optional<jobs::User> user = store->user_by_id(found->user);
  if (!user || user->disabled) return std::nullopt;
  return Caller{*user, "", ""};
}

std::vector<jobs::ApiToken> Accounts::tokens(const Caller& caller) {
  return stores_.acquire()->api_tokens(caller.user.id);
}

LoginResult Accounts::create_token(const Caller& caller, const std::string& name) {
  if (name.empty() || name.size() > 100) throw BadRequest("a token name is 1 to 100 characters");
  jobs::ApiToken token;
  const std::string secret = "dft_" + random_token();
  token.user = caller.user.id;
  token.name = name;
  token.token_hash = sha256_hex(secret);
  token.created_ms = jobs::now_ms();
  LoginResult result;
  result.user = caller.user;
  result.api_token_id = stores_.acquire()->add_api_token(token);
  result.api_token = secret;
  return result;
}

void Accounts::revoke_token(const Caller& caller, int64_t id) {
  if (!stores_.acquire()->revoke_api_token(caller.user.id, id))
    throw NotFound("no token " + std::to_string(id));
}

jobs::User Accounts::update_user(const Caller& admin, int64_t id,
                                 const std::optional<std::string>& role,
                                 const std::optional<bool>& disabled) {
  if (role && *role != "user" && *role != "admin")
    throw BadRequest("a role is \"user\" or \"admin\"");
  if (id == admin.user.id && ((role && *role != "admin") || (disabled && *disabled)))
    throw BadRequest("an administrator cannot demote or disable their own account");
  auto store = stores_.acquire();
  std::optional<jobs::User> user = store->user_by_id(id);
  if (!user) throw NotFound("no user " + std::to_string(id));
  if (role) user->role = *role;
  if (disabled) user->disabled = *disabled;
  store->update_user(*user);
  if (user->disabled) store->delete_sessions(id);
  return *store->user_by_id(id);
}

}  // namespace digitflow::web

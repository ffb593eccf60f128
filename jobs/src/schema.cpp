#include "schema.hpp"

namespace digitflow::jobs::detail {

std::vector<std::vector<std::string>> migrations(const Dialect& d) {
  const std::string key = d.serial_key;
  return {
      // 0 -> 1: users, jobs and per-page results.
      {
          "CREATE TABLE users ("
          " id " + key + ","
          " name TEXT NOT NULL UNIQUE,"
          " email TEXT NOT NULL DEFAULT '',"
          " password_hash TEXT NOT NULL DEFAULT '',"
          " role TEXT NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),"
          " disabled INTEGER NOT NULL DEFAULT 0,"
          " created_ms BIGINT NOT NULL)",
          "CREATE TABLE jobs ("
          " id " + key + ","
          " owner BIGINT NOT NULL REFERENCES users(id),"
          " name TEXT NOT NULL,"
          " state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled')),"
          " input_dir TEXT NOT NULL,"
          " template TEXT NOT NULL DEFAULT '',"
          " model TEXT NOT NULL DEFAULT '',"
          " source TEXT UNIQUE,"
          " pages_total BIGINT NOT NULL DEFAULT -1,"
          " pages_done BIGINT NOT NULL DEFAULT 0,"
          " pages_failed BIGINT NOT NULL DEFAULT 0,"
          " strings BIGINT NOT NULL DEFAULT 0,"
          " low_confidence BIGINT NOT NULL DEFAULT 0,"
          " created_ms BIGINT NOT NULL,"
          " started_ms BIGINT NOT NULL DEFAULT 0,"
          " finished_ms BIGINT NOT NULL DEFAULT 0,"
          " error TEXT NOT NULL DEFAULT '',"
          " worker TEXT NOT NULL DEFAULT '',"
          " lease_expires_ms BIGINT NOT NULL DEFAULT 0,"
          " cancel_requested INTEGER NOT NULL DEFAULT 0,"
          " attempts INTEGER NOT NULL DEFAULT 0)",
          "CREATE INDEX jobs_state ON jobs (state, id)",
          "CREATE INDEX jobs_owner ON jobs (owner, id)",
          "CREATE TABLE pages ("
          " job BIGINT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,"
          " seq BIGINT NOT NULL,"
          " key TEXT NOT NULL,"
          " failed INTEGER NOT NULL DEFAULT 0,"
          " strings BIGINT NOT NULL DEFAULT 0,"
          " low_confidence BIGINT NOT NULL DEFAULT 0,"
          " result TEXT NOT NULL,"
          " PRIMARY KEY (job, key))",
          "CREATE INDEX pages_order ON pages (job, seq)",
      },
      // 1 -> 2: the web service: sessions, API tokens, reviewed digits, model versions.
      {
          "CREATE TABLE sessions ("
          " token_hash TEXT PRIMARY KEY,"
          " user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
          " csrf TEXT NOT NULL,"
          " created_ms BIGINT NOT NULL,"
          " expires_ms BIGINT NOT NULL)",
          "CREATE INDEX sessions_user ON sessions (user_id)",
          "CREATE TABLE api_tokens ("
          " id " + key + ","
          " user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
          " name TEXT NOT NULL,"
          " token_hash TEXT NOT NULL UNIQUE,"
          " created_ms BIGINT NOT NULL,"
          " last_used_ms BIGINT NOT NULL DEFAULT 0)",
          "CREATE INDEX api_tokens_user ON api_tokens (user_id, id)",
          "CREATE TABLE samples ("
          " id " + key + ","
          " user_id BIGINT NOT NULL REFERENCES users(id),"
          " job BIGINT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,"
          " page_key TEXT NOT NULL,"
          " string_index INTEGER NOT NULL,"
          " digit_index INTEGER NOT NULL,"
          " guess INTEGER NOT NULL,"
          " confidence DOUBLE PRECISION NOT NULL,"
          " label INTEGER NOT NULL CHECK (label BETWEEN 0 AND 10),"
          " image TEXT NOT NULL,"
          " created_ms BIGINT NOT NULL,"
          " UNIQUE (job, page_key, string_index, digit_index))",
          "CREATE INDEX samples_newest ON samples (created_ms, id)",
          "CREATE INDEX samples_user ON samples (user_id, created_ms, id)",
          "CREATE TABLE model_versions ("
          " id " + key + ","
          " path TEXT NOT NULL,"
          " status TEXT NOT NULL CHECK (status IN ('training', 'ready', 'rejected', 'failed')),"
          " is_default INTEGER NOT NULL DEFAULT 0 CHECK (is_default IN (0, 1)),"
          " note TEXT NOT NULL DEFAULT '',"
          " metrics TEXT NOT NULL DEFAULT '{}',"
          " created_ms BIGINT NOT NULL)",
          // At most one default, whichever order two promotions commit in.
          "CREATE UNIQUE INDEX model_versions_default ON model_versions (is_default) WHERE is_default = 1",
      },
      // 2 -> 3: a version in training is held by its trainer's lease, renewed while it runs;
      // one whose lease ran out was abandoned (its trainer killed) and is recorded failed.
      {
          "ALTER TABLE model_versions ADD COLUMN lease_expires_ms BIGINT NOT NULL DEFAULT 0",
      },
  };
}

const char* const kJobColumns =
    "j.id, j.owner, u.name, j.name, j.state, j.input_dir, j.template, j.model, COALESCE(j.source, ''),"
    " j.pages_total, j.pages_done, j.pages_failed, j.strings, j.low_confidence,"
    " j.created_ms, j.started_ms, j.finished_ms, j.error, j.worker, j.lease_expires_ms,"
    " j.cancel_requested, j.attempts";

}  // namespace digitflow::jobs::detail

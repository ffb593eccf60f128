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
  };
}

const char* const kJobColumns =
    "j.id, j.owner, u.name, j.name, j.state, j.input_dir, j.template, j.model, COALESCE(j.source, ''),"
    " j.pages_total, j.pages_done, j.pages_failed, j.strings, j.low_confidence,"
    " j.created_ms, j.started_ms, j.finished_ms, j.error, j.worker, j.lease_expires_ms,"
    " j.cancel_requested, j.attempts";

}  // namespace digitflow::jobs::detail

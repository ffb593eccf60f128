// The schema, as numbered migrations shared by both stores: migration i takes a database
// from version i to i + 1. The SQL is the common subset of SQLite and PostgreSQL, with
// the two spellings that differ filled in by each store (an auto-increment key, a bool).
#pragma once

#include <string>
#include <vector>

#include "digitflow/jobs/store.hpp"

#include "digitflow/jobs/store.hpp"

namespace digitflow::jobs::detail {

struct Dialect {
  const char* serial_key;  // "INTEGER PRIMARY KEY" | "BIGSERIAL PRIMARY KEY"
};

// Each entry is a list of statements run in one transaction.
std::vector<std::vector<std::string>> migrations(const Dialect& dialect);

// Checks both stores make before writing, so that a bad value is named the same way by
// either (the schema's CHECK constraints stay as the last line). Throw StoreError.
void check_sample(const Sample& sample);          // label 0..10, indices >= 0
void check_model_status(const std::string& status);  // training | ready | rejected | failed

// Columns of a job row in the order the stores select them (joined with users as u).
extern const char* const kJobColumns;

// Rows into structs, for both stores: `Row` gives integer(i), text(i) and real(i) of column
// i (NULL as 0 or ""), in the column order of the stores' SELECTs.
template <typename Row>
User read_user(const Row& s) {
  User u;
  u.id = s.integer(0);
  u.name = s.text(1);
  u.email = s.text(2);
  u.password_hash = s.text(3);
  u.role = s.text(4);
  u.disabled = s.integer(5) != 0;
  u.created_ms = s.integer(6);
  return u;
}

template <typename Row>
Job read_job(const Row& s) {
  Job j;
  j.id = s.integer(0);
  j.owner = s.integer(1);
  j.owner_name = s.text(2);
  j.name = s.text(3);
  j.state = parse_job_state(s.text(4));
  j.input_dir = s.text(5);
  j.template_path = s.text(6);
  j.model = s.text(7);
  j.source = s.text(8);
  j.pages_total = s.integer(9);
  j.pages_done = s.integer(10);
  j.pages_failed = s.integer(11);
  j.strings = s.integer(12);
  j.low_confidence = s.integer(13);
  j.created_ms = s.integer(14);
  j.started_ms = s.integer(15);
  j.finished_ms = s.integer(16);
  j.error = s.text(17);
  j.worker = s.text(18);
  j.lease_expires_ms = s.integer(19);
  j.cancel_requested = s.integer(20) != 0;
  j.attempts = static_cast<int>(s.integer(21));
  return j;
}

template <typename Row>
Session read_session(const Row& s) {
  Session session;
  session.token_hash = s.text(0);
  session.user = s.integer(1);
  session.csrf = s.text(2);
  session.created_ms = s.integer(3);
  session.expires_ms = s.integer(4);
  return session;
}

template <typename Row>
ApiToken read_api_token(const Row& s) {
  ApiToken t;
  t.id = s.integer(0);
  t.user = s.integer(1);
  t.name = s.text(2);
  t.token_hash = s.text(3);
  t.created_ms = s.integer(4);
  t.last_used_ms = s.integer(5);
  return t;
}

template <typename Row>
Sample read_sample(const Row& s) {
  Sample sample;
  sample.id = s.integer(0);
  sample.user = s.integer(1);
  sample.job = s.integer(2);
  sample.page_key = s.text(3);
  sample.string_index = static_cast<int>(s.integer(4));
  sample.digit_index = static_cast<int>(s.integer(5));
  sample.guess = static_cast<int>(s.integer(6));
  sample.confidence = s.real(7);
  sample.label = static_cast<int>(s.integer(8));
  sample.image = s.text(9);
  sample.created_ms = s.integer(10);
  return sample;
}

template <typename Row>
ModelVersion read_model_version(const Row& s) {
  ModelVersion v;
  v.id = s.integer(0);
  v.path = s.text(1);
  v.status = s.text(2);
  v.is_default = s.integer(3) != 0;
  v.note = s.text(4);
  v.metrics_json = s.text(5);
  v.created_ms = s.integer(6);
  return v;
}

}  // namespace digitflow::jobs::detail

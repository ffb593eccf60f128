// The schema, as numbered migrations shared by both stores: migration i takes a database
// from version i to i + 1. The SQL is the common subset of SQLite and PostgreSQL, with
// the two spellings that differ filled in by each store (an auto-increment key, a bool).
#pragma once

#include <string>
#include <vector>

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

}  // namespace digitflow::jobs::detail

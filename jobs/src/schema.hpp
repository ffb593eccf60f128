// The schema, as numbered migrations shared by both stores: migration i takes a database
// from version i to i + 1. The SQL is the common subset of SQLite and PostgreSQL, with
// the two spellings that differ filled in by each store (an auto-increment key, a bool).
#pragma once

#include <string>
#include <vector>

namespace digitflow::jobs::detail {

struct Dialect {
  const char* serial_key;  // "INTEGER PRIMARY KEY" | "BIGSERIAL PRIMARY KEY"
};

// Each entry is a list of statements run in one transaction.
std::vector<std::vector<std::string>> migrations(const Dialect& dialect);

// Columns of a job row in the order the stores select them (joined with users as u).
extern const char* const kJobColumns;

}  // namespace digitflow::jobs::detail

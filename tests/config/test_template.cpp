// Tests of form templates from YAML: the shipped check template and a written one load to
// the expected fields, and each kind of mistake is a ConfigError naming the file, the line
// and the key.
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "digitflow/config/template.hpp"
#include "test_support.hpp"

namespace digitflow::config {
namespace {

using digitflow::testing::source_dir;
using digitflow::testing::TempDir;
using pipeline::FieldRule;

std::filesystem::path write_file(const TempDir& dir, const std::string& text) {
  const auto path = dir / "form.yaml";
  std::ofstream(path) << text;
  return path;
}

// Loads `text` as a template; it must fail with a ConfigError at `line` for `key` whose
// message contains `part`.
::testing::AssertionResult fails_at(const std::string& text, int line, const std::string& key,
                                    const std::string& part) {
  TempDir dir;
  const auto path = write_file(dir, text);
  try {
    load_template(path);
  } catch (const ConfigError& error) {
    const std::string message = error.what();
    const std::string where =
        path.string() + (line > 0 ? ":" + std::to_string(line) : std::string()) + ": ";
    if (error.line() != line || error.key() != key || message.find(where) != 0 ||
        message.find(part) == std::string::npos)
      return ::testing::AssertionFailure()
             << "got line " << error.line() << ", key '" << error.key() << "': " << message;
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << "loaded without an error";
}

constexpr const char* kGood = R"(# a test form
name: synthetic form
fields:
  - name: routing
    zone: [0.10, 0.20, 0.40, 0.06]
    length: 9
    rule: aba_routing
  - name: date
    zone: [0.6, 0.05, 0.4, 0.1]
    rule: date
    format: YYYYMMDD
  - name: note
    zone: [0, 0.9, 1, 0.1]
)";

TEST(Template, GoodFileLoads) {
  TempDir dir;
  const pipeline::Template form = load_template(write_file(dir, kGood));
  EXPECT_EQ(form.name, "synthetic form");
  ASSERT_EQ(form.fields.size(), 3u);
  const pipeline::FieldSpec& routing = form.fields[0];
  EXPECT_EQ(routing.name, "routing");
  EXPECT_DOUBLE_EQ(routing.zone[0], 0.10);
  EXPECT_DOUBLE_EQ(routing.zone[1], 0.20);
  EXPECT_DOUBLE_EQ(routing.zone[2], 0.40);
  EXPECT_DOUBLE_EQ(routing.zone[3], 0.06);
  EXPECT_EQ(routing.length, 9);
  EXPECT_EQ(routing.rule, FieldRule::aba_routing);
  EXPECT_EQ(form.fields[1].rule, FieldRule::date);
  EXPECT_EQ(form.fields[1].date_format, "YYYYMMDD");
  EXPECT_EQ(form.fields[2].rule, FieldRule::none);
  EXPECT_EQ(form.fields[2].length, 0);
}

TEST(Template, NameDefaultsToTheFileStem) {
  TempDir dir;
  const auto form =
      load_template(write_file(dir, "fields:\n  - name: a\n    zone: [0, 0, 1, 1]\n"));
  EXPECT_EQ(form.name, "form");
  EXPECT_EQ(form.fields[0].date_format, "DDMMYYYY");
}

TEST(Template, ShippedCheckTemplateLoads) {
  const pipeline::Template form =
      load_template(source_dir() / "config" / "templates" / "check.yaml");
  ASSERT_EQ(form.fields.size(), 4u);
  EXPECT_EQ(form.fields[0].name, "date");
  EXPECT_EQ(form.fields[0].date_format, "MMDDYYYY");
  EXPECT_EQ(form.fields[1].rule, FieldRule::amount);
  EXPECT_EQ(form.fields[2].rule, FieldRule::aba_routing);
  EXPECT_EQ(form.fields[3].name, "account");
}

TEST(Template, UnknownKeys) {
  EXPECT_TRUE(fails_at("name: x\nfeilds: []\n", 2, "feilds", "Valid keys: name, fields"));
  EXPECT_TRUE(fails_at("fields:\n  - name: a\n    zone: [0, 0, 1, 1]\n    rules: luhn\n", 4,
                       "fields[0].rules", "unknown key"));
}

TEST(Template, MissingKeys) {
  EXPECT_TRUE(fails_at("name: x\n", 1, "fields", "is missing"));
  EXPECT_TRUE(fails_at("fields:\n  - zone: [0, 0, 1, 1]\n", 2, "fields[0].name", "is missing"));
  EXPECT_TRUE(
      fails_at("fields:\n  - name: a\n    zone: [0, 0, 1, 1]\n  - name: b\n    rule: luhn\n", 4,
               "fields[1].zone", "field 'b' needs a zone"));
  EXPECT_TRUE(fails_at("fields:\n  - name:\n    zone: [0, 0, 1, 1]\n", 2, "fields[0].name",
                       "has no value"));
}

TEST(Template, NoFields) {
  EXPECT_TRUE(fails_at("name: x\nfields: []\n", 2, "fields", "non-empty list"));
  EXPECT_TRUE(fails_at("fields:\n", 1, "fields", "has no value"));
  EXPECT_TRUE(fails_at("fields: routing\n", 1, "fields", "non-empty list"));
}

TEST(Template, BadZones) {
  const std::string head = "fields:\n  - name: amount\n    zone: ";
  EXPECT_TRUE(fails_at(head + "[0.1, 0.2, 0.3]\n", 3, "fields[0].zone", "4 numbers"));
  EXPECT_TRUE(fails_at(head + "0.5\n", 3, "fields[0].zone", "4 numbers"));
  EXPECT_TRUE(fails_at(head + "[0.1, 0.2, wide, 0.1]\n", 3, "fields[0].zone", "'wide'"));
  EXPECT_TRUE(
      fails_at(head + "[0.1, 1.2, 0.3, 0.1]\n", 3, "fields[0].zone", "y must lie between 0 and 1"));
  EXPECT_TRUE(fails_at(head + "[-0.1, 0.2, 0.3, 0.1]\n", 3, "fields[0].zone",
                       "x must lie between 0 and 1"));
  EXPECT_TRUE(
      fails_at(head + "[0.8, 0.2, 0.3, 0.1]\n", 3, "fields[0].zone", "runs past the right edge"));
  EXPECT_TRUE(
      fails_at(head + "[0.1, 0.95, 0.3, 0.1]\n", 3, "fields[0].zone", "runs past the bottom"));
  EXPECT_TRUE(fails_at(head + "[0.1, 0.2, 0, 0.1]\n", 3, "fields[0].zone", "above 0"));
  // Exactly up to the edge is inside the page.
  TempDir dir;
  EXPECT_NO_THROW(load_template(write_file(dir, head + "[0.7, 0.6, 0.3, 0.4]\n")));
}

TEST(Template, UnknownRuleListsTheValidOnes) {
  EXPECT_TRUE(fails_at("fields:\n  - name: iban\n    zone: [0, 0, 1, 1]\n    rule: mod97\n", 4,
                       "fields[0].rule",
                       "unknown rule 'mod97'. Valid rules: none, aba_routing, luhn, amount, date"));
}

TEST(Template, DateFormats) {
  const std::string head = "fields:\n  - name: date\n    zone: [0, 0, 1, 1]\n";
  EXPECT_TRUE(fails_at(head + "    rule: date\n    format: DD/MM/YYYY\n", 5, "fields[0].format",
                       "Valid formats: DDMMYYYY, MMDDYYYY, YYYYMMDD, DDMMYY, MMDDYY"));
  EXPECT_TRUE(fails_at(head + "    rule: amount\n    format: DDMMYY\n", 5, "fields[0].format",
                       "applies to rule date only"));
  EXPECT_TRUE(
      fails_at(head + "    format: DDMMYY\n", 4, "fields[0].format", "applies to rule date only"));
}

TEST(Template, LengthsTheRuleCannotHave) {
  const std::string head = "fields:\n  - name: f\n    zone: [0, 0, 1, 1]\n";
  EXPECT_TRUE(fails_at(head + "    rule: aba_routing\n    length: 8\n", 5, "fields[0].length",
                       "takes 9 digits"));
  EXPECT_TRUE(fails_at(head + "    length: 6\n    rule: date\n    format: DDMMYYYY\n", 4,
                       "fields[0].length", "takes 8 digits (DDMMYYYY)"));
  EXPECT_TRUE(fails_at(head + "    length: 0\n", 4, "fields[0].length", "from 1 to 64"));
  EXPECT_TRUE(fails_at(head + "    length: 2.5\n", 4, "fields[0].length", "from 1 to 64"));
}

TEST(Template, DuplicateFieldNames) {
  EXPECT_TRUE(
      fails_at("fields:\n  - name: a\n    zone: [0, 0, 1, 1]\n  - name: a\n    zone: [0, 0, "
               "1, 1]\n",
               4, "fields[1].name", "duplicate field name 'a' (first at line 2)"));
}

TEST(Template, FileProblems) {
  EXPECT_TRUE(fails_at("", 0, "", "the file is empty"));
  EXPECT_TRUE(fails_at("fields: [\n", 2, "", "malformed YAML"));
  EXPECT_TRUE(fails_at("- a\n- b\n", 1, "", "expects a map"));
  TempDir dir;
  EXPECT_TRUE(digitflow::testing::throws_with_message<ConfigError>(
      [&] { load_template(dir / "absent.yaml"); }, {"absent.yaml", "cannot open the file: No such file or directory"}));
  EXPECT_TRUE(digitflow::testing::throws_with_message<ConfigError>(
      [&] { load_template(dir.path()); }, {dir.path().string() + ": is a folder, not a YAML file"}));
}

}  // namespace
}  // namespace digitflow::config

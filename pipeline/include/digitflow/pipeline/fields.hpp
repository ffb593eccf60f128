// Template fields: a named zone of a known form, an expected length and a rule (ABA routing
// checksum, Luhn, amount, calendar date). A field is read from the strings found in its zone;
// when the best digits break the rule, the other top-3 candidates are tried, most probable
// combination first, so that a checksum can fix a digit the model was unsure of.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "digitflow/pipeline/results.hpp"

namespace digitflow::pipeline {

enum class FieldRule { none, aba_routing, luhn, amount, date };

// "none", "aba_routing", "luhn", "amount", "date": the names used in template files.
const std::vector<std::string>& rule_names();
std::string rule_name(FieldRule rule);
std::optional<FieldRule> rule_from_name(std::string_view name);

// "DDMMYYYY", "MMDDYYYY", "YYYYMMDD", "DDMMYY", "MMDDYY".
const std::vector<std::string>& date_formats();

struct FieldSpec {
  std::string name;
  std::array<double, 4> zone{0, 0, 1, 1};  // x, y, width, height as fractions of the page
  int length = 0;                          // expected number of digits; 0 = any
  FieldRule rule = FieldRule::none;
  std::string date_format = "DDMMYYYY";  // one of date_formats(); used by FieldRule::date
};

struct Template {
  std::string name;
  std::vector<FieldSpec> fields;
};

// The rule checks take the digits only ("011000015", "12345" for 123.45); any other
// character makes them false.
// 9 digits whose weighted sum (weights 3, 7, 1 repeating) is a multiple of 10.
bool aba_routing_valid(std::string_view digits);
// At least 2 digits and the Luhn (mod 10) check digit holds.
bool luhn_valid(std::string_view digits);
// 3 to 12 digits: units then 2 decimals, with no leading zero except in "0xx" (cents only).
bool amount_valid(std::string_view digits);
// A real calendar date in `format` (leap years included). 4-digit years lie in 1900..2099;
// 2-digit years are read as 2000..2099. An unknown format is false.
bool date_valid(std::string_view digits, const std::string& format);
// Non-empty digits, spec.length digits when it is set, and the spec's rule.
bool rule_holds(const FieldSpec& spec, std::string_view digits);

// The text shown for a field: "12345" -> "123.45" for amounts (3 digits or more); the digits
// unchanged for every other rule.
std::string format_field(const FieldSpec& spec, std::string_view digits);

// Most digit combinations tried when correcting a field (best-first, so the likeliest ones).
inline constexpr int kMaxCorrectionCombinations = 2000;
// Candidates per digit used by the correction.
inline constexpr int kCorrectionCandidates = 3;

// Reads one field off the strings of a page of page_width x page_height pixels.
//
// The string chosen is the one with the largest share of its own box inside the zone, at
// least half of it; other strings in the zone on the same line (a field split at a wide gap)
// are joined to it left to right. found = false when no string qualifies.
//
// The best digits are kept when they pass rule_holds. Otherwise combinations of each digit's
// top candidates (up to 3) are tried in decreasing joint probability, at most
// kMaxCorrectionCombinations of them; the first that passes is taken (corrected = true).
// When none passes, the best digits are kept and valid = false.
//
// confidence is the joint probability of the digits taken: the product of each digit's
// probability for its chosen candidate. Where the rule rules out some strings of the
// field's length (aba_routing, luhn, date, and an amount of 4 digits or more), it is that
// product given that the digits pass: divided by the probability that digits drawn from
// each position's candidates pass at all (the mass outside a position's candidates spread
// evenly over its other digits, its "not a digit" share over all ten). No change of one
// digit passes a check digit, so a reading whose only doubt is one digit comes out nearly
// sure; a date's doubt between a digit read and one that makes no date (a month 8x, a
// year 7xxx) counts for less. A date or an amount whose digits were corrected keeps the
// product: its rule asked only the corrected digit to fall in a range. Times what the
// string's confidence holds beyond its digits (the doubt of a piece that cut it, of a lone
// digit beside it). A string without per-digit results keeps its own string confidence. A
// field that is not valid has confidence 0: it breaks its rule or length, so it is not what
// the form holds (or the form is wrong), and goes to a person.
// text is format_field of the digits taken; box is the (joined) string's box.
FieldResult read_field(const FieldSpec& spec, const std::vector<StringResult>& strings,
                       int page_width, int page_height);

// Sets page.fields to one FieldResult per field of the template, in template order. A page
// that failed (page.error set) gets no fields. A string that is a whole field, valid as
// read, takes the field's confidence when it is higher; the strings a field was read from
// get confidence 0 when, as read, they break its rule or length (the field is invalid, or
// valid only corrected).
void apply_template(const Template& form, PageResult& page);

}  // namespace digitflow::pipeline

// Tests of the field rules (worked examples and their near misses), and of reading a field:
// choosing the string in the zone, joining a split field, and correcting a digit from the
// top-3 candidates when the best digits break the rule.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "digitflow/pipeline/fields.hpp"

namespace digitflow::pipeline {
namespace {

// A string of digits at `box`, each digit the best of its candidates; a digit's candidates
// default to itself at `confidence` and two unlikely others.
StringResult digit_string(const std::string& text, Box box, float confidence = 0.99f) {
  StringResult s;
  s.text = text;
  s.box = box;
  s.confidence = 1.0;
  const int width = box.w / static_cast<int>(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    DigitResult d;
    d.digit = text[i] - '0';
    d.confidence = confidence;
    d.box = {box.x + static_cast<int>(i) * width, box.y, width, box.h};
    d.top = {{d.digit, confidence}, {(d.digit + 1) % 10, 0.004f}, {(d.digit + 2) % 10, 0.003f}};
    s.confidence *= confidence;
    s.digits.push_back(d);
  }
  return s;
}

FieldSpec spec(const std::string& name, FieldRule rule, std::array<double, 4> zone,
               int length = 0) {
  FieldSpec f;
  f.name = name;
  f.rule = rule;
  f.zone = zone;
  f.length = length;
  return f;
}

constexpr int kWidth = 1000, kHeight = 500;

// What a piece says of the digit at its position, as a rule's probability of passing takes
// it: its candidates' probabilities; what they and "not a digit" leave, shared by the other
// digits; and "not a digit" shared by all ten.
double position_probability(const DigitResult& d, int digit) {
  const double unseen = d.not_digit / 10.0;
  double listed = d.not_digit;
  for (const Candidate& c : d.top) {
    if (c.digit == digit) return c.confidence + unseen;
    listed += c.confidence;
  }
  return std::max(0.0, 1.0 - listed) / static_cast<double>(10 - d.top.size()) + unseen;
}

// Each digit of `s` read as its first candidate, with that candidate's probability; the
// string's confidence their product, which is returned.
double read_as_first_candidates(StringResult& s) {
  double joint = 1;
  for (DigitResult& d : s.digits) {
    d.confidence = d.top[0].confidence;
    joint *= d.confidence;
  }
  s.confidence = joint;
  return joint;
}

// The sum of position_probability over every string of s's length that `passes`. A digit
// whose only candidate is itself at 1, with no "not a digit", is that digit in every string
// with any probability: only the other positions are enumerated.
template <typename Passes>
double brute_force_pass(const StringResult& s, Passes passes) {
  const size_t n = s.digits.size();
  std::string digits(n, '0');
  std::vector<size_t> open;
  for (size_t i = 0; i < n; ++i) {
    const DigitResult& d = s.digits[i];
    if (d.top.size() == 1 && d.top[0].confidence == 1.0f && d.not_digit == 0.0f)
      digits[i] = static_cast<char>('0' + d.top[0].digit);
    else
      open.push_back(i);
  }
  int strings = 1;
  for (size_t k = 0; k < open.size(); ++k) strings *= 10;
  double pass = 0;
  for (int k = 0; k < strings; ++k) {
    for (size_t j = 0, rest = static_cast<size_t>(k); j < open.size(); ++j, rest /= 10)
      digits[open[j]] = static_cast<char>('0' + rest % 10);
    if (!passes(digits)) continue;
    double q = 1;
    for (size_t i : open) q *= position_probability(s.digits[i], digits[i] - '0');
    pass += q;
  }
  return pass;
}

TEST(FieldsRules, AbaRouting) {
  for (const char* good : {"011000015", "021000021", "111000025"})
    EXPECT_TRUE(aba_routing_valid(good)) << good;
  for (const char* bad : {"011000016", "12345678", "0110000150", "", "01100001a"})
    EXPECT_FALSE(aba_routing_valid(bad)) << bad;
}

TEST(FieldsRules, Luhn) {
  EXPECT_TRUE(luhn_valid("79927398713"));
  EXPECT_TRUE(luhn_valid("4111111111111111"));
  EXPECT_TRUE(luhn_valid("18"));
  EXPECT_FALSE(luhn_valid("79927398710"));
  EXPECT_FALSE(luhn_valid("0"));  // fewer than 2 digits
  EXPECT_FALSE(luhn_valid("7992739871x"));
}

TEST(FieldsRules, Amount) {
  for (const char* good : {"100", "012", "099", "12345", "123456789012"})
    EXPECT_TRUE(amount_valid(good)) << good;
  for (const char* bad : {"12", "0123", "0012", "1234567890123", "12.45", ""})
    EXPECT_FALSE(amount_valid(bad)) << bad;
}

TEST(FieldsRules, DatesAreRealCalendarDates) {
  EXPECT_TRUE(date_valid("29022024", "DDMMYYYY"));  // 2024 is a leap year
  EXPECT_FALSE(date_valid("29022023", "DDMMYYYY"));
  EXPECT_FALSE(date_valid("31042024", "DDMMYYYY"));  // April has 30 days
  EXPECT_TRUE(date_valid("30042024", "DDMMYYYY"));
  EXPECT_TRUE(date_valid("02292024", "MMDDYYYY"));
  EXPECT_FALSE(date_valid("29022024", "MMDDYYYY"));  // month 29
  EXPECT_TRUE(date_valid("20240229", "YYYYMMDD"));
  EXPECT_TRUE(date_valid("29022000", "DDMMYYYY"));   // divisible by 400
  EXPECT_FALSE(date_valid("29021900", "DDMMYYYY"));  // divisible by 100 only
  EXPECT_FALSE(date_valid("01011899", "DDMMYYYY"));  // before 1900
  EXPECT_FALSE(date_valid("01012100", "DDMMYYYY"));  // after 2099
  EXPECT_FALSE(date_valid("00012024", "DDMMYYYY"));
  EXPECT_FALSE(date_valid("01132024", "DDMMYYYY"));
  EXPECT_TRUE(date_valid("290224", "DDMMYY"));
  EXPECT_FALSE(date_valid("290223", "DDMMYY"));
  EXPECT_TRUE(date_valid("123124", "MMDDYY"));
  EXPECT_FALSE(date_valid("2902202", "DDMMYYYY"));   // wrong length
  EXPECT_FALSE(date_valid("29022024", "YYYYDDMM"));  // unknown format
}

TEST(FieldsRules, RuleHoldsChecksLengthThenRule) {
  FieldSpec account = spec("account", FieldRule::none, {0, 0, 1, 1}, 6);
  EXPECT_TRUE(rule_holds(account, "123456"));
  EXPECT_FALSE(rule_holds(account, "12345"));
  EXPECT_FALSE(rule_holds(account, ""));
  FieldSpec date = spec("date", FieldRule::date, {0, 0, 1, 1});
  date.date_format = "YYYYMMDD";
  EXPECT_TRUE(rule_holds(date, "20240229"));
  EXPECT_FALSE(rule_holds(date, "29022024"));
  EXPECT_TRUE(rule_holds(spec("any", FieldRule::none, {0, 0, 1, 1}), "7"));
}

TEST(FieldsRules, RuleNamesRoundTrip) {
  for (const std::string& name : rule_names()) {
    const auto rule = rule_from_name(name);
    ASSERT_TRUE(rule) << name;
    EXPECT_EQ(rule_name(*rule), name);
  }
  EXPECT_FALSE(rule_from_name("iban"));
}

TEST(FieldsRules, AmountsAreFormattedWithTheirDecimals) {
  const FieldSpec amount = spec("amount", FieldRule::amount, {0, 0, 1, 1});
  EXPECT_EQ(format_field(amount, "12345"), "123.45");
  EXPECT_EQ(format_field(amount, "012"), "0.12");
  EXPECT_EQ(format_field(amount, "12"), "12");
  EXPECT_EQ(format_field(spec("routing", FieldRule::aba_routing, {0, 0, 1, 1}), "011000015"),
            "011000015");
}

TEST(FieldsRead, ValidDigitsAreKept) {
  const FieldSpec routing = spec("routing", FieldRule::aba_routing, {0.0, 0.8, 0.5, 0.2}, 9);
  const std::vector<StringResult> strings = {digit_string("011000015", {50, 420, 270, 40}),
                                             digit_string("4242", {700, 50, 120, 40})};
  const FieldResult f = read_field(routing, strings, kWidth, kHeight);
  EXPECT_EQ(f.name, "routing");
  EXPECT_EQ(f.rule, "aba_routing");
  EXPECT_TRUE(f.found);
  EXPECT_TRUE(f.valid);
  EXPECT_FALSE(f.corrected);
  EXPECT_EQ(f.text, "011000015");
  EXPECT_EQ(f.box, (Box{50, 420, 270, 40}));
  // Nine digits at 0.99 multiply to 0.914, but a wrong reading would need two digits wrong
  // together to pass the check digit: given that it passes, the field is right.
  EXPECT_GT(f.confidence, 0.999);
  EXPECT_LE(f.confidence, 1.0);
  // A field with no rule keeps the product.
  const FieldSpec account = spec("account", FieldRule::none, {0.0, 0.8, 0.5, 0.2});
  EXPECT_NEAR(read_field(account, strings, kWidth, kHeight).confidence, std::pow(0.99, 9), 1e-6);
}

TEST(FieldsRead, SecondChoiceFromTopThreeCorrectsABrokenChecksum) {
  const FieldSpec routing = spec("routing", FieldRule::aba_routing, {0.0, 0.8, 0.5, 0.2}, 9);
  StringResult s = digit_string("011000016", {50, 420, 270, 40});
  DigitResult& last = s.digits.back();
  last.confidence = 0.6f;
  last.top = {{6, 0.6f}, {5, 0.3f}, {8, 0.1f}};
  const FieldResult f = read_field(routing, {s}, kWidth, kHeight);
  EXPECT_TRUE(f.found);
  EXPECT_TRUE(f.valid);
  EXPECT_TRUE(f.corrected);
  EXPECT_EQ(f.text, "011000015");
  // Joint probability 0.99^8 x 0.3 = 0.28, but the only other readings that pass change a
  // second digit the model is sure of: given the check digit, the correction is likely right.
  EXPECT_GT(f.confidence, 0.9);
  EXPECT_LT(f.confidence, 1.0);
}

TEST(FieldsRead, CorrectionTakesTheLikeliestPassingCombination) {
  // 011000016 fails (weighted sum 21). Last digit 6 -> 5 passes alone (probability ratio
  // 0.05 / 0.5 = 0.1); second digit 1 -> 2 with last digit 6 -> 8 passes too (sum 30) and is
  // likelier (0.35 / 0.6 * 0.4 / 0.5 = 0.47). The likelier single changes (011000018,
  // 021000016) fail.
  const FieldSpec routing = spec("routing", FieldRule::aba_routing, {0.0, 0.8, 0.5, 0.2}, 9);
  StringResult s = digit_string("011000016", {50, 420, 270, 40});
  s.digits[1].top = {{1, 0.6f}, {2, 0.35f}, {7, 0.05f}};
  s.digits[1].confidence = 0.6f;
  s.digits[8].top = {{6, 0.5f}, {8, 0.4f}, {5, 0.05f}};
  s.digits[8].confidence = 0.5f;
  ASSERT_TRUE(aba_routing_valid("021000018"));
  ASSERT_TRUE(aba_routing_valid("011000015"));
  const FieldResult f = read_field(routing, {s}, kWidth, kHeight);
  EXPECT_TRUE(f.valid);
  EXPECT_TRUE(f.corrected);
  EXPECT_EQ(f.text, "021000018");
  // Two readings in sight pass: 021000018 (0.35 x 0.4 of the rest) and 011000015 (0.6 x
  // 0.05), so the field is about 0.14 / 0.17 sure, not more.
  const double taken = 0.35 * 0.4, other = 0.6 * 0.05;
  EXPECT_LT(f.confidence, taken / (taken + other) + 0.01);
  EXPECT_GT(f.confidence, taken / (taken + other) - 0.05);
}

TEST(FieldsRead, NoPassingCombinationKeepsTheBestDigits) {
  const FieldSpec routing = spec("routing", FieldRule::aba_routing, {0.0, 0.8, 0.5, 0.2}, 9);
  StringResult s = digit_string("011000016", {50, 420, 270, 40});
  for (DigitResult& d : s.digits) d.top = {{d.digit, d.confidence}};  // no alternatives
  FieldResult f = read_field(routing, {s}, kWidth, kHeight);
  EXPECT_TRUE(f.found);
  EXPECT_FALSE(f.valid);
  EXPECT_FALSE(f.corrected);
  EXPECT_EQ(f.text, "011000016");
  // Every digit read at 0.99, but the number is no routing number: not to be trusted.
  EXPECT_EQ(f.confidence, 0.0);

  // Eight digits where nine are expected: no choice of candidates can help.
  f = read_field(routing, {digit_string("01100001", {50, 420, 240, 40}, 0.9999f)}, kWidth, kHeight);
  EXPECT_TRUE(f.found);
  EXPECT_FALSE(f.valid);
  EXPECT_EQ(f.text, "01100001");
  EXPECT_EQ(f.confidence, 0.0);
}

TEST(FieldsRead, AFieldKeepsTheDoubtItsStringCarriesBeyondItsDigits) {
  // A string whose confidence is its digits' product times 0.5 (a rejected piece cut it, or
  // a lone digit stands beside it): the field keeps that half, corrected or not.
  const FieldSpec routing = spec("routing", FieldRule::aba_routing, {0.0, 0.8, 0.5, 0.2}, 9);
  StringResult s = digit_string("011000015", {50, 420, 270, 40});
  const double whole = read_field(routing, {s}, kWidth, kHeight).confidence;
  s.confidence *= 0.5;
  FieldResult f = read_field(routing, {s}, kWidth, kHeight);
  EXPECT_TRUE(f.valid);
  EXPECT_NEAR(f.confidence, whole * 0.5, 1e-6);
  s = digit_string("011000016", {50, 420, 270, 40});
  s.digits.back().confidence = 0.6f;
  s.digits.back().top = {{6, 0.6f}, {5, 0.3f}, {8, 0.1f}};
  const double corrected = read_field(routing, {s}, kWidth, kHeight).confidence;
  s.confidence = std::pow(0.99, 8) * 0.6 * 0.5;
  f = read_field(routing, {s}, kWidth, kHeight);
  EXPECT_TRUE(f.corrected);
  EXPECT_EQ(f.text, "011000015");
  EXPECT_NEAR(f.confidence, corrected * 0.5, 1e-6);
}

// A Luhn field: its confidence is the probability of its digits divided by the probability
// that digits drawn from the same candidates pass at all, the digits outside a position's
// candidates sharing what its candidates and its "not a digit" share leave, and that share
// spread over all ten digits (a piece that looks like no digit says nothing of the digit
// there). Checked against the sum over every string, at an even and an odd length (Luhn
// doubles from the right).
TEST(FieldsRead, ACheckDigitFieldIsAsSureAsItsDigitsGivenThatTheyPass) {
  for (const std::string text : {"4242", "42424"}) {
    const size_t n = text.size();
    ASSERT_TRUE(luhn_valid(text));
    const FieldSpec card = spec("card", FieldRule::luhn, {0.0, 0.8, 0.5, 0.2}, static_cast<int>(n));
    StringResult s = digit_string(text, {50, 420, 30 * static_cast<int>(n), 40});
    s.digits[0].top = {{4, 0.7f}, {9, 0.2f}, {1, 0.05f}};  // 0.05 left for the other 7 digits
    s.digits[1].top = {{2, 0.9f}, {7, 0.1f}};
    s.digits[2].top = {{4, 0.5f}, {6, 0.3f}, {0, 0.1f}};
    s.digits[2].not_digit = 0.1f;
    s.digits[3].top = {{2, 0.8f}, {3, 0.15f}, {8, 0.01f}};
    if (n == 5) s.digits[4].top = {{4, 0.6f}, {1, 0.4f}};
    const double joint = read_as_first_candidates(s);
    const double pass = brute_force_pass(s, [](const std::string& digits) { return luhn_valid(digits); });
    const FieldResult f = read_field(card, {s}, kWidth, kHeight);
    EXPECT_TRUE(f.valid) << text;
    EXPECT_FALSE(f.corrected) << text;
    EXPECT_NEAR(f.confidence, joint / pass, 1e-5) << text;
    EXPECT_GT(f.confidence, joint + 0.1) << text << ": passing the check digit should count";
  }
}

// A date field: the probability of its digits given that they make a date, checked against
// the sum over every string of six digits, with the day first and with the month first.
// The doubts: a month's first digit that could be 8 or 3 (no month), a day's first digit
// that could be 7 (no day) or 1 (a day), a year's last digit that could be 5 (29 February
// 2025 is no day), and a piece that may be no digit.
TEST(FieldsRead, ADateFieldIsAsSureAsItsDigitsGivenThatTheyMakeADate) {
  for (const std::string format : {"DDMMYY", "MMDDYY"}) {
    FieldSpec date = spec("date", FieldRule::date, {0.0, 0.8, 0.5, 0.2}, 6);
    date.date_format = format;
    const bool day_first = format == "DDMMYY";
    StringResult s = digit_string(day_first ? "290224" : "022924", {50, 420, 180, 40});
    DigitResult& day = s.digits[day_first ? 0 : 2];
    DigitResult& month = s.digits[day_first ? 2 : 0];
    day.top = {{2, 0.7f}, {7, 0.2f}, {1, 0.05f}};
    month.top = {{0, 0.8f}, {8, 0.15f}, {3, 0.02f}};
    s.digits[5].top = {{4, 0.9f}, {5, 0.05f}, {1, 0.01f}};
    s.digits[1].top[0].confidence = 0.93f;
    s.digits[1].not_digit = 0.05f;
    const double joint = read_as_first_candidates(s);
    const double pass = brute_force_pass(s, [&](const std::string& digits) { return date_valid(digits, format); });
    const FieldResult f = read_field(date, {s}, kWidth, kHeight);
    EXPECT_TRUE(f.valid) << format;
    EXPECT_NEAR(f.confidence, joint / pass, 1e-5) << format;
    EXPECT_GT(f.confidence, joint * 1.4) << format << ": the doubts no date allows should count for less";
  }
}

// Four-digit years, each part's order: 29 February 2000 (a leap year, 1900 was not). The
// year's first two digits may be 19, 20 (a year) or 29, 70 (none); the month's first 0 or 8;
// the day's last 9 or 8, or no digit. The other digits are sure, so only these are summed
// over.
TEST(FieldsRead, ADateWithAFourDigitYearIsAsSureAsItsDigitsGivenThatTheyMakeADate) {
  for (const std::string format : {"DDMMYYYY", "MMDDYYYY", "YYYYMMDD"}) {
    FieldSpec date = spec("date", FieldRule::date, {0.0, 0.8, 0.5, 0.2}, 8);
    date.date_format = format;
    std::string text(8, '0');
    const std::map<char, std::string> parts = {{'D', "29"}, {'M', "02"}, {'Y', "2000"}};
    std::map<char, size_t> next, first;
    for (size_t i = 0; i < 8; ++i) {
      const char part = format[i];
      if (!next.contains(part)) first[part] = i;
      text[i] = parts.at(part)[next[part]++];
    }
    StringResult s = digit_string(text, {50, 420, 240, 40});
    for (DigitResult& d : s.digits) d.top = {{d.digit, 1.0f}};
    s.digits[first['Y']].top = {{2, 0.8f}, {1, 0.15f}, {7, 0.05f}};
    s.digits[first['Y'] + 1].top = {{0, 0.7f}, {9, 0.3f}};
    s.digits[first['M']].top = {{0, 0.9f}, {8, 0.1f}};
    s.digits[first['D'] + 1].top = {{9, 0.6f}, {8, 0.3f}};
    s.digits[first['D'] + 1].not_digit = 0.1f;
    const double joint = read_as_first_candidates(s);
    const double pass = brute_force_pass(s, [&](const std::string& digits) { return date_valid(digits, format); });
    const FieldResult f = read_field(date, {s}, kWidth, kHeight);
    EXPECT_TRUE(f.valid) << format;
    EXPECT_FALSE(f.corrected) << format;
    EXPECT_NEAR(f.confidence, joint / pass, 1e-6) << format;
    EXPECT_GT(f.confidence, joint * 1.4) << format;
  }
}

// A date or an amount corrected from its top 3 keeps the product of the digits taken: the
// rule asked only the corrected digit to fall in a range.
TEST(FieldsRead, ACorrectedDateOrAmountKeepsItsDigitsProduct) {
  FieldSpec date = spec("date", FieldRule::date, {0.0, 0.8, 0.5, 0.2}, 6);
  date.date_format = "DDMMYY";
  StringResult s = digit_string("158324", {50, 420, 180, 40});  // month 83: no date
  s.digits[2].top = {{8, 0.9f}, {0, 0.08f}};
  s.digits[2].confidence = 0.9f;
  FieldResult f = read_field(date, {s}, kWidth, kHeight);
  EXPECT_TRUE(f.valid);
  EXPECT_TRUE(f.corrected);
  EXPECT_EQ(f.text, "150324");
  EXPECT_NEAR(f.confidence, 0.08 * std::pow(0.99, 5), 1e-6);

  const FieldSpec amount = spec("amount", FieldRule::amount, {0.0, 0.8, 0.5, 0.2});
  StringResult a = digit_string("0250", {50, 420, 120, 40});
  a.digits[0].top = {{0, 0.98f}, {6, 0.0199f}};
  a.digits[0].confidence = 0.98f;
  f = read_field(amount, {a}, kWidth, kHeight);
  EXPECT_TRUE(f.corrected);
  EXPECT_EQ(f.text, "62.50");
  EXPECT_NEAR(f.confidence, 0.0199 * std::pow(0.99, 3), 1e-6);
}

// An amount: a leading 0 is no amount but in "0.xx", so a first digit that could be 0 is
// surer for it; an amount of three digits has no such doubt to lose.
TEST(FieldsRead, AnAmountIsAsSureAsItsDigitsGivenNoLeadingZero) {
  const FieldSpec amount = spec("amount", FieldRule::amount, {0.0, 0.8, 0.5, 0.2});
  StringResult s = digit_string("1250", {50, 420, 120, 40});
  s.digits[0].top = {{1, 0.8f}, {0, 0.1f}, {7, 0.03f}};
  s.digits[0].not_digit = 0.05f;  // a tenth of it on 0
  s.digits[0].confidence = 0.8f;
  s.confidence = 0.8 * std::pow(0.99, 3);
  FieldResult f = read_field(amount, {s}, kWidth, kHeight);
  EXPECT_EQ(f.text, "12.50");
  EXPECT_NEAR(f.confidence, s.confidence / (1 - 0.1 - 0.005), 1e-5);

  StringResult cents = digit_string("050", {50, 420, 90, 40});
  cents.digits[0].top = {{0, 0.8f}, {6, 0.15f}};
  cents.digits[0].confidence = 0.8f;
  cents.confidence = 0.8 * 0.99 * 0.99;
  f = read_field(amount, {cents}, kWidth, kHeight);
  EXPECT_EQ(f.text, "0.50");
  EXPECT_NEAR(f.confidence, cents.confidence, 1e-6);
}

// Fields that read the same string: each reads it as the page gave it, not as a field read
// before it raised it.
TEST(FieldsRead, FieldsOverTheSameStringReadItAsThePageGaveIt) {
  Template form;
  form.fields = {spec("routing", FieldRule::aba_routing, {0.0, 0.5, 0.5, 0.5}, 9),
                 spec("any", FieldRule::none, {0.0, 0.5, 0.5, 0.5})};
  PageResult page;
  page.width = kWidth;
  page.height = kHeight;
  page.strings = {digit_string("011000015", {50, 420, 270, 40})};
  page.strings[0].confidence *= 0.5;  // a doubt beyond its digits: both fields keep it
  apply_template(form, page);
  ASSERT_EQ(page.fields.size(), 2u);
  EXPECT_GT(page.fields[0].confidence, 0.4995);
  EXPECT_LE(page.fields[0].confidence, 0.5);
  EXPECT_NEAR(page.fields[1].confidence, std::pow(0.99, 9) * 0.5, 1e-6);
  EXPECT_EQ(page.strings[0].confidence, page.fields[0].confidence);
}

TEST(FieldsRead, NothingInTheZoneIsNotFound) {
  const FieldSpec amount = spec("amount", FieldRule::amount, {0.7, 0.3, 0.25, 0.15});
  // One string far away, one less than half inside the zone (x 700..770 of 620..770).
  const std::vector<StringResult> strings = {digit_string("12345", {50, 50, 150, 40}),
                                             digit_string("999", {620, 160, 150, 40})};
  const FieldResult f = read_field(amount, strings, kWidth, kHeight);
  EXPECT_EQ(f.name, "amount");
  EXPECT_FALSE(f.found);
  EXPECT_FALSE(f.valid);
  EXPECT_EQ(f.text, "");
  EXPECT_EQ(f.confidence, 0.0);
}

TEST(FieldsRead, AFieldSplitAtAGapIsJoinedLeftToRight) {
  const FieldSpec amount = spec("amount", FieldRule::amount, {0.6, 0.3, 0.4, 0.15});
  // "123" and "45" on one line (right part listed first), "7" on a line below in the zone.
  const std::vector<StringResult> strings = {digit_string("45", {880, 160, 60, 40}),
                                             digit_string("123", {660, 165, 90, 40}),
                                             digit_string("7", {700, 215, 20, 6})};
  const FieldResult f = read_field(amount, strings, kWidth, kHeight);
  EXPECT_TRUE(f.found);
  EXPECT_TRUE(f.valid);
  EXPECT_EQ(f.text, "123.45");
  EXPECT_EQ(f.box, (Box{660, 160, 280, 45}));
}

TEST(FieldsRead, StringsWithoutDigitResultsUseTheirText) {
  StringResult s;
  s.text = "79927398713";
  s.box = {100, 100, 200, 40};
  s.confidence = 0.8;
  const FieldResult f =
      read_field(spec("card", FieldRule::luhn, {0, 0, 1, 1}), {s}, kWidth, kHeight);
  EXPECT_TRUE(f.valid);
  EXPECT_EQ(f.text, "79927398713");
  EXPECT_DOUBLE_EQ(f.confidence, 0.8);
}

TEST(FieldsRead, ApplyTemplateFillsOneFieldPerSpecInOrder) {
  Template form;
  form.name = "check";
  form.fields = {spec("amount", FieldRule::amount, {0.6, 0.0, 0.4, 0.5}),
                 spec("routing", FieldRule::aba_routing, {0.0, 0.5, 0.5, 0.5}, 9),
                 spec("date", FieldRule::date, {0.0, 0.0, 0.2, 0.2})};
  PageResult page;
  page.width = kWidth;
  page.height = kHeight;
  page.strings = {digit_string("011000015", {50, 420, 270, 40}),
                  digit_string("2500", {700, 100, 120, 40})};
  apply_template(form, page);
  ASSERT_EQ(page.fields.size(), 3u);
  EXPECT_EQ(page.fields[0].name, "amount");
  EXPECT_EQ(page.fields[0].text, "25.00");
  EXPECT_EQ(page.fields[1].name, "routing");
  EXPECT_TRUE(page.fields[1].valid);
  EXPECT_EQ(page.fields[2].name, "date");
  EXPECT_FALSE(page.fields[2].found);
  // Each string passes its field's rule as read: as sure as its field. The amount "25.00"
  // is the string "2500", a little surer for its first digit not being 0.
  EXPECT_GT(page.fields[1].confidence, 0.999);
  EXPECT_EQ(page.strings[0].confidence, page.fields[1].confidence);
  EXPECT_GT(page.fields[0].confidence, std::pow(0.99, 4));
  EXPECT_EQ(page.strings[1].confidence, page.fields[0].confidence);
  // A routing number that needed a correction: the string as read breaks the rule, and is
  // not what the form holds, however sure its digits (0.99 each here but the last, 0.995).
  page.fields.clear();
  page.strings = {digit_string("011000016", {50, 420, 270, 40}), digit_string("2500", {700, 100, 120, 40})};
  page.strings[0].digits.back().confidence = 0.995f;
  page.strings[0].digits.back().top = {{6, 0.995f}, {5, 0.004f}, {8, 0.001f}};
  page.strings[0].confidence = std::pow(0.99, 8) * 0.995;
  apply_template(form, page);
  EXPECT_TRUE(page.fields[1].corrected);
  EXPECT_EQ(page.fields[1].text, "011000015");
  EXPECT_EQ(page.strings[0].confidence, 0.0);
  EXPECT_EQ(page.strings[1].confidence, page.fields[0].confidence) << "the amount's string, valid, is as sure as its field";
  // One that breaks it with no correction from the top 3 (a routing number one digit
  // short): the field is invalid, and the string as unsure.
  page.fields.clear();
  page.strings = {digit_string("01100001", {50, 420, 270, 40})};
  apply_template(form, page);
  EXPECT_FALSE(page.fields[1].valid);
  EXPECT_EQ(page.strings[0].confidence, 0.0);
  // A routing number cut in two at a rejected piece, read as one field of 8 digits: both
  // strings it was read from go to a person. A string elsewhere keeps its confidence.
  page.fields.clear();
  page.strings = {digit_string("0110", {50, 420, 110, 40}), digit_string("0001", {180, 420, 110, 40}),
                  digit_string("2500", {700, 100, 120, 40})};
  apply_template(form, page);
  EXPECT_FALSE(page.fields[1].valid);
  EXPECT_EQ(page.fields[1].text, "01100001");
  EXPECT_EQ(page.strings[0].confidence, 0.0);
  EXPECT_EQ(page.strings[1].confidence, 0.0);
  EXPECT_GT(page.strings[2].confidence, 0.9);
  // Two fields that find the same string, the one it breaks first: that one wins still.
  Template twice;
  twice.fields = {spec("routing", FieldRule::aba_routing, {0.0, 0.5, 0.5, 0.5}, 9),
                  spec("any", FieldRule::none, {0.0, 0.5, 0.5, 0.5})};
  page.fields.clear();
  page.strings = {digit_string("011000016", {50, 420, 270, 40})};
  apply_template(twice, page);
  EXPECT_FALSE(page.fields[0].valid && !page.fields[0].corrected);
  EXPECT_TRUE(page.fields[1].valid);
  EXPECT_EQ(page.strings[0].confidence, 0.0);

  PageResult failed;
  failed.error = "cannot decode";
  apply_template(form, failed);
  EXPECT_TRUE(failed.fields.empty());
}

}  // namespace
}  // namespace digitflow::pipeline

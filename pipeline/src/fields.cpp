// Field rules and reading a field out of its zone. The correction walks the combinations of
// top candidates best-first: a combination's children raise one digit's candidate index at or
// right of the last raised one, so each combination is generated once and never before one
// at least as probable.
#include "digitflow/pipeline/fields.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <queue>

namespace digitflow::pipeline {

const std::vector<std::string>& rule_names() {
  static const std::vector<std::string> names{"none", "aba_routing", "luhn", "amount", "date"};
  return names;
}

std::string rule_name(FieldRule rule) { return rule_names()[static_cast<size_t>(rule)]; }

std::optional<FieldRule> rule_from_name(std::string_view name) {
  const auto& names = rule_names();
  for (size_t i = 0; i < names.size(); ++i)
    if (names[i] == name) return static_cast<FieldRule>(i);
  return std::nullopt;
}

const std::vector<std::string>& date_formats() {
  static const std::vector<std::string> formats{"DDMMYYYY", "MMDDYYYY", "YYYYMMDD", "DDMMYY",
                                                "MMDDYY"};
  return formats;
}

namespace {

bool all_digits(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

int digit_at(std::string_view s, size_t i) { return s[i] - '0'; }

bool leap_year(int year) { return year % 4 == 0 && (year % 100 != 0 || year % 400 == 0); }

int days_in(int month, int year) {
  static constexpr int kDays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return kDays[month - 1] + (month == 2 && leap_year(year) ? 1 : 0);
}

}  // namespace

bool aba_routing_valid(std::string_view digits) {
  if (digits.size() != 9 || !all_digits(digits)) return false;
  static constexpr int kWeights[3] = {3, 7, 1};
  int sum = 0;
  for (size_t i = 0; i < 9; ++i) sum += kWeights[i % 3] * digit_at(digits, i);
  return sum % 10 == 0;
}

bool luhn_valid(std::string_view digits) {
  if (digits.size() < 2 || !all_digits(digits)) return false;
  int sum = 0;
  bool twice = false;  // every second digit from the right, the check digit excluded
  for (size_t i = digits.size(); i-- > 0;) {
    int d = digit_at(digits, i);
    if (twice) d = d * 2 > 9 ? d * 2 - 9 : d * 2;
    sum += d;
    twice = !twice;
  }
  return sum % 10 == 0;
}

bool amount_valid(std::string_view digits) {
  if (digits.size() < 3 || digits.size() > 12 || !all_digits(digits)) return false;
  return digits[0] != '0' || digits.size() == 3;
}

bool date_valid(std::string_view digits, const std::string& format) {
  const auto& formats = date_formats();
  if (std::find(formats.begin(), formats.end(), format) == formats.end()) return false;
  if (digits.size() != format.size() || !all_digits(digits)) return false;
  int day = 0, month = 0, year = 0;
  for (size_t i = 0; i < format.size(); ++i) {
    int& part = format[i] == 'D' ? day : format[i] == 'M' ? month : year;
    part = part * 10 + digit_at(digits, i);
  }
  const bool short_year = std::count(format.begin(), format.end(), 'Y') == 2;
  if (short_year) {
    year += 2000;
  } else if (year < 1900 || year > 2099) {
    return false;
  }
  return month >= 1 && month <= 12 && day >= 1 && day <= days_in(month, year);
}

bool rule_holds(const FieldSpec& spec, std::string_view digits) {
  if (digits.empty() || !all_digits(digits)) return false;
  if (spec.length > 0 && digits.size() != static_cast<size_t>(spec.length)) return false;
  switch (spec.rule) {
    case FieldRule::none:
      return true;
    case FieldRule::aba_routing:
      return aba_routing_valid(digits);
    case FieldRule::luhn:
      return luhn_valid(digits);
    case FieldRule::amount:
      return amount_valid(digits);
    case FieldRule::date:
      return date_valid(digits, spec.date_format);
  }
  return false;
}

std::string format_field(const FieldSpec& spec, std::string_view digits) {
  if (spec.rule != FieldRule::amount || digits.size() < 3) return std::string(digits);
  const size_t units = digits.size() - 2;
  std::string text;
  text.reserve(digits.size() + 1);
  text.append(digits.substr(0, units)).append(1, '.').append(digits.substr(units));
  return text;
}

namespace {

struct ZoneRect {
  double x0, y0, x1, y1;
};

// The share of the box's own area that lies inside the zone.
double share_inside(const Box& box, const ZoneRect& zone) {
  if (box.area() <= 0) return 0.0;
  const double w = std::min<double>(box.right(), zone.x1) - std::max<double>(box.x, zone.x0);
  const double h = std::min<double>(box.bottom(), zone.y1) - std::max<double>(box.y, zone.y0);
  if (w <= 0 || h <= 0) return 0.0;
  return w * h / static_cast<double>(box.area());
}

bool same_line(const Box& a, const Box& b) {
  const int overlap = std::min(a.bottom(), b.bottom()) - std::max(a.y, b.y);
  return overlap > 0 && 2 * overlap >= std::min(a.h, b.h);
}

// The string in the zone, joined with its neighbours on the same line; nullopt when none.
std::optional<StringResult> string_in_zone(const FieldSpec& spec,
                                           const std::vector<StringResult>& strings, int page_width,
                                           int page_height) {
  const ZoneRect zone{spec.zone[0] * page_width, spec.zone[1] * page_height,
                      (spec.zone[0] + spec.zone[2]) * page_width,
                      (spec.zone[1] + spec.zone[3]) * page_height};
  std::vector<const StringResult*> inside;
  const StringResult* best = nullptr;
  double best_share = 0;
  for (const StringResult& s : strings) {
    const double share = share_inside(s.box, zone);
    if (share < 0.5) continue;
    inside.push_back(&s);
    if (!best || share > best_share || (share == best_share && s.box.area() > best->box.area())) {
      best = &s;
      best_share = share;
    }
  }
  if (!best) return std::nullopt;
  std::vector<const StringResult*> line;
  for (const StringResult* s : inside)
    if (s == best || same_line(s->box, best->box)) line.push_back(s);
  std::stable_sort(line.begin(), line.end(), [](const StringResult* a, const StringResult* b) {
    return a->box.x < b->box.x;
  });
  StringResult joined;
  joined.confidence = 1.0;
  for (const StringResult* s : line) {
    joined.text += s->text;
    joined.box = unite(joined.box, s->box);
    joined.confidence *= s->confidence;
    joined.digits.insert(joined.digits.end(), s->digits.begin(), s->digits.end());
  }
  return joined;
}

char digit_char(int digit) {
  return digit >= 0 && digit <= 9 ? static_cast<char>('0' + digit) : '?';
}

// Up to kCorrectionCandidates candidates, most probable first, always including the digit read.
std::vector<Candidate> candidates_of(const DigitResult& d) {
  std::vector<Candidate> list;
  for (const Candidate& c : d.top) {
    if (c.digit < 0 || c.digit > 9) continue;
    if (std::none_of(list.begin(), list.end(),
                     [&](const Candidate& o) { return o.digit == c.digit; }))
      list.push_back(c);
  }
  if (d.digit >= 0 && d.digit <= 9 &&
      std::none_of(list.begin(), list.end(), [&](const Candidate& o) { return o.digit == d.digit; }))
    list.push_back({d.digit, d.confidence});
  std::stable_sort(list.begin(), list.end(), [](const Candidate& a, const Candidate& b) {
    return a.confidence > b.confidence;
  });
  while (list.size() > static_cast<size_t>(kCorrectionCandidates)) {
    auto drop = list.end() - 1;
    if (drop->digit == d.digit) --drop;
    list.erase(drop);
  }
  return list;
}

struct Combination {
  double log_probability = 0;
  std::vector<uint8_t> index;  // candidate index per digit
  size_t pivot = 0;            // children raise indices at or right of this position
};

struct LessLikely {
  bool operator()(const Combination& a, const Combination& b) const {
    if (a.log_probability != b.log_probability) return a.log_probability < b.log_probability;
    return a.index > b.index;  // ties: the lexicographically smaller combination first
  }
};

double log_of(float p) { return std::log(std::max(static_cast<double>(p), 1e-30)); }

// The likeliest combination of candidates that passes the rule, other than `best`.
std::optional<std::string> correct(const FieldSpec& spec,
                                   const std::vector<std::vector<Candidate>>& candidates,
                                   const std::string& best, double& probability) {
  const size_t n = candidates.size();
  if (spec.length > 0 && n != static_cast<size_t>(spec.length)) return std::nullopt;
  std::priority_queue<Combination, std::vector<Combination>, LessLikely> queue;
  Combination root;
  root.index.assign(n, 0);
  for (const auto& list : candidates) root.log_probability += log_of(list[0].confidence);
  queue.push(std::move(root));
  std::string text(n, '0');
  for (int tried = 0; tried < kMaxCorrectionCombinations && !queue.empty(); ++tried) {
    Combination top = queue.top();
    queue.pop();
    for (size_t i = 0; i < n; ++i) text[i] = digit_char(candidates[i][top.index[i]].digit);
    if (text != best && rule_holds(spec, text)) {
      probability = 1.0;
      for (size_t i = 0; i < n; ++i) probability *= candidates[i][top.index[i]].confidence;
      return text;
    }
    for (size_t j = top.pivot; j < n; ++j) {
      const size_t next = top.index[j] + 1u;
      if (next >= candidates[j].size()) continue;
      Combination child = top;
      child.log_probability +=
          log_of(candidates[j][next].confidence) - log_of(candidates[j][top.index[j]].confidence);
      child.index[j] = static_cast<uint8_t>(next);
      child.pivot = j;
      queue.push(std::move(child));
    }
  }
  return std::nullopt;
}

// A check-digit rule's term for digit d at position i of n: the rule holds when the terms
// sum to a multiple of 10.
int check_term(FieldRule rule, size_t i, size_t n, int d) {
  if (rule == FieldRule::aba_routing) {
    static constexpr int kWeights[3] = {3, 7, 1};
    return kWeights[i % 3] * d;
  }
  // Luhn: every second digit from the right doubled, the check digit (the last) not.
  return (n - 1 - i) % 2 == 1 ? (d * 2 > 9 ? d * 2 - 9 : d * 2) : d;
}

using Distribution = std::array<double, 10>;

// What each position says of the digit the number holds there. Its candidates keep their
// probabilities; the mass that is neither theirs nor "not a digit" is spread evenly over
// its other digits. The "not a digit" share is spread evenly over all ten: a piece that
// looks like no digit says nothing of the digit there, so a reading with such a piece
// passes a rule only as often as any digit would.
std::vector<Distribution> distributions(const std::vector<DigitResult>& digits,
                                        const std::vector<std::vector<Candidate>>& candidates) {
  std::vector<Distribution> out(candidates.size());
  for (size_t i = 0; i < candidates.size(); ++i) {
    const double not_digit = std::clamp(static_cast<double>(digits[i].not_digit), 0.0, 1.0);
    double listed = not_digit;
    for (const Candidate& c : candidates[i]) listed += std::max(0.0, static_cast<double>(c.confidence));
    Distribution& p = out[i];
    p.fill(std::max(0.0, 1.0 - listed) / static_cast<double>(10 - candidates[i].size()));
    for (const Candidate& c : candidates[i])
      p[static_cast<size_t>(c.digit)] = std::max(0.0, static_cast<double>(c.confidence));
    for (double& v : p) v += not_digit / 10;
  }
  return out;
}

// The probability that digits drawn from `p` pass a check-digit rule: a sum over the 10^n
// strings, kept as the distribution of the running sum mod 10.
double check_probability(FieldRule rule, const std::vector<Distribution>& p) {
  const size_t n = p.size();
  std::array<double, 10> sum{};
  sum[0] = 1.0;
  for (size_t i = 0; i < n; ++i) {
    std::array<double, 10> next{};
    for (size_t r = 0; r < 10; ++r)
      for (int d = 0; d < 10; ++d)
        next[(r + static_cast<size_t>(check_term(rule, i, n, d))) % 10] += sum[r] * p[i][static_cast<size_t>(d)];
    sum = next;
  }
  return sum[0];
}

// The probability that digits drawn from `p` make a date in `format` (one of
// date_formats()): the sum over every valid date, its day, month and year parts each looked
// up in a table of their own positions. nullopt when p is not the format's length.
std::optional<double> date_probability(const std::string& format, const std::vector<Distribution>& p) {
  if (p.size() != format.size()) return std::nullopt;
  // The probability of `value` written in the positions of `part` ('D', 'M' or 'Y').
  auto part_probability = [&](char part, int value) {
    int width = static_cast<int>(std::count(format.begin(), format.end(), part));
    double q = 1.0;
    for (size_t i = 0; i < format.size(); ++i) {
      if (format[i] != part) continue;
      int scale = 1;
      for (int k = 1; k < width; ++k) scale *= 10;
      q *= p[i][static_cast<size_t>(value / scale % 10)];
      --width;
    }
    return q;
  };
  const bool short_year = std::count(format.begin(), format.end(), 'Y') == 2;
  std::array<double, 32> days_up_to{};  // sum of the day part's probability for 1..d
  for (int d = 1; d <= 31; ++d)
    days_up_to[static_cast<size_t>(d)] = days_up_to[static_cast<size_t>(d - 1)] + part_probability('D', d);
  std::array<double, 13> month{};
  for (int m = 1; m <= 12; ++m) month[static_cast<size_t>(m)] = part_probability('M', m);
  double total = 0;
  for (int year = short_year ? 2000 : 1900; year <= 2099; ++year) {
    const double y = part_probability('Y', short_year ? year - 2000 : year);
    if (y == 0) continue;
    double dates = 0;
    for (int m = 1; m <= 12; ++m)
      dates += month[static_cast<size_t>(m)] * days_up_to[static_cast<size_t>(days_in(m, year))];
    total += y * dates;
  }
  return total;
}

// The probability that digits drawn from `p` pass the field's rule, for the rules that
// some strings of digits of the field's length break; nullopt for the others (none, and an
// amount of 3 digits, which any 3 digits are). A date or an amount whose digits were
// corrected gets none either: a check digit sees every digit of a correction, but a date or
// an amount only asks the corrected digit to fall in a range, and a sure 8 where a month's
// first digit should be says as much that the field was misread as that the 8 was.
std::optional<double> rule_probability(const FieldSpec& spec, const std::vector<Distribution>& p, bool corrected) {
  switch (spec.rule) {
    case FieldRule::aba_routing:
    case FieldRule::luhn:
      return check_probability(spec.rule, p);
    case FieldRule::date:
      if (corrected) return std::nullopt;
      return date_probability(spec.date_format, p);
    case FieldRule::amount: {  // no leading zero but in "0.xx"
      if (corrected || p.size() <= 3) return std::nullopt;
      double leading = 0;
      for (size_t d = 1; d < 10; ++d) leading += p[0][d];
      return leading;
    }
    case FieldRule::none:
      break;
  }
  return std::nullopt;
}

}  // namespace

FieldResult read_field(const FieldSpec& spec, const std::vector<StringResult>& strings,
                       int page_width, int page_height) {
  FieldResult field;
  field.name = spec.name;
  field.rule = spec.rule == FieldRule::none ? "" : rule_name(spec.rule);
  const std::optional<StringResult> found = string_in_zone(spec, strings, page_width, page_height);
  if (!found) return field;
  field.found = true;
  field.box = found->box;

  std::string best;
  double probability = 1.0;
  // What the string's confidence holds beyond its digits' product: the doubt of a rejected
  // piece that cut it, of a lone digit beside it (read_strings). It stays with any choice
  // of digits.
  double string_doubt = 1.0;
  if (found->digits.empty()) {
    best = found->text;
    probability = found->confidence;
  } else {
    for (const DigitResult& d : found->digits) {
      best += digit_char(d.digit);
      probability *= d.confidence;
    }
    if (probability > 0) string_doubt = std::clamp(found->confidence / probability, 0.0, 1.0);
  }
  std::string chosen = best;
  field.valid = rule_holds(spec, best);
  std::vector<std::vector<Candidate>> candidates;
  for (const DigitResult& d : found->digits) candidates.push_back(candidates_of(d));
  if (!field.valid && !found->digits.empty()) {
    double corrected_probability = 0;
    if (auto text = correct(spec, candidates, best, corrected_probability)) {
      chosen = *text;
      probability = corrected_probability;
      field.valid = true;
      field.corrected = true;
    }
  }
  field.text = format_field(spec, chosen);
  // A rule tells right from wrong: the digits are right given that they pass, so their
  // probability is divided by that of passing at all. No one digit changed passes a check
  // digit (ABA's weights and Luhn's doubling see every change of one digit), so a field
  // whose doubt is one digit comes out sure, and one whose doubt is two that could both
  // change and still pass does not. A date rules out a day over 31 (or over its month's
  // days), a month over 12, a four-digit year outside 1900-2099; an amount of 4 digits or
  // more, a leading 0: a doubt between such a digit and the one read counts for less.
  if (field.valid && !found->digits.empty())
    if (const std::optional<double> pass =
            rule_probability(spec, distributions(found->digits, candidates), field.corrected);
        pass && *pass > 0)
      probability = std::min(1.0, probability / *pass);
  // A field that breaks its rule or its length is not what the form holds: it goes to a
  // person whatever its digits' confidence (on the synthetic forms and checks not one such
  // field of 59 was read right).
  field.confidence = field.valid ? probability * string_doubt : 0.0;
  return field;
}

void apply_template(const Template& form, PageResult& page) {
  page.fields.clear();
  if (page.error) return;
  for (const FieldSpec& spec : form.fields)
    page.fields.push_back(read_field(spec, page.strings, page.width, page.height));
  // A string read whole as a field that passes its rule, as it stands, is as sure as that
  // field: the low-confidence counts and the overlays see it so. After every field is read,
  // so that no field reads a string another one raised. (An amount's text has its decimal
  // point; the string's, its digits only.)
  for (const FieldResult& field : page.fields) {
    if (!field.valid || field.corrected) continue;
    std::string digits = field.text;
    std::erase(digits, '.');
    for (StringResult& s : page.strings)
      if (s.box == field.box && s.text == digits) s.confidence = std::max(s.confidence, field.confidence);
  }
  // The strings a field was read from (one, or several joined on its line: its box holds
  // them) that break its rule or length as they stand (the field invalid, or valid only
  // corrected) are not what the form holds, whatever their digits' confidence: they go to a
  // person, as the field does. After the raising above, so that a string two fields found
  // stays at 0 if either breaks its rule.
  for (const FieldResult& field : page.fields) {
    if (!field.found || (field.valid && !field.corrected)) continue;
    const Box& f = field.box;
    for (StringResult& s : page.strings)
      if (s.box.x >= f.x && s.box.y >= f.y && s.box.right() <= f.right() && s.box.bottom() <= f.bottom())
        s.confidence = 0.0;
  }
}

}  // namespace digitflow::pipeline

// The text of exact decimals (<awaitdb/decimal.hpp>): checked on the way in, written on the way
// out. Pure: no I/O.
#include <awaitdb/decimal.hpp>
#include <awaitdb/error.hpp>

#include <charconv>
#include <string>

namespace awaitdb::detail {
namespace {

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

bool equals_ignoring_case(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const char x = a[i] >= 'A' && a[i] <= 'Z' ? static_cast<char>(a[i] + 32) : a[i];
    if (x != b[i]) return false;
  }
  return true;
}

[[noreturn]] void not_a_decimal(std::string_view text) {
  throw error(sqlstate::invalid_text_representation,
              "text of " + std::to_string(text.size()) + " bytes that is not a decimal number");
}

}  // namespace

decimal_class check_decimal_text(std::string_view text, unsigned digits) {
  std::string_view rest = text;
  const bool negative = rest.starts_with('-');
  if (negative || rest.starts_with('+')) rest.remove_prefix(1);
  if (equals_ignoring_case(rest, "nan") && text.size() == 3) return decimal_class::nan;
  if (equals_ignoring_case(rest, "infinity") || equals_ignoring_case(rest, "inf"))
    return negative ? decimal_class::negative_infinity : decimal_class::positive_infinity;
  // [digits][.digits][e[sign]digits], with at least one digit before the exponent.
  std::size_t i = 0, mantissa_digits = 0, first_nonzero = std::string_view::npos, last_nonzero = 0;
  std::size_t position = 0;  // among the mantissa's digits
  bool point = false;
  for (; i < rest.size(); ++i) {
    const char c = rest[i];
    if (is_digit(c)) {
      if (c != '0') {
        if (first_nonzero == std::string_view::npos) first_nonzero = position;
        last_nonzero = position;
      }
      ++position;
      ++mantissa_digits;
    } else if (c == '.' && !point) {
      point = true;
    } else {
      break;
    }
  }
  if (mantissa_digits == 0) not_a_decimal(text);
  if (i < rest.size()) {
    if (rest[i] != 'e' && rest[i] != 'E') not_a_decimal(text);
    std::string_view exponent = rest.substr(i + 1);
    if (exponent.starts_with('-') || exponent.starts_with('+')) exponent.remove_prefix(1);
    if (exponent.empty() || exponent.size() > 9) not_a_decimal(text);
    for (char c : exponent)
      if (!is_digit(c)) not_a_decimal(text);
  }
  const std::size_t significant =
      first_nonzero == std::string_view::npos ? 0 : last_nonzero - first_nonzero + 1;
  if (significant > digits)
    throw error(sqlstate::numeric_value_out_of_range,
                "a decimal number of " + std::to_string(significant) +
                    " significant digits, more than the " + std::to_string(digits) +
                    " the type holds");
  return decimal_class::finite;
}

std::string decimal_text_of(std::string_view scientific) {
  const std::size_t e = scientific.find('e');
  std::string_view mantissa = scientific.substr(0, e);
  long exponent = 0;
  if (e != std::string_view::npos) {
    std::string_view ex = scientific.substr(e + 1);
    if (ex.starts_with('+')) ex.remove_prefix(1);
    std::from_chars(ex.data(), ex.data() + ex.size(), exponent);
  }
  const bool negative = mantissa.starts_with('-');
  if (negative) mantissa.remove_prefix(1);
  std::string digits;  // the mantissa's digits: the first is before the point
  for (char c : mantissa)
    if (is_digit(c)) digits += c;
  while (digits.size() > 1 && digits.back() == '0')
    digits.pop_back();
  if (digits.empty() || digits == "0") return "0";
  std::string out = negative ? "-" : "";
  if (exponent > 1000 || exponent < -1000) {  // (PostgreSQL reads the exponent form too)
    out += digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    return out + "e" + std::to_string(exponent);
  }
  if (exponent < 0) {
    out += "0." + std::string(static_cast<std::size_t>(-exponent - 1), '0') + digits;
  } else if (static_cast<std::size_t>(exponent) + 1 >= digits.size()) {
    out += digits + std::string(static_cast<std::size_t>(exponent) + 1 - digits.size(), '0');
  } else {
    const std::size_t before = static_cast<std::size_t>(exponent) + 1;
    out += digits.substr(0, before) + "." + digits.substr(before);
  }
  return out;
}

}  // namespace awaitdb::detail

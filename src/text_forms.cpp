#include "text_forms.hpp"

#include "sqlstates.hpp"
#include <awaitdb/error.hpp>
#include <awaitdb/value.hpp>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>

namespace awaitdb::detail {
namespace {

namespace chr = std::chrono;

constexpr std::int64_t micros_per_second = 1'000'000;
constexpr std::int64_t micros_per_day = 86'400 * micros_per_second;

// Floor division, for times before 1970.
std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  std::int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

void put(std::string& out, std::int64_t value, int width) {
  char buffer[24];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
  (void)ec;
  for (int pad = width - static_cast<int>(end - buffer); pad > 0; --pad)
    out += '0';
  out.append(buffer, end);
}

// Reads exactly `n` digits at `pos`.
bool digits(std::string_view text, std::size_t& pos, std::size_t n, int& out) {
  if (pos + n > text.size()) return false;
  out = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const char c = text[pos + i];
    if (c < '0' || c > '9') return false;
    out = out * 10 + (c - '0');
  }
  pos += n;
  return true;
}

bool expect(std::string_view text, std::size_t& pos, char c) {
  if (pos < text.size() && text[pos] == c) {
    ++pos;
    return true;
  }
  return false;
}

// ".f..." as microseconds (more digits are cut; none is 0).
std::int64_t fraction(std::string_view text, std::size_t& pos) {
  std::int64_t micros = 0;
  if (!expect(text, pos, '.')) return 0;
  int taken = 0;
  while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
    if (taken < 6) {
      micros = micros * 10 + (text[pos] - '0');
      ++taken;
    }
    ++pos;
  }
  for (; taken < 6; ++taken)
    micros *= 10;
  return micros;
}

std::optional<std::int64_t> days_of(int y, int m, int d) {
  const chr::year_month_day ymd{chr::year(y), chr::month(static_cast<unsigned>(m)),
                                chr::day(static_cast<unsigned>(d))};
  if (!ymd.ok()) return std::nullopt;
  return chr::sys_days(ymd).time_since_epoch().count();
}

bool parse_ymd(std::string_view text, std::size_t& pos, std::int64_t& days) {
  int y, m, d;
  if (!digits(text, pos, 4, y) || !expect(text, pos, '-') || !digits(text, pos, 2, m) ||
      !expect(text, pos, '-') || !digits(text, pos, 2, d))
    return false;
  auto n = days_of(y, m, d);
  if (!n) return false;
  days = *n;
  return true;
}

}  // namespace

std::string format_date(std::int64_t days) {
  const chr::year_month_day ymd{chr::sys_days(chr::days(days))};
  const int y = static_cast<int>(ymd.year());
  if (y < 1 || y > 9999) return {};
  std::string out;
  put(out, y, 4);
  out += '-';
  put(out, static_cast<unsigned>(ymd.month()), 2);
  out += '-';
  put(out, static_cast<unsigned>(ymd.day()), 2);
  return out;
}

std::string format_timestamp(std::int64_t micros, bool with_offset) {
  const std::int64_t days = floor_div(micros, micros_per_day);
  std::string out = format_date(days);
  if (out.empty()) return out;
  std::int64_t rest = micros - days * micros_per_day;
  out += ' ';
  put(out, rest / (3600 * micros_per_second), 2);
  rest %= 3600 * micros_per_second;
  out += ':';
  put(out, rest / (60 * micros_per_second), 2);
  rest %= 60 * micros_per_second;
  out += ':';
  put(out, rest / micros_per_second, 2);
  out += '.';
  put(out, rest % micros_per_second, 6);
  if (with_offset) out += "+00";
  return out;
}

std::optional<std::int64_t> parse_date(std::string_view text) {
  std::size_t pos = 0;
  std::int64_t days;
  if (!parse_ymd(text, pos, days) || pos != text.size()) return std::nullopt;
  return days;
}

std::optional<std::int64_t> parse_timestamp(std::string_view text) {
  std::size_t pos = 0;
  std::int64_t days;
  if (!parse_ymd(text, pos, days)) return std::nullopt;
  std::int64_t micros = days * micros_per_day;
  if (pos == text.size()) return micros;  // a date alone: midnight
  if (!expect(text, pos, ' ') && !expect(text, pos, 'T')) return std::nullopt;
  int h, m, s = 0;
  if (!digits(text, pos, 2, h) || !expect(text, pos, ':') || !digits(text, pos, 2, m))
    return std::nullopt;
  if (expect(text, pos, ':') && !digits(text, pos, 2, s)) return std::nullopt;
  if (h > 24 || m > 59 || s > 60) return std::nullopt;
  micros += ((h * 60 + m) * 60 + s) * micros_per_second + fraction(text, pos);
  if (pos == text.size()) return micros;
  if (expect(text, pos, 'Z') || expect(text, pos, 'z'))
    return pos == text.size() ? std::optional(micros) : std::nullopt;
  const char sign = pos < text.size() ? text[pos] : '\0';
  if (sign != '+' && sign != '-') return std::nullopt;
  ++pos;
  int oh, om = 0, os = 0;
  if (!digits(text, pos, 2, oh)) return std::nullopt;
  if (expect(text, pos, ':') && !digits(text, pos, 2, om)) return std::nullopt;
  if (expect(text, pos, ':') && !digits(text, pos, 2, os)) return std::nullopt;
  if (pos != text.size()) return std::nullopt;
  const std::int64_t offset = ((oh * 60 + om) * 60 + os) * micros_per_second;
  return sign == '+' ? micros - offset : micros + offset;
}

std::string format_duration(std::int64_t micros) {
  std::string out;
  // (The most negative value cannot be negated: it is far outside any interval anyway.)
  std::uint64_t rest =
      micros < 0 ? 0 - static_cast<std::uint64_t>(micros) : static_cast<std::uint64_t>(micros);
  if (micros < 0) out += '-';
  const std::uint64_t per_second = micros_per_second;
  put(out, static_cast<std::int64_t>(rest / (3600 * per_second)), 2);
  rest %= 3600 * per_second;
  out += ':';
  put(out, static_cast<std::int64_t>(rest / (60 * per_second)), 2);
  rest %= 60 * per_second;
  out += ':';
  put(out, static_cast<std::int64_t>(rest / per_second), 2);
  out += '.';
  put(out, static_cast<std::int64_t>(rest % per_second), 6);
  return out;
}

duration_parse parse_duration(std::string_view text, std::int64_t& micros) {
  // PostgreSQL's interval output (IntervalStyle postgres) puts years, months and days in
  // words before the time part: "1 year 2 mons 3 days 04:05:06".
  for (std::string_view word : {"year", "mon", "day"})
    if (text.find(word) != std::string_view::npos) return duration_parse::has_days_or_months;
  std::size_t pos = 0;
  const bool negative = expect(text, pos, '-');
  if (!negative) expect(text, pos, '+');
  std::int64_t hours = 0;
  std::size_t start = pos;
  while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9' && pos - start < 10)
    hours = hours * 10 + (text[pos++] - '0');
  int m, s = 0;
  if (pos == start || !expect(text, pos, ':') || !digits(text, pos, 2, m) || m > 59)
    return duration_parse::malformed;
  if (expect(text, pos, ':') && (!digits(text, pos, 2, s) || s > 60))
    return duration_parse::malformed;
  const std::int64_t value = ((hours * 60 + m) * 60 + s) * micros_per_second + fraction(text, pos);
  if (pos != text.size()) return duration_parse::malformed;
  micros = negative ? -value : value;
  return duration_parse::ok;
}

std::string format_uuid(const std::array<std::uint8_t, 16>& bytes) {
  static const char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (std::size_t i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out += '-';
    out += hex[bytes[i] >> 4];
    out += hex[bytes[i] & 15];
  }
  return out;
}

std::optional<std::array<std::uint8_t, 16>> parse_uuid(std::string_view text) {
  if (text.size() == 38 && text.front() == '{' && text.back() == '}') text = text.substr(1, 36);
  if (text.size() != 36) return std::nullopt;
  std::array<std::uint8_t, 16> out{};
  std::size_t byte = 0;
  for (std::size_t i = 0; i < 36;) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (text[i] != '-') return std::nullopt;
      ++i;
      continue;
    }
    auto nibble = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    const int hi = nibble(text[i]), lo = nibble(text[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out[byte++] = static_cast<std::uint8_t>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

std::string parameter_text(const param& p, std::size_t number, bool timestamp_offset) {
  std::string out;
  switch (p.kind) {
    case param_kind::timestamp:
      out = format_timestamp(p.integer, timestamp_offset);
      break;
    case param_kind::date:
      out = format_date(p.integer);
      break;
    case param_kind::duration:
      return format_duration(p.integer);
    case param_kind::uuid: {
      std::array<std::uint8_t, 16> bytes{};
      std::copy_n(reinterpret_cast<const std::uint8_t*>(p.bytes.data()), 16, bytes.begin());
      return format_uuid(bytes);
    }
    default:
      return {};
  }
  if (out.empty())
    throw error(code::datetime_field_overflow,
                "parameter $" + std::to_string(number) + " is a time outside the years 1 to 9999");
  return out;
}

void append_array_element(std::string& out, const param& element) {
  auto quoted = [&out](std::string_view text) {
    out += '"';
    for (char ch : text) {
      if (ch == '"' || ch == '\\') out += '\\';
      out += ch;
    }
    out += '"';
  };
  char buffer[32];
  switch (element.kind) {
    case param_kind::null:
      out += "NULL";
      return;
    case param_kind::boolean:
      out += element.integer ? 't' : 'f';
      return;
    case param_kind::int16:
    case param_kind::int32:
    case param_kind::int64: {
      auto r = std::to_chars(buffer, buffer + sizeof buffer, element.integer);
      out.append(buffer, r.ptr);
      return;
    }
    case param_kind::uint64: {
      auto r = std::to_chars(buffer, buffer + sizeof buffer,
                             static_cast<std::uint64_t>(element.integer));
      out.append(buffer, r.ptr);
      return;
    }
    case param_kind::real: {
      if (std::isnan(element.real)) {
        out += "NaN";
      } else if (std::isinf(element.real)) {
        out += element.real > 0 ? "Infinity" : "-Infinity";
      } else {
        auto r = std::to_chars(buffer, buffer + sizeof buffer, element.real);
        out.append(buffer, r.ptr);
      }
      return;
    }
    case param_kind::text:
      quoted(element.bytes);  // always quoted: "", "NULL", spaces and commas stay text
      return;
    case param_kind::uuid:
    case param_kind::timestamp:
    case param_kind::date:
    case param_kind::duration:
      quoted(parameter_text(element, 0, true));
      return;
    case param_kind::blob:
    case param_kind::array:
      break;
  }
  throw error(sqlstate::feature_not_supported, "an array of this element type is not supported");
}

int hex_value(char ch) noexcept {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

std::optional<char> percent_escape_at(std::string_view text, std::size_t at) noexcept {
  if (text.size() < 3 || at > text.size() - 3 || text[at] != '%') return std::nullopt;
  const int hi = hex_value(text[at + 1]), lo = hex_value(text[at + 2]);
  if (hi < 0 || lo < 0) return std::nullopt;
  return static_cast<char>(hi * 16 + lo);
}

}  // namespace awaitdb::detail

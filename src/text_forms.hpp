// The text forms of times, dates, durations and UUIDs, as both engines write and read them, and
// the hexadecimal and percent escapes the library reads. Pure: no I/O.
#ifndef AWAITDB_SRC_TEXT_FORMS_HPP
#define AWAITDB_SRC_TEXT_FORMS_HPP

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace awaitdb::detail {

struct param;

/// The value of a hexadecimal digit; -1 for any other character.
int hex_value(char ch) noexcept;
/// The byte a well-formed percent escape ("%XX") at `text[at]` stands for; nothing when there is
/// none there.
std::optional<char> percent_escape_at(std::string_view text, std::size_t at) noexcept;

/// The text both engines store for a time, date, duration or UUID parameter (`number` names it
/// in errors); timestamps carry "+00" when `timestamp_offset`. Throws `awaitdb::error` 22008 for
/// a time outside years 1..9999.
std::string parameter_text(const param& p, std::size_t number, bool timestamp_offset);

/// "YYYY-MM-DD HH:MM:SS.ffffff" for `micros` since 1970-01-01 00:00:00 UTC, followed by "+00"
/// when `with_offset`. Empty when the year is outside 1..9999.
std::string format_timestamp(std::int64_t micros, bool with_offset);

/// Microseconds since the epoch, UTC, of an ISO-8601 time stamp: "YYYY-MM-DD", a space or 'T',
/// "HH:MM[:SS[.f...]]", then optionally "Z" or an offset "+HH[:MM[:SS]]" (PostgreSQL writes
/// "+01", "+05:30"); without one, UTC. Digits past microseconds are cut. Nothing on failure.
std::optional<std::int64_t> parse_timestamp(std::string_view text);

/// "YYYY-MM-DD" for `days` since 1970-01-01; empty outside years 1..9999.
std::string format_date(std::int64_t days);
/// Days since 1970-01-01 of "YYYY-MM-DD"; nothing on failure.
std::optional<std::int64_t> parse_date(std::string_view text);

/// "[-]HH:MM:SS.ffffff" (hours may exceed 24): what PostgreSQL's TIME and INTERVAL read.
std::string format_duration(std::int64_t micros);

enum class duration_parse { ok, malformed, has_days_or_months };
/// Microseconds of "[-]H...H:MM[:SS[.f...]]" (TIME, or an INTERVAL of hours, minutes, seconds).
/// An interval with days, months or years ("1 day 02:00:00") is `has_days_or_months`.
duration_parse parse_duration(std::string_view text, std::int64_t& micros);

/// "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", lower case.
std::string format_uuid(const std::array<std::uint8_t, 16>& bytes);
/// The 16 bytes of a UUID in its canonical text (either case, with or without braces); nothing
/// on failure.
std::optional<std::array<std::uint8_t, 16>> parse_uuid(std::string_view text);

}  // namespace awaitdb::detail

#endif  // AWAITDB_SRC_TEXT_FORMS_HPP

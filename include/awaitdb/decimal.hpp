// awaitdb: exact decimal numbers (PostgreSQL NUMERIC, SQLite decimal text) as
// Boost.Multiprecision's header-only cpp_dec_float.
#ifndef AWAITDB_DECIMAL_HPP
#define AWAITDB_DECIMAL_HPP

#include <awaitdb/value.hpp>

#include <boost/multiprecision/cpp_dec_float.hpp>

#include <cstdint>
#include <ios>
#include <limits>
#include <string>
#include <string_view>

namespace awaitdb {

/// An exact decimal number of `Digits` significant decimal digits, with NaN and ±infinity:
/// arithmetic, comparisons, `str()`, `convert_to<double>()` (Boost.Multiprecision). Declare as
/// many digits as the column's precision: `decimal<38>` for `NUMERIC(38,10)`.
template <unsigned Digits>
using decimal = boost::multiprecision::number<boost::multiprecision::cpp_dec_float<Digits>,
                                              boost::multiprecision::et_off>;

namespace detail {
enum class decimal_class : std::uint8_t { finite, nan, positive_infinity, negative_infinity };
/// Checks `text` as a decimal number in PostgreSQL's NUMERIC text (`-12.3400`, `1.5e-7`, `NaN`,
/// `Infinity`, `-Infinity`). Throws `awaitdb::error` 22P02 when it is not one, 22003 when it
/// has more than `digits` significant digits (its length is named, never its text).
decimal_class check_decimal_text(std::string_view text, unsigned digits);
/// The NUMERIC text of the number whose scientific form is `scientific` (`d.ddde±N`): plain
/// digits without an exponent (unless it is beyond ±1000), trailing zeros dropped.
std::string decimal_text_of(std::string_view scientific);
}  // namespace detail

/// Any cpp_dec_float number (`awaitdb::decimal<N>`, `cpp_dec_float_50` ...): PostgreSQL NUMERIC
/// (sent as text of no stated type, read from its exact text), SQLite text (store it in a TEXT
/// column: a NUMERIC or REAL one turns it into a double). Written rounded to its digits; a
/// value with more significant digits than the type holds reads as 22003.
template <unsigned D, class Exponent, class Allocator,
          boost::multiprecision::expression_template_option ET>
struct type_mapping<boost::multiprecision::number<
    boost::multiprecision::cpp_dec_float<D, Exponent, Allocator>, ET>> {
  using number =
      boost::multiprecision::number<boost::multiprecision::cpp_dec_float<D, Exponent, Allocator>,
                                    ET>;
  using db_type = std::string;
  static std::string to_db(const number& v) {
    if (boost::multiprecision::isnan(v)) return "NaN";
    if (boost::multiprecision::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
    return detail::decimal_text_of(v.str(D - 1, std::ios_base::scientific));
  }
  static number from_db(const std::string& text) {
    switch (detail::check_decimal_text(text, D)) {
      case detail::decimal_class::nan:
        return std::numeric_limits<number>::quiet_NaN();
      case detail::decimal_class::positive_infinity:
        return std::numeric_limits<number>::infinity();
      case detail::decimal_class::negative_infinity:
        return -std::numeric_limits<number>::infinity();
      case detail::decimal_class::finite:
        break;
    }
    return number(text);
  }
  static constexpr std::string_view name = "awaitdb::decimal";
};

}  // namespace awaitdb

#endif  // AWAITDB_DECIMAL_HPP

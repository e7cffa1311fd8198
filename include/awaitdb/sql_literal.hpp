// awaitdb: the SQL argument of a statement, checked at compile time when it is a string literal.
#ifndef AWAITDB_SQL_LITERAL_HPP
#define AWAITDB_SQL_LITERAL_HPP

#include <awaitdb/value.hpp>

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

namespace awaitdb {
namespace detail {

/// What a parameter is, as far as a cast written after its placeholder (`$1::int8`) can say.
enum class param_class : std::uint8_t {
  any,  // nothing to check: std::nullopt, or a type the check does not know
  integer,
  floating,
  boolean,
  text,
  blob,
  uuid,
  timestamp,
  date,
  duration,
  array,
};

template <class T>
consteval param_class class_of() {
  using U = std::remove_cvref_t<T>;
  if constexpr (is_optional<U>::value)
    return class_of<typename U::value_type>();
  else if constexpr (mapped<U>)
    return class_of<typename type_mapping<U>::db_type>();
  else if constexpr (std::is_same_v<U, bool>)
    return param_class::boolean;
  else if constexpr (database_integer<U>)
    return param_class::integer;
  else if constexpr (std::is_floating_point_v<U>)
    return param_class::floating;
  else if constexpr (std::is_convertible_v<const U&, std::string_view> || described_enum<U> ||
                     std::is_same_v<U, enum_name>)
    return param_class::text;
  else if constexpr (std::is_same_v<U, blob>)
    return param_class::blob;
  else if constexpr (std::is_same_v<U, boost::uuids::uuid>)
    return param_class::uuid;
  else if constexpr (std::is_same_v<U, std::chrono::year_month_day> ||
                     std::is_same_v<U, std::chrono::sys_days>)
    return param_class::date;
  else if constexpr (
      requires(const U& v) { std::chrono::floor<std::chrono::microseconds>(v); } &&
      requires { typename U::clock; })
    return param_class::timestamp;
  else if constexpr (requires { typename U::period; })
    return param_class::duration;
  else if constexpr (is_vector_v<U>)
    return param_class::array;
  else
    return param_class::any;
}

constexpr char sql_lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c;
}
constexpr bool is_sql_digit(char c) {
  return c >= '0' && c <= '9';
}
/// A character that may start a name or keyword (bytes of multi-byte UTF-8 characters too).
constexpr bool is_sql_ident_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
         static_cast<unsigned char>(c) >= 0x80;
}
/// A character that may continue a name or keyword (`$` aside: PostgreSQL allows it there).
constexpr bool is_sql_word_char(char c) {
  return is_sql_ident_start(c) || is_sql_digit(c);
}
/// Whether `word` is `lower_name` (given in lower case), in any case.
constexpr bool sql_word_is(std::string_view word, std::string_view lower_name) {
  if (word.size() != lower_name.size()) return false;
  for (std::size_t i = 0; i < word.size(); ++i)
    if (sql_lower(word[i]) != lower_name[i]) return false;
  return true;
}

/// A piece of SQL text, as `lex_sql` reports it: [from, to).
struct sql_piece {
  enum class kind : std::uint8_t {
    quoted,   // a string literal or a quoted name
    comment,  // `-- ...` or `/* ... */` (nested)
    dollar_quoted,
    word,         // a keyword or a name; `$` inside it is not special
    placeholder,  // `$N`: `number` is N (capped at 100000)
    other,        // one character of anything else
  };
  kind what;
  std::size_t from, to;
  std::size_t number = 0;
};

/// One lexical pass over `sql` following PostgreSQL's rules (literals with `''` and, after E,
/// backslash escapes; quoted names; nested comments; `$$` and `$tag$` quotes), calling
/// `on(const sql_piece&)` for each piece in order. The compile-time check of SQL literals and
/// the engines' reading of a statement's placeholders both use it, so they never disagree.
template <class On>
constexpr void lex_sql(std::string_view sql, On&& on) {
  using k = sql_piece::kind;
  const std::size_t n = sql.size();
  std::size_t i = 0;
  while (i < n) {
    const std::size_t from = i;
    const char c = sql[i];
    const char next = i + 1 < n ? sql[i + 1] : '\0';
    if (c == '\'' || c == '"') {
      const bool escapes = c == '\'' && i > 0 && sql_lower(sql[i - 1]) == 'e' &&
                           (i < 2 || !(is_sql_word_char(sql[i - 2]) || sql[i - 2] == '$'));
      ++i;
      while (i < n) {
        if (escapes && sql[i] == '\\') {
          i += 2;
        } else if (sql[i] == c) {
          ++i;
          if (i < n && sql[i] == c) {
            ++i;
            continue;
          }
          break;
        } else {
          ++i;
        }
      }
      on(sql_piece{k::quoted, from, i < n ? i : n});
    } else if (c == '-' && next == '-') {
      while (i < n && sql[i] != '\n')
        ++i;
      on(sql_piece{k::comment, from, i});
    } else if (c == '/' && next == '*') {
      int depth = 1;
      i += 2;
      while (i < n && depth > 0) {
        if (sql[i] == '/' && i + 1 < n && sql[i + 1] == '*') {
          ++depth;
          i += 2;
        } else if (sql[i] == '*' && i + 1 < n && sql[i + 1] == '/') {
          --depth;
          i += 2;
        } else {
          ++i;
        }
      }
      on(sql_piece{k::comment, from, i < n ? i : n});
    } else if (is_sql_ident_start(c)) {
      while (i < n && (is_sql_word_char(sql[i]) || sql[i] == '$'))
        ++i;
      on(sql_piece{k::word, from, i});
    } else if (c == '$' && is_sql_digit(next)) {
      std::size_t number = 0;
      ++i;
      while (i < n && is_sql_digit(sql[i])) {
        if (number < 100000) number = number * 10 + static_cast<std::size_t>(sql[i] - '0');
        ++i;
      }
      on(sql_piece{k::placeholder, from, i, number});
    } else if (c == '$') {
      // A dollar quote, $$ or $tag$ ... the same tag; else a lone `$`.
      std::size_t j = i + 1;
      if (j < n && is_sql_ident_start(sql[j]))
        while (j < n && is_sql_word_char(sql[j]))
          ++j;
      if (j < n && sql[j] == '$') {
        const std::string_view tag = sql.substr(i, j - i + 1);
        const std::size_t close = sql.find(tag, j + 1);
        i = close == std::string_view::npos ? n : close + tag.size();
        on(sql_piece{k::dollar_quoted, from, i});
      } else {
        ++i;
        on(sql_piece{k::other, from, i});
      }
    } else {
      ++i;
      on(sql_piece{k::other, from, i});
    }
  }
}

/// Whether a parameter of class `c` can be cast to `type` (a type name as written, `[]`
/// included) when the statement runs on PostgreSQL. Only what cannot work is refused: strings,
/// times, dates and durations go as text of no stated type, which the cast reads; any value
/// casts to text; types the check does not know take anything.
constexpr bool cast_accepts(std::string_view type, param_class c) {
  const bool typed = c == param_class::integer || c == param_class::floating ||
                     c == param_class::boolean || c == param_class::blob || c == param_class::uuid;
  if (!typed && c != param_class::array) return true;  // any, text (untyped), times
  auto one_of = [&](std::initializer_list<std::string_view> names) {
    for (std::string_view n : names)
      if (sql_word_is(type, n)) return true;
    return false;
  };
  if (one_of({"text", "varchar", "bpchar", "name", "citext"})) return true;
  if (type.ends_with("[]")) return c == param_class::array;
  if (c == param_class::array) return false;
  const bool number = c == param_class::integer || c == param_class::floating;
  if (one_of({"int2", "int4", "int8", "smallint", "int", "integer", "bigint"}))
    return number || c == param_class::boolean;
  if (one_of({"float4", "float8", "real", "float", "numeric", "decimal"})) return number;
  if (one_of({"bool", "boolean"})) return c == param_class::integer || c == param_class::boolean;
  if (one_of({"bytea"})) return c == param_class::blob;
  if (one_of({"uuid"})) return c == param_class::uuid;
  if (one_of({"timestamptz", "timestamp", "date", "time", "interval", "json", "jsonb"}))
    return false;  // (from a number, a boolean, bytes or a UUID: no cast)
  return true;
}

// Called in a constant evaluation, these are not constant: the compiler stops there and names
// them. Their names are the messages.
void the_SQL_uses_a_placeholder_beyond_the_arguments_given();
void an_argument_is_given_that_no_placeholder_of_the_SQL_uses();
void an_argument_does_not_fit_the_cast_written_after_its_placeholder();

/// Checks an SQL literal against the classes of its arguments: each `$N` must have an argument,
/// each argument a `$N` (from 1 to their number), and where a placeholder is cast (`$2::int8`),
/// its argument must fit the cast. Skips what PostgreSQL's lexer skips: literals, quoted names,
/// comments, dollar quotes.
template <std::size_t Count>
constexpr void check_sql_literal(std::string_view sql, const param_class (&classes)[Count + 1]) {
  bool used[Count + 1] = {};
  lex_sql(sql, [&](const sql_piece& p) {
    if (p.what != sql_piece::kind::placeholder) return;
    if (p.number > Count) the_SQL_uses_a_placeholder_beyond_the_arguments_given();
    if (p.number == 0) return;  // (refused when the statement runs: 42P02)
    used[p.number] = true;
    // A cast right after it: `::name`, `::name[]`, spaces allowed around `::`.
    const std::size_t n = sql.size();
    std::size_t j = p.to;
    while (j < n && sql[j] == ' ')
      ++j;
    if (j + 1 < n && sql[j] == ':' && sql[j + 1] == ':') {
      j += 2;
      while (j < n && sql[j] == ' ')
        ++j;
      const std::size_t from = j;
      while (j < n && is_sql_word_char(sql[j]))
        ++j;
      if (j + 1 < n && sql[j] == '[' && sql[j + 1] == ']') j += 2;
      if (!cast_accepts(sql.substr(from, j - from), classes[p.number]))
        an_argument_does_not_fit_the_cast_written_after_its_placeholder();
    }
  });
  for (std::size_t k = 1; k <= Count; ++k)
    if (!used[k]) an_argument_is_given_that_no_placeholder_of_the_SQL_uses();
}

}  // namespace detail

/// The SQL of a statement whose parameters are `Params`: what `query`, `execute` and the other
/// calls take. A string literal is checked at compile time (`detail::check_sql_literal`): a
/// `$N` beyond the arguments, an argument no `$N` uses, or an argument that does not fit the
/// cast after its placeholder (`$1::int8` given a string) does not compile, and the compiler
/// names which. Anything else convertible to `std::string_view` (a `std::string`, a
/// `std::string_view`, a `const char*`) is checked when the statement runs, as before; a
/// `std::string` given as a temporary is moved into the statement. A character array that is
/// not a constant (`char buf[64]`) must be passed as a `std::string_view`.
template <class... Params>
class basic_sql {
 public:
  template <std::size_t N>
  consteval basic_sql(const char (&literal)[N]) : text_(literal, N - 1) {
    constexpr detail::param_class classes[] = {detail::param_class::any,
                                               detail::class_of<Params>()...};
    detail::check_sql_literal<sizeof...(Params)>(text_, classes);
  }
  // (Neither copied nor moved: it may point at a temporary of the call it is made for.)
  basic_sql(const basic_sql&) = delete;
  basic_sql& operator=(const basic_sql&) = delete;
  basic_sql(std::string&& text) noexcept : text_(text), owned_(&text) {}
  template <class S>
  requires(std::convertible_to<const S&, std::string_view> && !std::is_array_v<S> &&
           !std::is_same_v<S, std::string>) basic_sql(const S& text)
  noexcept : text_(text) {}
  basic_sql(const std::string& text) noexcept : text_(text) {}

  std::string_view text() const noexcept { return text_; }
  /// The temporary std::string given, to be moved into the statement, or null.
  std::string* owned() const noexcept { return owned_; }

 private:
  std::string_view text_;
  std::string* owned_ = nullptr;
};

namespace detail {
/// `basic_sql` for the arguments that follow it in a call (their types are deduced from them
/// alone, as `std::format_string` does).
template <class... Params>
using sql_for = basic_sql<std::type_identity_t<std::remove_cvref_t<Params>>...>;

template <class... Q, class... P>
statement_args make_args(const basic_sql<Q...>& sql, P&&... params) {
  return make_args_from(sql.text(), sql.owned(), std::forward<P>(params)...);
}
}  // namespace detail

}  // namespace awaitdb

#endif  // AWAITDB_SQL_LITERAL_HPP

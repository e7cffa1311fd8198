// awaitdb: the value types that cross the API, and how parameters are passed.
#ifndef AWAITDB_VALUE_HPP
#define AWAITDB_VALUE_HPP

#include <boost/uuid/uuid.hpp>

#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <vector>

namespace awaitdb {

/// Which database a `database` talks to, chosen by the URL given to `open`.
enum class engine { sqlite, postgres };

/// Binary data: PostgreSQL BYTEA, SQLite BLOB. May hold any byte, NUL included.
using blob = std::vector<std::byte>;

namespace detail {

/// The kind of a statement parameter after conversion from a C++ value.
enum class param_kind : std::uint8_t {
  null,
  boolean,
  int16,
  int32,
  int64,
  uint64,  // above the range of int64
  real,
  text,
  blob,
  timestamp,  // microseconds since 1970-01-01 00:00:00 UTC
  date,       // days since 1970-01-01
  duration,   // microseconds
  uuid,       // 16 bytes
  array,      // a std::vector: PostgreSQL only
};

/// A statement parameter, viewing the caller's data (strings, blobs and UUIDs are not copied).
/// It lives only while the statement that uses it runs.
struct param {
  param_kind kind = param_kind::null;
  std::int64_t integer = 0;  // boolean, integers, timestamp, date, duration (see param_kind);
                             // array: its elements' array_kind
  double real = 0;
  std::string_view bytes;  // text, blob, uuid; array: the std::vector object (its address)
  // array: appends PostgreSQL's text form of the array (`bytes.data()`) to `out`.
  void (*write_array)(const void* vector, std::string& out) = nullptr;
};

/// Appends one array element in PostgreSQL's array text form (see `make_param` of a vector).
void append_array_element(std::string& out, const param& element);

/// What the elements of an array parameter are, named apart from any engine (the PostgreSQL
/// engine sends the matching array type).
enum class array_kind : std::uint8_t { none, boolean, int2, int4, int8, numeric, real, text, uuid };

/// The array element kind of `T` (none: `T` cannot be an array element).
template <class T>
constexpr array_kind array_kind_of() {
  if constexpr (std::is_same_v<T, bool>)
    return array_kind::boolean;
  else if constexpr (std::is_integral_v<T> && std::is_signed_v<T> && sizeof(T) == 2)
    return array_kind::int2;
  else if constexpr (std::is_integral_v<T> && std::is_signed_v<T> && sizeof(T) == 4)
    return array_kind::int4;
  else if constexpr (std::is_integral_v<T> && std::is_signed_v<T> && sizeof(T) == 8)
    return array_kind::int8;
  else if constexpr (std::is_integral_v<T> && std::is_unsigned_v<T> && sizeof(T) == 2)
    return array_kind::int4;  // (an unsigned value fits the next wider type)
  else if constexpr (std::is_integral_v<T> && std::is_unsigned_v<T> && sizeof(T) == 4)
    return array_kind::int8;
  else if constexpr (std::is_integral_v<T> && std::is_unsigned_v<T> && sizeof(T) == 8)
    return array_kind::numeric;
  else if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>)
    return array_kind::real;
  else if constexpr (std::is_same_v<T, std::string>)
    return array_kind::text;
  else if constexpr (std::is_same_v<T, boost::uuids::uuid>)
    return array_kind::uuid;
  else
    return array_kind::none;
}

template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};

template <class T>
inline constexpr bool is_character =
    std::is_same_v<T, char> || std::is_same_v<T, signed char> || std::is_same_v<T, unsigned char> ||
    std::is_same_v<T, wchar_t> || std::is_same_v<T, char8_t> || std::is_same_v<T, char16_t> ||
    std::is_same_v<T, char32_t>;

/// The integer types awaitdb takes and gives: every signed and unsigned integer but `bool` and
/// the character types (`std::int8_t` is a character type).
template <class T>
concept database_integer = std::integral<T> && !std::is_same_v<T, bool> && !is_character<T>;

inline param make_param(std::nullopt_t) {
  return {};
}
inline param make_param(bool v) {
  return {param_kind::boolean, v ? 1 : 0, 0, {}};
}
template <database_integer I>
param make_param(const I& v) {
  if constexpr (std::is_signed_v<I>) {
    constexpr param_kind kind = sizeof(I) <= 2   ? param_kind::int16
                                : sizeof(I) <= 4 ? param_kind::int32
                                                 : param_kind::int64;
    return {kind, static_cast<std::int64_t>(v), 0, {}};
  } else if constexpr (sizeof(I) < 8) {
    // Unsigned values fit the next wider signed type.
    return {sizeof(I) <= 2 ? param_kind::int32 : param_kind::int64,
            static_cast<std::int64_t>(v),
            0,
            {}};
  } else {
    if (v <= static_cast<I>(INT64_MAX))
      return {param_kind::int64, static_cast<std::int64_t>(v), 0, {}};
    return {param_kind::uint64, static_cast<std::int64_t>(v), 0, {}};  // the bits; see kind
  }
}
inline param make_param(float v) {
  return {param_kind::real, 0, v, {}};
}
inline param make_param(double v) {
  return {param_kind::real, 0, v, {}};
}
inline param make_param(std::string_view v) {
  return {param_kind::text, 0, 0, v};
}
inline param make_param(const std::string& v) {
  return make_param(std::string_view(v));
}
inline param make_param(const char* v) {
  return make_param(std::string_view(v));
}
inline param make_param(const blob& v) {
  return {param_kind::blob, 0, 0,
          std::string_view(reinterpret_cast<const char*>(v.data()), v.size())};
}
/// A point in time (TIMESTAMPTZ; a TIMESTAMP column takes it as UTC), to the microsecond.
template <class Duration>
param make_param(const std::chrono::time_point<std::chrono::system_clock, Duration>& t) {
  if constexpr (std::is_same_v<Duration, std::chrono::days>) {
    return {param_kind::date, t.time_since_epoch().count(), 0, {}};  // a date (sys_days)
  } else {
    const auto micros = std::chrono::floor<std::chrono::microseconds>(t.time_since_epoch());
    return {param_kind::timestamp, static_cast<std::int64_t>(micros.count()), 0, {}};
  }
}
/// A date (DATE).
inline param make_param(const std::chrono::year_month_day& d) {
  return make_param(std::chrono::sys_days(d));
}
/// A duration (TIME, or an INTERVAL of hours, minutes and seconds), to the microsecond.
template <class Rep, class Period>
param make_param(const std::chrono::duration<Rep, Period>& d) {
  const auto micros = std::chrono::floor<std::chrono::microseconds>(d);
  return {param_kind::duration, static_cast<std::int64_t>(micros.count()), 0, {}};
}
/// A UUID (PostgreSQL UUID; SQLite text in the canonical form).
inline param make_param(const boost::uuids::uuid& u) {
  return {param_kind::uuid, 0, 0,
          std::string_view(reinterpret_cast<const char*>(u.data), sizeof u.data)};
}
template <class T>
struct array_element;
template <class T>
requires(array_kind_of<typename array_element<T>::type>() != array_kind::none) param
    make_param(const std::vector<T>& v);

template <class T>
param make_param(const std::optional<T>& v) {
  return v ? make_param(*v) : param{};
}

template <class T>
struct array_element {
  using type = T;
};
template <class T>
struct array_element<std::optional<T>> {
  using type = T;
};

/// An array (PostgreSQL; SQLite refuses it with 0A000): a `std::vector` of integers, floating
/// point numbers, booleans, strings or UUIDs, or of `std::optional` of them for NULL elements.
/// Use it as `WHERE id = ANY($1)`.
template <class T>
requires(array_kind_of<typename array_element<T>::type>() != array_kind::none) param
    make_param(const std::vector<T>& v) {
  param p;
  p.kind = param_kind::array;
  p.integer = static_cast<std::int64_t>(array_kind_of<typename array_element<T>::type>());
  p.bytes = std::string_view(reinterpret_cast<const char*>(&v), sizeof v);
  p.write_array = [](const void* vector, std::string& out) {
    const auto& items = *static_cast<const std::vector<T>*>(vector);
    out += '{';
    for (std::size_t i = 0; i < items.size(); ++i) {
      if (i > 0) out += ',';
      append_array_element(out, make_param(items[i]));
    }
    out += '}';
  };
  return p;
}

/// Any other type (`char`, enums, other containers, `long double`) is rejected at compile time
/// rather than silently converted.
template <class T>
param make_param(const T&) = delete;

/// True when `T` can be passed as a statement parameter.
template <class T>
inline constexpr bool is_bindable = requires(const T& v) {
  make_param(v);
};

/// The parameters of one statement, owned by the statement's coroutine frame. Up to
/// `inline_capacity` parameters need no allocation; unused slots are never initialized or
/// copied (this is on every statement's path).
class param_list {
 public:
  static constexpr std::size_t inline_capacity = 8;

  param_list() noexcept = default;
  param_list(std::initializer_list<param> ps) : size_(ps.size()) {
    param* out = inline_data();
    if (size_ > inline_capacity) {
      heap_ = std::make_unique<param[]>(size_);
      out = heap_.get();
    }
    std::size_t i = 0;
    for (const param& p : ps)
      ::new (static_cast<void*>(out + i++)) param(p);
  }
  param_list(param_list&& other) noexcept : heap_(std::move(other.heap_)), size_(other.size_) {
    if (!heap_)
      for (std::size_t i = 0; i < size_; ++i)
        ::new (static_cast<void*>(inline_data() + i)) param(other.inline_data()[i]);
  }
  param_list& operator=(param_list&& other) noexcept {
    heap_ = std::move(other.heap_);
    size_ = other.size_;
    if (!heap_)
      for (std::size_t i = 0; i < size_; ++i)
        ::new (static_cast<void*>(inline_data() + i)) param(other.inline_data()[i]);
    return *this;
  }

  const param* data() const noexcept { return heap_ ? heap_.get() : inline_data(); }
  std::size_t size() const noexcept { return size_; }
  const param& operator[](std::size_t i) const noexcept { return data()[i]; }

 private:
  // `param` is trivially destructible: raw storage needs no cleanup.
  static_assert(std::is_trivially_destructible_v<param>);
  param* inline_data() noexcept { return reinterpret_cast<param*>(storage_); }
  const param* inline_data() const noexcept { return reinterpret_cast<const param*>(storage_); }

  alignas(param) unsigned char storage_[inline_capacity * sizeof(param)];
  std::unique_ptr<param[]> heap_;
  std::size_t size_ = 0;
};

/// Arguments a statement took over (see `make_args`), destroyed with it. Empty otherwise.
using owned_args = std::unique_ptr<void, void (*)(void*)>;

inline void no_owned_args(void*) noexcept {}

/// What a statement is given: its SQL, its parameters, and what it owns of them.
struct statement_args {
  std::string_view sql;
  param_list params;
  owned_args owned{nullptr, &no_owned_args};
};

template <class T>
struct is_vector : std::false_type {};
template <class T>
struct is_vector<std::vector<T>> : std::true_type {};
template <class T>
inline constexpr bool is_vector_v = is_vector<T>::value;

template <class T>
inline constexpr bool is_owning_value =
    std::is_same_v<T, std::string> || std::is_same_v<T, blob> ||
    std::is_same_v<T, boost::uuids::uuid> || std::is_same_v<T, std::optional<std::string>> ||
    std::is_same_v<T, std::optional<blob>> ||
    std::is_same_v<T, std::optional<boost::uuids::uuid>> || is_vector_v<T>;

/// An argument given as a temporary whose value is held by reference in a `param` (a string, a
/// blob): the statement must take it over, or it would read freed memory once the expression
/// that made the awaitable ends (`co_spawn(ex, db.execute(sql, std::to_string(i)), ...)`).
template <class P>
inline constexpr bool must_own =
    !std::is_lvalue_reference_v<P> && is_owning_value<std::remove_cvref_t<P>>;

/// How `make_args` keeps an argument: by value when it takes it over, else by reference.
template <class P>
using kept_t =
    std::conditional_t<must_own<P>, std::remove_cvref_t<P>, const std::remove_reference_t<P>&>;

/// The arguments of one statement. Temporaries that parameters would only view (an rvalue
/// `std::string` or `blob`, and an rvalue `std::string` as the SQL) are moved into one block the
/// statement owns (one allocation); everything else is viewed in place, as before.
template <class Sql, class... P>
statement_args make_args(Sql&& sql, P&&... params) {
  statement_args a;
  if constexpr (must_own<Sql> || (must_own<P> || ...)) {
    using kept_sql = std::conditional_t<must_own<Sql>, std::string, std::string_view>;
    using block = std::tuple<kept_sql, kept_t<P>...>;
    auto held = std::make_unique<block>(std::forward<Sql>(sql), std::forward<P>(params)...);
    a.sql = std::string_view(std::get<0>(*held));
    std::apply(
        [&a](const auto&, const auto&... kept) { a.params = param_list{make_param(kept)...}; },
        *held);
    a.owned = owned_args(held.release(), [](void* p) noexcept { delete static_cast<block*>(p); });
  } else {
    a.sql = std::string_view(sql);
    a.params = param_list{make_param(params)...};
  }
  return a;
}

}  // namespace detail
}  // namespace awaitdb

#endif  // AWAITDB_VALUE_HPP

// awaitdb: the value types that cross the API, and how parameters are passed.
#ifndef AWAITDB_VALUE_HPP
#define AWAITDB_VALUE_HPP

#include <boost/describe/enum_from_string.hpp>
#include <boost/describe/enum_to_string.hpp>
#include <boost/describe/enumerators.hpp>
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
#include <typeinfo>
#include <vector>

namespace awaitdb {

/// Which database a `database` talks to, chosen by the URL given to `open`.
enum class engine { sqlite, postgres };

/// Binary data: PostgreSQL BYTEA, SQLite BLOB. May hold any byte, NUL included.
using blob = std::vector<std::byte>;

/// The extension point for a type of yours: specialize it to make `T` a statement parameter and
/// a column type on both engines, stored as `db_type`, a type awaitdb already maps.
///
///     struct user_id { std::int64_t value; };
///     template <> struct awaitdb::type_mapping<user_id> {
///       using db_type = std::int64_t;
///       static std::int64_t to_db(const user_id& id) { return id.value; }
///       static user_id from_db(std::int64_t v) { return user_id{v}; }
///       static constexpr std::string_view name = "user_id";  // for errors; optional
///     };
///
/// `T` then works wherever values go: parameters (converted with `to_db` when the statement is
/// made; the result is held by the statement), `row::get<T>`, `std::optional<T>`, struct
/// members read by `query_as`, batches, streams, PostgreSQL arrays (`std::vector<T>`), and SQL
/// functions. `from_db` may throw to refuse a value: the read fails with 22000 (or the
/// `awaitdb::error`'s own SQLSTATE) naming the column and the type.
template <class T>
struct type_mapping;

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
/// `untyped`: text elements sent without a type, so that the server reads them as the statement
/// needs (the names of an enum type's values).
enum class array_kind : std::uint8_t {
  none,
  boolean,
  int2,
  int4,
  int8,
  numeric,
  real,
  text,
  uuid,
  untyped
};

/// An enumerator's name as a parameter: text the server reads as the type the statement wants
/// (PostgreSQL: a parameter of no stated type, so that `status = $1` works on an enum column).
struct enum_name {
  std::string_view name;
};

/// A type made a database type by a `type_mapping` specialization.
template <class T>
concept mapped = requires {
  typename type_mapping<T>::db_type;
};

/// An enum described with `BOOST_DESCRIBE_ENUM`: written and read as its enumerators' names.
template <class T>
concept described_enum =
    std::is_enum_v<T> && boost::describe::has_describe_enumerators<T>::value && !mapped<T>;

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
  else if constexpr (std::is_same_v<T, enum_name> || described_enum<T>)
    return array_kind::untyped;
  else if constexpr (mapped<T>)
    return array_kind_of<typename type_mapping<T>::db_type>();
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
inline param make_param(const enum_name& e) {
  return make_param(e.name);  // (text is sent without a type)
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

/// How a parameter of type `T` is held until the statement is made: `T` itself, or, for a type
/// that converts (a mapped type, a described enum, optionals and vectors of them), what it
/// converts to.
template <class T>
struct stored {
  using type = T;
  static constexpr bool converts = false;
};
template <mapped T>
struct stored<T> {
  using type = typename type_mapping<T>::db_type;
  static constexpr bool converts = true;
  static_assert(!mapped<type> && !described_enum<type>,
                "awaitdb::type_mapping<T>::db_type must be a type awaitdb maps itself (an integer, "
                "std::string, blob ...), not another mapped type or an enum");
  static_assert(!std::is_same_v<type, std::string_view> && !std::is_pointer_v<type>,
                "awaitdb::type_mapping<T>::db_type must own its data (std::string, not "
                "std::string_view or const char*): the statement holds it");
};
template <described_enum T>
struct stored<T> {
  using type = enum_name;
  static constexpr bool converts = true;
};
template <class T>
struct stored<std::optional<T>> {
  using type = std::optional<typename stored<T>::type>;
  static constexpr bool converts = stored<T>::converts;
};
template <class T>
struct stored<std::vector<T>> {
  using type = std::vector<typename stored<T>::type>;
  static constexpr bool converts = stored<T>::converts;
};
template <class T>
inline constexpr bool converts = stored<std::remove_cvref_t<T>>::converts;

/// Throws `awaitdb::error` 22023: `value` of the enum `type` has no name.
[[noreturn]] void unnamed_enum_value(std::string_view type, std::int64_t value);

/// The name of type `T` in messages: `type_mapping<T>::name`, or the compiler's.
std::string demangled_type_name(const char* mangled);
template <class T>
std::string type_name() {
  if constexpr (requires { std::string_view(type_mapping<T>::name); })
    return std::string(type_mapping<T>::name);
  else
    return demangled_type_name(typeid(T).name());
}

template <class T>
typename stored<T>::type to_stored(const T& v) {
  if constexpr (mapped<T>) {
    return type_mapping<T>::to_db(v);
  } else if constexpr (described_enum<T>) {
    const char* name = boost::describe::enum_to_string(v, nullptr);
    if (!name) unnamed_enum_value(type_name<T>(), static_cast<std::int64_t>(v));
    return enum_name{name};
  } else if constexpr (is_optional<T>::value) {
    if (!v) return std::nullopt;
    return to_stored(*v);
  } else {
    typename stored<T>::type out;
    out.reserve(v.size());
    for (const auto& element : v)
      out.push_back(to_stored(element));
    return out;
  }
}

/// True when `T` can be passed as a statement parameter.
template <class T>
inline constexpr bool is_bindable = requires(const typename stored<T>::type& v) {
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
inline constexpr bool is_optional_vector = false;
template <class T>
inline constexpr bool is_optional_vector<std::optional<std::vector<T>>> = true;

template <class T>
inline constexpr bool is_owning_value =
    std::is_same_v<T, std::string> || std::is_same_v<T, blob> ||
    std::is_same_v<T, boost::uuids::uuid> || std::is_same_v<T, std::optional<std::string>> ||
    std::is_same_v<T, std::optional<blob>> ||
    std::is_same_v<T, std::optional<boost::uuids::uuid>> || is_vector_v<T> || is_optional_vector<T>;

/// An argument given as a temporary whose value is held by reference in a `param` (a string, a
/// blob): the statement must take it over, or it would read freed memory once the expression
/// that made the awaitable ends (`co_spawn(ex, db.execute(sql, std::to_string(i)), ...)`).
template <class P>
inline constexpr bool must_own =
    !std::is_lvalue_reference_v<P> && is_owning_value<std::remove_cvref_t<P>>;

/// How `make_args` keeps an argument: converted (a mapped type, a described enum), by value
/// when it takes it over, else by reference.
template <class P>
using kept_t = std::conditional_t<
    converts<P>, typename stored<std::remove_cvref_t<P>>::type,
    std::conditional_t<must_own<P>, std::remove_cvref_t<P>, const std::remove_reference_t<P>&>>;

template <class P>
decltype(auto) keep(P&& p) {
  if constexpr (converts<P>)
    return to_stored(p);
  else
    return std::forward<P>(p);
}

#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13 && !defined(AWAITDB_NO_GCC12_WARNING)
// g++ 12 destroys twice the members of an aggregate temporary written inside a `co_await`
// expression (fixed in g++ 13): a parameter of a mapped type given so, `db.execute(sql,
// email{"a@b.c"})`, draws this warning when the type is not trivially copyable.
template <class P>
inline constexpr bool gcc12_risky_parameter =
    !std::is_lvalue_reference_v<P> && std::is_aggregate_v<std::remove_cvref_t<P>> &&
    !std::is_trivially_copyable_v<std::remove_cvref_t<P>>;
template <class... P>
[[deprecated(
    "g++ 12 destroys twice the members of an aggregate temporary written inside a co_await "
    "expression: name the parameter first (a variable), or give its type a constructor; see "
    "docs/usage.md. Define AWAITDB_NO_GCC12_WARNING to silence this")]] inline void
gcc12_aggregate_parameter() {}
#else
template <class P>
inline constexpr bool gcc12_risky_parameter = false;
template <class... P>
inline void gcc12_aggregate_parameter() {}
#endif

/// The arguments of one statement. Temporaries that parameters would only view (an rvalue
/// `std::string` or `blob`, a value that converts: see `stored`) are moved into one block the
/// statement owns (one allocation), with the SQL when it is a temporary `std::string`
/// (`owned_sql`, else null: the SQL is viewed); everything else is viewed in place.
template <class... P>
statement_args make_args_from(std::string_view sql, std::string* owned_sql, P&&... params) {
  if constexpr ((gcc12_risky_parameter<P> || ...)) gcc12_aggregate_parameter<P...>();
  statement_args a;
  if constexpr (((must_own<P> || converts<P>) || ...)) {
    using block = std::tuple<std::string, kept_t<P>...>;
    auto held = std::make_unique<block>(owned_sql ? std::move(*owned_sql) : std::string(),
                                        keep(std::forward<P>(params))...);
    a.sql = owned_sql ? std::string_view(std::get<0>(*held)) : sql;
    std::apply(
        [&a](const auto&, const auto&... kept) { a.params = param_list{make_param(kept)...}; },
        *held);
    a.owned = owned_args(held.release(), [](void* p) noexcept { delete static_cast<block*>(p); });
  } else {
    a.params = param_list{make_param(params)...};
    if (owned_sql) {
      auto held = std::make_unique<std::string>(std::move(*owned_sql));
      a.sql = *held;
      a.owned =
          owned_args(held.release(), [](void* p) noexcept { delete static_cast<std::string*>(p); });
    } else {
      a.sql = sql;
    }
  }
  return a;
}

/// The same, for SQL given as anything convertible to `std::string_view` (a temporary
/// `std::string` is taken over).
template <class Sql, class... P>
requires std::convertible_to<Sql, std::string_view> statement_args make_args(Sql&& sql,
                                                                             P&&... params) {
  if constexpr (must_own<Sql>)
    return make_args_from(std::string_view(sql), &sql, std::forward<P>(params)...);
  else
    return make_args_from(std::string_view(sql), nullptr, std::forward<P>(params)...);
}

}  // namespace detail
}  // namespace awaitdb

#endif  // AWAITDB_VALUE_HPP

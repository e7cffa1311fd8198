// awaitdb: the value types that cross the API, and how parameters are passed.
#ifndef AWAITDB_VALUE_HPP
#define AWAITDB_VALUE_HPP

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace awaitdb {

/// Which database a `database` talks to, chosen by the URL given to `open`.
enum class engine { sqlite, postgres };

/// Binary data: PostgreSQL BYTEA, SQLite BLOB. May hold any byte, NUL included.
using blob = std::vector<std::byte>;

namespace detail {

/// The kind of a statement parameter after conversion from a C++ value.
enum class param_kind : std::uint8_t { null, boolean, int16, int32, int64, real, text, blob };

/// A statement parameter, viewing the caller's data (strings and blobs are not copied).
/// It lives only while the statement that uses it runs.
struct param {
  param_kind kind = param_kind::null;
  std::int64_t integer = 0;  // boolean, int16, int32, int64
  double real = 0;
  std::string_view bytes;  // text, blob
};

template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};

inline param make_param(std::nullopt_t) {
  return {};
}
inline param make_param(bool v) {
  return {param_kind::boolean, v ? 1 : 0, 0, {}};
}
inline param make_param(std::int16_t v) {
  return {param_kind::int16, v, 0, {}};
}
inline param make_param(std::int32_t v) {
  return {param_kind::int32, v, 0, {}};
}
inline param make_param(std::int64_t v) {
  return {param_kind::int64, v, 0, {}};
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
template <class T>
param make_param(const std::optional<T>& v) {
  return v ? make_param(*v) : param{};
}

/// Any other type (unsigned or `long long` integers, `char`, enums, containers) is rejected at
/// compile time rather than silently narrowed or reinterpreted.
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
  param_list& operator=(param_list&&) = delete;

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

}  // namespace detail
}  // namespace awaitdb

#endif  // AWAITDB_VALUE_HPP

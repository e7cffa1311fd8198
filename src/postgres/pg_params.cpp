#include "pg_params.hpp"

#include "../param_check.hpp"
#include "../text_forms.hpp"

#include <charconv>
#include <cmath>

namespace awaitdb::detail {

void pg_params::encode(std::span<const param> params) {
  const std::size_t n = params.size();
  scratch_.clear();
  offsets_.assign(n, 0);
  values_.assign(n, nullptr);
  lengths_.assign(n, 0);
  formats_.assign(n, 0);
  types_.assign(n, pg_oid::unknown);
  for (std::size_t i = 0; i < n; ++i) {
    const param& p = params[i];
    auto put_text = [&](std::string_view text) {
      offsets_[i] = scratch_.size();
      scratch_.append(text);
      scratch_.push_back('\0');
    };
    auto put_number = [&](auto value) {
      char buffer[32];
      auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
      put_text(std::string_view(buffer, ec == std::errc() ? end : buffer));
    };
    switch (p.kind) {
      case param_kind::null:
        offsets_[i] = std::string::npos;
        break;
      case param_kind::boolean:
        types_[i] = pg_oid::boolean;
        put_text(p.integer ? "t" : "f");
        break;
      case param_kind::int16:
        types_[i] = pg_oid::int2;
        put_number(p.integer);
        break;
      case param_kind::int32:
        types_[i] = pg_oid::int4;
        put_number(p.integer);
        break;
      case param_kind::int64:
        types_[i] = pg_oid::int8;
        put_number(p.integer);
        break;
      case param_kind::real:
        types_[i] = pg_oid::float8;
        if (std::isnan(p.real))
          put_text("NaN");
        else if (std::isinf(p.real))
          put_text(p.real > 0 ? "Infinity" : "-Infinity");
        else
          put_number(p.real);
        break;
      case param_kind::text:
        // Text-format parameters are NUL-terminated C strings; PostgreSQL text cannot hold a NUL
        // byte anyway. Checked here, as SQLite checks it, so both engines report the same.
        check_text_parameter(p.bytes, i + 1);
        put_text(p.bytes);
        break;
      case param_kind::uint64:
        types_[i] = pg_oid::numeric;
        put_number(static_cast<std::uint64_t>(p.integer));
        break;
      case param_kind::timestamp:
      case param_kind::date:
      case param_kind::duration:
        put_text(parameter_text(p, i + 1, true));
        break;
      case param_kind::uuid:
        types_[i] = pg_oid::uuid;
        put_text(parameter_text(p, i + 1, true));
        break;
      case param_kind::array: {
        types_[i] = pg_array_type(static_cast<array_kind>(p.integer));
        offsets_[i] = scratch_.size();
        p.write_array(p.bytes.data(), scratch_);  // the array's text form, written in place
        check_text_parameter(std::string_view(scratch_).substr(offsets_[i]), i + 1);
        scratch_.push_back('\0');
        break;
      }
      case param_kind::blob:
        types_[i] = pg_oid::bytea;
        formats_[i] = 1;  // binary: the bytes as they are
        offsets_[i] = scratch_.size();
        scratch_.append(p.bytes);
        lengths_[i] = static_cast<int>(p.bytes.size());
        break;
    }
  }
  // Pointers only once scratch_ has stopped growing.
  for (std::size_t i = 0; i < n; ++i)
    values_[i] = offsets_[i] == std::string::npos ? nullptr : scratch_.data() + offsets_[i];
}

}  // namespace awaitdb::detail

// The text forms of times, dates, durations, UUIDs and PostgreSQL arrays: no database.
#include "text_forms.hpp"

#include "postgres/pg_types.hpp"
#include <awaitdb/error.hpp>
#include <awaitdb/row.hpp>

#include <gtest/gtest.h>

#include <limits>

namespace awaitdb::detail {
namespace {

constexpr std::int64_t second = 1'000'000;

TEST(text_forms, time_stamps) {
  EXPECT_EQ(format_timestamp(0, false), "1970-01-01 00:00:00.000000");
  EXPECT_EQ(format_timestamp(-1, true), "1969-12-31 23:59:59.999999+00");
  EXPECT_EQ(*parse_timestamp("1970-01-01 00:00:00"), 0);
  EXPECT_EQ(*parse_timestamp("1970-01-01T00:00:01.5Z"), second + second / 2);
  EXPECT_EQ(*parse_timestamp("1970-01-01 05:30:00+05:30"), 0);
  EXPECT_EQ(*parse_timestamp("1970-01-01 00:00:00-01"), 3600 * second);
  EXPECT_EQ(*parse_timestamp("1970-01-01 00:00:00.1234569"), 123456);  // cut, not rounded
  EXPECT_EQ(*parse_timestamp("1970-01-02"), 86400 * second);
  for (std::int64_t t : {std::int64_t(0), std::int64_t(-1), std::int64_t(1'700'000'000'123'456)})
    EXPECT_EQ(*parse_timestamp(format_timestamp(t, true)), t);
  EXPECT_FALSE(parse_timestamp("2024-02-30 00:00:00"));
  EXPECT_FALSE(parse_timestamp("2024-01-01 25:00:00"));
  EXPECT_FALSE(parse_timestamp("2024-01-01 00:00:00 junk"));
  EXPECT_FALSE(parse_timestamp("infinity"));
  EXPECT_EQ(format_timestamp(253402300800LL * second, false), "");  // year 10000
}

TEST(text_forms, dates_and_durations) {
  EXPECT_EQ(format_date(0), "1970-01-01");
  EXPECT_EQ(format_date(-1), "1969-12-31");
  EXPECT_EQ(*parse_date("2024-02-29"), 19782);
  EXPECT_FALSE(parse_date("2023-02-29"));
  EXPECT_EQ(format_duration(-(100 * 3600 * second + 1)), "-100:00:00.000001");
  std::int64_t micros = 0;
  EXPECT_EQ(parse_duration("-100:00:00.000001", micros), duration_parse::ok);
  EXPECT_EQ(micros, -(100 * 3600 * second + 1));
  EXPECT_EQ(parse_duration("23:59", micros), duration_parse::ok);
  EXPECT_EQ(micros, (23 * 60 + 59) * 60 * second);
  EXPECT_EQ(parse_duration("1 day 02:00:00", micros), duration_parse::has_days_or_months);
  EXPECT_EQ(parse_duration("3 mons", micros), duration_parse::has_days_or_months);
  EXPECT_EQ(parse_duration("soon", micros), duration_parse::malformed);
}

TEST(text_forms, uuids) {
  const std::array<std::uint8_t, 16> bytes{0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8,
                                           0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38, 0x0a, 0x11};
  EXPECT_EQ(format_uuid(bytes), "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
  EXPECT_EQ(*parse_uuid("A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"), bytes);
  EXPECT_EQ(*parse_uuid("{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}"), bytes);
  EXPECT_FALSE(parse_uuid("a0eebc999c0b4ef8bb6d6bb9bd380a11"));
  EXPECT_FALSE(parse_uuid("g0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"));
}

// One PostgreSQL array value, as the server would present it.
class one_array final : public result_source {
 public:
  one_array(std::string text, cell_kind element) : text_(std::move(text)), element_(element) {}
  std::size_t rows() const noexcept override { return 1; }
  std::size_t columns() const noexcept override { return 1; }
  std::string_view column_name(std::size_t) const noexcept override { return "a"; }
  cell at(std::size_t, std::size_t) const override {
    cell c;
    c.kind = cell_kind::array;
    c.integer = static_cast<std::int64_t>(element_);
    c.bytes = text_;
    return c;
  }

 private:
  std::string text_;
  cell_kind element_;
};

template <class T>
std::string array_text(const std::vector<T>& v) {
  const param p = make_param(v);
  std::string out;
  p.write_array(p.bytes.data(), out);
  return out;
}

template <class T>
std::vector<T> read(std::string text, cell_kind element) {
  std::vector<T> out;
  read_cell(one_array(std::move(text), element), 0, 0, out);
  return out;
}

std::string sqlstate_of(std::string text, cell_kind element) {
  try {
    (void)read<std::int32_t>(std::move(text), element);
  } catch (const error& e) {
    return std::string(e.sqlstate());
  }
  return "no error";
}

TEST(text_forms, arrays_are_written_as_postgresql_reads_them) {
  EXPECT_EQ(array_text(std::vector<int>{1, -2}), "{1,-2}");
  EXPECT_EQ(array_text(std::vector<int>{}), "{}");
  EXPECT_EQ(array_text(std::vector<bool>{true, false}), "{t,f}");
  EXPECT_EQ(array_text(std::vector<std::optional<long long>>{std::nullopt, 3}), "{NULL,3}");
  EXPECT_EQ(array_text(std::vector<std::string>{"a\"b", "c\\d", "", "NULL"}),
            R"({"a\"b","c\\d","","NULL"})");
  EXPECT_EQ(array_text(std::vector<double>{0.5, std::numeric_limits<double>::infinity()}),
            "{0.5,Infinity}");
  // The element kind, and the array type the PostgreSQL engine sends for it.
  auto sent_as = [](const param& p) { return pg_array_type(static_cast<array_kind>(p.integer)); };
  EXPECT_EQ(sent_as(make_param(std::vector<std::int64_t>{})), 1016u);   // int8[]
  EXPECT_EQ(sent_as(make_param(std::vector<std::string>{})), 1009u);    // text[]
  EXPECT_EQ(sent_as(make_param(std::vector<std::uint64_t>{})), 1231u);  // numeric[]
}

TEST(text_forms, arrays_are_read_as_postgresql_writes_them) {
  // Text elements round-trip through the writer and the reader, quotes and all.
  const std::vector<std::string> text{"a,b", "say \"hi\"", "back\\slash", "{}", "NULL", ""};
  EXPECT_EQ(read<std::string>(array_text(text), cell_kind::text), text);
  // The server quotes only what needs it, and writes NULL unquoted in any case.
  EXPECT_EQ(read<std::string>(R"({plain,"with space"})", cell_kind::text),
            (std::vector<std::string>{"plain", "with space"}));
  const auto gaps = read<std::optional<std::int32_t>>("{1,NULL,null,3}", cell_kind::integer);
  EXPECT_EQ(gaps, (std::vector<std::optional<std::int32_t>>{1, std::nullopt, std::nullopt, 3}));
  EXPECT_EQ(read<std::int32_t>("[0:1]={7,8}", cell_kind::integer),
            (std::vector<std::int32_t>{7, 8}));
  EXPECT_EQ(read<double>("{1.5,-Infinity}", cell_kind::real),
            (std::vector<double>{1.5, -std::numeric_limits<double>::infinity()}));
  // What is not a one-dimensional array of the element type fails with a clear code.
  EXPECT_EQ(sqlstate_of("{{1,2},{3,4}}", cell_kind::integer), "0A000");
  EXPECT_EQ(sqlstate_of("{1,NULL}", cell_kind::integer), "22004");
  EXPECT_EQ(sqlstate_of("{1,x}", cell_kind::integer), "22P02");
  EXPECT_EQ(sqlstate_of("{\"1}", cell_kind::integer), "22P02");  // an unclosed quote
  EXPECT_EQ(sqlstate_of("1,2", cell_kind::integer), "22P02");
  EXPECT_EQ(sqlstate_of("{99999999999}", cell_kind::integer), "22003");
}

}  // namespace
}  // namespace awaitdb::detail

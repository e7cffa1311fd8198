// The prepared-statement cache alone: no server.
#include "postgres/pg_statement_cache.hpp"

#include <gtest/gtest.h>

namespace awaitdb::detail {
namespace {

const Oid int4[] = {23};
const Oid text[] = {0};

TEST(pg_statement_cache, lexes_once_and_keeps_the_scan) {
  pg_statement_cache cache(8, true);
  auto& e = cache.find_or_add("SELECT $1, $2 -- $9");
  EXPECT_EQ(e.scan.highest_placeholder, 2u);
  EXPECT_FALSE(e.scan.blank);
  EXPECT_EQ(&cache.find_or_add("SELECT $1, $2 -- $9"), &e);
  EXPECT_TRUE(cache.find_or_add(" -- nothing").scan.blank);
}

TEST(pg_statement_cache, one_name_per_type_signature) {
  pg_statement_cache cache(8, true);
  auto& e = cache.find_or_add("SELECT $1");
  EXPECT_EQ(cache.prepared_name(e, int4), nullptr);
  const std::string a = cache.add_prepared(e, int4);
  const std::string b = cache.add_prepared(e, text);
  EXPECT_NE(a, b);
  EXPECT_EQ(*cache.prepared_name(e, int4), a);
  EXPECT_EQ(*cache.prepared_name(e, text), b);
}

TEST(pg_statement_cache, at_most_capacity_prepared_the_rest_deallocated) {
  pg_statement_cache cache(2, true);
  std::vector<std::string> names;
  for (int k = 0; k < 5; ++k) {
    auto& e = cache.find_or_add("SELECT " + std::to_string(k));
    names.push_back(cache.add_prepared(e, {}));
  }
  // Three were given up, least recently used first; their scans stay.
  EXPECT_EQ(cache.take_owed(),
            (std::vector<std::string>{"DEALLOCATE " + names[0], "DEALLOCATE " + names[1],
                                      "DEALLOCATE " + names[2]}));
  EXPECT_FALSE(cache.has_owed());
  auto& first = cache.find_or_add("SELECT 0");
  EXPECT_EQ(cache.prepared_name(first, {}), nullptr);
  EXPECT_EQ(*cache.prepared_name(cache.find_or_add("SELECT 4"), {}), names[4]);
}

TEST(pg_statement_cache, a_failed_parse_is_forgotten_a_stale_plan_deallocated) {
  pg_statement_cache cache(8, true);
  auto& e = cache.find_or_add("SELECT * FROM t");
  const std::string name = cache.add_prepared(e, {});
  cache.forget(name);
  EXPECT_EQ(cache.prepared_name(e, {}), nullptr);
  EXPECT_FALSE(cache.has_owed());  // the server never had it
  const std::string again = cache.add_prepared(e, {});
  cache.invalidate(again, true);  // 0A000: it exists, with a stale plan
  EXPECT_EQ(cache.prepared_name(e, {}), nullptr);
  EXPECT_EQ(cache.take_owed(), std::vector<std::string>{"DEALLOCATE " + again});
  const std::string third = cache.add_prepared(e, {});
  cache.invalidate(third, false);  // 26000: it does not exist
  EXPECT_FALSE(cache.has_owed());
}

TEST(pg_statement_cache, unnamed_keeps_scans_only) {
  pg_statement_cache cache(0, true);
  EXPECT_FALSE(cache.named());
  pg_statement_cache off(256, false);
  EXPECT_FALSE(off.named());
  EXPECT_EQ(off.find_or_add("SELECT $3").scan.highest_placeholder, 3u);
}

}  // namespace
}  // namespace awaitdb::detail

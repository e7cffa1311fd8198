// What a migration run does next, from the set and the version table: no database.
#include "migrate/migration_plan.hpp"

#include <awaitdb/error.hpp>

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace awaitdb::detail {
namespace {

const std::vector<known_migration> set = {{1, "users", 11}, {2, "orders", 22}, {5, "index", 55}};

recorded_migration applied(std::int64_t version, std::int64_t checksum) {
  return {version, "name", checksum, false};
}

std::string refusal(const std::vector<recorded_migration>& table, plan_rules rules = {}) {
  try {
    plan_next(set, table, rules);
  } catch (const error& e) {
    EXPECT_EQ(e.sqlstate(), "55000") << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no refusal";
  return {};
}

TEST(migration_plan, an_empty_table_applies_the_first_migration) {
  const migration_plan p = plan_next(set, {}, {});
  EXPECT_EQ(p.step, plan_step::apply);
  EXPECT_EQ(p.index, 0u);
  EXPECT_EQ(p.version, 0);
}

TEST(migration_plan, the_next_unapplied_migration_follows_the_applied_ones) {
  const std::vector<recorded_migration> table = {applied(1, 11), applied(2, 22)};
  const migration_plan p = plan_next(set, table, {});
  EXPECT_EQ(p.step, plan_step::apply);
  EXPECT_EQ(p.index, 2u);
  EXPECT_EQ(p.version, 2);
}

TEST(migration_plan, all_applied_is_up_to_date_at_the_newest_version) {
  const std::vector<recorded_migration> table = {applied(1, 11), applied(2, 22), applied(5, 55)};
  const migration_plan p = plan_next(set, table, {});
  EXPECT_EQ(p.step, plan_step::up_to_date);
  EXPECT_EQ(p.version, 5);
  EXPECT_EQ(plan_next({}, {}, {}).step, plan_step::up_to_date);
}

TEST(migration_plan, a_changed_script_stops_the_run_naming_the_migration) {
  const std::string why = refusal({applied(1, 11), applied(2, 23)});
  EXPECT_NE(why.find("migration 2 (name)"), std::string::npos) << why;
  EXPECT_NE(why.find("changed"), std::string::npos) << why;
  // Also with ignore_missing and out_of_order: those never excuse a changed script.
  refusal({applied(1, 12)}, {true, true});
}

TEST(migration_plan, a_version_the_set_lacks_stops_the_run_unless_ignored) {
  const std::vector<recorded_migration> table = {applied(1, 11), applied(2, 22), applied(3, 33)};
  const std::string why = refusal(table);
  EXPECT_NE(why.find("migration 3 (name) applied, which this set of migrations lacks"),
            std::string::npos)
      << why;
  const migration_plan p = plan_next(set, table, {.ignore_missing = true});
  EXPECT_EQ(p.step, plan_step::apply);
  EXPECT_EQ(p.index, 2u);
  EXPECT_EQ(p.version, 3);
}

TEST(migration_plan, a_migration_below_the_newest_applied_one_is_out_of_order) {
  const std::vector<recorded_migration> table = {applied(1, 11), applied(5, 55)};
  const std::string why = refusal(table);
  EXPECT_NE(why.find("migration 2 (orders) is not applied"), std::string::npos) << why;
  const migration_plan p = plan_next(set, table, {.out_of_order = true});
  EXPECT_EQ(p.step, plan_step::apply);
  EXPECT_EQ(p.index, 1u);
}

TEST(migration_plan, a_migration_another_run_applies_outside_a_transaction_is_waited_for) {
  std::vector<recorded_migration> table = {applied(1, 11), applied(2, 22)};
  table.push_back({5, "index", 55, true});
  const migration_plan p = plan_next(set, table, {});
  EXPECT_EQ(p.step, plan_step::wait_for_running);
  EXPECT_EQ(p.running_version, 5);
  EXPECT_EQ(p.version, 2);
}

}  // namespace
}  // namespace awaitdb::detail

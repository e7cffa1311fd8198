// database::migrate against real SQLite and a real PostgreSQL server.
#include "migrate/sql_script.hpp"
#include "postgres/pg_support.hpp"

#include <boost/asio/detached.hpp>
#include <boost/asio/this_coro.hpp>

#include <filesystem>
#include <fstream>
#include <memory>
#include <set>

namespace awaitdb::test {
namespace {

// Each test's migrations record themselves in a table of their own, and create tables named
// mig_<test>_*, dropped before and after (PostgreSQL's database is shared by the suite).
class migrate_test : public engine_test {
 protected:
  migrate_options options(const std::string& table) const {
    migrate_options o;
    o.table = table;
    return o;
  }
  static asio::awaitable<void> drop(const database& db, std::vector<std::string> tables) {
    for (const std::string& t : tables)
      co_await db.execute("DROP TABLE IF EXISTS " + t);
  }
  static asio::awaitable<std::vector<std::string>> recorded(const database& db,
                                                            const std::string& table) {
    std::vector<std::string> out;
    for (const row& r :
         co_await db.query("SELECT version, name, state FROM " + table + " ORDER BY version"))
      out.push_back(std::to_string(r.get<std::int64_t>(0)) + " " + r.get<std::string>(1) + " " +
                    r.get<std::string>(2));
    co_return out;
  }
};

// (A vector built outside the coroutines: g++ 12 rejects an initializer list of strings in one.)
template <class... Text>
std::vector<std::string> strings(const Text&... text) {
  std::vector<std::string> out;
  (out.emplace_back(text), ...);
  return out;
}

migrations three_migrations() {
  migrations m;
  m.add(1, "people",
        "CREATE TABLE mig_basic_people (id BIGINT PRIMARY KEY, name TEXT NOT NULL);\n"
        "INSERT INTO mig_basic_people VALUES (1, 'semi;colon');\n"
        "INSERT INTO mig_basic_people VALUES (2, 'it''s');");
  m.add(2, "timestamps",
        "ALTER TABLE mig_basic_people ADD COLUMN born TIMESTAMPTZ;  -- PostgreSQL's type",
        "ALTER TABLE mig_basic_people ADD COLUMN born TEXT;  -- SQLite's ISO text");
  m.add(10, "index", "CREATE INDEX mig_basic_by_name ON mig_basic_people (name)");
  return m;
}

TEST_P(migrate_test, migrations_apply_once_in_order_and_a_later_run_applies_only_new_ones) {
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(GetParam().url);
    const std::vector<std::string> tables = strings("mig_basic_people", "mig_basic_versions");
    co_await drop(db, tables);
    const migrate_options o = options("mig_basic_versions");

    migrate_result first = co_await db.migrate(three_migrations(), o);
    EXPECT_EQ(first.version, 10);
    EXPECT_EQ(first.applied, (std::vector<std::int64_t>{1, 2, 10}));
    EXPECT_EQ(co_await recorded(db, "mig_basic_versions"),
              strings("1 people applied", "2 timestamps applied", "10 index applied"));
    EXPECT_EQ(
        co_await db.query_scalar<std::string>("SELECT name FROM mig_basic_people WHERE id = 1"),
        "semi;colon");
    EXPECT_EQ(co_await db.query_scalar<std::int64_t>(
                  "SELECT count(*) FROM mig_basic_people WHERE born IS NULL"),
              2);

    migrate_result again = co_await db.migrate(three_migrations(), o);
    EXPECT_EQ(again.version, 10);
    EXPECT_TRUE(again.applied.empty());

    migrations more = three_migrations();
    more.add(11, "more people", "INSERT INTO mig_basic_people (id, name) VALUES (3, 'c')");
    migrate_result later = co_await db.migrate(more, o);
    EXPECT_EQ(later.applied, (std::vector<std::int64_t>{11}));
    EXPECT_EQ(later.version, 11);
    EXPECT_EQ(co_await db.query_scalar<std::int64_t>("SELECT count(*) FROM mig_basic_people"), 3);
    co_await drop(db, tables);
  });
}

TEST_P(migrate_test, a_failing_migration_is_rolled_back_and_named_and_the_version_stays) {
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(GetParam().url);
    const std::vector<std::string> tables =
        strings("mig_fail_a", "mig_fail_b", "mig_fail_versions");
    co_await drop(db, tables);
    const migrate_options o = options("mig_fail_versions");
    migrations m;
    m.add(1, "a", "CREATE TABLE mig_fail_a (x INT)");
    m.add(2, "b",
          "CREATE TABLE mig_fail_b (x INT);\n\n"
          "INSERT INTO mig_fail_missing VALUES (1);");
    const std::string what = co_await expect_sqlstate(
        "42P01", [&]() -> asio::awaitable<void> { co_await db.migrate(m, o); });
    EXPECT_NE(what.find("migration 2 (b), statement 2 (in code line 3)"), std::string::npos)
        << what;
    // Migration 1 stays applied; none of 2 is left (its first statement was rolled back).
    EXPECT_EQ(co_await recorded(db, "mig_fail_versions"), strings("1 a applied"));
    EXPECT_EQ(co_await db.query_scalar<std::int64_t>("SELECT count(*) FROM mig_fail_a"), 0);
    co_await expect_sqlstate(
        "42P01", [&]() -> asio::awaitable<void> { co_await db.query("SELECT * FROM mig_fail_b"); });

    // Fixed (it was never applied, so it may change), it applies.
    migrations fixed;
    fixed.add(1, "a", "CREATE TABLE mig_fail_a (x INT)");
    fixed.add(2, "b", "CREATE TABLE mig_fail_b (x INT);\nINSERT INTO mig_fail_b VALUES (1);");
    migrate_result r = co_await db.migrate(fixed, o);
    EXPECT_EQ(r.applied, (std::vector<std::int64_t>{2}));
    co_await drop(db, tables);
  });
}

TEST_P(migrate_test, a_changed_or_unknown_applied_migration_stops_the_run_before_any_change) {
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(GetParam().url);
    const std::vector<std::string> tables =
        strings("mig_check_a", "mig_check_b", "mig_check_versions");
    co_await drop(db, tables);
    migrate_options o = options("mig_check_versions");
    migrations m;
    m.add(1, "a", "CREATE TABLE mig_check_a\n  (x INT);");
    m.add(2, "b", "INSERT INTO mig_check_a\n  VALUES (2);");
    co_await db.migrate(m, o);

    migrations changed;
    changed.add(1, "a", "CREATE TABLE mig_check_a\n  (x BIGINT);");
    changed.add(2, "b", "INSERT INTO mig_check_a\n  VALUES (2);");
    changed.add(3, "c", "CREATE TABLE mig_check_b (x INT);");
    const std::string what = co_await expect_sqlstate(
        "55000", [&]() -> asio::awaitable<void> { co_await db.migrate(changed, o); });
    EXPECT_NE(what.find("migration 1 (a) was applied from a script that has changed"),
              std::string::npos)
        << what;
    co_await expect_sqlstate("42P01", [&]() -> asio::awaitable<void> {
      co_await db.query("SELECT * FROM mig_check_b");  // 3 was not applied
    });

    // Line ends converted by a checkout are no change.
    migrations crlf;
    crlf.add(1, "a", "CREATE TABLE mig_check_a\r\n  (x INT);");
    crlf.add(2, "b", "INSERT INTO mig_check_a\r\n  VALUES (2);");
    migrate_result same = co_await db.migrate(crlf, o);
    EXPECT_TRUE(same.applied.empty());
    EXPECT_EQ(same.version, 2);

    // A set that lacks an applied version (an older release starting after a newer one).
    migrations older;
    older.add(1, "a", "CREATE TABLE mig_check_a\n  (x INT);");
    co_await expect_sqlstate("55000",
                             [&]() -> asio::awaitable<void> { co_await db.migrate(older, o); });
    o.ignore_missing = true;
    migrate_result r = co_await db.migrate(older, o);
    EXPECT_EQ(r.version, 2);
    EXPECT_TRUE(r.applied.empty());
    co_await drop(db, tables);
  });
}

TEST_P(migrate_test, a_no_transaction_migration_runs_statements_that_refuse_a_transaction) {
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(GetParam().url);
    const std::vector<std::string> tables = strings("mig_nt_t", "mig_nt_versions");
    co_await drop(db, tables);
    const migrate_options o = options("mig_nt_versions");
    // PostgreSQL: CREATE INDEX CONCURRENTLY; SQLite: VACUUM. Neither runs in a transaction.
    const std::string outside =
        pg() ? "CREATE INDEX CONCURRENTLY mig_nt_by_x ON mig_nt_t (x)" : "VACUUM";
    migrations in_tx;
    in_tx.add(1, "t", "CREATE TABLE mig_nt_t (x INT); INSERT INTO mig_nt_t VALUES (1);");
    in_tx.add(2, "outside", outside);
    co_await expect_sqlstate("25001",
                             [&]() -> asio::awaitable<void> { co_await db.migrate(in_tx, o); });
    EXPECT_EQ(co_await recorded(db, "mig_nt_versions"), strings("1 t applied"));

    migrations m;
    m.add(1, "t", "CREATE TABLE mig_nt_t (x INT); INSERT INTO mig_nt_t VALUES (1);");
    m.add(2, "outside", "-- awaitdb:no-transaction\n" + outside + ";\nUPDATE mig_nt_t SET x = 2;");
    migrate_result r = co_await db.migrate(m, o);
    EXPECT_EQ(r.applied, (std::vector<std::int64_t>{2}));
    EXPECT_EQ(co_await recorded(db, "mig_nt_versions"),
              strings("1 t applied", "2 outside applied"));
    EXPECT_EQ(co_await db.query_scalar<std::int64_t>("SELECT x FROM mig_nt_t"), 2);
    if (pg()) {
      EXPECT_TRUE(co_await db.query_scalar<bool>(
          "SELECT indisvalid FROM pg_index WHERE indexrelid = 'mig_nt_by_x'::regclass"));
    }

    // One failing outside a transaction: the statements before the failure stay done (they
    // committed one by one), and its claim is withdrawn, so the version stays at 2.
    m.add(3, "fails",
          "-- awaitdb:no-transaction\nUPDATE mig_nt_t SET x = 3;\nSELECT * FROM nowhere;");
    const std::string what = co_await expect_sqlstate(
        "42P01", [&]() -> asio::awaitable<void> { co_await db.migrate(m, o); });
    EXPECT_NE(what.find("migration 3 (fails), statement 2"), std::string::npos) << what;
    EXPECT_EQ(co_await recorded(db, "mig_nt_versions"),
              strings("1 t applied", "2 outside applied"));
    EXPECT_EQ(co_await db.query_scalar<std::int64_t>("SELECT x FROM mig_nt_t"), 3);
    co_await drop(db, tables);
  });
}

// Another run is applying migration 2 outside a transaction (its row says `running`): this one
// waits for it to finish, then finds it applied; a run that never finishes it is reported.
TEST_P(migrate_test, a_migration_another_run_applies_outside_a_transaction_is_waited_for) {
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(GetParam().url);
    const std::vector<std::string> tables = strings("mig_wait_t", "mig_wait_versions");
    co_await drop(db, tables);
    migrate_options o = options("mig_wait_versions");
    migrations m;
    m.add(1, "t", "CREATE TABLE mig_wait_t (x INT)");
    const std::string two = "-- awaitdb:no-transaction\nINSERT INTO mig_wait_t VALUES (2)";
    co_await db.migrate(m, o);
    m.add(2, "two", two);
    // The claim another run would have made, and the work it does.
    const auto started = clock::now();
    auto finisher = [](database d) -> asio::awaitable<void> {
      co_await sleep_for(300ms);
      co_await d.execute("INSERT INTO mig_wait_t VALUES (2)");
      co_await d.execute("UPDATE mig_wait_versions SET state = 'applied' WHERE version = 2");
    };
    co_await db.execute(
        "INSERT INTO mig_wait_versions (version, name, checksum, state) VALUES (2, 'two', $1, "
        "'running')",
        detail::script_checksum(two));
    asio::co_spawn(co_await asio::this_coro::executor, finisher(db), asio::detached);
    migrate_result r = co_await db.migrate(m, o);
    EXPECT_GE(clock::now() - started, 250ms);
    EXPECT_TRUE(r.applied.empty());
    EXPECT_EQ(r.version, 2);
    EXPECT_EQ(co_await db.query_scalar<std::int64_t>("SELECT count(*) FROM mig_wait_t"), 1);

    // A claim nobody finishes: after running_wait, 55P03 saying what to do.
    m.add(3, "three", "-- awaitdb:no-transaction\nINSERT INTO mig_wait_t VALUES (3)");
    co_await db.execute(
        "INSERT INTO mig_wait_versions (version, name, checksum, state) VALUES (3, 'three', $1, "
        "'running')",
        detail::script_checksum("-- awaitdb:no-transaction\nINSERT INTO mig_wait_t VALUES (3)"));
    o.running_wait = 200ms;
    const std::string what = co_await expect_sqlstate(
        "55P03", [&]() -> asio::awaitable<void> { co_await db.migrate(m, o); });
    EXPECT_NE(what.find("delete its row (state 'running') from mig_wait_versions"),
              std::string::npos)
        << what;
    co_await drop(db, tables);
  });
}

TEST_P(migrate_test, bad_input_is_refused_with_a_clear_error) {
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(GetParam().url);
    migrations m;
    m.add(1, "a", "SELECT 1");
    co_await expect_sqlstate("22023", [&]() -> asio::awaitable<void> {
      co_await db.migrate(m, options("versions; DROP TABLE x"));
    });
    // Inside a transaction: each migration needs a transaction of its own.
    co_await expect_sqlstate("25001", [&]() -> asio::awaitable<void> {
      co_await db.transaction([&]() -> asio::awaitable<void> { co_await db.migrate(m); });
    });
    // A script that does not split: nothing runs, the script's line is named.
    migrations broken;
    broken.add(1, "a", "CREATE TABLE mig_bad_a (x INT);");
    broken.add(2, "b", "SELECT 1;\nSELECT 'unclosed;");
    const std::string what = co_await expect_sqlstate("42601", [&]() -> asio::awaitable<void> {
      co_await db.migrate(broken, options("mig_bad_versions"));
    });
    EXPECT_NE(what.find("migration 2 (b), in code: line 2: a string literal is not closed"),
              std::string::npos)
        << what;
    co_await expect_sqlstate(
        "42P01", [&]() -> asio::awaitable<void> { co_await db.query("SELECT * FROM mig_bad_a"); });
    // A migration for the other engine only.
    migrations other;
    if (pg())
      other.add(1, "a", "SELECT 1", "");
    else
      other.add(1, "a", "", "SELECT 1");
    migrate_result r = co_await db.migrate(other, options("mig_bad_versions"));
    EXPECT_EQ(r.applied, (std::vector<std::int64_t>{1}));  // an empty script: recorded
    const std::vector<std::string> versions_table = strings("mig_bad_versions");
    co_await drop(db, versions_table);
    // Versions above 0, once.
    EXPECT_THROW(migrations().add(0, "zero", "SELECT 1"), error);
    EXPECT_THROW(migrations().add(1, "a", "SELECT 1").add(1, "a", "SELECT 2"), error);
    EXPECT_THROW(migrations().add(1, "a", "SELECT 1").add(1, "b", "SELECT 2"), error);
  });
}

struct temp_dir {
  std::filesystem::path path =
      std::filesystem::temp_directory_path() / ("awaitdb-migrations-" + std::to_string(::getpid()));
  temp_dir() { std::filesystem::create_directories(path); }
  ~temp_dir() { std::filesystem::remove_all(path); }
  void write(const std::string& name, const std::string& text) const {
    std::ofstream(path / name, std::ios::binary) << text;
  }
};

TEST_P(migrate_test, a_directory_gives_shared_files_and_per_engine_variants) {
  temp_dir dir;
  dir.write("0001_items.sql", "CREATE TABLE mig_dir_items (id INT, label TEXT);");
  dir.write("0002_seed.postgresql.sql", "INSERT INTO mig_dir_items VALUES (1, 'postgresql');");
  dir.write("0002_seed.sqlite.sql", "INSERT INTO mig_dir_items VALUES (1, 'sqlite');");
  dir.write("0003_more.sql", "INSERT INTO mig_dir_items VALUES (3, 'shared');");
  dir.write("0003_more.sqlite.sql", "INSERT INTO mig_dir_items VALUES (3, 'sqlite only');");
  dir.write("README.md", "Not a migration.");
  const migrations m = migrations::from_directory(dir.path);
  ASSERT_EQ(m.size(), 3u);
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(GetParam().url);
    const std::vector<std::string> tables = strings("mig_dir_items", "mig_dir_versions");
    co_await drop(db, tables);
    migrate_result r = co_await db.migrate(m, options("mig_dir_versions"));
    EXPECT_EQ(r.applied, (std::vector<std::int64_t>{1, 2, 3}));
    std::vector<std::string> labels;
    for (const row& each : co_await db.query("SELECT label FROM mig_dir_items ORDER BY id"))
      labels.push_back(each.get<std::string>(0));
    EXPECT_EQ(labels, pg() ? strings("postgresql", "shared") : strings("sqlite", "sqlite only"));
    EXPECT_EQ(co_await recorded(db, "mig_dir_versions"),
              strings("1 items applied", "2 seed applied", "3 more applied"));
    co_await drop(db, tables);
  });
}

TEST(migrations_directory, misnamed_and_missing_files_are_errors) {
  temp_dir dir;
  dir.write("V1__init.sql", "SELECT 1;");
  EXPECT_THROW(migrations::from_directory(dir.path), error);
  std::filesystem::remove(dir.path / "V1__init.sql");
  dir.write("0001_a.mysql.sql", "SELECT 1;");
  try {
    migrations::from_directory(dir.path);
    ADD_FAILURE() << "an unknown engine was accepted";
  } catch (const error& e) {
    EXPECT_EQ(e.sqlstate(), "42601");
    EXPECT_NE(std::string(e.what()).find("0001_a.mysql.sql"), std::string::npos) << e.what();
  }
  std::filesystem::remove(dir.path / "0001_a.mysql.sql");
  dir.write("0001_a.sql", "SELECT 1;");
  dir.write("0001_b.sql", "SELECT 2;");
  EXPECT_THROW(migrations::from_directory(dir.path), error);  // one version, two names
  try {
    migrations::from_directory(dir.path / "absent");
    ADD_FAILURE() << "a missing directory was accepted";
  } catch (const error& e) {
    EXPECT_EQ(e.sqlstate(), "58P01");
  }
}

// Eight instances of a service start at once on one database (eight `open`s, as eight
// processes would): each migration is applied exactly once, every instance ends at the newest
// version, and together they report each migration applied once.
// (A memory database is one instance's: on an SQLite file and on PostgreSQL.)
class migrate_starters : public migrate_test {};

TEST_P(migrate_starters, eight_instances_starting_at_once_apply_each_migration_once) {
  migrations m;
  m.add(1, "log", "CREATE TABLE mig_many_log (version INT NOT NULL)");
  for (int v = 2; v <= 6; ++v)
    m.add(v, "step " + std::to_string(v),
          "INSERT INTO mig_many_log VALUES (" + std::to_string(v) + ");");
  // One outside a transaction: the others wait for it to finish.
  m.add(7, "outside", "-- awaitdb:no-transaction\nINSERT INTO mig_many_log VALUES (7);");
  m.add(8, "last", "INSERT INTO mig_many_log VALUES (8);");
  run(
      [&]() -> asio::awaitable<void> {
        database admin = co_await open(GetParam().url);
        const std::vector<std::string> tables = strings("mig_many_log", "mig_many_versions");
        co_await drop(admin, tables);
        auto ex = co_await asio::this_coro::executor;
        auto results = std::make_shared<std::vector<migrate_result>>();
        auto failures = std::make_shared<std::vector<std::string>>();
        auto done = std::make_shared<int>(0);
        const std::string url = GetParam().url;
        for (int i = 0; i < 8; ++i) {
          auto start = [](std::string u, migrations set,
                          std::shared_ptr<std::vector<migrate_result>> out,
                          std::shared_ptr<std::vector<std::string>> failed,
                          std::shared_ptr<int> count) -> asio::awaitable<void> {
            try {
              database db = co_await open(u);
              migrate_options o;
              o.table = "mig_many_versions";
              out->push_back(co_await db.migrate(std::move(set), o));
              co_await db.close();
            } catch (const std::exception& e) {
              failed->push_back(e.what());
            }
            ++*count;
          };
          asio::co_spawn(ex, start(url, m, results, failures, done), asio::detached);
        }
        while (*done < 8)
          co_await sleep_for(10ms);
        for (const std::string& f : *failures)
          ADD_FAILURE() << f;
        std::multiset<std::int64_t> applied;
        for (const migrate_result& r : *results) {
          EXPECT_EQ(r.version, 8);
          applied.insert(r.applied.begin(), r.applied.end());
        }
        EXPECT_EQ(applied, (std::multiset<std::int64_t>{1, 2, 3, 4, 5, 6, 7, 8}));
        EXPECT_EQ(co_await admin.query_scalar<std::int64_t>("SELECT count(*) FROM mig_many_log"),
                  7);
        EXPECT_EQ(co_await admin.query_scalar<std::int64_t>(
                      "SELECT count(DISTINCT version) FROM mig_many_log"),
                  7);
        co_await drop(admin, tables);
      },
      120s);
}

INSTANTIATE_TEST_SUITE_P(engines, migrate_test, testing::ValuesIn(engine_cases()),
                         engine_case_name);
INSTANTIATE_TEST_SUITE_P(engines, migrate_starters, testing::ValuesIn([] {
                           std::vector<engine_case> out;
                           for (engine_case& e : engine_cases())
                             if (e.name != "sqlite_memory") out.push_back(e);
                           return out;
                         }()),
                         engine_case_name);

}  // namespace
}  // namespace awaitdb::test

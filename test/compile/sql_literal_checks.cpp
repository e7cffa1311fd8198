// Compiled (not run) by the test `sql_literal_checks` (see sql_literal_checks.cmake): SQL literals
// are checked against their arguments at compile time. Without MISTAKE everything here
// compiles; with MISTAKE=n, case n must not, naming the mistake.
#include <awaitdb/awaitdb.hpp>

#include <cstdint>
#include <optional>
#include <string>

namespace asio = boost::asio;

asio::awaitable<void> fine(awaitdb::database db, std::string runtime_sql) {
  const std::int64_t id = 7;
  const std::string name = "ada";
  co_await db.execute("INSERT INTO t VALUES ($1, $2)", id, name);
  co_await db.query("SELECT $1::int8, $2::text, $1 + 1", id, "grace");
  co_await db.query("SELECT '$3', \"$4\", $$ $5 $$, $tag$ $6 $tag$ -- $7\n /* $8 */, $1", id);
  co_await db.query("SELECT E'\\' $2', $1::numeric, $2::uuid", 1.5,
                    "00000000-0000-0000-0000-000000000000");
  const std::vector<int> ids(3, 1);
  co_await db.query("SELECT $1::int4[], $2::timestamptz", ids, "2026-01-01");
  co_await db.query("SELECT 1");
  co_await db.query("SELECT $1::bigint", std::optional<std::int32_t>());
  co_await db.query("SELECT $1::int8", std::nullopt);
  co_await db.query("SELECT $1::my_own_type", 42);  // (types the check does not know: anything)
  // Strings go untyped (the cast reads them), and anything casts to text.
  co_await db.query("SELECT $1::int8, $2::text, $3::bool", "42", id, 1);
  // Built at run time: checked when it runs, as before.
  co_await db.query(runtime_sql, id, id, id);
  co_await db.query(std::string("SELECT $1"));
  awaitdb::batch b;
  b.add("SELECT $1::text", name).add_execute("DELETE FROM t WHERE id = $1", id);
  co_await db.run(std::move(b));
#if MISTAKE == 1
  co_await db.execute("INSERT INTO t VALUES ($1, $2, $3)", id, name);
#elif MISTAKE == 2
  co_await db.query("SELECT $1", id, name);
#elif MISTAKE == 3
  co_await db.query("SELECT $1::int8", awaitdb::blob{});
#elif MISTAKE == 4
  co_await db.query_scalar<bool>("SELECT $2::boolean, $1", id, 2.5);
#elif MISTAKE == 6
  co_await db.query("SELECT $1::timestamptz", id);
#elif MISTAKE == 5
  awaitdb::batch c;
  c.add("SELECT $2", id);
#endif
}

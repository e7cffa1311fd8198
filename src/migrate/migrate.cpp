// database::migrate: the I/O around the plan (migration_plan) — the lock, the version table,
// the statements of each migration.
#include "../error_text.hpp"
#include "../sqlstates.hpp"
#include "../task_context.hpp"
#include "migration_plan.hpp"
#include "sql_script.hpp"
#include <awaitdb/database.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/crc.hpp>

#include <algorithm>
#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace awaitdb {
namespace {

namespace asio = boost::asio;
using detail::migration_plan;
using detail::plan_step;

/// One migration of the set, as this engine runs it.
struct resolved_migration {
  std::int64_t version = 0;
  std::string name;
  std::string origin;
  std::string text;
  detail::sql_script script;  // views into `text`
};

struct run_state {
  database db;
  engine kind = engine::sqlite;
  migrate_options options;
  std::vector<resolved_migration> set;
  std::vector<detail::known_migration> known;
  std::int64_t lock_key = 0;
  bool statements_started = false;  // a failure after this is the migration's own
};

std::string label(const resolved_migration& m) {
  return "migration " + std::to_string(m.version) + " (" + m.name + ")";
}

error with_context(const error& e, const std::string& context) {
  error out(e.sqlstate(), context + ": " + std::string(detail::bare_message(e)));
  out.with_server_fields(e.server_message(), e.detail(), e.hint(), e.constraint());
  return out;
}

void check_table_name(const std::string& table, engine kind) {
  bool ok = !table.empty();
  bool word_start = true;
  std::size_t dots = 0;
  for (char c : table) {
    const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    const bool digit = c >= '0' && c <= '9';
    if (c == '.') {
      ok = ok && !word_start;
      word_start = true;
      ++dots;
    } else {
      ok = ok && (letter || (digit && !word_start));
      word_start = false;
    }
  }
  ok = ok && !word_start && dots <= (kind == engine::postgres ? 1u : 0u);
  if (!ok)
    throw error(sqlstate::invalid_parameter,
                "migrate_options::table must be a plain name (letters, digits, _)" +
                    std::string(kind == engine::postgres ? ", optionally schema.name" : "") +
                    "; it is \"" + table + "\"");
}

// The set as this engine runs it; every script is read before anything changes.
void resolve(run_state& s, const migrations& set) {
  const char* engine_name = s.kind == engine::postgres ? "postgresql" : "sqlite";
  s.set.reserve(set.size());
  for (const migrations::entry& e : set.entries()) {
    const std::optional<std::string>& own = s.kind == engine::postgres ? e.postgresql : e.sqlite;
    const std::optional<std::string>& text = own ? own : e.shared;
    resolved_migration m{e.version, e.name, e.origin, {}, {}};
    if (!text)
      throw error(sqlstate::undefined_file,
                  label(m) + " has no script for " + engine_name + " (from " + e.origin +
                      "): add one, empty when there is nothing to do there");
    m.text = *text;
    s.set.push_back(std::move(m));
  }
  for (resolved_migration& m : s.set) {  // (after the vector's last move: views stay valid)
    try {
      m.script = detail::parse_script(m.text, s.kind);
    } catch (const error& e) {
      throw with_context(e, label(m) + ", " + m.origin);
    }
    s.known.push_back({m.version, m.name, detail::script_checksum(m.text)});
  }
}

std::string now_sql(engine kind) {
  return kind == engine::postgres ? "now()" : "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";
}

asio::awaitable<void> ensure_table(const run_state& s) {
  const std::string& table = s.options.table;
  const bool pg = s.kind == engine::postgres;
  bool exists = false;
  if (pg) {
    // Read from pg_class with the statement's snapshot, not through the server's name cache
    // (to_regclass): a session that began its transaction before another created the table
    // (waiting for the lock) may still hold a cached "no such table" for the name, as a
    // connection PgBouncer shares among clients does after a DROP TABLE IF EXISTS.
    const std::size_t dot = table.find('.');
    const std::string schema = dot == std::string::npos ? "" : table.substr(0, dot);
    const std::string name = dot == std::string::npos ? table : table.substr(dot + 1);
    exists = co_await s.db.query_scalar<bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON "
        "n.oid = c.relnamespace WHERE c.relname = lower($1) AND n.nspname = "
        "coalesce(nullif(lower($2), ''), current_schema()))",
        name, schema);
  } else {
    exists =
        co_await s.db.query_scalar<std::int64_t>(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = $1 COLLATE NOCASE",
            table) > 0;
  }
  if (exists) co_return;
  co_await s.db.execute("CREATE TABLE " + table + " (version " + (pg ? "BIGINT" : "INTEGER") +
                        " PRIMARY KEY, name TEXT NOT NULL, checksum BIGINT NOT NULL, state TEXT "
                        "NOT NULL CHECK (state IN ('applied', 'running')), applied_at " +
                        (pg ? "TIMESTAMPTZ" : "TEXT") + " NOT NULL DEFAULT (" + now_sql(s.kind) +
                        "))");
}

asio::awaitable<std::vector<detail::recorded_migration>> read_table(const run_state& s) {
  const result rows = co_await s.db.query("SELECT version, name, checksum, state FROM " +
                                          s.options.table + " ORDER BY version");
  std::vector<detail::recorded_migration> out;
  out.reserve(rows.size());
  for (const row& r : rows)
    out.push_back({r.get<std::int64_t>(0), r.get<std::string>(1), r.get<std::int64_t>(2),
                   r.get<std::string>(3) == "running"});
  co_return out;
}

asio::awaitable<void> run_statements(run_state& s, const resolved_migration& m) {
  s.statements_started = true;
  std::size_t n = 0;
  for (const detail::script_statement& st : m.script.statements) {
    ++n;
    try {
      co_await s.db.execute(st.sql);
    } catch (const error& e) {
      throw with_context(e, label(m) + ", statement " + std::to_string(n) + " (" + m.origin +
                                " line " + std::to_string(st.line) + ")");
    }
  }
}

asio::awaitable<void> record(const run_state& s, const resolved_migration& m, const char* state) {
  const std::int64_t checksum = detail::script_checksum(m.text);
  const std::string st = state;
  co_await s.db.execute("INSERT INTO " + s.options.table +
                            " (version, name, checksum, state) VALUES ($1, $2, $3, $4)",
                        m.version, m.name, checksum, st);
}

// One pass, in a transaction that holds the lock: reads the table, and applies the next
// migration (a transactional one whole; another is only claimed here).
asio::awaitable<migration_plan> locked_pass(run_state* s) {
  if (s->kind == engine::postgres)  // (SQLite: the transaction began with the write lock)
    co_await s->db.execute("SELECT pg_advisory_xact_lock($1)", s->lock_key);
  co_await ensure_table(*s);
  const std::vector<detail::recorded_migration> recorded = co_await read_table(*s);
  const migration_plan plan =
      detail::plan_next(s->known, recorded, {s->options.ignore_missing, s->options.out_of_order});
  if (plan.step != plan_step::apply) co_return plan;
  const resolved_migration& m = s->set[plan.index];
  if (m.script.transactional) {
    co_await run_statements(*s, m);
    co_await record(*s, m, "applied");
  } else {
    co_await record(*s, m, "running");
  }
  co_return plan;
}

asio::awaitable<void> withdraw_claim(database db, std::string table, std::int64_t version) {
  co_await db.execute("DELETE FROM " + table + " WHERE version = $1 AND state = 'running'",
                      version);
}

// A migration claimed as running: its statements one by one, outside a transaction. On failure
// the claim is withdrawn, so the version stays where it was.
asio::awaitable<void> run_outside(run_state& s, const resolved_migration& m) {
  std::exception_ptr failure;
  try {
    co_await run_statements(s, m);
    co_await s.db.execute("UPDATE " + s.options.table + " SET state = 'applied', applied_at = " +
                              now_sql(s.kind) + " WHERE version = $1",
                          m.version);
  } catch (...) {
    failure = std::current_exception();
  }
  if (!failure) co_return;
  // Withdrawn also when the failure is a cancellation or the task's deadline: outside the task
  // (its deadline has passed), on the executor underneath.
  co_await asio::this_coro::reset_cancellation_state();
  const auto ex = detail::underlying_executor(co_await asio::this_coro::executor);
  try {
    co_await asio::co_spawn(ex, withdraw_claim(s.db, s.options.table, m.version),
                            asio::use_awaitable);
  } catch (...) {
    // (Left as running: the next run says so after `running_wait`.)
  }
  std::rethrow_exception(failure);
}

asio::awaitable<void> pause(std::chrono::milliseconds d) {
  asio::steady_timer timer(co_await asio::this_coro::executor, d);
  co_await timer.async_wait(asio::use_awaitable);
}

asio::awaitable<migrate_result> run_migrations(database db, migrations set,
                                               migrate_options options) {
  if (co_await db.in_transaction())
    throw error(detail::code::active_sql_transaction,
                "migrate runs each migration in a transaction of its own: call it outside one");
  run_state s{db, db.engine(), std::move(options), {}, {}, 0, false};
  check_table_name(s.options.table, s.kind);
  resolve(s, set);
  boost::crc_32_type crc;
  crc.process_bytes(s.options.table.data(), s.options.table.size());
  s.lock_key = (std::int64_t{0x61776462} << 32) | crc.checksum();  // "awdb", the table
  transaction_options tx;
  if (s.kind == engine::postgres)  // (each statement sees what the lock's last holder committed)
    tx.isolation = transaction_options::isolation_level::read_committed;

  migrate_result out;
  std::chrono::milliseconds delay{20};
  std::int64_t waited_version = 0;  // the claimed migration waited for (0: none)
  std::chrono::steady_clock::time_point waiting_since;
  for (;;) {
    migration_plan plan;
    s.statements_started = false;
    try {
      plan = co_await s.db.transaction(tx, locked_pass, &s);
    } catch (const error& e) {
      // The lock (SQLite's busy timeout, PostgreSQL's lock_timeout) gave up: wait on.
      if (e.sqlstate() != detail::code::lock_not_available || s.statements_started) throw;
      plan.step = plan_step::wait_for_running;
    }
    if (plan.step == plan_step::up_to_date) {
      out.version = plan.version;
      co_return out;
    }
    if (plan.step == plan_step::wait_for_running) {
      // (The bound is for one claimed migration: a wait for the lock, or for a claim another
      // run made since, starts it again.)
      const auto now = std::chrono::steady_clock::now();
      if (plan.running_version != waited_version) {
        waited_version = plan.running_version;
        waiting_since = now;
      }
      if (waited_version != 0 && now - waiting_since > s.options.running_wait)
        throw error(detail::code::lock_not_available,
                    "migration " + std::to_string(plan.running_version) +
                        " is being applied outside a transaction by another run, which has not "
                        "finished it within migrate_options::running_wait; if no run is "
                        "applying it, one stopped halfway: check what it did, then delete its "
                        "row (state 'running') from " +
                        s.options.table);
      co_await pause(delay);
      delay = std::min(delay * 2, std::chrono::milliseconds(1000));
      continue;
    }
    delay = std::chrono::milliseconds(20);
    waited_version = 0;
    const resolved_migration& m = s.set[plan.index];
    if (!m.script.transactional) co_await run_outside(s, m);
    out.applied.push_back(m.version);
  }
}

}  // namespace

asio::awaitable<migrate_result> database::migrate(migrations set,
                                                  const migrate_options& options) const {
  return run_migrations(*this, std::move(set), options);
}

}  // namespace awaitdb

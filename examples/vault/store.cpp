#include "store.hpp"

#include <random>

namespace vault {
namespace {

// Ordinary helpers. Called inside db.transaction(...), their statements run in it: none of
// them takes a transaction parameter.

asio::awaitable<void> require_group(const awaitdb::database& db, std::int64_t group) {
  // (The result named first: GCC 12 miscompiles a co_await inside an if's condition.)
  const std::optional<awaitdb::row> found =
      co_await db.query_opt("SELECT 1 FROM groups WHERE id = $1", group);
  if (!found) throw request_error(404, "no group " + std::to_string(group));
}

asio::awaitable<std::int64_t> balance(const awaitdb::database& db, std::int64_t group,
                                      const std::string& item) {
  std::optional<awaitdb::row> r = co_await db.query_opt(
      "SELECT quantity FROM items WHERE group_id = $1 AND name = $2", group, item);
  co_return r ? r->get<std::int64_t>(0) : 0;
}

asio::awaitable<void> check_balance(const awaitdb::database& db, std::int64_t group,
                                    const std::string& item, std::int64_t quantity) {
  std::int64_t held = co_await balance(db, group, item);
  if (held < quantity)
    throw request_error(409, "group " + std::to_string(group) + " holds " + std::to_string(held) +
                                 " of \"" + item + "\", not " + std::to_string(quantity));
}

asio::awaitable<void> debit(const awaitdb::database& db, std::int64_t group,
                            const std::string& item, std::int64_t quantity) {
  // Guarded, so that a concurrent transfer that got there first cannot drive it negative.
  std::uint64_t changed = co_await db.execute(
      "UPDATE items SET quantity = quantity - $1 WHERE group_id = $2 AND name = $3 "
      "AND quantity >= $1",
      quantity, group, item);
  if (changed != 1) throw request_error(409, "not enough \"" + item + "\" to transfer");
}

asio::awaitable<void> credit(const awaitdb::database& db, std::int64_t group,
                             const std::string& item, std::int64_t quantity) {
  co_await db.execute(
      "INSERT INTO items (group_id, name, quantity) VALUES ($1, $2, $3) "
      "ON CONFLICT (group_id, name) DO UPDATE SET quantity = items.quantity + excluded.quantity",
      group, item, quantity);
}

asio::awaitable<void> log_activity(const awaitdb::database& db, std::int64_t group,
                                   std::string kind, std::optional<std::string> user,
                                   std::optional<std::string> item,
                                   std::optional<std::int64_t> quantity,
                                   std::optional<std::int64_t> to_group) {
  co_await db.execute(
      "INSERT INTO activity (group_id, kind, user_name, item, quantity, to_group, at) "
      "VALUES ($1, $2, $3, $4, $5, $6, $7)",
      group, kind, user, item, quantity, to_group, std::chrono::system_clock::now());
}

std::string new_join_code() {
  static constexpr char alphabet[] = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
  thread_local std::mt19937_64 random{std::random_device{}()};
  std::uniform_int_distribution<std::size_t> pick(0, sizeof alphabet - 2);
  std::string code(8, ' ');
  for (char& c : code)
    c = alphabet[pick(random)];
  return code;
}

}  // namespace

awaitdb::migrations schema() {
  // Version 1 is the schema as it was before migrations: IF NOT EXISTS keeps databases made
  // then. Later changes are new versions, never edits of this one.
  awaitdb::migrations m;
  m.add(1, "schema",
        R"sql(
CREATE TABLE IF NOT EXISTS users (id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS groups (id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL,
  join_code TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS memberships (group_id BIGINT NOT NULL REFERENCES groups(id),
  user_id BIGINT NOT NULL REFERENCES users(id), PRIMARY KEY (group_id, user_id));
CREATE TABLE IF NOT EXISTS items (group_id BIGINT NOT NULL REFERENCES groups(id),
  name TEXT NOT NULL, quantity BIGINT NOT NULL CHECK (quantity >= 0),
  PRIMARY KEY (group_id, name));
CREATE TABLE IF NOT EXISTS activity (id BIGSERIAL PRIMARY KEY,
  group_id BIGINT NOT NULL REFERENCES groups(id), kind TEXT NOT NULL, user_name TEXT,
  item TEXT, quantity BIGINT, to_group BIGINT, at TIMESTAMPTZ NOT NULL);
CREATE INDEX IF NOT EXISTS activity_by_group ON activity (group_id, id);
CREATE INDEX IF NOT EXISTS activity_by_target ON activity (to_group, id);
)sql",
        // SQLite: INTEGER PRIMARY KEY numbers rows itself; times are ISO-8601 text in UTC,
        // which reads back as the same time type as TIMESTAMPTZ.
        R"sql(
CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS groups (id INTEGER PRIMARY KEY, name TEXT NOT NULL,
  join_code TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS memberships (group_id BIGINT NOT NULL REFERENCES groups(id),
  user_id BIGINT NOT NULL REFERENCES users(id), PRIMARY KEY (group_id, user_id));
CREATE TABLE IF NOT EXISTS items (group_id BIGINT NOT NULL REFERENCES groups(id),
  name TEXT NOT NULL, quantity BIGINT NOT NULL CHECK (quantity >= 0),
  PRIMARY KEY (group_id, name));
CREATE TABLE IF NOT EXISTS activity (id INTEGER PRIMARY KEY,
  group_id BIGINT NOT NULL REFERENCES groups(id), kind TEXT NOT NULL, user_name TEXT,
  item TEXT, quantity BIGINT, to_group BIGINT, at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS activity_by_group ON activity (group_id, id);
CREATE INDEX IF NOT EXISTS activity_by_target ON activity (to_group, id);
)sql");
  return m;
}

asio::awaitable<group> create_group(const awaitdb::database& db, const std::string& name) {
  co_return co_await db.transaction([&]() -> asio::awaitable<group> {
    for (int attempt = 0;; ++attempt) {
      std::string code = new_join_code();
      const std::optional<awaitdb::row> taken =
          co_await db.query_opt("SELECT 1 FROM groups WHERE join_code = $1", code);
      if (taken) {
        if (attempt < 5) continue;
        throw std::runtime_error("could not draw a free join code");
      }
      group g = co_await db.query_one_as<group>(
          "INSERT INTO groups (name, join_code) VALUES ($1, $2) RETURNING id, name, join_code",
          name, code);
      co_await log_activity(db, g.id, "created", std::nullopt, std::nullopt, std::nullopt,
                            std::nullopt);
      co_return g;
    }
  });
}

asio::awaitable<std::int64_t> join_group(const awaitdb::database& db, const std::string& code,
                                         const std::string& user) {
  co_return co_await db.transaction([&]() -> asio::awaitable<std::int64_t> {
    std::optional<awaitdb::row> g =
        co_await db.query_opt("SELECT id FROM groups WHERE join_code = $1", code);
    if (!g) throw request_error(404, "no group has that join code");
    const std::int64_t group_id = g->get<std::int64_t>(0);
    co_await db.execute("INSERT INTO users (name) VALUES ($1) ON CONFLICT (name) DO NOTHING", user);
    const auto user_id =
        co_await db.query_scalar<std::int64_t>("SELECT id FROM users WHERE name = $1", user);
    std::uint64_t added = co_await db.execute(
        "INSERT INTO memberships (group_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        group_id, user_id);
    if (added == 1)
      co_await log_activity(db, group_id, "joined", user, std::nullopt, std::nullopt, std::nullopt);
    co_return group_id;
  });
}

asio::awaitable<std::vector<std::string>> members(const awaitdb::database& db, std::int64_t group) {
  co_await require_group(db, group);
  std::vector<std::string> out;
  for (const awaitdb::row& row :
       co_await db.query("SELECT u.name FROM memberships m JOIN users u ON u.id = m.user_id "
                         "WHERE m.group_id = $1 ORDER BY u.name",
                         group))
    out.push_back(row.get<std::string>(0));
  co_return out;
}

asio::awaitable<void> set_quantity(const awaitdb::database& db, std::int64_t group,
                                   const std::string& item, std::int64_t quantity) {
  co_await db.transaction([&]() -> asio::awaitable<void> {
    co_await require_group(db, group);
    co_await db.execute(
        "INSERT INTO items (group_id, name, quantity) VALUES ($1, $2, $3) "
        "ON CONFLICT (group_id, name) DO UPDATE SET quantity = excluded.quantity",
        group, item, quantity);
    co_await log_activity(db, group, "set", std::nullopt, item, quantity, std::nullopt);
  });
}

asio::awaitable<std::vector<item>> items(const awaitdb::database& db, std::int64_t group) {
  co_await require_group(db, group);
  co_return co_await db.query_as<item>(
      "SELECT name, quantity FROM items WHERE group_id = $1 ORDER BY name", group);
}

asio::awaitable<void> transfer(const awaitdb::database& db, std::int64_t from, std::int64_t to,
                               const std::string& item, std::int64_t quantity) {
  if (from == to) throw request_error(400, "\"from\" and \"to\" must be different groups");
  co_await db.transaction([&]() -> asio::awaitable<void> {
    co_await require_group(db, from);
    co_await require_group(db, to);
    co_await check_balance(db, from, item, quantity);
    // Rows are locked in group order, so that two opposite transfers cannot deadlock.
    if (from < to) {
      co_await debit(db, from, item, quantity);
      co_await credit(db, to, item, quantity);
    } else {
      co_await credit(db, to, item, quantity);
      co_await debit(db, from, item, quantity);
    }
    co_await log_activity(db, from, "transfer", std::nullopt, item, quantity, to);
  });
}

asio::awaitable<std::vector<activity_entry>> activity(const awaitdb::database& db,
                                                      std::int64_t group) {
  co_await require_group(db, group);
  co_return co_await db.query_as<activity_entry>(
      "SELECT id, kind, user_name, item, quantity, group_id, to_group, at FROM activity "
      "WHERE group_id = $1 OR to_group = $1 ORDER BY id",
      group);
}

}  // namespace vault

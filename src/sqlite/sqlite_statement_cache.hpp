// SQLite's prepared statements: each with its placeholder map and result columns, kept in a
// bounded LRU cache keyed by SQL text.
#ifndef AWAITDB_SRC_SQLITE_SQLITE_STATEMENT_CACHE_HPP
#define AWAITDB_SRC_SQLITE_SQLITE_STATEMENT_CACHE_HPP

#include <sqlite3.h>

#include <cstddef>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace awaitdb::detail {

/// A statement's result columns: names (concatenated) and whether each is declared BOOL/BOOLEAN.
struct sqlite_columns {
  struct column {
    std::size_t name_offset = 0, name_size = 0;
    bool boolean = false;
  };
  std::string names;
  std::vector<column> list;

  std::string_view name(std::size_t i) const noexcept {
    return std::string_view(names).substr(list[i].name_offset, list[i].name_size);
  }
};

/// A prepared statement and how SQLite's parameter indexes map to `$N` placeholders (SQLite
/// numbers named parameters by first appearance, so "$2 ... $1" would bind backwards, and "$01"
/// is a parameter of its own that PostgreSQL reads as $1).
struct sqlite_prepared {
  sqlite3_stmt* stmt = nullptr;
  std::size_t placeholder_count = 0;   // the highest $N
  std::vector<std::size_t> number_of;  // number_of[i - 1]: the N of SQLite's parameter i
  // A query that only reads (SELECT, WITH or VALUES that SQLite reports read-only): it may
  // run on a reader connection. Transaction control and PRAGMAs, which SQLite also calls
  // read-only, are not: they act on the connection they run on.
  bool only_reads = false;

  // The result columns, read once rather than on every run, and shared with every result read
  // from the statement (a result may outlive the cache entry). Read again when SQLite
  // re-prepared the statement after a schema change (which it does inside sqlite3_step).
  std::shared_ptr<const sqlite_columns> columns;
  int described_at = -1;  // SQLITE_STMTSTATUS_REPREPARE when `columns` was read

  // Whether the program returns at most one row, so that a run stops at that row (resets)
  // instead of stepping again to SQLITE_DONE. Learnt from the program on the statement's second
  // run (a statement run once, with no cache, is not listed) and again after a re-prepare.
  enum class row_limit : unsigned char { unseen, seen_once, one, any };
  row_limit limit = row_limit::unseen;

  bool stops_at_first_row(sqlite3* db) {
    if (limit == row_limit::one) return true;
    if (limit == row_limit::any) return false;
    return learn_row_limit(db);
  }
  bool learn_row_limit(sqlite3* db);

  [[gnu::hot]] void describe() {
    const int version = sqlite3_stmt_status(stmt, SQLITE_STMTSTATUS_REPREPARE, 0);
    if (version != described_at || !columns) [[unlikely]]
      describe_again(version);
  }

 private:
  // Reads the columns (first run, or SQLite re-prepared the statement at `version`).
  [[gnu::noinline]] void describe_again(int version) {
    auto now = std::make_shared<sqlite_columns>();
    const int count = sqlite3_column_count(stmt);
    for (int c = 0; c < count; ++c) {
      std::string_view name = sqlite3_column_name(stmt, c);
      // SQLite stores booleans as integers; a column declared BOOL/BOOLEAN reads as boolean,
      // like PostgreSQL's.
      const char* decl = sqlite3_column_decltype(stmt, c);
      now->list.push_back(sqlite_columns::column{
          now->names.size(), name.size(),
          decl && (sqlite3_stricmp(decl, "BOOLEAN") == 0 || sqlite3_stricmp(decl, "BOOL") == 0)});
      now->names.append(name);
    }
    columns = std::move(now);
    described_at = version;
    limit = row_limit::unseen;
  }
};

/// Resets a statement when a run ends, however it ends, so the cached statement is reusable
/// and holds no read transaction open.
struct reset_on_exit {
  sqlite3_stmt* stmt;
  ~reset_on_exit() { sqlite3_reset(stmt); }
};

/// A bounded LRU cache of prepared statements, keyed by SQL text.
class sqlite_statement_cache {
 public:
  explicit sqlite_statement_cache(std::size_t capacity) : capacity_(capacity) {}
  ~sqlite_statement_cache() { clear(); }

  void clear() {
    for (auto& [sql, p] : lru_)
      sqlite3_finalize(p.stmt);
    lru_.clear();
    by_sql_.clear();
  }

  /// The prepared form of `sql`; prepares it on a miss. The reference is valid until the
  /// next call (the cache may evict) or `clear`.
  [[gnu::hot]] sqlite_prepared& get(sqlite3* db, std::string_view sql) {
    // A loop repeating one statement hits the front of the list: no hashing.
    if (!lru_.empty() && lru_.front().first == sql) [[likely]]
      return lru_.front().second;
    return get_elsewhere(db, sql);
  }

 private:
  // `get` when `sql` is not the front of the list.
  [[gnu::noinline]] sqlite_prepared& get_elsewhere(sqlite3* db, std::string_view sql) {
    if (auto it = by_sql_.find(sql); it != by_sql_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second);
      return it->second->second;
    }
    sqlite_prepared p = prepare(db, sql);
    if (capacity_ == 0) {
      // No cache: keep exactly one statement, replaced on every call.
      clear();
    } else if (lru_.size() >= capacity_) {
      sqlite3_finalize(lru_.back().second.stmt);
      by_sql_.erase(std::string_view(lru_.back().first));
      lru_.pop_back();
    }
    lru_.emplace_front(std::string(sql), std::move(p));
    by_sql_.emplace(std::string_view(lru_.front().first), lru_.begin());
    return lru_.front().second;
  }

  static sqlite_prepared prepare(sqlite3* db, std::string_view sql);

  struct string_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept {
      return std::hash<std::string_view>()(s);
    }
  };
  using entry = std::pair<std::string, sqlite_prepared>;

  std::size_t capacity_;
  std::list<entry> lru_;
  std::unordered_map<std::string_view, std::list<entry>::iterator, string_hash, std::equal_to<>>
      by_sql_;
};

}  // namespace awaitdb::detail

#endif

// The prepared statements of one PostgreSQL connection: a bounded LRU keyed by SQL text, each
// entry holding what one lexical pass found (so a statement is lexed once, not on every call)
// and the names it is prepared under, one per parameter-type signature. Pure: no I/O.
#ifndef AWAITDB_SRC_POSTGRES_PG_STATEMENT_CACHE_HPP
#define AWAITDB_SRC_POSTGRES_PG_STATEMENT_CACHE_HPP

#include "../placeholders.hpp"

#include <libpq-fe.h>

#include <cstdint>
#include <list>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace awaitdb::detail {

class pg_statement_cache {
 public:
  struct variant {
    std::vector<Oid> types;
    std::string name;
  };
  struct entry {
    std::string sql;
    sql_scan scan;
    std::vector<variant> prepared;  // empty when named statements are off
  };

  /// At most `capacity` statements prepared on the server (LRU); scans of at least a few more are
  /// kept. `named` false (or `capacity` 0): nothing is ever prepared under a name (PgBouncer in
  /// transaction mode), only scans are kept.
  pg_statement_cache(std::size_t capacity, bool named);

  /// The entry for `sql`, lexed on a miss and made most recent. A miss may evict the least
  /// recent entry: its prepared names are then owed a DEALLOCATE (see `take_owed`). The
  /// reference is valid until the next call that changes the cache.
  entry& find_or_add(std::string_view sql);

  /// The name `e` is prepared under for `types`, or null.
  const std::string* prepared_name(const entry& e, std::span<const Oid> types) const;
  /// Records that `e` is being prepared for `types` and returns the new name.
  const std::string& add_prepared(entry& e, std::span<const Oid> types);

  /// The server refused to prepare `name` (its Parse failed): forget it, nothing to deallocate.
  void forget(std::string_view name);
  /// The server said `name` is unusable: 0A000 "cached plan must not change result type" after
  /// a schema change (`exists_on_server`: it is owed a DEALLOCATE), or 26000 "prepared
  /// statement does not exist". Forgotten, so the next call prepares it again.
  void invalidate(std::string_view name, bool exists_on_server);

  /// DEALLOCATE statements owed to the server, to be sent ahead of the next group; cleared.
  std::vector<std::string> take_owed();
  bool has_owed() const noexcept { return !owed_.empty(); }

  bool named() const noexcept { return named_; }
  std::size_t size() const noexcept { return lru_.size(); }

 private:
  struct string_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept {
      return std::hash<std::string_view>()(s);
    }
  };
  void erase_name(std::string_view name, bool owe);

  std::size_t capacity_;           // entries (scans)
  std::size_t prepared_capacity_;  // statements prepared on the server
  std::size_t prepared_count_ = 0;
  bool named_;
  std::list<entry> lru_;  // most recent first
  std::unordered_map<std::string_view, std::list<entry>::iterator, string_hash, std::equal_to<>>
      by_sql_;
  std::vector<std::string> owed_;
  std::uint64_t next_id_ = 0;
};

}  // namespace awaitdb::detail

#endif  // AWAITDB_SRC_POSTGRES_PG_STATEMENT_CACHE_HPP

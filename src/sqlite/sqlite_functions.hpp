// SQL functions written in C++ on SQLite (database::define_function, define_aggregate): the set
// a database defined, installed on each of its connections before that connection's next
// statement (so defining one never waits for a connection in use), and the calls SQLite makes
// into them.
#ifndef AWAITDB_SRC_SQLITE_SQLITE_FUNCTIONS_HPP
#define AWAITDB_SRC_SQLITE_SQLITE_FUNCTIONS_HPP

#include <awaitdb/error.hpp>
#include <awaitdb/functions.hpp>

#include <atomic>
#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

struct sqlite3;

namespace awaitdb::detail {

class sqlite_functions {
 public:
  /// Adds `f` (replacing a function of the same name and number of arguments). Throws
  /// `awaitdb::error` for a name or a number of arguments SQLite refuses (42602, 54023).
  void add(std::shared_ptr<const sql_function> f);

  /// How many functions were defined: a connection that installed fewer calls `install_new`.
  std::size_t count() const noexcept { return count_.load(std::memory_order_acquire); }

  /// Installs on `db` the functions defined after the first `installed`, and updates it.
  void install_new(sqlite3* db, std::size_t& installed) const;

 private:
  mutable std::mutex mutex_;
  std::vector<std::shared_ptr<const sql_function>> list_;  // in the order defined
  std::atomic<std::size_t> count_{0};
};

/// The failure a function raised in the statement that just failed on this thread, if any
/// (taken: the next call gives nothing). SQLite reports only a message; this keeps the error.
std::optional<error> take_function_failure() noexcept;

}  // namespace awaitdb::detail

#endif  // AWAITDB_SRC_SQLITE_SQLITE_FUNCTIONS_HPP

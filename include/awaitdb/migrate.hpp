// awaitdb: versioned schema migrations (database::migrate).
#ifndef AWAITDB_MIGRATE_HPP
#define AWAITDB_MIGRATE_HPP

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace awaitdb {

/// An ordered set of migrations, each a numbered SQL script, with an optional variant per
/// engine. `database::migrate` applies the ones a database lacks, in order of version.
///
/// A script holds any number of statements separated by semicolons (the semicolons inside
/// literals, quoted names, comments, dollar quotes, trigger bodies and `BEGIN ATOMIC` bodies do
/// not count). Each migration runs in a transaction of its own, unless its script starts with
/// the comment line `-- awaitdb:no-transaction` (for `CREATE INDEX CONCURRENTLY`, `VACUUM`):
/// then its statements run one by one, outside any transaction. Scripts must not hold their own
/// BEGIN, COMMIT or ROLLBACK.
class migrations {
 public:
  migrations() = default;

  /// Adds migration `version` (> 0, once) whose `sql` serves every engine.
  migrations& add(std::int64_t version, std::string name, std::string sql);
  /// Adds migration `version` with a script for each engine. An empty script is a migration with
  /// nothing to run on that engine (it is still recorded).
  migrations& add(std::int64_t version, std::string name, std::string postgresql_sql,
                  std::string sqlite_sql);

  /// Reads the migrations in `directory`: files `NNNN_name.sql` for every engine, and
  /// `NNNN_name.postgresql.sql` / `NNNN_name.sqlite.sql` for one engine, used there instead of
  /// the shared file. Other files are ignored, except a `.sql` file not named so, which is an
  /// error (a misnamed migration is never skipped silently). Reads the files when called (a few
  /// small files, once at start-up). Throws `awaitdb::error` 58P01 when the directory cannot be
  /// read, 42601 for a name that does not fit or two files for the same version and engine.
  static migrations from_directory(const std::filesystem::path& directory);

  std::size_t size() const noexcept { return entries_.size(); }
  bool empty() const noexcept { return entries_.empty(); }

  /// One migration as given (internal; `database::migrate` picks the engine's script).
  struct entry {
    std::int64_t version = 0;
    std::string name;
    std::optional<std::string> shared, postgresql, sqlite;
    std::string origin;  // where it came from, for messages: file names or "in code"
  };
  const std::vector<entry>& entries() const noexcept { return entries_; }

 private:
  entry& slot(std::int64_t version, const std::string& name, const std::string& origin);
  std::vector<entry> entries_;
};

struct migrate_options {
  // (A constructor, so not an aggregate: g++ 12 destroys an aggregate temporary written in a
  // `co_await` expression twice, `migrate(set)`'s default argument included.)
  migrate_options() noexcept {}

  /// The table that records applied migrations (created when missing); on PostgreSQL it may
  /// be qualified with a schema (`app.schema_migrations`).
  std::string table = "awaitdb_migrations";
  /// Accept a database holding applied migrations this set lacks (an instance of a newer
  /// release applied them). By default that stops the run (55000).
  bool ignore_missing = false;
  /// Apply a migration whose version is below the newest applied one (one merged late). By
  /// default that stops the run (55000).
  bool out_of_order = false;
  /// How long to wait for a migration another run is applying outside a transaction before
  /// concluding that run stopped halfway (55P03). Transactional migrations need no such bound:
  /// their lock is released when the run that holds it ends.
  std::chrono::milliseconds running_wait = std::chrono::minutes(10);
};

/// What `database::migrate` did.
struct migrate_result {
  /// The newest version applied in the database after the run (0: none).
  std::int64_t version = 0;
  /// The versions this run applied, in order (empty: the database was up to date, or another
  /// instance applied them meanwhile).
  std::vector<std::int64_t> applied;
};

}  // namespace awaitdb

#endif  // AWAITDB_MIGRATE_HPP

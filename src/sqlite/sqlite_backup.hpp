// The destination of an SQLite online backup (database::backup_to): a file written beside its
// final path and renamed to it once complete. Not thread-safe: its owner serializes each step
// with every other use of the source connection.
//
// SQLite would sync the copy to disk at the end of every step, which holds the thread for the
// disk's time on each: the copy is written without syncs or a journal (until it is complete it
// is only a partial file, removed if anything goes wrong), and once complete it is written out
// in bounded pieces (`flush_some`, the thread free between them) and synced (asynchronously)
// before it is renamed.
#ifndef AWAITDB_SRC_SQLITE_SQLITE_BACKUP_HPP
#define AWAITDB_SRC_SQLITE_SQLITE_BACKUP_HPP

#include <awaitdb/backup.hpp>

#include <cstdint>
#include <string>

struct sqlite3;
struct sqlite3_backup;

namespace awaitdb::detail {

class sqlite_backup_target {
 public:
  /// Opens the partial file beside `path` (`path` + ".partial"). Throws `awaitdb::error`.
  explicit sqlite_backup_target(std::string path);
  /// Not finished: the partial file (and any journal of it) is removed; `path` is untouched.
  ~sqlite_backup_target();
  sqlite_backup_target(const sqlite_backup_target&) = delete;
  sqlite_backup_target& operator=(const sqlite_backup_target&) = delete;

  enum class step_result : std::uint8_t {
    more,  // pages remain
    done,  // every page is copied
    busy,  // another connection holds a lock on the source: step again later
  };
  /// Copies up to `pages` more pages from the "main" database of `source` (always the same
  /// connection). Writes made through `source` meanwhile are copied too; writes through another
  /// connection make SQLite start the copy over. Throws `awaitdb::error`.
  step_result step(sqlite3* source, int pages);
  backup_progress progress() const noexcept { return progress_; }
  /// Every page copied: the copy is closed (not yet on disk). Throws `awaitdb::error`.
  void complete();
  /// Writes up to `bytes` more of the completed copy to disk; true once all of it is there.
  bool flush_some(std::uint64_t bytes);
  /// The completed copy's descriptor, for the sync that ends the writing out (see
  /// util/file_sync.hpp: the disk's cache flush may take long).
  int file_descriptor() const noexcept { return flush_fd_; }
  /// Throws `awaitdb::error` for `errno_value` (not 0), the failure of that sync.
  void check_synced(int errno_value);
  /// Synced: renamed to the path. Throws `awaitdb::error`. Then the directory holding it is open
  /// at `directory_descriptor()` (or -1), for the sync that makes the new name durable.
  void publish();
  int directory_descriptor() const noexcept { return dir_fd_; }

 private:
  void remove_partial() noexcept;
  [[noreturn]] void io_failed(const std::string& what);

  std::string path_, partial_;
  sqlite3* dest_ = nullptr;
  sqlite3_backup* backup_ = nullptr;
  backup_progress progress_;
  int flush_fd_ = -1;  // the completed copy, read-only, for writing it out
  int dir_fd_ = -1;    // the directory, once published
  std::uint64_t flushed_ = 0, size_ = 0;
  bool finished_ = false;
};

}  // namespace awaitdb::detail

#endif  // AWAITDB_SRC_SQLITE_SQLITE_BACKUP_HPP

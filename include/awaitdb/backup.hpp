// awaitdb: copying a live SQLite database to a file (database::backup_to).
#ifndef AWAITDB_BACKUP_HPP
#define AWAITDB_BACKUP_HPP

#include <cstdint>
#include <functional>

namespace awaitdb {

/// How far a backup has come.
struct backup_progress {
  std::uint64_t pages_done = 0;
  /// The source's size in pages now (it changes when writes made meanwhile grow or shrink it).
  std::uint64_t pages_total = 0;
};

struct backup_options {
  // (A constructor, so not an aggregate: g++ 12 destroys an aggregate temporary written in a
  // `co_await` expression twice, `backup_to(path)`'s default argument included.)
  backup_options() noexcept {}

  /// Pages copied in one step (SQLite's page: 4 KiB by default). The thread is free for other
  /// tasks between steps; a step holds the database's writer for as long as it takes.
  int pages_per_step = 256;
  /// Called after each step on the task's thread (not while the writer is held).
  std::function<void(const backup_progress&)> on_progress;
};

}  // namespace awaitdb

#endif  // AWAITDB_BACKUP_HPP

#include "sqlite_backup.hpp"

#include "../sqlstates.hpp"
#include "sqlite_errors.hpp"
#include <awaitdb/error.hpp>

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

namespace awaitdb::detail {

sqlite_backup_target::sqlite_backup_target(std::string path)
    : path_(std::move(path)), partial_(path_ + ".partial") {
  if (path_.empty()) throw error(sqlstate::invalid_parameter, "the backup's path is empty");
  remove_partial();  // (left by a process that died in the middle of a backup)
  const int rc =
      sqlite3_open_v2(partial_.c_str(), &dest_,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    const error failure = sqlite_error(dest_, rc, "opening the backup file " + partial_);
    sqlite3_close_v2(dest_);
    dest_ = nullptr;
    remove_partial();
    throw failure;
  }
  // (See the header: written out in pieces once complete.)
  char* message = nullptr;
  if (sqlite3_exec(dest_, "PRAGMA synchronous = OFF; PRAGMA journal_mode = OFF", nullptr, nullptr,
                   &message) != SQLITE_OK) {
    sqlite3_free(message);
    const error failure = sqlite_error(dest_, sqlite3_errcode(dest_), "preparing " + partial_);
    sqlite3_close_v2(dest_);
    dest_ = nullptr;
    remove_partial();
    throw failure;
  }
}

sqlite_backup_target::~sqlite_backup_target() {
  if (backup_) sqlite3_backup_finish(backup_);
  if (dest_) sqlite3_close_v2(dest_);
  if (flush_fd_ >= 0) ::close(flush_fd_);
  if (dir_fd_ >= 0) ::close(dir_fd_);
  if (!finished_) remove_partial();
}

void sqlite_backup_target::io_failed(const std::string& what) {
  throw error(code::io_error, what + " " + partial_ + ": " + std::strerror(errno));
}

void sqlite_backup_target::remove_partial() noexcept {
  for (const char* suffix : {"", "-journal", "-wal", "-shm"})
    std::remove((partial_ + suffix).c_str());
}

sqlite_backup_target::step_result sqlite_backup_target::step(sqlite3* source, int pages) {
  if (!backup_) {
    backup_ = sqlite3_backup_init(dest_, "main", source, "main");
    if (!backup_) throw sqlite_error(dest_, sqlite3_errcode(dest_), "starting the backup");
  }
  const int rc = sqlite3_backup_step(backup_, pages > 0 ? pages : 1);
  const auto total = static_cast<std::uint64_t>(sqlite3_backup_pagecount(backup_));
  const auto remaining = static_cast<std::uint64_t>(sqlite3_backup_remaining(backup_));
  progress_.pages_total = total;
  progress_.pages_done = total >= remaining ? total - remaining : 0;
  switch (rc) {
    case SQLITE_OK:
      return step_result::more;
    case SQLITE_DONE:
      return step_result::done;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return step_result::busy;
    default:
      throw sqlite_error(dest_, rc, "copying the database to " + path_);
  }
}

void sqlite_backup_target::complete() {
  const int rc = sqlite3_backup_finish(backup_);
  backup_ = nullptr;
  if (rc != SQLITE_OK) throw sqlite_error(dest_, rc, "finishing the backup to " + path_);
  const int closed = sqlite3_close(dest_);
  if (closed != SQLITE_OK) throw sqlite_error(dest_, closed, "closing the backup file");
  dest_ = nullptr;
  flush_fd_ = ::open(partial_.c_str(), O_RDONLY | O_CLOEXEC);
  if (flush_fd_ < 0) io_failed("cannot open");
  struct stat st {};
  if (::fstat(flush_fd_, &st) != 0) io_failed("cannot read the size of");
  size_ = static_cast<std::uint64_t>(st.st_size);
}

bool sqlite_backup_target::flush_some(std::uint64_t bytes) {
  if (flushed_ >= size_) return true;
  const std::uint64_t n = std::min(bytes, size_ - flushed_);
  // The range's pages written and waited for; where the kernel cannot, the whole file at once.
  if (::sync_file_range(
          flush_fd_, static_cast<off64_t>(flushed_), static_cast<off64_t>(n),
          SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER) != 0) {
    if (::fdatasync(flush_fd_) != 0) io_failed("cannot write out");
    flushed_ = size_;
    return true;
  }
  flushed_ += n;
  return flushed_ >= size_;
}

void sqlite_backup_target::check_synced(int errno_value) {
  errno = errno_value;
  if (errno_value != 0) io_failed("cannot write out");
}

void sqlite_backup_target::publish() {
  ::close(flush_fd_);
  flush_fd_ = -1;
  if (std::rename(partial_.c_str(), path_.c_str()) != 0)
    throw error(code::io_error,
                "cannot move the finished backup to " + path_ + ": " + std::strerror(errno));
  finished_ = true;
  // The new name survives a crash once the directory is on disk too.
  const std::size_t slash = path_.rfind('/');
  const std::string dir = slash == std::string::npos ? "."
                          : slash == 0               ? "/"
                                                     : path_.substr(0, slash);
  dir_fd_ = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

}  // namespace awaitdb::detail

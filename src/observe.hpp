// Observers (awaitdb/observer.hpp) as the engines see them: where the installed one is kept, and
// the timing of one statement. With no observer installed, a statement pays one atomic load.
#ifndef AWAITDB_SRC_OBSERVE_HPP
#define AWAITDB_SRC_OBSERVE_HPP

#include <awaitdb/observer.hpp>

#include <atomic>
#include <chrono>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace awaitdb::detail {

struct statement;
class row_source;
class copy_sink;
class copy_source;

/// The observer of one database, shared by its backend, pool and connections. Every observer
/// ever installed stays alive as long as the slot, so a task that read the pointer just before
/// it was replaced still calls a live object.
class observer_slot {
 public:
  awaitdb::observer* get() const noexcept { return current_.load(std::memory_order_acquire); }
  void set(std::shared_ptr<awaitdb::observer> o);

 private:
  std::atomic<awaitdb::observer*> current_{nullptr};
  std::mutex mutex_;
  std::vector<std::shared_ptr<awaitdb::observer>> kept_;
};

/// One statement watched from start to end (inert until `start`).
class statement_watch {
 public:
  void start(awaitdb::observer& o, awaitdb::engine engine, const statement& st, bool in_transaction,
             std::string_view label) noexcept;
  void finished(const statement& st) noexcept;
  void failed(const statement& st, const std::exception_ptr& failure) noexcept;
  /// The end, given whole: `sqlstate` empty on success.
  void end(std::uint64_t rows, std::uint64_t connection, std::string_view sqlstate) noexcept;
  /// From here on the event names no parameters (their storage is about to go).
  void forget_parameters() noexcept;

 private:
  awaitdb::observer* observer_ = nullptr;
  awaitdb::statement_event event_;
  std::chrono::steady_clock::time_point started_;
};

/// A stream or a COPY watched as one statement, from before it is sent until its end: its last
/// row or piece (the rows given), its failure, or 57014 when it is left before its end
/// (destroyed half-way, or cancelled: the statement is then stopped on the server). Keeps its
/// own copy of the SQL and the label; the parameters are reported when it starts only.
class stream_watch {
 public:
  stream_watch(awaitdb::observer& o, awaitdb::engine engine, const statement& st,
               bool in_transaction, std::string_view label);
  ~stream_watch();
  stream_watch(const stream_watch&) = delete;
  stream_watch& operator=(const stream_watch&) = delete;

  /// The statement was sent, on `connection` (as `statement::connection`).
  void opened(std::uint64_t connection) noexcept;
  void add_rows(std::uint64_t n) noexcept { rows_ += n; }
  void finished() noexcept;
  void failed(const std::exception_ptr& failure) noexcept;

 private:
  const std::string sql_;
  const std::string label_;
  statement_watch watch_;
  std::uint64_t rows_ = 0;
  std::uint64_t connection_ = 0;
  bool over_ = false;
};

/// `rows`, `sink`, `source`, reported to an observer through `watch` as they go.
std::unique_ptr<row_source> watched_rows(std::unique_ptr<row_source> rows,
                                         std::unique_ptr<stream_watch> watch);
std::unique_ptr<copy_sink> watched_copy_in(std::unique_ptr<copy_sink> sink,
                                           std::unique_ptr<stream_watch> watch);
std::unique_ptr<copy_source> watched_copy_out(std::unique_ptr<copy_source> source,
                                              std::unique_ptr<stream_watch> watch);

/// The SQLSTATE of a failure as an observer reports it: an awaitdb::error's own, "57014" for a
/// cancellation, "XX000" for anything else.
std::string sqlstate_of(const std::exception_ptr& failure);

/// Whether a failure is a cancellation (system_error with operation_aborted).
bool is_cancellation(const std::exception_ptr& failure);

}  // namespace awaitdb::detail

#endif  // AWAITDB_SRC_OBSERVE_HPP

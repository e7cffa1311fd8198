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
#include <vector>

namespace awaitdb::detail {

struct statement;

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

 private:
  void end(const statement& st, std::string_view sqlstate) noexcept;

  awaitdb::observer* observer_ = nullptr;
  awaitdb::statement_event event_;
  std::chrono::steady_clock::time_point started_;
};

/// The SQLSTATE of a failure as an observer reports it: an awaitdb::error's own, "57014" for a
/// cancellation, "XX000" for anything else.
std::string sqlstate_of(const std::exception_ptr& failure);

}  // namespace awaitdb::detail

#endif  // AWAITDB_SRC_OBSERVE_HPP

// The statement groups in flight on one PostgreSQL connection. Pure: no I/O, no lock, no Asio
// (the tasks' waiters live beside the records, in the driver).
//
// Every operation sends one *group*: a few commands (BEGIN, DEALLOCATE, a Parse, the statement)
// and one Sync. The server answers groups in the order they were sent, each command's results
// ending with a null result from libpq and each group ending with its Sync. The pipeline is fed
// those results as events, in order, and says what happened: which group has completed (with
// its verdict), when a group must be cancelled on the server, and when the results no longer
// match what was sent (the connection must then be dropped). The driver (pg_connection) owns the
// socket and the lock; this object only keeps the record.
#ifndef AWAITDB_SRC_POSTGRES_PG_PIPELINE_HPP
#define AWAITDB_SRC_POSTGRES_PG_PIPELINE_HPP

#include "pg_result.hpp"

#include <boost/container/deque.hpp>

#include <libpq-fe.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <string>
#include <vector>

namespace awaitdb::detail {

using pg_clock = std::chrono::steady_clock;

/// One command of a group, in the order sent.
enum class pg_command : std::uint8_t { control, deallocate, prepare, statement };

/// How a group ended.
enum class pg_verdict : std::uint8_t {
  pending,           // still in flight
  ok,                // every command succeeded
  failed,            // report `failure` to the awaiter
  resend,            // send it again, once: it failed for a reason that is not its own (a plan
                     // made stale by a schema change; a cancel meant for another statement)
  resend_elsewhere,  // the server ended the connection before it reached this group (an earlier
                     // group got its terminating error): send it again, once, elsewhere
};

/// Who waits for a group's outcome, and whether it must be stopped on the server.
enum class pg_watch : std::uint8_t {
  awaited,        // a task waits for its outcome
  detached,       // nobody reads it (a rollback sent on release), and nothing stops it
  cancel_wanted,  // its awaiter left: the outcome is dropped; cancel it on the server when it runs
  cancel_sent,    // ... and that cancel is on its way
};

/// What a completed group teaches the connection's statement cache.
enum class pg_cache_action : std::uint8_t {
  none,
  forget_prepared,  // its Parse failed: the name it prepared does not exist on the server
  replan,           // 0A000: the cached plan was made stale by a schema change; prepare again
  forget_executed,  // 26000: the cached statement is gone from the server
};

/// The commands of one group: a few inline (BEGIN, a Parse, the statement), more after a
/// cache eviction queued several DEALLOCATEs.
class pg_command_list {
 public:
  void push_back(pg_command c) {
    if (size_ < inline_.size())
      inline_[size_] = c;
    else
      more_.push_back(c);
    ++size_;
  }
  std::size_t size() const noexcept { return size_; }
  pg_command operator[](std::size_t i) const noexcept {
    return i < inline_.size() ? inline_[i] : more_[i - inline_.size()];
  }

 private:
  std::array<pg_command, 6> inline_{};
  std::size_t size_ = 0;
  std::vector<pg_command> more_;
};

/// The record of one group in flight. The driver keeps the task's waiter beside it
/// (pg_awaited_group); everything here is guarded by the connection's lock.
struct pg_group {
  // What was sent, set before it joins the pipeline.
  pg_command_list commands;
  bool retryable = false;     // outside a transaction: sending it again changes no meaning
  std::string prepared_name;  // a statement prepared by this group (its Parse may fail)
  std::string executed_name;  // a cached prepared statement this group executes
  pg_clock::time_point sent_at{};
  // For the pool's placement of statements (statement_latency): the statement's key, and
  // whether it was placed as slow (nothing is pipelined behind it).
  std::uint64_t latency_key = 0;  // 0: not measured (a transaction's control, a stream)
  bool placed_slow = false;
  bool known_fast = false;  // placed as a statement known to be fast
  // When it began on the server (it became the head: sent to an idle connection, or the group
  // before it completed), and, once completed, how long it ran there.
  pg_clock::time_point started_at{};
  pg_clock::duration ran_for{};

  // Progress.
  std::size_t next = 0;             // index in `commands` of the command whose results come next
  bool command_has_result = false;  // the current command has produced a result
  bool answered = false;            // the server answered at least one of its commands

  // Who waits.
  pg_watch watch = pg_watch::awaited;
  /// Nobody will read the outcome (a cancelled awaiter, or detached).
  bool abandoned() const noexcept { return watch != pg_watch::awaited; }

  // A streamed statement (db.stream): its rows, one result each (libpq's single-row mode), wait
  // here for the reader.
  bool streamed = false;
  bool single_row_set = false;
  std::size_t stream_command = 0;                      // index of the statement in `commands`
  boost::container::deque<pg_result_ptr> stream_rows;  // allocates nothing until used

  // Outcome.
  pg_verdict verdict = pg_verdict::pending;
  pg_result_ptr rows;          // the statement's result (rows or a command tag)
  std::exception_ptr failure;  // the first error
  std::string sqlstate;        // its SQLSTATE ("" for a client-side failure)
  pg_command failed_command = pg_command::statement;
  pg_cache_action cache_action = pg_cache_action::none;
};
using pg_group_ptr = std::shared_ptr<pg_group>;

/// Throws `g`'s failure as a copy of its own: the group's exception object was made on the
/// thread that read the results and may be released there, so it is not shared with the
/// awaiting task.
[[noreturn]] void throw_failure(const pg_group& g);

/// One result from libpq, or the end of a command, or a Sync.
struct pg_event {
  enum class kind : std::uint8_t { result, end_of_command };
  kind what = kind::end_of_command;
  ExecStatusType status = PGRES_EMPTY_QUERY;
  std::string sqlstate;        // PGRES_FATAL_ERROR
  std::exception_ptr failure;  // PGRES_FATAL_ERROR: the error to report
  pg_result_ptr result;        // kept for the statement's own result
};

class pg_pipeline {
 public:
  /// What feeding one event produced.
  struct step {
    pg_group_ptr completed;       // a group whose Sync arrived
    pg_group_ptr cancel;          // a group now running that must be cancelled on the server
    bool protocol_error = false;  // results that match nothing sent: drop the connection
  };

  /// A group was sent (its commands and Sync are in libpq's output), after all others.
  void push(pg_group_ptr g);

  /// Applies one event to the group at the head.
  step feed(pg_event e, pg_clock::time_point now);

  /// The connection is gone: every group completes, failed with `why`, except those queued
  /// behind a group that got the server's terminating error (57P01 and its kin: the server
  /// stopped there, so it never ran them), which may be re-sent (`resend_elsewhere`). When the
  /// connection just dropped, nobody can tell what the server ran: every group fails. Returns
  /// them, oldest first.
  std::vector<pg_group_ptr> lose(const std::exception_ptr& why);

  /// The awaiter of `g` left (cancelled): its outcome is dropped, and it is cancelled on the
  /// server when it runs. Returns `g` when it runs now (it is the head): cancel it at once.
  pg_group_ptr abandon(const pg_group_ptr& g);

  /// Everything in flight was left by its awaiter (or is a detached rollback), and at least
  /// `drop_threshold` of it still has to be stopped on the server. Cancels stop one running
  /// statement each, one after the other (a round trip on the cancelling connection each, once
  /// the statement has started), and hold up everything sent behind them; closing the
  /// connection stops them all at once: true when that is the cheaper way.
  bool only_abandoned_work() const noexcept;
  static constexpr std::size_t drop_threshold = 3;

  /// A server-side cancel was sent, or has completed. While one is under way, and briefly
  /// after, a `57014` may have been meant for another statement: groups in flight then that
  /// did not ask for it are re-sent (if they may be).
  void cancel_issued(pg_clock::time_point now);
  void cancel_finished(pg_clock::time_point now);

  bool empty() const noexcept { return groups_.empty(); }
  /// The group whose results come next; null when none.
  pg_group* head() const noexcept { return groups_.empty() ? nullptr : groups_.front().get(); }
  std::size_t size() const noexcept { return groups_.size(); }
  /// When the group now running began on the server: when it was sent, or when the group
  /// before it completed, whichever is later (time spent queued behind others is not its own);
  /// max() when none.
  pg_clock::time_point busy_since() const noexcept;

  /// How long after a cancel completes a `57014` may still be a stray one.
  static constexpr std::chrono::milliseconds stray_cancel_grace{100};

 private:
  step complete_head(pg_clock::time_point now);
  void decide(pg_group& g, pg_clock::time_point now) const;
  static pg_cache_action cache_action(const pg_group& g) noexcept;
  bool exposed_to_cancel(const pg_group& g, pg_clock::time_point now) const;

  std::deque<pg_group_ptr> groups_;
  bool server_terminated_ = false;  // the head got a terminating error (57P0x)
  std::size_t cancels_under_way_ = 0;
  pg_clock::time_point cancel_window_start_ = pg_clock::time_point::max();
  pg_clock::time_point cancel_window_end_ = pg_clock::time_point::min();
};

}  // namespace awaitdb::detail

#endif  // AWAITDB_SRC_POSTGRES_PG_PIPELINE_HPP

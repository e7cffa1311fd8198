// awaitdb: watching what a database does — statements, waits for a connection, server notices —
// and labelling a task so that what it does can be told apart.
//
// Kept apart from database.hpp: a translation unit that observes nothing need not compile it.
#ifndef AWAITDB_OBSERVER_HPP
#define AWAITDB_OBSERVER_HPP

#include <awaitdb/value.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

namespace awaitdb {

/// One statement, as an observer sees it. The views are valid during the call only. A stream
/// or a COPY is one statement from before it is sent until its last row or piece (57014 when
/// it is left before that); a stream's parameters come with its start only.
struct statement_event {
  std::string_view sql;  // the text as given
  awaitdb::engine engine = awaitdb::engine::sqlite;
  bool in_transaction = false;
  std::string_view label;  // the task's label (`with_label`), or empty
  /// The parameters, only when the observer's `wants_parameters()` is true (else 0).
  std::size_t param_count = 0;
  /// Parameter `i` (0-based) as text, for a log: `NULL`, a number, the text itself, a blob as
  /// `\x` and hex, a time or UUID in its text form, an array in PostgreSQL's form.
  std::string param_text(std::size_t i) const;
  // Set when it has finished:
  std::chrono::nanoseconds duration{0};
  std::uint64_t rows = 0;     // rows returned, or rows affected (`execute`)
  std::string_view sqlstate;  // empty on success; "57014"-like on failure
  /// The connection it ran on: PostgreSQL, the server process id; SQLite, 0 for the writer
  /// and 1… for the readers. 0 when it failed before reaching one.
  std::uint64_t connection = 0;

  const detail::param* params = nullptr;  // (read by param_text)
};

/// A task that waited for a pooled connection (PostgreSQL): a transaction, a statement with
/// `pipeline=off`, or a statement that found no shared connection with room. The fast path (a
/// shared connection with room, taken without waiting) is not reported.
struct acquire_event {
  awaitdb::engine engine = awaitdb::engine::postgres;
  bool exclusive = false;  // for a transaction or `pipeline=off`; else to pipeline a statement
  std::string_view label;
  /// Time spent waiting for a connection or a free slot, not counting `connect`.
  std::chrono::nanoseconds waited{0};
  /// Time spent opening a new connection for this task (0 when one was reused).
  std::chrono::nanoseconds connect{0};
  std::string_view sqlstate;  // empty on success (else 53300, 08001 …)
};

/// A message the server sent beside a result: RAISE NOTICE, a WARNING, … (PostgreSQL).
struct notice_event {
  awaitdb::engine engine = awaitdb::engine::postgres;
  std::uint64_t connection = 0;  // the server process id
  std::string_view severity;     // "NOTICE", "WARNING", "INFO", "DEBUG", "LOG"
  std::string_view sqlstate;     // e.g. "01000"
  std::string_view message;
};

/// An action registered with `awaitdb::after_commit` threw (the transaction had committed).
struct after_commit_event {
  awaitdb::engine engine = awaitdb::engine::postgres;
  std::string_view label;  // the task's label
  std::exception_ptr failure;
};

/// What a database reports to whoever installs one with `database::set_observer`. Every
/// function is called on the thread of the task concerned (notices: of the task whose read
/// received them), outside every lock of awaitdb; keep them short, and never throw.
class observer {
 public:
  virtual ~observer() = default;
  /// True to receive the parameter values in `statement_event::params` (they may hold
  /// secrets: off by default).
  virtual bool wants_parameters() const noexcept { return false; }
  virtual void statement_started(const statement_event&) noexcept {}
  virtual void statement_finished(const statement_event&) noexcept {}
  virtual void connection_acquired(const acquire_event&) noexcept {}
  virtual void notice(const notice_event&) noexcept {}
  virtual void after_commit_failed(const after_commit_event&) noexcept {}
};

/// A ready-made observer that counts: statements, failures by SQLSTATE class, and histograms of
/// statement latency and of waits for a connection. Lock-free on success (relaxed atomics).
class statement_metrics : public observer {
 public:
  /// Buckets: [0, 1 µs), [1, 2 µs), [2, 4 µs) … doubling; the last is everything above.
  static constexpr std::size_t bucket_count = 32;
  struct histogram {
    std::array<std::uint64_t, bucket_count> counts{};
    std::uint64_t total() const noexcept;
    /// The upper bound of the bucket holding quantile `q` (0 … 1): a latency at least as large
    /// as the true one, within a factor of 2.
    std::chrono::nanoseconds quantile(double q) const noexcept;
  };
  struct snapshot {
    std::uint64_t statements = 0;
    std::uint64_t failures = 0;
    std::map<std::string, std::uint64_t> failures_by_class;  // "23", "40", "57" …
    histogram latency;
    std::chrono::nanoseconds latency_sum{0};  // of every statement's duration
    std::uint64_t acquisitions = 0;           // waits reported (see acquire_event)
    histogram acquire_wait;
    std::chrono::nanoseconds acquire_wait_sum{0};
    std::uint64_t notices = 0;
  };

  snapshot read() const;

  void statement_finished(const statement_event& e) noexcept override;
  void connection_acquired(const acquire_event& e) noexcept override;
  void notice(const notice_event&) noexcept override;

 private:
  using counters = std::array<std::atomic<std::uint64_t>, bucket_count>;
  static void add(counters& h, std::chrono::nanoseconds d) noexcept;
  static histogram copy(const counters& h);

  std::atomic<std::uint64_t> statements_{0}, failures_{0}, acquisitions_{0}, notices_{0};
  std::atomic<std::int64_t> latency_sum_ns_{0}, acquire_wait_sum_ns_{0};
  counters latency_{}, acquire_wait_{};
  mutable std::mutex failures_mutex_;
  std::map<std::string, std::uint64_t> failures_by_class_;
};

namespace detail {
/// `ex` with `label` as its task's label (see `with_label`).
boost::asio::any_io_executor with_label(const boost::asio::any_io_executor& ex, std::string label);
}  // namespace detail

/// Runs `op` with `label` attached to its task: every statement it runs, in functions it calls
/// and coroutines it starts on its executor, is reported to observers with this label (a
/// request id, a handler's name). Transactions inside keep it.
///
///     co_await awaitdb::with_label("req-" + id, handle(request));
template <class T>
boost::asio::awaitable<T> with_label(std::string label, boost::asio::awaitable<T> op) {
  auto ex = detail::with_label(co_await boost::asio::this_coro::executor, std::move(label));
  co_return co_await boost::asio::co_spawn(ex, std::move(op), boost::asio::use_awaitable);
}

}  // namespace awaitdb

#endif  // AWAITDB_OBSERVER_HPP

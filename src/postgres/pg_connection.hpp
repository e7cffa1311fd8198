// One PostgreSQL connection: libpq's non-blocking API driven on an Asio executor. The only part
// of the engine that touches libpq and the socket.
//
// Always in pipeline mode. A task hands the connection a *group* (its commands and a Sync:
// `submit`, synchronous, under the connection's lock) and awaits its completion (`wait`). One
// read operation at a time is armed on the socket while anything is in flight; its handler reads
// for everyone, feeds the results to the pipeline record (pg_pipeline) and wakes the tasks whose
// groups completed. Nothing is armed while nothing is in flight, so an idle connection is no
// work for its io_context. Exclusive use (a transaction, or `pipeline=off`) is the one-group
// case of the same path.
//
// The socket belongs to libpq; what Asio waits for on it is pg_socket's.
#ifndef AWAITDB_SRC_POSTGRES_PG_CONNECTION_HPP
#define AWAITDB_SRC_POSTGRES_PG_CONNECTION_HPP

#include "../backend.hpp"
#include "../deadline.hpp"
#include "../pool/pool.hpp"
#include "../pool/statement_latency.hpp"
#include "../url.hpp"
#include "../util/context_guard.hpp"
#include "../util/wait_list.hpp"
#include "pg_canceller.hpp"
#include "pg_hosts.hpp"
#include "pg_params.hpp"
#include "pg_pipeline.hpp"
#include "pg_socket.hpp"
#include "pg_statement_cache.hpp"
#include "pg_tx.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/container/small_vector.hpp>

#include <libpq-fe.h>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

namespace awaitdb::detail {

/// What a pool's connections share: the options, and the channel that cancels statements on
/// the server.
struct pg_shared {
  /// `with_canceller` false: for the canceller's own control connection. `observers`: where
  /// notices go (none for the control connection).
  pg_shared(boost::asio::any_io_executor executor, postgres_options o, bool with_canceller = true,
            std::shared_ptr<observer_slot> observers = nullptr);
  ~pg_shared();
  const postgres_options options;
  // The hosts a connection tries, each within the connect timeout (empty: the URL as a whole).
  const std::vector<pg_host_attempt> hosts;
  // Cancel with the protocol's CancelRequest, to the connection's own host, never with
  // pg_cancel_backend on a control connection (which may reach another host, or a pooler).
  const bool cancel_by_request;
  const std::shared_ptr<observer_slot> observers;
  const std::unique_ptr<pg_canceller> canceller;
  // Each statement's recent server time, recorded by every connection of the pool, and the
  // tasks waiting for a statement's first run to be measured (see statement_latency).
  statement_latency latency;
  wait_list first_runs;
};

/// A notification (NOTIFY) the server sent to a listening connection.
struct pg_notification {
  std::string channel;
  std::string payload;
  int sender_pid = 0;
};

/// A group as the driver holds it: the ledger's record, with the waiter its task awaits and,
/// for a stream, the waiter of the stream's reader while there are no rows.
struct pg_awaited_group final : pg_group, waiter {
  waiter_ptr row_waiter;
  bool first_measured = false;  // its statement's first measured run: waiting tasks may go on
};
/// The driver's groups are all made as pg_awaited_group (`submit`).
inline pg_awaited_group& awaited(pg_group& g) noexcept {
  return static_cast<pg_awaited_group&>(g);
}
inline std::shared_ptr<pg_awaited_group> awaited(pg_group_ptr g) noexcept {
  return std::static_pointer_cast<pg_awaited_group>(std::move(g));
}

/// Statements without parameters (SAVEPOINT, COMMIT ...) sent ahead of a group's statement.
/// (Not an initializer_list: GCC 12 miscompiles those as coroutine arguments.)
class control_list {
 public:
  control_list() = default;
  template <class... S>
  explicit control_list(const S&... sql) : items_{std::string_view(sql)...}, size_(sizeof...(S)) {
    static_assert(sizeof...(S) <= 3);
  }
  const std::string_view* begin() const noexcept { return items_; }
  const std::string_view* end() const noexcept { return items_ + size_; }
  std::size_t size() const noexcept { return size_; }

 private:
  std::string_view items_[3];
  std::size_t size_ = 0;
};

class pg_connection final : public pooled_connection,
                            public context_member,
                            public std::enable_shared_from_this<pg_connection> {
 public:
  /// Connects (PQconnectStartParams / PQconnectPoll): to the first host of `shared->hosts`
  /// that takes it, each within `options.connect_timeout`. Throws `awaitdb::error` (class 08)
  /// naming hosts and ports, never the password.
  static boost::asio::awaitable<std::shared_ptr<pg_connection>> connect(
      boost::asio::any_io_executor executor, std::shared_ptr<pg_shared> shared);

  ~pg_connection() override;
  pg_connection(const pg_connection&) = delete;
  pg_connection& operator=(const pg_connection&) = delete;

  /// What one group sends.
  struct request {
    bool has_statement = false;  // false: only `controls`
    std::string_view sql;        // the statement
    std::span<const param> params;
    control_list controls;     // sent ahead of the statement
    pg_tx_book* tx = nullptr;  // the transaction the group belongs to
    bool ends_tx = false;      // COMMIT/ROLLBACK: sends nothing if the transaction never began
    bool retryable = false;    // outside a transaction: may be sent again once
    bool detached = false;     // nobody waits for it (a rollback): its outcome is dropped
    bool stream = false;       // the statement's rows are read one at a time (`next_row`)
    // Its server time is recorded under this key (0: not recorded), and it was placed as a
    // slow statement (see statement_latency).
    std::uint64_t latency_key = 0;
    bool placed_slow = false;
    bool known_fast = false;
  };

  /// Sends a group behind everything in flight. Synchronous. Throws `awaitdb::error`, having
  /// sent nothing, for the caller's mistakes (parameter count, values, an ended transaction)
  /// and when the connection is lost or closed. Returns null when there was nothing to send.
  pg_group_ptr submit(const request& r);

  /// One group sent and awaited: the engine's one send-and-wait, written in the awaiting
  /// coroutine without a coroutine frame of its own:
  ///
  ///     pg_connection::exchange x(conn, request, deadline);  // sends it (`submit`)
  ///     x.settle(co_await x.wait());
  ///     x.deliver(st);                                       // or x.check(), x.group()
  ///
  /// `settle` returns once the group has completed. When the wait is cancelled first it stops
  /// waiting at once: the group's outcome is dropped, the group is cancelled on the server when
  /// it runs (others queued around it go on), and `settle` throws
  /// `system_error(operation_aborted)`; at `deadline`, if given, the same, throwing 57014. (A
  /// group that completed before the cancellation took effect completes normally.) If the
  /// `co_await` throws instead (a task cancelled before it waits), the destructor abandons the
  /// group the same way. A group never waited for is left to run, unobserved.
  class exchange {
   public:
    exchange(pg_connection& conn, const request& r, deadline_state* deadline = nullptr)
        : conn_(conn), g_(conn.submit(r)), deadline_(deadline) {}
    ~exchange();
    exchange(const exchange&) = delete;
    exchange& operator=(const exchange&) = delete;

    /// False when there was nothing to send (COMMIT of a transaction that never began).
    bool sent() const noexcept { return g_ != nullptr; }
    auto wait() {
      watch_.emplace(deadline_, awaited(g_));
      waiting_ = true;
      return awaited(*g_).async_wait(boost::asio::as_tuple(boost::asio::deferred));
    }
    void settle(const std::tuple<boost::system::error_code, waiter::state>& outcome);
    pg_group& group() const noexcept { return *g_; }
    /// The completed group's outcome into `st`, or its failure thrown.
    void deliver(statement& st) const { pg_connection::deliver(*g_, st); }
    /// Its failure thrown, if it failed.
    void check() const {
      if (g_->failure) throw_failure(*g_);
    }

   private:
    pg_connection& conn_;
    const pg_group_ptr g_;
    deadline_state* const deadline_;
    std::optional<deadline_state::watch> watch_;
    bool waiting_ = false, settled_ = false;
  };

  /// The next row of a streamed group (`request::stream`), one result of one row; null after
  /// the last (then `g` has completed: its failure, if any, is for the caller to throw).
  /// Cancelled, it ends the stream as `end_stream` does and throws operation_aborted; past
  /// `deadline`, the same, throwing 57014.
  boost::asio::awaitable<pg_result_ptr> next_row(pg_group_ptr g,
                                                 deadline_state* deadline = nullptr);
  /// The reader of a streamed group is gone: what is left of it is cancelled on the server and
  /// read and dropped as it comes.
  void end_stream(const pg_group_ptr& g);

  /// Makes this a listening connection: the socket is read even while nothing is in flight,
  /// and `sink` gets each read's notifications (outside the lock, in order), then once
  /// `lost` = true when the connection ends.
  using notification_sink = std::function<void(std::vector<pg_notification>&, bool lost)>;
  void listen_with(notification_sink sink);

  // COPY (pg_copy.cpp), on a connection in exclusive use with nothing in flight: it leaves
  // pipeline mode for the COPY and comes back to it at the end. Any failure to talk to the
  // server loses the connection.
  /// Sends `sql` (simple protocol); it must start a COPY of the direction asked (`in`: FROM
  /// STDIN), or it fails (0A000, or the server's error), back in pipeline mode.
  boost::asio::awaitable<void> copy_start(const std::string& sql, bool in);
  boost::asio::awaitable<void> copy_write(std::string_view data);
  /// Ends a COPY IN; the rows copied (or the server's failure, back in pipeline mode).
  boost::asio::awaitable<std::uint64_t> copy_end();
  /// The next piece of a COPY OUT; nullopt at its end.
  boost::asio::awaitable<std::optional<std::string>> copy_read();
  /// Closes the connection in the middle of a COPY, and tells the pool.
  void copy_abandon() noexcept;

  /// Copies a completed group's outcome into `st`, or throws its failure.
  static void deliver(pg_group& g, statement& st);
  /// Sends `st` as a group of its own and waits for it (a connection nobody else uses yet).
  boost::asio::awaitable<void> run_alone(statement& st);

  int backend_pid() const noexcept { return backend_pid_; }

  /// libpq's notice receiver (called inside libpq calls, under the connection's lock). Notices
  /// are not printed (libpq's default writes to stderr, which a library must not): they go to
  /// the database's observer, after the read; a FATAL one while idle means the server is ending
  /// this session.
  static void on_notice(void* self, const PGresult* notice);
  PGTransactionStatusType transaction_status() const;

  // pooled_connection
  std::size_t in_flight() const noexcept override {
    return in_flight_.load(std::memory_order_acquire);
  }
  pool_clock::time_point busy_since() const noexcept override;
  pool_clock::time_point idle_since() const noexcept override;
  std::size_t slow_in_flight() const noexcept override {
    return slow_in_flight_.load(std::memory_order_acquire);
  }
  bool running_known_fast() const noexcept override {
    return head_known_fast_.load(std::memory_order_acquire);
  }
  bool lost() const noexcept override { return lost_.load(std::memory_order_acquire); }
  std::string loss_reason() const override;
  bool settling() const noexcept override {
    return cancel_holds_.load(std::memory_order_acquire) > 0;
  }
  bool check_alive() noexcept override;
  bool make_clean() noexcept override;
  void close() noexcept override;
  bool clean() const noexcept override;

  // context_member: the io_context is going away. Releases the socket watches, cancels what
  // runs on the server (a CancelRequest sent at once, within `deadline`) and ends the session.
  void context_shutdown(pg_clock::time_point deadline) noexcept override;

 private:
  enum class state : std::uint8_t { connecting, open, lost, closed };

  pg_connection(boost::asio::any_io_executor executor, std::shared_ptr<pg_shared> shared);

  boost::asio::awaitable<void> open(const pg_host_attempt* host);
  // The session set-up given to `open` (open_options::on_connect), on this connection alone.
  boost::asio::awaitable<void> set_up_session();
  class session_statements;
  [[noreturn]] void connect_failed(std::string why);
  boost::asio::awaitable<void> connect_loop(pg_clock::time_point deadline);
  void watch_socket();
  boost::asio::awaitable<void> wait_socket(PostgresPollingStatusType want);

  void send_control_locked(std::string_view sql, pg_command kind, pg_group& g);
  void send_statement_locked(pg_statement_cache::entry& e, pg_group& g, const request& r);
  void after_send_locked(bool was_busy);
  void arm_read_locked();
  void on_readable();
  // The groups one read completes (a few: no allocation in the steady state).
  using group_list = boost::container::small_vector<pg_group_ptr, 8>;
  void read_results_locked(group_list& done, group_list& cancels);
  void set_single_row_mode_locked();
  // COPY's waits and endings (pg_copy.cpp).
  boost::asio::awaitable<void> wait_socket_ready(bool readable);
  boost::asio::awaitable<pg_result_ptr> copy_result();
  boost::asio::awaitable<void> copy_flush();
  boost::asio::awaitable<std::uint64_t> copy_finish();
  [[noreturn]] void copy_lost(std::string_view why);
  void copy_back_to_pipeline_locked();
  void resume_stream_locked();
  std::vector<waiter_ptr> row_wakes_;           // readers of streams to wake after a read
  notification_sink sink_;                      // a listening connection's
  std::vector<pg_notification> notifications_;  // read, not yet given to the sink
  bool delivering_ = false;                     // a thread is giving them to the sink
  bool in_copy_ = false;                        // out of pipeline mode for a COPY
  bool in_read_round_ = false;  // a read resumes its tasks: their sends are uncorked after
  void completed_locked(pg_group& g);
  void lose_locked(std::string_view why, group_list& done,
                   std::string_view code = sqlstate::connection_failure);
  void finish(group_list& done, group_list& cancels, bool was_lost, bool resume_here = false);
  void start_flusher_locked();
  void on_writable();
  void cork_locked();
  void abandon(const pg_group_ptr& g);
  void cancel_on_server(pg_group_ptr g);
  void release_cancel_hold() noexcept;
  void update_gauges_locked();
  struct notice {
    std::string severity, sqlstate, message;
  };
  void report_notices(const std::vector<notice>& notices) noexcept;
  [[noreturn]] void fail_send_locked();

  boost::asio::any_io_executor executor_;
  const bool one_thread_;  // executor_'s context promises one thread (see arm_read_locked)
  const std::shared_ptr<pg_shared> shared_;
  const postgres_options& options_;  // shared_->options
  secret_scrubber secrets_;          // the URL's, and a provided password
  PGconn* conn_ = nullptr;
  int backend_pid_ = 0;
  pg_cancel_target cancel_target_;
  // The session's process id, key and address, always read at start-up: what the end of the
  // io_context cancels with (cancel_target_ has them only where cancels go by CancelRequest).
  pg_cancel_target session_key_;
  std::string connect_failure_;  // why the last connect failed (without the URL)

  mutable std::mutex mutex_;  // guards libpq and everything below
  state state_ = state::connecting;
  pg_pipeline pipeline_;
  pg_statement_cache cache_;
  pg_params params_;
  pg_socket socket_;            // Asio's watch of libpq's socket
  bool server_ending_ = false;  // a FATAL notice arrived: the server is closing the session
  bool connect_timed_out_ = false;
  std::vector<notice> notices_;  // for the observer, between a read and its delivery

  std::atomic<std::size_t> in_flight_{0};
  std::atomic<std::size_t> slow_in_flight_{0};  // ... of which placed as slow
  std::atomic<bool> head_known_fast_{false};    // the group running is known to be fast
  std::atomic<std::size_t> cancel_holds_{0};    // server-side cancels that may still land
  std::atomic<bool> lost_{false};
  std::string loss_reason_;  // lose_locked's `why` (guarded by mutex_)
  std::atomic<pg_clock::rep> busy_since_{pg_clock::time_point::max().time_since_epoch().count()};
  std::atomic<pg_clock::rep> idle_since_{0};
};

}  // namespace awaitdb::detail

#endif  // AWAITDB_SRC_POSTGRES_PG_CONNECTION_HPP

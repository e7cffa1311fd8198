// One PostgreSQL connection driven by libpq's non-blocking API on an Asio executor.
#ifndef AWAITDB_SRC_POSTGRES_PG_CONNECTION_HPP
#define AWAITDB_SRC_POSTGRES_PG_CONNECTION_HPP

#include "../backend.hpp"
#include "../url.hpp"
#include "../util/wait_list.hpp"
#include "pg_result.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/generic/stream_protocol.hpp>

#include <libpq-fe.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace awaitdb::detail {

/// Statements without parameters (BEGIN, SAVEPOINT ...) sent ahead of a statement in the same
/// round trip. (Not an initializer_list: GCC 12 miscompiles those as coroutine arguments.)
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

/// What a pool's connections share with it. Connections may outlive the pool (a drainer can
/// still be reading after `close`), so they hold it by shared_ptr.
struct pg_pool_state {
  explicit pg_pool_state(postgres_options o) : options(std::move(o)) {}
  const postgres_options options;
  /// Statement groups sent and not yet answered, over all connections.
  std::atomic<std::size_t> in_flight{0};
};

/// The state of the transaction a connection is pinned to, guarded by the connection's lock:
/// concurrent statements of one transaction are pipelined on it, in the order they are sent.
struct pinned_tx {
  bool begin_owed = true;         // BEGIN goes out with the first group sent, not in a round trip
  bool finished = false;          // COMMIT or ROLLBACK is on its way: nothing more may be sent
  std::vector<std::string> owed;  // queued by a rollback: sent ahead of the next group
};

/// How a group sent on a pinned connection relates to its transaction.
enum class pin_use : std::uint8_t {
  statement,   // inside the transaction (refused once it has finished)
  ending,      // COMMIT, after `finish`: sends nothing if BEGIN never went out
  flush_owed,  // sends what a rollback queued (possibly nothing: then a bare Sync)
};

/// What a rollback needs done after `owe_rollback`.
enum class rollback_step : std::uint8_t { none, release, flush };

/// A connection to a PostgreSQL server, always in libpq pipeline mode.
///
/// Each exchange sends its statements and one Sync, flushes, and reads results until the
/// Sync's answer, waiting for the socket's readiness with Asio. The socket belongs to libpq:
/// Asio only watches it (it is released, never closed, by this object).
///
/// Two ways to use it: `exchange`, one round trip at a time by a sole user (the pool's
/// borrower when pipelining is off), and `pipelined`, where many statements (of many tasks, or
/// of one transaction) are in flight at once, each with its own Sync.
class pg_connection : public std::enable_shared_from_this<pg_connection> {
 public:
  /// Connects (PQconnectStartParams / PQconnectPoll), within `options.connect_timeout`.
  /// Throws `awaitdb::error` (class 08) naming host and port, never the password.
  static boost::asio::awaitable<std::shared_ptr<pg_connection>> connect(
      boost::asio::any_io_executor executor, std::shared_ptr<pg_pool_state> pool);

  ~pg_connection();
  pg_connection(const pg_connection&) = delete;
  pg_connection& operator=(const pg_connection&) = delete;

  /// Sends `controls` (statements without parameters, like BEGIN) and then `st` (may be null)
  /// in one round trip, and reads every result. Throws the first failure. If the operation
  /// is cancelled, cancels the statement on the server, waits (briefly) for the connection to
  /// be clean, and throws `operation_aborted`; if it cannot be made clean it is marked broken.
  boost::asio::awaitable<void> exchange(control_list controls, statement* st);

  /// Pipelined use: sends `controls` and `st` (may be null) with a Sync of their own behind
  /// whatever else is in flight on this connection, and waits for their results. One group's
  /// failure fails only its own awaiter. Thread-safe. Cancelled, the awaiter resumes at once;
  /// its results are read and dropped, and when it was the only group in flight it is also
  /// cancelled on the server.
  ///
  /// Outside a transaction (`pin` null) each group is its own implicit transaction. On a
  /// connection pinned to a transaction, `pin` adds BEGIN ahead of the first group and what a
  /// rollback queued ahead of the next one, and refuses groups once the transaction finished.
  boost::asio::awaitable<void> pipelined(control_list controls, statement* st,
                                         pinned_tx* pin = nullptr,
                                         pin_use use = pin_use::statement);
  /// Queues the rollback of a pinned transaction (`savepoint` empty) or of one of its
  /// savepoints, to go out ahead of anything sent later. Says what the caller must do next:
  /// nothing (already finished), release the connection (nothing was ever sent), or send what
  /// is queued (`pipelined` with `pin_use::flush_owed`).
  rollback_step owe_rollback(pinned_tx& pin, std::string_view savepoint);
  /// Marks a pinned transaction finished (about to commit); false if it already was.
  bool finish(pinned_tx& pin);
  /// Statements in flight in shared use.
  std::size_t in_flight() const noexcept { return in_flight_.load(std::memory_order_relaxed); }
  /// True when nobody holds a claim and nothing is in flight or being drained: the pool may
  /// lend it exclusively, or look at its socket.
  bool quiet() noexcept;
  /// A task about to pipeline on this connection holds a claim (taken under the pool's lock),
  /// so that the pool neither lends it exclusively nor reads its socket meanwhile.
  void claim() noexcept { claims_.fetch_add(1, std::memory_order_acq_rel); }
  void unclaim() noexcept { claims_.fetch_sub(1, std::memory_order_acq_rel); }

  /// True when the connection can no longer be used (lost, or left in an unknown state).
  bool broken() const noexcept { return broken_ || PQstatus(conn_) != CONNECTION_OK; }
  /// libpq's view of the transaction state (idle, in a transaction, failed transaction).
  PGTransactionStatusType transaction_status() const noexcept { return PQtransactionStatus(conn_); }
  /// Reads whatever the server sent while the connection was idle (a termination notice, for
  /// example), without waiting. Returns false when the connection turned out to be dead.
  bool check_idle() noexcept;
  /// How long the connection has had nothing in flight (zero while busy).
  std::chrono::steady_clock::duration idle_for() const noexcept;

  int backend_pid() const noexcept { return PQbackendPID(conn_); }
  const boost::asio::any_io_executor& executor() const noexcept { return executor_; }

 private:
  pg_connection(boost::asio::any_io_executor executor, std::shared_ptr<pg_pool_state> pool);

  struct prepared_key {
    std::string sql;
    std::vector<Oid> types;
  };
  struct prepared_entry {
    std::string name;
    std::list<prepared_key>::iterator lru;
  };
  struct key_view {
    std::string_view sql;
    const Oid* types;
    std::size_t count;
  };
  struct key_hash {
    using is_transparent = void;
    std::size_t operator()(const key_view& k) const noexcept;
    std::size_t operator()(const prepared_key& k) const noexcept {
      return (*this)(key_view{k.sql, k.types.data(), k.types.size()});
    }
  };
  struct key_equal {
    using is_transparent = void;
    static key_view view(const prepared_key& k) noexcept {
      return key_view{k.sql, k.types.data(), k.types.size()};
    }
    static const key_view& view(const key_view& k) noexcept { return k; }
    template <class A, class B>
    bool operator()(const A& a, const B& b) const noexcept {
      const key_view &x = view(a), &y = view(b);
      return x.sql == y.sql && x.count == y.count &&
             std::equal(x.types, x.types + x.count, y.types);
    }
  };

  // What one exchange expects back, in order.
  enum class expect : std::uint8_t { control, prepare, deallocate, statement };

  // What one group expects back: a few entries inline (a statement, its Parse, BEGIN ...),
  // more only after a rollback queued several.
  class expect_list {
   public:
    void push_back(expect e) {
      if (size_ < inline_capacity)
        inline_[size_] = e;
      else
        more_.push_back(e);
      ++size_;
    }
    std::size_t size() const noexcept { return size_; }
    expect operator[](std::size_t i) const noexcept {
      return i < inline_capacity ? inline_[i] : more_[i - inline_capacity];
    }

   private:
    static constexpr std::size_t inline_capacity = 6;
    expect inline_[inline_capacity] = {};
    std::size_t size_ = 0;
    std::vector<expect> more_;
  };

  // Where the results of one exchange go, as PQgetResult returns them.
  struct sink {
    expect_list expected;
    std::size_t next = 0;  // index in `expected` of the command whose results come next
    bool command_has_result = false;
    statement* st = nullptr;
    std::string prepared_name;  // prepared in this exchange (forgotten if the Parse fails)
    std::exception_ptr failure;
  };
  // A statement in flight in shared use.
  struct pending;

  boost::asio::awaitable<void> connect_loop(std::chrono::steady_clock::time_point deadline);
  void attach_socket();
  void encode_params(const statement& st);
  void send_control(const char* sql, sink& out);
  void send_statement(const statement& st, sink& out);
  boost::asio::awaitable<void> flush();
  /// Applies one PQgetResult() value (null: the end of a command) to `s`; true at its Sync.
  bool consume(sink& s, pg_result_ptr r);
  boost::asio::awaitable<void> read_results(sink& s);
  // Shared use: the task that reads for everyone ("leader"), and the hand-over of that role.
  boost::asio::awaitable<void> lead(std::shared_ptr<pending> me);
  bool hand_over_locked();
  void cork_locked();
  void step_down(const std::shared_ptr<pending>& me);
  void fail_all_locked(std::vector<std::shared_ptr<pending>>& wake, std::string_view context);
  void start_drainer(bool cancel_on_server);
  static boost::asio::awaitable<void> drain(std::shared_ptr<pg_connection> self, bool cancel);
  boost::asio::awaitable<void> cancel_on_server();
  auto readable();
  static void check_wait(const boost::system::error_code& ec);
  boost::asio::awaitable<void> wait_readable();
  boost::asio::awaitable<void> wait_writable();
  boost::asio::awaitable<void> recover_after_cancel(std::size_t expected_syncs);
  [[noreturn]] void fail_connection(std::string_view context);

  boost::asio::any_io_executor executor_;
  const std::shared_ptr<pg_pool_state> pool_;
  const postgres_options& options_;  // pool_->options
  PGconn* conn_ = nullptr;
  boost::asio::generic::stream_protocol::socket socket_;
  bool broken_ = false;
  char peek_byte_ = 0;     // where readable()'s peek lands (only one task reads at a time)
  bool can_cork_ = false;  // a TCP socket (TCP_CORK means nothing to a Unix socket)
  bool corked_ = false;    // under mutex_: sends are being gathered; a posted handler uncorks

  // Named prepared statements of this connection: a bounded LRU keyed by SQL and parameter
  // types.
  std::list<prepared_key> lru_;
  std::unordered_map<prepared_key, prepared_entry, key_hash, key_equal> prepared_;
  std::uint64_t next_statement_id_ = 0;

  // Shared use. mutex_ guards libpq and everything below while several tasks use the
  // connection; exclusive use (exchange) needs no lock.
  std::mutex mutex_;
  std::deque<std::shared_ptr<pending>> inflight_;
  bool leader_ = false;                    // a task (or the drainer) is reading for everyone
  bool cancelling_ = false;                // a server-side cancel is under way: new statements wait
  wait_list wakeups_;                      // followers: their results are in, or they lead now
  wait_list cancel_done_;                  // statements waiting for a cancel to finish
  std::atomic<std::size_t> in_flight_{0};  // groups in inflight_ (readable without the lock)
  std::atomic<int> claims_{0};
  std::atomic<std::chrono::steady_clock::rep> idle_since_{0};  // when in_flight_ last hit 0

  // Reused for every statement: parameter text, pointers, lengths, formats, types.
  std::string scratch_;
  std::vector<std::size_t> offsets_;
  std::vector<const char*> values_;
  std::vector<int> lengths_;
  std::vector<int> formats_;
  std::vector<Oid> types_;
};

}  // namespace awaitdb::detail

#endif  // AWAITDB_SRC_POSTGRES_PG_CONNECTION_HPP

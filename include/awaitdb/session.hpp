// awaitdb: what a URL cannot say — code run when a connection opens: a password fetched for
// each new connection (rotating credentials), and the set-up of each session.
#ifndef AWAITDB_SESSION_HPP
#define AWAITDB_SESSION_HPP

#include <awaitdb/result.hpp>
#include <awaitdb/sql_literal.hpp>
#include <awaitdb/value.hpp>

#include <boost/asio/awaitable.hpp>

#include <concepts>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>

namespace awaitdb {

namespace detail {
/// What a session's statements run on: one engine connection being set up (internal).
class session_target {
 public:
  virtual awaitdb::engine kind() const noexcept = 0;
  virtual boost::asio::awaitable<result> query(const statement_args& args) = 0;
  virtual boost::asio::awaitable<std::uint64_t> execute(const statement_args& args) = 0;

 protected:
  ~session_target() = default;
};
}  // namespace detail

/// A connection being opened, before any task gets it (see `open_options::on_connect`). Its
/// statements run on that connection alone, outside any transaction. Valid only while the
/// set-up it was given to runs.
class session {
 public:
  explicit session(detail::session_target& target) noexcept : target_(&target) {}

  awaitdb::engine engine() const noexcept { return target_->kind(); }

  /// As `database::query` and `database::execute`, on this connection. Errors throw
  /// `awaitdb::error`, which fails the connection's opening.
  template <class... Params>
  boost::asio::awaitable<result> query(detail::sql_for<Params...> sql, Params&&... params) const {
    return run_query(target_, detail::make_args(sql, std::forward<Params>(params)...));
  }
  template <class... Params>
  boost::asio::awaitable<std::uint64_t> execute(detail::sql_for<Params...> sql,
                                                Params&&... params) const {
    return run_execute(target_, detail::make_args(sql, std::forward<Params>(params)...));
  }

 private:
  static boost::asio::awaitable<result> run_query(detail::session_target* t,
                                                  detail::statement_args args) {
    co_return co_await t->query(args);
  }
  static boost::asio::awaitable<std::uint64_t> run_execute(detail::session_target* t,
                                                           detail::statement_args args) {
    co_return co_await t->execute(args);
  }

  detail::session_target* target_;
};

/// Code given to `open(url, options)`, for every connection the database opens.
///
///     awaitdb::open_options o;
///     o.password([vault]() -> asio::awaitable<std::string> { co_return co_await vault->token();
///     }); o.on_connect([](awaitdb::session& s) -> asio::awaitable<void> {
///       co_await s.execute("SET search_path = app, public");
///     });
///     awaitdb::database db = co_await awaitdb::open(url, o);
///
/// Both may be called concurrently, for several connections opening at once, on the
/// database's executor; they must not capture the `database` itself (it would keep itself
/// alive).
class open_options {
 public:
  using password_provider = std::function<boost::asio::awaitable<std::string>()>;
  using session_setup = std::function<boost::asio::awaitable<void>(session&)>;

  /// PostgreSQL: each new connection (pooled, replica, listening, and the one that cancels
  /// statements) awaits `p` just before it connects and logs in with what it returns, in place
  /// of the URL's password: a token that expires, a secret that rotates. A connection open
  /// already keeps its session when the password changes. If `p` throws, that connection fails
  /// to open (08001, with the exception's message; the pool's connect backoff applies). The
  /// value never appears in messages or observers. SQLite: not used.
  open_options& password(password_provider p) {
    password_ = std::move(p);
    return *this;
  }
  /// Runs on every new connection before any task gets it: PostgreSQL's pooled, replica and
  /// listening connections, SQLite's writer, readers and stream connections (opened later
  /// too). Its statements (through the `session`) are the connection's own: `SET`, `PREPARE`,
  /// SQLite's `PRAGMA`s. On SQLite it runs inline, to completion, on the thread that opens the
  /// connection: it must not wait for anything but the session's statements. If it throws, the
  /// connection is closed and its opening fails (08001 with the exception's message; on
  /// PostgreSQL the pool's connect backoff applies).
  open_options& on_connect(session_setup s) {
    setup_ = std::move(s);
    return *this;
  }

  const password_provider& password() const noexcept { return password_; }
  const session_setup& on_connect() const noexcept { return setup_; }

 private:
  password_provider password_;
  session_setup setup_;
};

}  // namespace awaitdb

#endif  // AWAITDB_SESSION_HPP

#include "sqlite_session.hpp"

#include "../session_setup.hpp"
#include "../sqlstates.hpp"
#include <awaitdb/error.hpp>
#include <awaitdb/session.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <stdexcept>

namespace awaitdb::detail {
namespace {

namespace asio = boost::asio;

// The set-up's statements, on the connection being opened.
class sqlite_session final : public session_target {
 public:
  explicit sqlite_session(sqlite_connection& c) noexcept : conn_(c) {}
  awaitdb::engine kind() const noexcept override { return awaitdb::engine::sqlite; }
  asio::awaitable<result> query(const statement_args& args) override {
    statement st = run(args, result_mode::rows);
    co_return std::move(st.rows);
  }
  asio::awaitable<std::uint64_t> execute(const statement_args& args) override {
    co_return run(args, result_mode::count).affected;
  }

 private:
  statement run(const statement_args& args, result_mode mode) {
    statement st;
    st.sql = args.sql;
    st.params = args.params.data();
    st.param_count = args.params.size();
    st.mode = mode;
    if (conn_.execute(st) == sqlite_connection::outcome::busy)
      throw error(code::lock_not_available, "the database is locked by another connection");
    return st;
  }
  sqlite_connection& conn_;
};

}  // namespace

std::unique_ptr<sqlite_connection> open_sqlite_connection(
    const sqlite_options& options, sqlite_connection::role r,
    std::shared_ptr<const sqlite_functions> functions) {
  auto conn = std::make_unique<sqlite_connection>(options, r, std::move(functions));
  if (!options.hooks || !options.hooks->on_connect()) return conn;
  sqlite_session target(*conn);
  session s(target);
  // The set-up's coroutine, run to its end here on a context of its own: SQLite's statements
  // complete inline, so nothing else is needed.
  asio::io_context inline_context(1);
  std::exception_ptr failure;
  bool finished = false;
  asio::co_spawn(inline_context, options.hooks->on_connect()(s), [&](std::exception_ptr e) {
    failure = std::move(e);
    finished = true;
  });
  inline_context.run();
  if (finished && !failure) return conn;
  if (!finished)
    failure = std::make_exception_ptr(std::runtime_error(
        "it waited for something other than its statements (on SQLite it runs inline)"));
  throw set_up_error(
      "cannot open SQLite database \"" + options.path + "\": " + set_up_failure(failure), failure);
}

}  // namespace awaitdb::detail

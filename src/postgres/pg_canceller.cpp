// The channel that cancels statements on the server: one control connection per pool.
#include "pg_connection.hpp"

namespace awaitdb::detail {

namespace asio = boost::asio;

pg_canceller::pg_canceller(asio::any_io_executor executor, const postgres_options& options)
    : executor_(std::move(executor)) {
  // The control connection's own shared state has no canceller of its own.
  postgres_options control_options = options;
  control_options.statement_timeout = std::chrono::milliseconds(0);
  shared_ = std::make_shared<pg_shared>(executor_, control_options, false);
}

pg_canceller::~pg_canceller() {
  close();
}

void pg_canceller::close() noexcept {
  std::shared_ptr<pg_connection> c;
  {
    std::lock_guard lock(mutex_);
    closed_ = true;
    c = std::move(control_);
  }
  if (c) c->close();
  opened_.notify_all();
}

asio::awaitable<std::shared_ptr<pg_connection>> pg_canceller::control() {
  for (;;) {
    std::unique_lock lock(mutex_);
    if (closed_) throw error(sqlstate::connection_does_not_exist, "the database is closed");
    if (control_ && !control_->lost()) co_return control_;
    if (!opening_) {
      opening_ = true;
      lock.unlock();
      std::shared_ptr<pg_connection> c;
      std::exception_ptr failure;
      try {
        c = co_await pg_connection::connect(executor_, shared_);
      } catch (...) {
        failure = std::current_exception();
      }
      lock.lock();
      opening_ = false;
      if (c) control_ = c;
      lock.unlock();
      opened_.notify_all();
      if (failure) std::rethrow_exception(failure);
      co_return c;
    }
    co_await opened_.wait(lock);
  }
}

asio::awaitable<void> pg_canceller::cancel(int pid) {
  std::shared_ptr<pg_connection> c = co_await control();
  const param pid_param{param_kind::int32, pid, 0, {}};
  pg_connection::request r;
  r.has_statement = true;
  r.sql = "SELECT pg_cancel_backend($1)";
  r.params = std::span<const param>(&pid_param, 1);
  r.mode = result_mode::count;
  pg_group_ptr g = c->submit(r);
  co_await c->wait(g);
  if (g->failure) throw_failure(*g);
}

}  // namespace awaitdb::detail

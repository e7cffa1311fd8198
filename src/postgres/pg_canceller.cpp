// The channel that cancels statements on the server: one control connection per pool.
#include "pg_canceller.hpp"

#include "pg_connection.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

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
  close_now();
}

asio::awaitable<void> pg_canceller::close(std::chrono::milliseconds drain) {
  std::unique_lock lock(mutex_);
  if (under_way_ > 0) {
    co_await idle_.wait(lock, std::chrono::steady_clock::now() + drain);
  } else {
    lock.unlock();
  }
  close_now();
}

void pg_canceller::cancel_detached(int pid, std::shared_ptr<const void> owner) {
  {
    std::lock_guard lock(mutex_);
    ++under_way_;  // now: a `close` that follows waits for it
  }
  auto run = [](pg_canceller& self, int target,
                std::shared_ptr<const void>) -> asio::awaitable<void> {
    try {
      co_await self.counted_cancel(target);
    } catch (...) {
    }
  };
  asio::co_spawn(executor_, run(*this, pid, std::move(owner)), asio::detached);
}

void pg_canceller::close_now() noexcept {
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
  {
    std::lock_guard lock(mutex_);
    ++under_way_;
  }
  co_await counted_cancel(pid);
}

asio::awaitable<void> pg_canceller::counted_cancel(int pid) {
  struct done_on_exit {
    pg_canceller& self;
    ~done_on_exit() {
      std::unique_lock lock(self.mutex_);
      if (--self.under_way_ == 0) {
        lock.unlock();
        self.idle_.notify_all();
      }
    }
  } done{*this};
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

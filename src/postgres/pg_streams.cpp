#include "pg_streams.hpp"

#include "pg_result.hpp"

#include <optional>
#include <string>

namespace awaitdb::detail {

namespace asio = boost::asio;

namespace {

// A streamed statement's rows, each a result of one row (libpq's single-row mode). Holds the
// connection (its own lease outside a transaction) until the last row or until destroyed.
class pg_row_source final : public row_source {
 public:
  pg_row_source(std::shared_ptr<pg_connection> conn, pool_lease lease, pg_group_ptr g)
      : conn_(std::move(conn)), lease_(std::move(lease)), group_(std::move(g)) {}
  ~pg_row_source() override {
    if (group_) conn_->end_stream(group_);
  }

  asio::awaitable<std::optional<row>> next(deadline_state* deadline) override {
    if (buffered_) {
      // The rows came as one result (single-row mode was refused): read from it.
      if (rest_next_ < rest_.size()) co_return rest_[rest_next_++];
      co_return std::nullopt;
    }
    if (!group_) co_return std::nullopt;
    pg_result_ptr one = co_await conn_->next_row(group_, deadline);
    if (one) co_return row(std::make_shared<pg_result>(std::move(one)), 0);
    pg_group_ptr g = std::move(group_);
    lease_.reset();
    if (g->failure) throw_failure(*g);
    if (g->rows && PQntuples(g->rows.get()) > 0) {
      rest_ = result(std::make_shared<pg_result>(std::move(g->rows)));
      buffered_ = true;
      co_return co_await next(deadline);
    }
    co_return std::nullopt;
  }

 private:
  std::shared_ptr<pg_connection> conn_;
  pool_lease lease_;
  pg_group_ptr group_;  // null once complete
  bool buffered_ = false;
  result rest_;
  std::size_t rest_next_ = 0;
};

// What both ends of a COPY hold: the connection (its own lease outside a transaction) until
// the COPY is over; left before that, the connection is closed.
class pg_copy_hold {
 public:
  pg_copy_hold(std::shared_ptr<pg_connection> conn, pool_lease lease)
      : conn_(std::move(conn)), lease_(std::move(lease)) {}
  pg_copy_hold(const pg_copy_hold&) = delete;
  pg_copy_hold& operator=(const pg_copy_hold&) = delete;
  ~pg_copy_hold() {
    if (!over_) conn_->copy_abandon();
  }

  pg_connection& conn() const noexcept { return *conn_; }
  /// Runs one step of the COPY: the server's own failure ends it cleanly (the connection is
  /// back in pipeline mode, or lost already); a cancellation leaves it to be abandoned.
  template <class T>
  asio::awaitable<T> step(asio::awaitable<T> op) {
    try {
      co_return co_await std::move(op);
    } catch (const error&) {
      over_ = true;
      throw;
    }
  }
  void over() noexcept { over_ = true; }

 private:
  std::shared_ptr<pg_connection> conn_;
  pool_lease lease_;
  bool over_ = false;
};

class pg_copy_sink final : public copy_sink {
 public:
  pg_copy_sink(std::shared_ptr<pg_connection> conn, pool_lease lease)
      : hold_(std::move(conn), std::move(lease)) {}
  asio::awaitable<void> write(std::string_view data) override {
    co_await hold_.conn().copy_write(data);
  }
  asio::awaitable<std::uint64_t> finish() override {
    const std::uint64_t rows = co_await hold_.step(hold_.conn().copy_end());
    hold_.over();
    co_return rows;
  }

 private:
  pg_copy_hold hold_;
};

class pg_copy_source final : public copy_source {
 public:
  pg_copy_source(std::shared_ptr<pg_connection> conn, pool_lease lease)
      : hold_(std::move(conn), std::move(lease)) {}
  asio::awaitable<std::optional<std::string>> next() override {
    std::optional<std::string> piece = co_await hold_.step(hold_.conn().copy_read());
    if (!piece) hold_.over();
    co_return piece;
  }

 private:
  pg_copy_hold hold_;
};

}  // namespace

std::unique_ptr<row_source> pg_stream_rows(std::shared_ptr<pg_connection> conn, pool_lease lease,
                                           pg_group_ptr g) {
  return std::make_unique<pg_row_source>(std::move(conn), std::move(lease), std::move(g));
}

std::unique_ptr<copy_sink> pg_copy_in_end(std::shared_ptr<pg_connection> conn, pool_lease lease) {
  return std::make_unique<pg_copy_sink>(std::move(conn), std::move(lease));
}

std::unique_ptr<copy_source> pg_copy_out_end(std::shared_ptr<pg_connection> conn,
                                             pool_lease lease) {
  return std::make_unique<pg_copy_source>(std::move(conn), std::move(lease));
}

}  // namespace awaitdb::detail

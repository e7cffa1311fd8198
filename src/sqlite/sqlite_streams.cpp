#include "sqlite_streams.hpp"

#include "../deadline.hpp"
#include "sqlite_waits.hpp"
#include <awaitdb/error.hpp>

#include <optional>

namespace awaitdb::detail {
namespace {

namespace asio = boost::asio;
using outcome = sqlite_connection::outcome;

class sqlite_row_source final : public row_source {
 public:
  sqlite_row_source(std::shared_ptr<stream_hold> hold, std::chrono::milliseconds patience)
      : hold_(std::move(hold)), patience_(patience) {}

  asio::awaitable<std::optional<row>> next(deadline_state* task_deadline) override {
    std::optional<row> out;
    const auto deadline = wait_limit(patience_, task_deadline);
    int attempts = 0;
    while (step(out, task_deadline) == outcome::busy)
      co_await back_off_for_lock(attempts, deadline, patience_, task_deadline);
    co_return out;
  }

 private:
  // One step. The database closed under the stream ends it, as on PostgreSQL (08003; the
  // stream is then over, as after any failure).
  outcome step(std::optional<row>& out, const deadline_state* deadline) {
    std::lock_guard lock(hold_->mutex);
    if (!hold_->conn)
      throw error(sqlstate::connection_does_not_exist,
                  "the database was closed while this stream was being read");
    return hold_->conn->step_row(out, deadline);
  }

  std::shared_ptr<stream_hold> hold_;
  std::chrono::milliseconds patience_;
};

}  // namespace

std::unique_ptr<row_source> sqlite_stream_rows(std::shared_ptr<stream_hold> hold,
                                               std::chrono::milliseconds patience) {
  return std::make_unique<sqlite_row_source>(std::move(hold), patience);
}

}  // namespace awaitdb::detail

#include "stream.hpp"

#include "deadline.hpp"
#include "task_context.hpp"

#include <boost/asio/this_coro.hpp>

namespace awaitdb {

boost::asio::awaitable<std::optional<row>> row_stream::next() {
  if (!source_) co_return std::nullopt;
  std::exception_ptr failure;
  try {
    // The reading task's deadline (awaitdb::with_timeout), as for any statement.
    detail::deadline_state* const deadline =
        detail::task_deadline(co_await boost::asio::this_coro::executor);
    if (deadline && deadline->passed()) throw deadline->timed_out();
    std::optional<row> r = co_await source_->next(deadline);
    if (r) co_return r;
  } catch (...) {
    failure = std::current_exception();
  }
  // Over (the last row read, a failure, a cancellation): the connection goes back now.
  source_.reset();
  if (failure) std::rethrow_exception(failure);
  co_return std::nullopt;
}

namespace detail {
namespace {

class buffered final : public row_source {
 public:
  explicit buffered(result r) : rows_(std::move(r)) {}
  boost::asio::awaitable<std::optional<row>> next(deadline_state*) override {
    if (next_ >= rows_.size()) co_return std::nullopt;
    co_return rows_[next_++];
  }

 private:
  result rows_;
  std::size_t next_ = 0;
};

}  // namespace

std::unique_ptr<row_source> buffered_rows(result r) {
  return std::make_unique<buffered>(std::move(r));
}

}  // namespace detail
}  // namespace awaitdb

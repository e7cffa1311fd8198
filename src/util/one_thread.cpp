#include "one_thread.hpp"

#include <boost/asio/execution/context.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/query.hpp>

namespace awaitdb::detail {

namespace asio = boost::asio;

bool runs_on_one_thread(const asio::any_io_executor& ex) noexcept {
  if (!ex) return false;
  asio::execution_context& context = asio::query(ex, asio::execution::context);
  // The scheduler of an io_context or thread_pool is a service of its context (looked up here,
  // never made). thread_pool(1) gives it the hint 1 too.
  if (!asio::has_service<asio::detail::scheduler>(context)) return false;
  const int hint = asio::use_service<asio::detail::scheduler>(context).concurrency_hint();
  return hint == 1 || !BOOST_ASIO_CONCURRENCY_HINT_IS_LOCKING(REACTOR_IO, hint);
}

}  // namespace awaitdb::detail

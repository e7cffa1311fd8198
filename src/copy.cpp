// COPY: the engine-neutral front ends.
#include <awaitdb/copy.hpp>
#include <awaitdb/error.hpp>

namespace awaitdb {

boost::asio::awaitable<void> copy_writer::write(std::string_view data) {
  if (!sink_) throw error(sqlstate::connection_does_not_exist, "the COPY is over");
  try {
    co_await sink_->write(data);
  } catch (...) {
    sink_.reset();  // abandoned: the connection is closed
    throw;
  }
}

boost::asio::awaitable<std::uint64_t> copy_writer::finish() {
  if (!sink_) throw error(sqlstate::connection_does_not_exist, "the COPY is over");
  std::unique_ptr<detail::copy_sink> sink = std::move(sink_);
  co_return co_await sink->finish();
}

boost::asio::awaitable<std::optional<std::string>> copy_reader::next() {
  if (!source_) co_return std::nullopt;
  std::exception_ptr failure;
  try {
    std::optional<std::string> piece = co_await source_->next();
    if (piece) co_return piece;
  } catch (...) {
    failure = std::current_exception();
  }
  source_.reset();
  if (failure) std::rethrow_exception(failure);
  co_return std::nullopt;
}

}  // namespace awaitdb

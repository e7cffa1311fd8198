// awaitdb: the rows of one statement, read one at a time.
#ifndef AWAITDB_STREAM_HPP
#define AWAITDB_STREAM_HPP

#include <awaitdb/row.hpp>

#include <boost/asio/awaitable.hpp>

#include <memory>
#include <optional>

namespace awaitdb {
namespace detail {

/// Where a stream's rows come from: one engine's open statement.
class deadline_state;

class row_source {
 public:
  virtual ~row_source() = default;
  /// The next row; nullopt after the last. Throws the statement's failure where it happens;
  /// a wait past `deadline` (the reading task's, if any) throws 57014.
  virtual boost::asio::awaitable<std::optional<row>> next(deadline_state* deadline) = 0;
};

}  // namespace detail

/// The rows of one statement, read one at a time without holding the whole result in memory
/// (see `database::stream`). Move-only.
///
/// Read it to its end (`next()` gives nullopt) or destroy it: a stream destroyed or cancelled
/// half-way stops the statement on the server; its connection is reused once the server has
/// answered (on PostgreSQL, inside a transaction, the cancel aborts that transaction, as any
/// cancelled statement does). Closing the database closes a stream's connection too: rows
/// already received may still come, then `next()` throws 08003 and the stream is over.
class row_stream {
 public:
  row_stream() = default;
  explicit row_stream(std::unique_ptr<detail::row_source> source) noexcept
      : source_(std::move(source)) {}

  /// The next row, or nullopt after the last one (and on a default-constructed stream).
  /// Throws `awaitdb::error` when the statement fails (after the rows before the failure);
  /// cancelled, `boost::system::system_error` (operation_aborted), and the stream is over.
  boost::asio::awaitable<std::optional<row>> next();

 private:
  std::unique_ptr<detail::row_source> source_;
};

}  // namespace awaitdb

#endif  // AWAITDB_STREAM_HPP

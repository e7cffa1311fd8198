// awaitdb: PostgreSQL COPY, in and out.
#ifndef AWAITDB_COPY_HPP
#define AWAITDB_COPY_HPP

#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace awaitdb {
namespace detail {

class copy_sink {
 public:
  virtual ~copy_sink() = default;
  virtual boost::asio::awaitable<void> write(std::string_view data) = 0;
  virtual boost::asio::awaitable<std::uint64_t> finish() = 0;
};

class copy_source {
 public:
  virtual ~copy_source() = default;
  virtual boost::asio::awaitable<std::optional<std::string>> next() = 0;
};

}  // namespace detail

/// The data of a `COPY ... FROM STDIN` (see `database::copy_in`). Move-only.
///
/// Destroyed (or a `write` cancelled) before `finish`, the COPY is abandoned: its connection is
/// closed, so the server discards what was sent (inside a transaction, the transaction is lost
/// with it: it fails with 08006).
class copy_writer {
 public:
  copy_writer() = default;
  explicit copy_writer(std::unique_ptr<detail::copy_sink> sink) noexcept : sink_(std::move(sink)) {}

  /// Sends `data`, any piece of the COPY's format (rows need not be whole). Waits only when
  /// the socket is full.
  boost::asio::awaitable<void> write(std::string_view data);
  /// Ends the data; the rows copied. A malformed row fails here, with the server's SQLSTATE
  /// (22P02, 22P04 ...), and the connection goes on clean.
  boost::asio::awaitable<std::uint64_t> finish();

 private:
  std::unique_ptr<detail::copy_sink> sink_;
};

/// The data of a `COPY ... TO STDOUT` (see `database::copy_out`), one piece at a time: in text
/// and CSV formats, one row per piece. Move-only; destroyed (or `next` cancelled) before the
/// end, its connection is closed, which stops the COPY on the server.
class copy_reader {
 public:
  copy_reader() = default;
  explicit copy_reader(std::unique_ptr<detail::copy_source> source) noexcept
      : source_(std::move(source)) {}

  /// The next piece, or nullopt after the last.
  boost::asio::awaitable<std::optional<std::string>> next();

 private:
  std::unique_ptr<detail::copy_source> source_;
};

}  // namespace awaitdb

#endif  // AWAITDB_COPY_HPP

// COPY on a PostgreSQL connection: out of pipeline mode (libpq drives COPY only there), with the
// simple protocol, waiting on the socket with Asio whenever libpq would block.
#include "../sqlstates.hpp"
#include "pg_connection.hpp"
#include "pg_errors.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/error.hpp>
#include <boost/system/system_error.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>

namespace awaitdb::detail {

namespace asio = boost::asio;
using boost::system::error_code;

void pg_connection::copy_lost(std::string_view why) {
  const error failure = connection_error(conn_, why, secrets_);
  {
    std::lock_guard lock(mutex_);
    group_list done;
    lose_locked(why, done);
  }
  report_lost();
  throw failure;
}

asio::awaitable<void> pg_connection::wait_socket_ready(bool readable) {
  asio::generic::stream_protocol::socket* watch = nullptr;
  {
    std::lock_guard lock(mutex_);
    if (state_ != state::open) throw connection_error(conn_, "connection lost", secrets_);
    watch = socket_.ready_watch(readable);
  }
  if (!watch) copy_lost("cannot watch the connection's socket");
  auto [ec] = co_await watch->async_wait(
      readable ? asio::socket_base::wait_read : asio::socket_base::wait_write,
      asio::as_tuple(asio::deferred));
  if (ec == asio::error::operation_aborted) throw boost::system::system_error(ec);
}

// The next result of the command in progress, waiting for the server as needed.
asio::awaitable<pg_result_ptr> pg_connection::copy_result() {
  for (;;) {
    {
      std::lock_guard lock(mutex_);
      if (state_ != state::open) throw connection_error(conn_, "connection lost", secrets_);
      if (!PQisBusy(conn_)) co_return pg_result_ptr(PQgetResult(conn_));
    }
    co_await wait_socket_ready(true);
    bool consumed;
    {
      std::lock_guard lock(mutex_);
      consumed = PQconsumeInput(conn_) == 1;
    }
    if (!consumed) copy_lost("connection lost");
  }
}

asio::awaitable<void> pg_connection::copy_flush() {
  for (;;) {
    int flushed;
    {
      std::lock_guard lock(mutex_);
      flushed = PQflush(conn_);
    }
    if (flushed == 0) co_return;
    if (flushed < 0) copy_lost("cannot send to the server");
    co_await wait_socket_ready(false);
  }
}

// The COPY's own results once its data is over; back to pipeline mode. The rows it reports.
asio::awaitable<std::uint64_t> pg_connection::copy_finish() {
  std::uint64_t rows = 0;
  std::exception_ptr failure;
  while (pg_result_ptr r = co_await copy_result()) {
    if (PQresultStatus(r.get()) == PGRES_FATAL_ERROR && !failure)
      failure = std::make_exception_ptr(server_error(r.get(), conn_, secrets_));
    else if (PQresultStatus(r.get()) == PGRES_COMMAND_OK)
      rows = std::strtoull(PQcmdTuples(r.get()), nullptr, 10);
  }
  {
    std::lock_guard lock(mutex_);
    copy_back_to_pipeline_locked();
  }
  if (failure) std::rethrow_exception(failure);
  co_return rows;
}

void pg_connection::copy_back_to_pipeline_locked() {
  in_copy_ = false;
  if (PQenterPipelineMode(conn_) != 1)
    throw connection_error(conn_, "cannot enter pipeline mode", secrets_);
}

asio::awaitable<void> pg_connection::copy_start(const std::string& sql, bool in) {
  {
    std::lock_guard lock(mutex_);
    if (state_ != state::open) throw connection_error(conn_, "connection lost", secrets_);
    if (in_copy_ || !pipeline_.empty())
      throw error(code::object_not_in_prerequisite_state,
                  "a COPY needs the connection to itself, with nothing in flight");
    if (PQexitPipelineMode(conn_) != 1)
      throw error(code::object_not_in_prerequisite_state,
                  "cannot leave pipeline mode for the COPY: work is in flight");
    in_copy_ = true;
    if (!PQsendQuery(conn_, sql.c_str())) {
      in_copy_ = false;
      PQenterPipelineMode(conn_);
      throw connection_error(conn_, "cannot send the COPY", secrets_);
    }
  }
  co_await copy_flush();  // (PQsendQuery sent what the socket took)
  pg_result_ptr first = co_await copy_result();
  const ExecStatusType status = first ? PQresultStatus(first.get()) : PGRES_FATAL_ERROR;
  if (status == (in ? PGRES_COPY_IN : PGRES_COPY_OUT)) co_return;
  if (status == PGRES_COPY_IN || status == PGRES_COPY_OUT) {
    // A COPY the other way: nothing to do with it but drop the connection.
    copy_abandon();
    throw error(sqlstate::feature_not_supported,
                in ? "copy_in needs COPY ... FROM STDIN" : "copy_out needs COPY ... TO STDOUT");
  }
  // Not a COPY (or it failed): read to the end of what it did, and say why.
  const std::exception_ptr why =
      status == PGRES_FATAL_ERROR && first
          ? std::make_exception_ptr(server_error(first.get(), conn_, secrets_))
          : std::make_exception_ptr(
                error(sqlstate::feature_not_supported, in ? "copy_in needs COPY ... FROM STDIN"
                                                          : "copy_out needs COPY ... TO STDOUT"));
  while (co_await copy_result()) {
  }
  {
    std::lock_guard lock(mutex_);
    copy_back_to_pipeline_locked();
  }
  std::rethrow_exception(why);
}

asio::awaitable<void> pg_connection::copy_write(std::string_view data) {
  for (;;) {
    int queued;
    {
      std::lock_guard lock(mutex_);
      if (state_ != state::open) throw connection_error(conn_, "connection lost", secrets_);
      // libpq sends once its buffer holds 8 kB: many small writes become few sends.
      queued = PQputCopyData(conn_, data.data(), static_cast<int>(data.size()));
      if (queued == 0 && PQflush(conn_) < 0) queued = -1;
    }
    if (queued == 1) co_return;
    if (queued < 0) copy_lost("cannot send to the server");
    co_await wait_socket_ready(false);  // the socket is full: wait until it drains
  }
}

asio::awaitable<std::uint64_t> pg_connection::copy_end() {
  for (;;) {
    int ended;
    {
      std::lock_guard lock(mutex_);
      ended = PQputCopyEnd(conn_, nullptr);
    }
    if (ended == 1) break;
    if (ended < 0) copy_lost("cannot send to the server");
    co_await wait_socket_ready(false);
  }
  co_await copy_flush();
  co_return co_await copy_finish();
}

asio::awaitable<std::optional<std::string>> pg_connection::copy_read() {
  for (;;) {
    int n;
    std::optional<std::string> piece;
    {
      std::lock_guard lock(mutex_);
      if (state_ != state::open) throw connection_error(conn_, "connection lost", secrets_);
      char* buffer = nullptr;
      n = PQgetCopyData(conn_, &buffer, 1);
      if (n > 0) piece.emplace(buffer, static_cast<std::size_t>(n));
      if (buffer) PQfreemem(buffer);
    }
    if (piece) co_return piece;
    if (n == -2) copy_lost("connection lost");
    if (n == -1) break;
    co_await wait_socket_ready(true);
    bool consumed;
    {
      std::lock_guard lock(mutex_);
      consumed = PQconsumeInput(conn_) == 1;
    }
    if (!consumed) copy_lost("connection lost");
  }
  co_await copy_finish();  // the end of the data: then the COPY's own result
  co_return std::nullopt;
}

void pg_connection::copy_abandon() noexcept {
  {
    std::lock_guard lock(mutex_);
    if (!in_copy_) return;
  }
  close();
  report_dropped();
}

}  // namespace awaitdb::detail

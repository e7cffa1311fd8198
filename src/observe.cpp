#include "observe.hpp"

#include "backend.hpp"
#include "text_forms.hpp"
#include <awaitdb/copy.hpp>
#include <awaitdb/error.hpp>
#include <awaitdb/stream.hpp>

#include <boost/asio/error.hpp>
#include <boost/system/system_error.hpp>

#include <bit>
#include <cstdio>

namespace awaitdb {

// ---- statement_event

std::string statement_event::param_text(std::size_t i) const {
  using detail::param_kind;
  if (i >= param_count) return {};
  const detail::param& p = params[i];
  switch (p.kind) {
    case param_kind::null:
      return "NULL";
    case param_kind::boolean:
      return p.integer ? "true" : "false";
    case param_kind::int16:
    case param_kind::int32:
    case param_kind::int64:
      return std::to_string(p.integer);
    case param_kind::uint64:
      return std::to_string(static_cast<std::uint64_t>(p.integer));
    case param_kind::real: {
      char buffer[32];
      const int n = std::snprintf(buffer, sizeof buffer, "%.17g", p.real);
      return std::string(buffer, static_cast<std::size_t>(n));
    }
    case param_kind::text:
      return std::string(p.bytes);
    case param_kind::blob: {
      static constexpr char hex[] = "0123456789abcdef";
      std::string out = "\\x";
      for (char c : p.bytes) {
        out += hex[(static_cast<unsigned char>(c) >> 4) & 0xf];
        out += hex[static_cast<unsigned char>(c) & 0xf];
      }
      return out;
    }
    case param_kind::array: {
      std::string out;
      if (p.write_array) p.write_array(p.bytes.data(), out);
      return out;
    }
    default:  // times, dates, durations, UUIDs
      try {
        return detail::parameter_text(p, i + 1, true);
      } catch (const error&) {
        return "(out of range)";
      }
  }
}

// ---- statement_metrics

std::uint64_t statement_metrics::histogram::total() const noexcept {
  std::uint64_t sum = 0;
  for (std::uint64_t c : counts)
    sum += c;
  return sum;
}

std::chrono::nanoseconds statement_metrics::histogram::quantile(double q) const noexcept {
  const std::uint64_t all = total();
  if (all == 0) return std::chrono::nanoseconds(0);
  const auto rank = static_cast<std::uint64_t>(q * static_cast<double>(all - 1)) + 1;
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < bucket_count; ++i) {
    seen += counts[i];
    // Bucket i holds [2^(i-1), 2^i) µs (bucket 0: below 1 µs).
    if (seen >= rank) return std::chrono::microseconds(std::uint64_t{1} << i);
  }
  return std::chrono::microseconds(std::uint64_t{1} << (bucket_count - 1));
}

void statement_metrics::add(counters& h, std::chrono::nanoseconds d) noexcept {
  const auto us = static_cast<std::uint64_t>(
      std::max<std::int64_t>(0, std::chrono::duration_cast<std::chrono::microseconds>(d).count()));
  const std::size_t bucket = std::min<std::size_t>(std::bit_width(us), bucket_count - 1);
  h[bucket].fetch_add(1, std::memory_order_relaxed);
}

statement_metrics::histogram statement_metrics::copy(const counters& h) {
  histogram out;
  for (std::size_t i = 0; i < bucket_count; ++i)
    out.counts[i] = h[i].load(std::memory_order_relaxed);
  return out;
}

statement_metrics::snapshot statement_metrics::read() const {
  snapshot s;
  s.statements = statements_.load(std::memory_order_relaxed);
  s.failures = failures_.load(std::memory_order_relaxed);
  s.latency = copy(latency_);
  s.latency_sum = std::chrono::nanoseconds(latency_sum_ns_.load(std::memory_order_relaxed));
  s.acquire_wait_sum =
      std::chrono::nanoseconds(acquire_wait_sum_ns_.load(std::memory_order_relaxed));
  s.acquisitions = acquisitions_.load(std::memory_order_relaxed);
  s.acquire_wait = copy(acquire_wait_);
  s.notices = notices_.load(std::memory_order_relaxed);
  std::lock_guard lock(failures_mutex_);
  s.failures_by_class = failures_by_class_;
  return s;
}

void statement_metrics::statement_finished(const statement_event& e) noexcept {
  statements_.fetch_add(1, std::memory_order_relaxed);
  add(latency_, e.duration);
  latency_sum_ns_.fetch_add(e.duration.count(), std::memory_order_relaxed);
  if (e.sqlstate.empty()) return;
  failures_.fetch_add(1, std::memory_order_relaxed);
  try {
    std::lock_guard lock(failures_mutex_);
    ++failures_by_class_[std::string(e.sqlstate.substr(0, 2))];
  } catch (...) {
    // (Out of memory: the class is not counted; the total is.)
  }
}

void statement_metrics::connection_acquired(const acquire_event& e) noexcept {
  acquisitions_.fetch_add(1, std::memory_order_relaxed);
  add(acquire_wait_, e.waited);
  acquire_wait_sum_ns_.fetch_add(e.waited.count(), std::memory_order_relaxed);
}

void statement_metrics::notice(const notice_event&) noexcept {
  notices_.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace awaitdb

namespace awaitdb::detail {

void observer_slot::set(std::shared_ptr<awaitdb::observer> o) {
  std::lock_guard lock(mutex_);
  if (o) kept_.push_back(o);
  current_.store(o.get(), std::memory_order_release);
}

std::string sqlstate_of(const std::exception_ptr& failure) {
  try {
    std::rethrow_exception(failure);
  } catch (const error& e) {
    return e.sqlstate();
  } catch (const boost::system::system_error& e) {
    if (e.code() == boost::asio::error::operation_aborted)
      return std::string(sqlstate::query_canceled);
  } catch (...) {
  }
  return std::string(sqlstate::internal_error);
}

bool is_cancellation(const std::exception_ptr& failure) {
  try {
    std::rethrow_exception(failure);
  } catch (const boost::system::system_error& e) {
    return e.code() == boost::asio::error::operation_aborted;
  } catch (...) {
    return false;
  }
}

void statement_watch::start(awaitdb::observer& o, awaitdb::engine engine, const statement& st,
                            bool in_transaction, std::string_view label) noexcept {
  observer_ = &o;
  event_.sql = st.sql;
  event_.engine = engine;
  event_.in_transaction = in_transaction;
  event_.label = label;
  if (o.wants_parameters()) {
    event_.params = st.params;
    event_.param_count = st.param_count;
  }
  started_ = std::chrono::steady_clock::now();
  o.statement_started(event_);
}

void statement_watch::end(std::uint64_t rows, std::uint64_t connection,
                          std::string_view sqlstate) noexcept {
  event_.duration = std::chrono::steady_clock::now() - started_;
  event_.rows = rows;
  event_.connection = connection;
  event_.sqlstate = sqlstate;
  observer_->statement_finished(event_);
}

void statement_watch::forget_parameters() noexcept {
  event_.params = nullptr;
  event_.param_count = 0;
}

void statement_watch::finished(const statement& st) noexcept {
  const bool counted = st.mode == result_mode::count || st.scalar_read;
  end(counted ? st.affected : st.rows.size(), st.connection, {});
}

namespace {

std::string reported_sqlstate(const std::exception_ptr& failure) noexcept {
  try {
    return sqlstate_of(failure);
  } catch (...) {
    return std::string(sqlstate::internal_error);
  }
}

}  // namespace

void statement_watch::failed(const statement& st, const std::exception_ptr& failure) noexcept {
  end(0, st.connection, reported_sqlstate(failure));
}

stream_watch::stream_watch(awaitdb::observer& o, awaitdb::engine engine, const statement& st,
                           bool in_transaction, std::string_view label)
    : sql_(st.sql), label_(label) {
  statement own = st;  // (the same parameters; the SQL in this watch's own copy)
  own.sql = sql_;
  watch_.start(o, engine, own, in_transaction, label_);
  watch_.forget_parameters();
}

stream_watch::~stream_watch() {
  if (!over_) watch_.end(rows_, connection_, sqlstate::query_canceled);
}

void stream_watch::opened(std::uint64_t connection) noexcept {
  connection_ = connection;
}

void stream_watch::finished() noexcept {
  over_ = true;
  watch_.end(rows_, connection_, {});
}

void stream_watch::failed(const std::exception_ptr& failure) noexcept {
  over_ = true;
  watch_.end(rows_, connection_, reported_sqlstate(failure));
}

namespace {

// Each forwards to what it wraps and tells the watch; destroyed before the end, the watch
// reports the statement left.

// `op`, its failure reported to `watch`.
template <class T>
boost::asio::awaitable<T> failure_reported(stream_watch& watch, boost::asio::awaitable<T> op) {
  try {
    co_return co_await std::move(op);
  } catch (...) {
    watch.failed(std::current_exception());
    throw;
  }
}

// The next row or piece that `op` gives, counted; its end or failure reported.
template <class T>
boost::asio::awaitable<std::optional<T>> item_reported(
    stream_watch& watch, boost::asio::awaitable<std::optional<T>> op) {
  std::optional<T> item = co_await failure_reported(watch, std::move(op));
  if (item)
    watch.add_rows(1);  // (a COPY TO sends one row per piece)
  else
    watch.finished();
  co_return item;
}

class watched_row_source final : public row_source {
 public:
  watched_row_source(std::unique_ptr<row_source> rows, std::unique_ptr<stream_watch> watch)
      : rows_(std::move(rows)), watch_(std::move(watch)) {}
  boost::asio::awaitable<std::optional<row>> next(deadline_state* deadline) override {
    return item_reported(*watch_, rows_->next(deadline));
  }

 private:
  std::unique_ptr<row_source> rows_;
  std::unique_ptr<stream_watch> watch_;
};

class watched_copy_sink final : public copy_sink {
 public:
  watched_copy_sink(std::unique_ptr<copy_sink> sink, std::unique_ptr<stream_watch> watch)
      : sink_(std::move(sink)), watch_(std::move(watch)) {}
  boost::asio::awaitable<void> write(std::string_view data) override {
    return failure_reported(*watch_, sink_->write(data));
  }
  boost::asio::awaitable<std::uint64_t> finish() override {
    const std::uint64_t rows = co_await failure_reported(*watch_, sink_->finish());
    watch_->add_rows(rows);
    watch_->finished();
    co_return rows;
  }

 private:
  std::unique_ptr<copy_sink> sink_;
  std::unique_ptr<stream_watch> watch_;
};

class watched_copy_source final : public copy_source {
 public:
  watched_copy_source(std::unique_ptr<copy_source> source, std::unique_ptr<stream_watch> watch)
      : source_(std::move(source)), watch_(std::move(watch)) {}
  boost::asio::awaitable<std::optional<std::string>> next() override {
    return item_reported(*watch_, source_->next());
  }

 private:
  std::unique_ptr<copy_source> source_;
  std::unique_ptr<stream_watch> watch_;
};

}  // namespace

std::unique_ptr<row_source> watched_rows(std::unique_ptr<row_source> rows,
                                         std::unique_ptr<stream_watch> watch) {
  return std::make_unique<watched_row_source>(std::move(rows), std::move(watch));
}

std::unique_ptr<copy_sink> watched_copy_in(std::unique_ptr<copy_sink> sink,
                                           std::unique_ptr<stream_watch> watch) {
  return std::make_unique<watched_copy_sink>(std::move(sink), std::move(watch));
}

std::unique_ptr<copy_source> watched_copy_out(std::unique_ptr<copy_source> source,
                                              std::unique_ptr<stream_watch> watch) {
  return std::make_unique<watched_copy_source>(std::move(source), std::move(watch));
}

}  // namespace awaitdb::detail

#include "pg_listener.hpp"

#include "../sqlstates.hpp"
#include "../util/backoff.hpp"
#include "pg_connection.hpp"
#include <awaitdb/error.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include <algorithm>

namespace awaitdb::detail {

namespace asio = boost::asio;
using std::chrono::milliseconds;

namespace {

// PostgreSQL cuts identifiers longer than this (NAMEDATALEN - 1): a longer channel name would
// be listened to under another name.
constexpr std::size_t longest_name = 63;

asio::awaitable<void> run_control(pg_connection& c, const std::string& sql) {
  pg_connection::request r;
  r.controls = control_list(sql);
  pg_connection::exchange x(c, r);
  x.settle(co_await x.wait());
  x.check();
}

error closed_error() {
  return error(sqlstate::connection_does_not_exist, "the database is closed");
}

// The pause before opening again after `failures` in a row: the pool's rule, from at least
// 10 ms (a listener that cannot stay open never reconnects in a tight loop).
milliseconds pause_after(unsigned failures, const postgres_options& o) {
  const milliseconds first = std::max(o.connect_backoff, milliseconds(10));
  return backoff_pause(first, std::max(o.connect_backoff_max, first), failures);
}

}  // namespace

pg_listener::pg_listener(asio::any_io_executor executor, const postgres_options& options)
    : executor_(std::move(executor))
    , shared_(std::make_shared<pg_shared>(executor_, options, /*with_canceller=*/false)) {}

pg_listener::~pg_listener() {
  close();
}

std::string pg_listener::quoted(const std::string& channel) {
  std::string out = "\"";
  for (char c : channel) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

asio::awaitable<std::shared_ptr<subscription_state>> pg_listener::subscribe(std::string channel) {
  if (channel.empty() || channel.find('\0') != std::string::npos)
    throw error(sqlstate::invalid_parameter, "a channel name is not empty and holds no NUL byte");
  if (channel.size() > longest_name)
    throw error(code::name_too_long,
                "a channel name has at most 63 bytes (PostgreSQL cuts longer names)");
  auto state = std::make_shared<subscription_state>(channel);
  {
    std::lock_guard lock(mutex_);
    if (closed_) throw closed_error();
    channels_[channel].push_back(state);
  }
  auto release = [weak = weak_from_this(), channel] {
    if (auto self = weak.lock()) self->unsubscribe(channel);
  };
  state->on_release(std::move(release));
  std::shared_ptr<pg_connection> c = co_await connection();
  // (Sent by every subscriber: LISTEN twice is harmless, and this one returns listening.)
  co_await run_control(*c, "LISTEN " + quoted(channel));
  co_return state;
}

asio::awaitable<std::shared_ptr<pg_connection>> pg_listener::connection() {
  for (;;) {
    std::unique_lock lock(mutex_);
    if (closed_) throw closed_error();
    if (conn_ && !conn_->lost()) co_return conn_;
    if (opening_) {
      co_await opened_.wait(lock);
      continue;
    }
    opening_ = true;
    std::vector<std::string> names;
    for (const auto& entry : channels_)
      names.push_back(entry.first);
    lock.unlock();
    std::shared_ptr<pg_connection> c;
    std::exception_ptr failure;
    try {
      c = co_await pg_connection::connect(executor_, shared_);
      auto sink = [weak = weak_from_this(), from = c.get()](std::vector<pg_notification>& batch,
                                                            bool lost) {
        if (auto self = weak.lock()) self->received(batch, lost, from);
      };
      c->listen_with(std::move(sink));
      // Again after a loss: every channel that still has subscriptions.
      for (const std::string& name : names)
        co_await run_control(*c, "LISTEN " + quoted(name));
    } catch (...) {
      failure = std::current_exception();
      if (c) c->close();
      c.reset();
    }
    lock.lock();
    opening_ = false;
    const bool closed = closed_;
    if (c && !closed) {
      conn_ = c;
      connected_at_ = std::chrono::steady_clock::now();
    }
    lock.unlock();
    opened_.notify_all();
    if (c && closed) {
      c->close();
      throw closed_error();
    }
    if (failure) std::rethrow_exception(failure);
    co_return c;
  }
}

std::vector<std::shared_ptr<subscription_state>> pg_listener::subscribers_locked(
    const std::string& channel) {
  std::vector<std::shared_ptr<subscription_state>> out;
  auto it = channels_.find(channel);
  if (it == channels_.end()) return out;
  for (const auto& weak : it->second)
    if (auto s = weak.lock()) out.push_back(std::move(s));
  return out;
}

void pg_listener::received(std::vector<pg_notification>& batch, bool lost,
                           const pg_connection* from) {
  struct delivery {
    std::vector<std::shared_ptr<subscription_state>> to;
    notification what;
  };
  std::vector<delivery> deliveries;
  std::vector<std::shared_ptr<subscription_state>> gapped;
  bool again = false;
  {
    std::lock_guard lock(mutex_);
    for (pg_notification& n : batch) {
      delivery d{subscribers_locked(n.channel), {}};
      d.what.channel = std::move(n.channel);
      d.what.payload = std::move(n.payload);
      d.what.sender_pid = n.sender_pid;
      deliveries.push_back(std::move(d));
    }
    if (lost && !closed_ && conn_.get() == from) {
      conn_.reset();
      // Dropped soon after it opened (a server that accepts and drops at once): the next open
      // waits, longer each time; a connection that lived longer is opened again at once.
      const bool early =
          std::chrono::steady_clock::now() - connected_at_ < shared_->options.connect_probation;
      early_losses_ = early ? std::min(early_losses_ + 1, 64u) : 0;
      for (const auto& entry : channels_)
        for (auto& s : subscribers_locked(entry.first))
          gapped.push_back(std::move(s));
      again = !channels_.empty();
    }
  }
  // Outside the lock: the last reference to a subscription may go here, and it unsubscribes.
  for (delivery& d : deliveries)
    for (const auto& s : d.to)
      s->deliver(d.what);
  for (const auto& s : gapped)
    s->gap();
  if (again) asio::co_spawn(executor_, reconnect(), asio::detached);
}

asio::awaitable<void> pg_listener::reconnect() {
  const auto self = shared_from_this();  // until it has listened again, or is closed
  // At once, unless the lost connection was dropped soon after it opened.
  unsigned failures = 0;
  {
    std::lock_guard lock(mutex_);
    failures = early_losses_;
  }
  for (;;) {
    const milliseconds pause = pause_after(failures, shared_->options);
    {
      std::unique_lock lock(mutex_);
      if (pause.count() > 0 && !closed_) {
        co_await pausing_.wait(lock, std::chrono::steady_clock::now() + pause);
        lock.lock();
      }
      if (closed_ || channels_.empty()) co_return;
    }
    try {
      co_await connection();
      co_return;
    } catch (...) {
      // Refused, or the server is starting up: again after a pause.
    }
    if (failures < 64) ++failures;
  }
}

void pg_listener::unsubscribe(const std::string& channel) {
  std::shared_ptr<pg_connection> c;
  {
    std::lock_guard lock(mutex_);
    auto it = channels_.find(channel);
    if (it == channels_.end()) return;
    auto& subs = it->second;
    subs.erase(std::remove_if(subs.begin(), subs.end(), [](const auto& w) { return w.expired(); }),
               subs.end());
    if (!subs.empty()) return;
    channels_.erase(it);
    c = conn_;
  }
  if (!c) return;
  const std::string sql = "UNLISTEN " + quoted(channel);
  pg_connection::request r;
  r.controls = control_list(sql);
  r.detached = true;
  try {
    c->submit(r);
  } catch (...) {
    // Lost or closed: nothing listens there any more.
  }
}

void pg_listener::close() noexcept {
  std::shared_ptr<pg_connection> c;
  std::vector<std::shared_ptr<subscription_state>> subs;
  {
    std::lock_guard lock(mutex_);
    closed_ = true;
    c = std::move(conn_);
    for (const auto& entry : channels_)
      for (auto& s : subscribers_locked(entry.first))
        subs.push_back(std::move(s));
    channels_.clear();
  }
  if (c) c->close();
  opened_.notify_all();
  pausing_.notify_all();
  const std::exception_ptr why = std::make_exception_ptr(closed_error());
  for (const auto& s : subs)
    s->fail(why);
}

}  // namespace awaitdb::detail

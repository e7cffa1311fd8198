#include "pg_resolve.hpp"

#include "../util/parking.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/system/system_error.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>
#include <ares.h>
#include <memory>
#include <mutex>

namespace awaitdb::detail {

namespace asio = boost::asio;
using boost::system::error_code;

bool host_needs_lookup(std::string_view host) {
  if (host.empty() || host.front() == '/' || host.front() == '@') return false;
  error_code ec;
  (void)asio::ip::make_address(host, ec);
  return static_cast<bool>(ec);
}

namespace {

// One lookup: a c-ares channel of its own (lookups are made only when a connection opens), its
// sockets and timer, all driven on one strand of the caller's executor. Everything but `cancel`
// and the destructor runs on that strand; the destructor runs once no handler refers to it.
class lookup : public std::enable_shared_from_this<lookup> {
 public:
  lookup(asio::any_io_executor executor, std::string host)
      : strand_(asio::make_strand(std::move(executor)))
      , host_(std::move(host))
      , retransmit_(strand_)
      , deadline_(strand_) {}
  ~lookup() {
    // (It calls the socket callback for what it closes: nothing is watched any more.)
    if (channel_) ares_destroy(channel_);
  }
  lookup(const lookup&) = delete;
  lookup& operator=(const lookup&) = delete;

  // Signalled once the lookup is over (`addresses` or `failure` then hold its outcome).
  const waiter_ptr done = std::make_shared<waiter>();
  std::vector<std::string> addresses;
  std::string failure;

  void start(std::chrono::steady_clock::time_point deadline) {
    asio::post(strand_, [self = shared_from_this(), deadline] { self->begin(deadline); });
  }
  void cancel() {
    asio::post(strand_, [self = shared_from_this()] { self->stop("cancelled"); });
  }

 private:
  // A socket c-ares opened, watched through a duplicate descriptor of its own (c-ares closes
  // its descriptor at will; a reused number is never confused with it).
  struct watch {
    ares_socket_t fd;
    asio::posix::stream_descriptor descriptor;
    bool want_read = false, want_write = false;
    bool reading = false, writing = false;
  };

  void begin(std::chrono::steady_clock::time_point deadline) {
    static std::once_flag library_once;
    std::call_once(library_once, [] { ares_library_init(ARES_LIB_INIT_ALL); });
    ares_options options{};
    options.sock_state_cb = &lookup::on_socket_state;
    options.sock_state_cb_data = this;
    if (const int status = ares_init_options(&channel_, &options, ARES_OPT_SOCK_STATE_CB);
        status != ARES_SUCCESS) {
      channel_ = nullptr;
      return finish(std::string("the resolver cannot start: ") + ares_strerror(status));
    }
    deadline_.expires_at(deadline);
    deadline_.async_wait([self = shared_from_this()](error_code ec) {
      if (!ec) self->stop("timed out");
    });
    ares_addrinfo_hints hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    ares_getaddrinfo(channel_, host_.c_str(), nullptr, &hints, &lookup::on_result, this);
    rearm();
  }

  // Ends the lookup early: its callback runs now, with ARES_ECANCELLED.
  void stop(const char* why) {
    if (over_ || !channel_) return;
    stop_reason_ = why;
    ares_cancel(channel_);
  }

  static void on_result(void* arg, int status, int /*timeouts*/, ares_addrinfo* result) {
    auto* self = static_cast<lookup*>(arg);
    std::unique_ptr<ares_addrinfo, decltype(&ares_freeaddrinfo)> owned(result, &ares_freeaddrinfo);
    if (status != ARES_SUCCESS) {
      if (status == ARES_ECANCELLED && self->stop_reason_) return self->finish(self->stop_reason_);
      if (status == ARES_ENOTFOUND || status == ARES_ENODATA)
        return self->finish("the name has no address");
      return self->finish(ares_strerror(status));
    }
    for (const ares_addrinfo_node* n = result ? result->nodes : nullptr; n; n = n->ai_next) {
      char text[INET6_ADDRSTRLEN] = {};
      const void* raw = nullptr;
      if (n->ai_family == AF_INET)
        raw = &reinterpret_cast<const sockaddr_in*>(n->ai_addr)->sin_addr;
      else if (n->ai_family == AF_INET6)
        raw = &reinterpret_cast<const sockaddr_in6*>(n->ai_addr)->sin6_addr;
      if (!raw || !::inet_ntop(n->ai_family, raw, text, sizeof text)) continue;
      if (std::find(self->addresses.begin(), self->addresses.end(), text) == self->addresses.end())
        self->addresses.emplace_back(text);
    }
    self->finish(self->addresses.empty() ? "the name has no address" : "");
  }

  void finish(std::string why) {
    if (over_) return;
    over_ = true;
    failure = std::move(why);
    retransmit_.cancel();
    deadline_.cancel();
    for (auto& w : watches_) {
      error_code ignored;
      w->descriptor.close(ignored);
    }
    watches_.clear();
    done->notify();
  }

  static void on_socket_state(void* data, ares_socket_t fd, int readable, int writable) {
    auto* self = static_cast<lookup*>(data);
    auto it = std::find_if(self->watches_.begin(), self->watches_.end(),
                           [fd](const auto& w) { return w->fd == fd; });
    if (!readable && !writable) {
      if (it == self->watches_.end()) return;
      error_code ignored;
      (*it)->descriptor.close(ignored);
      self->watches_.erase(it);
      return;
    }
    if (self->over_) return;
    if (it == self->watches_.end()) {
      const int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
      if (copy < 0) return;  // c-ares times the query out
      auto w = std::shared_ptr<watch>(new watch{fd, asio::posix::stream_descriptor(self->strand_)});
      error_code ec;
      w->descriptor.assign(copy, ec);
      if (ec) {
        ::close(copy);
        return;
      }
      it = self->watches_.insert(self->watches_.end(), std::move(w));
    }
    (*it)->want_read = readable != 0;
    (*it)->want_write = writable != 0;
  }

  // After every step: waits for what each socket wants, and for c-ares' next timeout.
  void rearm() {
    if (over_) return;
    for (const std::shared_ptr<watch>& w : watches_) {
      if (w->want_read && !w->reading) {
        w->reading = true;
        w->descriptor.async_wait(asio::posix::descriptor_base::wait_read,
                                 [self = shared_from_this(), w](error_code ec) {
                                   w->reading = false;
                                   if (!ec && !self->over_) self->step(w->fd, ARES_SOCKET_BAD);
                                 });
      }
      if (w->want_write && !w->writing) {
        w->writing = true;
        w->descriptor.async_wait(asio::posix::descriptor_base::wait_write,
                                 [self = shared_from_this(), w](error_code ec) {
                                   w->writing = false;
                                   if (!ec && !self->over_) self->step(ARES_SOCKET_BAD, w->fd);
                                 });
      }
    }
    timeval longest{1, 0}, next{};
    if (const timeval* wait = ares_timeout(channel_, &longest, &next)) {
      retransmit_.expires_after(std::chrono::seconds(wait->tv_sec) +
                                std::chrono::microseconds(wait->tv_usec));
      retransmit_.async_wait([self = shared_from_this()](error_code ec) {
        if (!ec && !self->over_) self->step(ARES_SOCKET_BAD, ARES_SOCKET_BAD);
      });
    }
  }

  void step(ares_socket_t readable, ares_socket_t writable) {
    ares_process_fd(channel_, readable, writable);
    rearm();
  }

  asio::strand<asio::any_io_executor> strand_;
  const std::string host_;
  ares_channel channel_ = nullptr;
  std::vector<std::shared_ptr<watch>> watches_;
  asio::steady_timer retransmit_;  // c-ares' own timeouts (retries, other servers)
  asio::steady_timer deadline_;    // the connect timeout
  const char* stop_reason_ = nullptr;
  bool over_ = false;
};

}  // namespace

asio::awaitable<resolved_host> resolve_host(asio::any_io_executor executor, std::string host,
                                            std::chrono::steady_clock::time_point deadline) {
  auto l = std::make_shared<lookup>(std::move(executor), std::move(host));
  l->start(deadline);
  auto [ec, state] = co_await l->done->async_wait(asio::as_tuple(asio::deferred));
  (void)state;
  if (ec) {
    l->cancel();
    throw boost::system::system_error(ec);
  }
  co_return resolved_host{std::move(l->addresses), std::move(l->failure)};
}

}  // namespace awaitdb::detail

// Host names to addresses on the caller's executor, without a thread and without a blocking
// call, so that libpq (which would call getaddrinfo on the event loop's thread) is only ever
// given numeric addresses (`hostaddr`), while it keeps the name (`host`) for TLS verification,
// .pgpass and its messages.
//
// The lookup is c-ares, driven by Asio's reactor: its sockets are watched like any other, its
// retransmission timeouts are an Asio timer. It reads the system's configuration as
// getaddrinfo does (/etc/hosts, /etc/resolv.conf, the `hosts:` order of /etc/nsswitch.conf).
#ifndef AWAITDB_SRC_POSTGRES_PG_RESOLVE_HPP
#define AWAITDB_SRC_POSTGRES_PG_RESOLVE_HPP

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

namespace awaitdb::detail {

/// True when libpq would look `host` up by name: neither empty, nor an IPv4 or IPv6 address,
/// nor a Unix-domain socket directory (`/...`, or `@...` for an abstract socket).
bool host_needs_lookup(std::string_view host);

/// What a lookup found: addresses, or why there are none.
struct resolved_host {
  /// The addresses as text, IPv6 and IPv4 alike, in the order the system's address selection
  /// rules prefer (RFC 6724, as getaddrinfo sorts them).
  std::vector<std::string> addresses;
  /// Empty on success; else why the name has no address ("the name has no address", "timed
  /// out", the resolver's own reason).
  std::string failure;
};

/// Looks `host` up, giving up at `deadline`. Throws `boost::system::system_error`
/// (operation_aborted) when the awaiting operation is cancelled, which cancels the lookup.
boost::asio::awaitable<resolved_host> resolve_host(boost::asio::any_io_executor executor,
                                                   std::string host,
                                                   std::chrono::steady_clock::time_point deadline);

}  // namespace awaitdb::detail

#endif  // AWAITDB_SRC_POSTGRES_PG_RESOLVE_HPP

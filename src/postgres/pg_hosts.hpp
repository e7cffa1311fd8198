// The hosts a PostgreSQL connection tries, in order, each on its own connect deadline. Pure: no
// I/O (libpq only parses).
#ifndef AWAITDB_SRC_POSTGRES_PG_HOSTS_HPP
#define AWAITDB_SRC_POSTGRES_PG_HOSTS_HPP

#include <string>
#include <string_view>
#include <vector>

namespace awaitdb::detail {

/// One connection attempt: libpq keywords and values that name a single host.
struct pg_host_attempt {
  std::vector<std::string> keys;
  std::vector<std::string> values;
  std::string label;  // "host:port" (or the socket directory), for messages
  /// A host name to look up before connecting (libpq would do it on the calling thread): each
  /// of its addresses is then tried as `hostaddr`, the name kept as `host`. Empty: none.
  std::string lookup;
};

/// The attempts for `conninfo` (a libpq URL or keyword/value string), one per host it names,
/// in its order, so that each gets the connect timeout to itself (libpq does not time out a
/// connect driven without blocking, and one deadline around libpq's own walk through the hosts
/// would be used up by a host that never answers), and so that a host name is looked up by
/// awaitdb (see `pg_host_attempt::lookup`). A conninfo without a host takes `PGHOST` and
/// `PGHOSTADDR` from the environment, as libpq would. `target_session_attrs` stays on each
/// attempt (libpq checks it on a single host just as well), except `prefer-standby`, which
/// becomes two rounds: every host as `standby`, then every host as `any`. `session_attrs`, when
/// not empty, stands for the URL's own.
///
/// Empty when libpq cannot parse `conninfo` or its host, hostaddr and port lists do not match:
/// the caller then hands `conninfo` to libpq whole (which reports what is wrong).
std::vector<pg_host_attempt> plan_host_attempts(const std::string& conninfo,
                                                std::string_view session_attrs = {});

}  // namespace awaitdb::detail

#endif  // AWAITDB_SRC_POSTGRES_PG_HOSTS_HPP

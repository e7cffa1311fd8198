// The pause after failures in a row: one rule for the pool and the listening connection
// (opening again), a retried transaction, and SQLite's wait for a lock.
#ifndef AWAITDB_SRC_UTIL_BACKOFF_HPP
#define AWAITDB_SRC_UTIL_BACKOFF_HPP

#include <algorithm>
#include <chrono>

namespace awaitdb::detail {

/// After `failures` failures in a row (0: none, no pause): `first`, doubled with each failure
/// after the first, never more than `max`.
inline std::chrono::milliseconds backoff_pause(std::chrono::milliseconds first,
                                               std::chrono::milliseconds max,
                                               unsigned failures) noexcept {
  if (failures == 0 || first.count() <= 0) return std::chrono::milliseconds(0);
  auto pause = first;
  for (unsigned i = 1; i < failures && pause < max; ++i)
    pause *= 2;
  return std::min(pause, max);
}

}  // namespace awaitdb::detail

#endif

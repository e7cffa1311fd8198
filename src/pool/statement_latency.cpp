#include "statement_latency.hpp"

#include <algorithm>
#include <functional>

namespace awaitdb::detail {

std::uint64_t statement_latency::key(std::string_view sql) noexcept {
  return static_cast<std::uint64_t>(std::hash<std::string_view>{}(sql));
}

// One run: itself; two: the faster (a first run also parsed and planned); three: the median.
statement_latency::clock::duration statement_latency::entry::recent() const noexcept {
  if (count == 1) return runs[0];
  if (count == 2) return std::min(runs[0], runs[1]);
  return std::max(std::min(runs[0], runs[1]), std::min(std::max(runs[0], runs[1]), runs[2]));
}

void statement_latency::entry::add(clock::duration ran) noexcept {
  runs[next] = ran;
  next = static_cast<std::uint8_t>((next + 1) % 3);
  if (count < 3) ++count;
}

statement_latency::advice statement_latency::classify(std::uint64_t key, clock::time_point now) {
  if (!enabled()) return {};
  std::lock_guard lock(mutex_);
  auto it = entries_.find(key);
  if (it == entries_.end()) {
    if (entries_.size() >= capacity_) entries_.clear();
    entries_.emplace(key, entry{});
    return {route::first, {}};
  }
  const entry& e = it->second;
  if (e.measured()) {
    // A first run alone proves the statement slow only past the patience (see the header).
    const auto limit = e.count == 1 ? first_run_patience * slow_after_ : slow_after_;
    return {e.recent() >= limit ? route::slow : route::fast, {}};
  }
  // (Not sent yet: look again a threshold from now.)
  if (e.first_sent == clock::time_point::max()) return {route::wait, now + slow_after_};
  const clock::time_point proven_slow = e.first_sent + first_run_patience * slow_after_;
  if (now >= proven_slow) return {route::slow, {}};
  return {route::wait, proven_slow};
}

void statement_latency::sent(std::uint64_t key, clock::time_point now) {
  if (!enabled()) return;
  std::lock_guard lock(mutex_);
  auto it = entries_.find(key);
  if (it != entries_.end() && !it->second.measured()) it->second.first_sent = now;
}

void statement_latency::not_sent(std::uint64_t key) {
  if (!enabled()) return;
  std::lock_guard lock(mutex_);
  auto it = entries_.find(key);
  if (it != entries_.end() && !it->second.measured() &&
      it->second.first_sent == clock::time_point::max())
    entries_.erase(it);
}

bool statement_latency::record(std::uint64_t key, clock::duration ran) {
  if (!enabled()) return false;
  std::lock_guard lock(mutex_);
  auto it = entries_.find(key);
  if (it == entries_.end()) {
    // Forgotten meanwhile (the book started again): measured now.
    if (entries_.size() >= capacity_) entries_.clear();
    entries_[key].add(ran);
    return false;
  }
  entry& e = it->second;
  const bool first = !e.measured();
  e.add(ran);
  return first;
}

std::optional<statement_latency::clock::duration> statement_latency::estimate(
    std::uint64_t key) const {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(key);
  if (it == entries_.end() || !it->second.measured()) return std::nullopt;
  return it->second.recent();
}

}  // namespace awaitdb::detail

#include "pg_statement_cache.hpp"

#include <algorithm>
#include <utility>

namespace awaitdb::detail {

namespace {
// Scans are worth keeping even when nothing is prepared by name.
constexpr std::size_t min_capacity = 16;
}  // namespace

pg_statement_cache::pg_statement_cache(std::size_t capacity, bool named)
    : capacity_(std::max(capacity, min_capacity))
    , prepared_capacity_(capacity)
    , named_(named && capacity > 0) {}

pg_statement_cache::entry& pg_statement_cache::find_or_add(std::string_view sql) {
  // A loop repeating one statement hits the front of the list: no hashing.
  if (!lru_.empty() && lru_.front().sql == sql) return lru_.front();
  if (auto it = by_sql_.find(sql); it != by_sql_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second);
    return lru_.front();
  }
  if (lru_.size() >= capacity_) {
    entry& victim = lru_.back();
    for (variant& v : victim.prepared)
      owed_.push_back("DEALLOCATE " + v.name);
    prepared_count_ -= victim.prepared.size();
    by_sql_.erase(std::string_view(victim.sql));
    lru_.pop_back();
  }
  lru_.push_front(entry{std::string(sql), scan_sql(sql), {}});
  by_sql_.emplace(std::string_view(lru_.front().sql), lru_.begin());
  return lru_.front();
}

const std::string* pg_statement_cache::prepared_name(const entry& e,
                                                     std::span<const Oid> types) const {
  for (const variant& v : e.prepared)
    if (std::equal(v.types.begin(), v.types.end(), types.begin(), types.end())) return &v.name;
  return nullptr;
}

const std::string& pg_statement_cache::add_prepared(entry& e, std::span<const Oid> types) {
  // At most `prepared_capacity_` statements prepared on the server: the least recently used
  // entries give theirs up (their scans stay).
  for (auto it = lru_.rbegin(); prepared_count_ >= prepared_capacity_ && it != lru_.rend(); ++it) {
    if (&*it == &e) continue;
    for (variant& v : it->prepared)
      owed_.push_back("DEALLOCATE " + v.name);
    prepared_count_ -= it->prepared.size();
    it->prepared.clear();
  }
  ++prepared_count_;
  e.prepared.push_back(variant{std::vector<Oid>(types.begin(), types.end()),
                               "awaitdb_" + std::to_string(next_id_++)});
  return e.prepared.back().name;
}

void pg_statement_cache::forget(std::string_view name) {
  erase_name(name, false);
}

void pg_statement_cache::invalidate(std::string_view name, bool exists_on_server) {
  erase_name(name, exists_on_server);
}

void pg_statement_cache::erase_name(std::string_view name, bool owe) {
  for (entry& e : lru_)
    for (auto it = e.prepared.begin(); it != e.prepared.end(); ++it)
      if (it->name == name) {
        if (owe) owed_.push_back("DEALLOCATE " + it->name);
        e.prepared.erase(it);
        --prepared_count_;
        return;
      }
}

std::vector<std::string> pg_statement_cache::take_owed() {
  return std::exchange(owed_, {});
}

}  // namespace awaitdb::detail

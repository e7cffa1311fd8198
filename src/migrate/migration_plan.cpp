#include "migration_plan.hpp"

#include "../sqlstates.hpp"
#include <awaitdb/error.hpp>

#include <algorithm>

namespace awaitdb::detail {
namespace {

std::string label(std::int64_t version, std::string_view name) {
  return std::to_string(version) + " (" + std::string(name) + ")";
}

}  // namespace

migration_plan plan_next(std::span<const known_migration> known,
                         std::span<const recorded_migration> recorded, const plan_rules& rules) {
  migration_plan out;
  const recorded_migration* running = nullptr;
  for (const recorded_migration& r : recorded) {
    auto it =
        std::lower_bound(known.begin(), known.end(), r.version,
                         [](const known_migration& k, std::int64_t v) { return k.version < v; });
    if (it == known.end() || it->version != r.version) {
      if (!rules.ignore_missing)
        throw error(code::object_not_in_prerequisite_state,
                    "the database has migration " + label(r.version, r.name) +
                        " applied, which this set of migrations lacks (applied by a newer "
                        "release? set migrate_options::ignore_missing to accept it)");
    } else if (it->checksum != r.checksum) {
      throw error(code::object_not_in_prerequisite_state,
                  "migration " + label(r.version, r.name) +
                      " was applied from a script that has changed since (checksum " +
                      std::to_string(r.checksum) + ", now " + std::to_string(it->checksum) +
                      "): an applied migration must stay as it was; write a new one instead");
    }
    if (r.running) {
      if (!running) running = &r;
    } else {
      out.version = std::max(out.version, r.version);
    }
  }
  if (running) {
    out.step = plan_step::wait_for_running;
    out.running_version = running->version;
    return out;
  }
  // The first migration of the set not recorded: the two lists merged in order.
  std::size_t r = 0;
  for (std::size_t k = 0; k < known.size(); ++k) {
    while (r < recorded.size() && recorded[r].version < known[k].version)
      ++r;
    if (r < recorded.size() && recorded[r].version == known[k].version) continue;
    if (known[k].version < out.version && !rules.out_of_order)
      throw error(code::object_not_in_prerequisite_state,
                  "migration " + label(known[k].version, known[k].name) +
                      " is not applied, but the newer migration " + std::to_string(out.version) +
                      " is (merged late? set migrate_options::out_of_order to apply it)");
    out.step = plan_step::apply;
    out.index = k;
    return out;
  }
  return out;
}

}  // namespace awaitdb::detail

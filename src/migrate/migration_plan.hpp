// What a migration run does next, decided from the set and the version table. Pure: no I/O.
#ifndef AWAITDB_SRC_MIGRATE_MIGRATION_PLAN_HPP
#define AWAITDB_SRC_MIGRATE_MIGRATION_PLAN_HPP

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace awaitdb::detail {

/// A migration of the set, with the checksum of the script it has for this engine.
struct known_migration {
  std::int64_t version = 0;
  std::string_view name;
  std::int64_t checksum = 0;
};

/// A row of the version table.
struct recorded_migration {
  std::int64_t version = 0;
  std::string name;
  std::int64_t checksum = 0;
  /// Claimed by a run applying it outside a transaction, not yet finished.
  bool running = false;
};

struct plan_rules {
  bool ignore_missing = false;
  bool out_of_order = false;
};

enum class plan_step : std::uint8_t {
  up_to_date,        // nothing to apply
  apply,             // apply known[index]
  wait_for_running,  // another run is applying `running_version` outside a transaction
};

struct migration_plan {
  plan_step step = plan_step::up_to_date;
  std::size_t index = 0;
  std::int64_t running_version = 0;
  std::int64_t version = 0;  // the newest version applied (0: none)
};

/// Both spans sorted by version. Throws `awaitdb::error` 55000 when an applied migration's
/// checksum differs from its script's, when the table holds a version the set lacks (unless
/// `ignore_missing`), and when the next migration's version is below the newest applied one
/// (unless `out_of_order`).
migration_plan plan_next(std::span<const known_migration> known,
                         std::span<const recorded_migration> recorded, const plan_rules& rules);

}  // namespace awaitdb::detail

#endif  // AWAITDB_SRC_MIGRATE_MIGRATION_PLAN_HPP

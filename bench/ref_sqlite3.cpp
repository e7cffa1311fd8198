// The W3 reference: the same lookup loop written directly against the sqlite3 C API with one
// prepared statement, on the same file, with the same latency measurement.
#include "bench_common.hpp"

using namespace awaitdb_bench;

int main(int argc, char** argv) {
  options o = parse_options(argc, argv, "ref-sqlite3");
  if (o.workload != "w3") usage("ref-sqlite3", "only --workload w3");
  try {
    prepare_sqlite_kv(o.sqlite_db);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ref-sqlite3: %s\n", e.what());
    return 1;
  }
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(o.sqlite_db.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK) {
    std::fprintf(stderr, "ref-sqlite3: cannot open %s\n", o.sqlite_db.c_str());
    return 1;
  }
  sqlite3_exec(db, "PRAGMA journal_mode = WAL", nullptr, nullptr, nullptr);
  sqlite3_stmt* stmt = nullptr;
  sqlite3_prepare_v3(db, "SELECT v FROM kv WHERE id = $1", -1, SQLITE_PREPARE_PERSISTENT, &stmt,
                     nullptr);
  std::mt19937 random(42);
  std::uniform_int_distribution<std::int64_t> id(1, kv_rows);
  auto lookup = [&](std::int64_t key) {
    sqlite3_bind_int64(stmt, 1, key);
    std::int64_t v = -1;
    if (sqlite3_step(stmt) == SQLITE_ROW) v = sqlite3_column_int64(stmt, 0);
    sqlite3_reset(stmt);
    return v;
  };
  for (int i = 0; i < 1000; ++i)
    lookup(id(random));
  recorder rec;
  rec.reserve(o.ops);
  std::int64_t checksum = 0;
  const auto start = clock_type::now();
  for (std::uint64_t i = 0; i < o.ops; ++i) {
    const auto t0 = clock_type::now();
    checksum += lookup(id(random));
    rec.add(clock_type::now() - t0);
  }
  const double elapsed = std::chrono::duration<double>(clock_type::now() - start).count();
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  std::fprintf(stderr, "w3 checksum %lld, %.3f s\n", static_cast<long long>(checksum), elapsed);
  result_line out{"sqlite3",
                  "w3",
                  1,
                  1,
                  static_cast<double>(o.ops) / elapsed,
                  rec.percentile_us(0.5),
                  rec.percentile_us(0.99)};
  print(out);
}

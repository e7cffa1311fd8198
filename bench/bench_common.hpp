// Shared by the benchmark programs: options, latency recording, the TSV line, W3's database.
#ifndef AWAITDB_BENCH_COMMON_HPP
#define AWAITDB_BENCH_COMMON_HPP

#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace awaitdb_bench {

using clock_type = std::chrono::steady_clock;
constexpr std::int64_t kv_rows = 100'000;

/// Whether this program counts allocations (awaitdb-bench-allocs: alloc_counter.cpp).
bool counts_allocations() noexcept;
/// Starts counting allocations (--allocations; until then the counters stay at zero).
void count_allocations() noexcept;
/// Calls of operator new in the whole process so far (alloc_counter.cpp replaces it).
std::uint64_t allocation_count() noexcept;
std::uint64_t heap_allocation_count() noexcept;

struct options {
  std::string workload;
  int clients = 1;
  int connections = 0;  // 0: the client's own choice
  int threads = 1;      // awaitdb-bench: threads running each io_context
  int contexts = 1;     // awaitdb-bench: io_contexts, each with its own database and clients
  double seconds = 10;
  double warmup = 2;
  std::string url;
  std::string sqlite_db = "awaitdb-bench-w3.db";
  std::uint64_t ops = 2'000'000;
  bool count_allocations = false;
  // awaitdb only: none, noop (an observer whose hooks do nothing) or metrics (statement_metrics).
  std::string observer = "none";
  // awaitdb only: none, around (one with_timeout around each client's whole loop) or each
  // (with_timeout around every operation), for the cost of a deadline.
  std::string deadline = "none";
  // awaitdb only, W3: how a lookup is written, query (query, then row::get) or scalar
  // (query_scalar<std::int64_t>).
  std::string lookup = "query";
};

[[noreturn]] inline void usage(const char* program, const char* problem) {
  std::fprintf(stderr,
               "%s: %s\nusage: %s --workload w1|w2|w3 --clients C [--connections K] [--threads T] "
               "[--contexts N] "
               "[--seconds D] [--warmup S] [--url URL] [--sqlite-db PATH] [--ops N] "
               "[--allocations] [--observer none|noop|metrics] [--deadline none|around|each] "
               "[--lookup query|scalar]\n",
               program, problem, program);
  std::exit(2);
}

inline options parse_options(int argc, char** argv, const char* program) {
  options o;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--allocations") {
      o.count_allocations = true;
      continue;
    }
    if (i + 1 >= argc) usage(program, "every option but --allocations takes a value");
    const char* v = argv[++i];
    try {
      if (a == "--workload")
        o.workload = v;
      else if (a == "--clients")
        o.clients = std::stoi(v);
      else if (a == "--connections")
        o.connections = std::stoi(v);
      else if (a == "--threads")
        o.threads = std::stoi(v);
      else if (a == "--contexts")
        o.contexts = std::stoi(v);
      else if (a == "--seconds")
        o.seconds = std::stod(v);
      else if (a == "--warmup")
        o.warmup = std::stod(v);
      else if (a == "--url")
        o.url = v;
      else if (a == "--sqlite-db")
        o.sqlite_db = v;
      else if (a == "--ops")
        o.ops = std::stoull(v);
      else if (a == "--observer")
        o.observer = v;
      else if (a == "--deadline")
        o.deadline = v;
      else if (a == "--lookup")
        o.lookup = v;
      else
        usage(program, "unknown option");
    } catch (const std::logic_error&) {
      usage(program, "bad number");
    }
  }
  if (o.observer != "none" && o.observer != "noop" && o.observer != "metrics")
    usage(program, "--observer must be none, noop or metrics");
  if (o.deadline != "none" && o.deadline != "around" && o.deadline != "each")
    usage(program, "--deadline must be none, around or each");
  if (o.lookup != "query" && o.lookup != "scalar")
    usage(program, "--lookup must be query or scalar");
  if (o.workload != "w1" && o.workload != "w2" && o.workload != "w3")
    usage(program, "--workload must be w1, w2 or w3");
  if (o.clients < 1 || o.connections < 0 || o.threads < 1 || o.contexts < 1 || o.seconds <= 0 ||
      o.warmup < 0 || o.ops == 0)
    usage(program, "out-of-range value");
  return o;
}

/// Latencies of completed operations, in nanoseconds.
class recorder {
 public:
  void reserve(std::size_t n) { samples_.reserve(n); }
  void add(clock_type::duration d) {
    std::lock_guard lock(mutex_);
    samples_.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count());
  }
  /// Takes the samples of `other` (the recorders of several threads, merged at the end).
  void merge(recorder& other) {
    std::scoped_lock lock(mutex_, other.mutex_);
    samples_.insert(samples_.end(), other.samples_.begin(), other.samples_.end());
    other.samples_.clear();
  }
  double percentile_us(double p) {
    std::lock_guard lock(mutex_);
    if (samples_.empty()) return 0;
    auto nth = samples_.begin() + static_cast<std::ptrdiff_t>(p * (samples_.size() - 1));
    std::nth_element(samples_.begin(), nth, samples_.end());
    return static_cast<double>(*nth) / 1000.0;
  }

 private:
  std::mutex mutex_;
  std::vector<std::int64_t> samples_;
};

struct result_line {
  std::string client;
  std::string workload;
  int clients = 1;
  int connections = 0;
  double throughput = 0;
  double p50_us = 0;
  double p99_us = 0;
};

inline void print(const result_line& r) {
  std::printf("%s\t%s\t%d\t%d\t%.1f\t%.1f\t%.1f\n", r.client.c_str(), r.workload.c_str(), r.clients,
              r.connections, r.throughput, r.p50_us, r.p99_us);
  std::fflush(stdout);
}

/// Creates W3's database if it is missing: WAL, kv(id INTEGER PRIMARY KEY, v INTEGER), 100,000
/// rows. Uses the C API, so that both programs measure the same file.
inline void prepare_sqlite_kv(const std::string& path) {
  sqlite3* db = nullptr;
  if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) throw std::runtime_error("cannot open " + path);
  auto exec = [&](const char* sql) {
    char* message = nullptr;
    if (sqlite3_exec(db, sql, nullptr, nullptr, &message) != SQLITE_OK) {
      std::string m = message ? message : "?";
      sqlite3_free(message);
      sqlite3_close(db);
      throw std::runtime_error(m);
    }
  };
  exec("PRAGMA journal_mode = WAL");
  exec("CREATE TABLE IF NOT EXISTS kv (id INTEGER PRIMARY KEY, v INTEGER)");
  sqlite3_stmt* count = nullptr;
  sqlite3_prepare_v2(db, "SELECT count(*) FROM kv", -1, &count, nullptr);
  sqlite3_step(count);
  const std::int64_t have = sqlite3_column_int64(count, 0);
  sqlite3_finalize(count);
  if (have != kv_rows) {
    exec("BEGIN");
    exec("DELETE FROM kv");
    sqlite3_stmt* insert = nullptr;
    sqlite3_prepare_v2(db, "INSERT INTO kv VALUES (?, ?)", -1, &insert, nullptr);
    std::mt19937_64 random(7);
    for (std::int64_t id = 1; id <= kv_rows; ++id) {
      sqlite3_bind_int64(insert, 1, id);
      sqlite3_bind_int64(insert, 2, static_cast<std::int64_t>(random() % 1000000));
      sqlite3_step(insert);
      sqlite3_reset(insert);
    }
    sqlite3_finalize(insert);
    exec("COMMIT");
  }
  sqlite3_close(db);
}

}  // namespace awaitdb_bench

#endif  // AWAITDB_BENCH_COMMON_HPP

// awaitdb-bench: the workloads W1, W2 and W3 of docs/benchmarks.md, run through awaitdb.
// Prints one TSV line on standard output:
//   awaitdb <TAB> workload <TAB> C <TAB> connections <TAB> throughput_per_s <TAB> p50_us <TAB>
//   p99_us
#include "bench_common.hpp"
#include <awaitdb/awaitdb.hpp>
#include <awaitdb/observer.hpp>
#include <awaitdb/timeout.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using namespace awaitdb_bench;

namespace {

constexpr const char* w1_sql = "SELECT abalance FROM pgbench_accounts WHERE aid = $1";

// What the clients of one context count (each context's own, on a cache line of its own, so
// that the threads of a --contexts run do not wait on each other's counters).
struct alignas(64) lane {
  recorder rec;
  std::atomic<std::uint64_t> ops{0};
};

struct shared_state {
  explicit shared_state(std::size_t contexts) : lanes(contexts) {}
  std::atomic<bool> measuring{false};
  std::atomic<bool> done{false};
  std::vector<lane> lanes;
  std::uint64_t total_ops() const {
    std::uint64_t n = 0;
    for (const lane& l : lanes)
      n += l.ops.load(std::memory_order_relaxed);
    return n;
  }
};

// --deadline each: an operation with a deadline of its own (far enough never to pass).
template <class T>
asio::awaitable<T> maybe_with_deadline(bool each, asio::awaitable<T> op) {
  if (each) return awaitdb::with_timeout(std::chrono::seconds(60), std::move(op));
  return op;
}

asio::awaitable<void> w1_client(awaitdb::database db, shared_state& s, lane& counts, unsigned seed,
                                bool each) {
  std::mt19937 random(seed);
  std::uniform_int_distribution<std::int32_t> aid(1, 1'000'000);
  while (!s.done.load(std::memory_order_relaxed)) {
    const auto start = clock_type::now();
    awaitdb::result r = co_await maybe_with_deadline(each, db.query(w1_sql, aid(random)));
    if (r.size() != 1) throw std::runtime_error("W1: no such account");
    counts.ops.fetch_add(1, std::memory_order_relaxed);
    if (s.measuring.load(std::memory_order_relaxed)) counts.rec.add(clock_type::now() - start);
  }
}

asio::awaitable<void> w2_client(awaitdb::database db, shared_state& s, lane& counts,
                                unsigned seed) {
  std::mt19937 random(seed);
  std::uniform_int_distribution<std::int32_t> aid(1, 1'000'000), delta(-5000, 5000), tid(1, 100),
      bid(1, 10);
  while (!s.done.load(std::memory_order_relaxed)) {
    const std::int32_t a = aid(random), d = delta(random), t = tid(random), b = bid(random);
    const auto start = clock_type::now();
    co_await db.transaction([&]() -> asio::awaitable<void> {
      co_await db.execute("UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2", d,
                          a);
      co_await db.query("SELECT abalance FROM pgbench_accounts WHERE aid = $1", a);
      co_await db.execute(
          "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) "
          "VALUES ($1, $2, $3, $4, CURRENT_TIMESTAMP)",
          t, b, a, d);
    });
    counts.ops.fetch_add(1, std::memory_order_relaxed);
    if (s.measuring.load(std::memory_order_relaxed)) counts.rec.add(clock_type::now() - start);
  }
}

asio::awaitable<void> sleep_for(std::chrono::duration<double> d) {
  asio::steady_timer timer(co_await asio::this_coro::executor,
                           std::chrono::duration_cast<std::chrono::nanoseconds>(d));
  co_await timer.async_wait(asio::use_awaitable);
}

void print_allocations(const char* per, std::uint64_t allocs, std::uint64_t heap,
                       std::uint64_t ops) {
  const double n = static_cast<double>(ops ? ops : 1);
  std::fprintf(stderr,
               "allocations per %s: %.2f operator new; %.2f heap in all (malloc family: also "
               "libpq's, SQLite's and coroutine frames), whole process\n",
               per, static_cast<double>(allocs) / n, static_cast<double>(heap) / n);
}

// --observer: the cost of observing (the hooks themselves do nothing, or count).
void observe(const awaitdb::database& db, const options& o) {
  if (o.observer == "noop") db.set_observer(std::make_shared<awaitdb::observer>());
  if (o.observer == "metrics") db.set_observer(std::make_shared<awaitdb::statement_metrics>());
}

// The clients are dealt among `contexts`: the first is the caller's; each runs on a thread of
// its own and has its own database (pool), as pgbench -j N deals its clients among its threads.
asio::awaitable<void> run_postgres(const options& o, result_line& out,
                                   std::vector<asio::any_io_executor> contexts) {
  std::string url = o.url.empty() ? "postgresql://" : o.url;
  if (o.connections > 0)
    url += std::string(url.find('?') == std::string::npos ? "?" : "&") +
           "pool_max_size=" + std::to_string(o.connections);
  contexts.insert(contexts.begin(), co_await asio::this_coro::executor);
  std::vector<awaitdb::database> dbs;
  for (const asio::any_io_executor& ex : contexts) {
    dbs.push_back(co_await asio::co_spawn(ex, awaitdb::open(url), asio::use_awaitable));
    observe(dbs.back(), o);
  }
  shared_state s(dbs.size());
  std::atomic<int> running = o.clients;
  std::mutex failure_mutex;
  std::exception_ptr failure;
  for (int i = 0; i < o.clients; ++i) {
    const std::size_t k = static_cast<std::size_t>(i) % dbs.size();
    auto client = o.workload == "w1"
                      ? w1_client(dbs[k], s, s.lanes[k], 1000 + i, o.deadline == "each")
                      : w2_client(dbs[k], s, s.lanes[k], 1000 + i);
    if (o.deadline == "around")
      client = awaitdb::with_timeout(std::chrono::hours(1), std::move(client));
    asio::co_spawn(contexts[k], std::move(client), [&](std::exception_ptr e) {
      if (e) {
        std::lock_guard lock(failure_mutex);
        if (!failure) failure = e;
      }
      --running;
    });
  }
  co_await sleep_for(std::chrono::duration<double>(o.warmup));
  const std::uint64_t ops_at_start = s.total_ops();
  const std::uint64_t allocations_at_start = awaitdb_bench::allocation_count();
  const std::uint64_t heap_at_start = awaitdb_bench::heap_allocation_count();
  s.measuring = true;
  const auto start = clock_type::now();
  co_await sleep_for(std::chrono::duration<double>(o.seconds));
  s.measuring = false;
  const double elapsed = std::chrono::duration<double>(clock_type::now() - start).count();
  const std::uint64_t ops = s.total_ops() - ops_at_start;
  const std::uint64_t allocs = awaitdb_bench::allocation_count() - allocations_at_start;
  const std::uint64_t heap = awaitdb_bench::heap_allocation_count() - heap_at_start;
  s.done = true;
  while (running > 0)
    co_await sleep_for(std::chrono::milliseconds(1));
  {
    std::lock_guard lock(failure_mutex);
    if (failure) std::rethrow_exception(failure);
  }
  out.connections = 0;
  for (std::size_t k = 0; k < dbs.size(); ++k) {
    out.connections += static_cast<int>(dbs[k].stats().size);
    co_await asio::co_spawn(contexts[k], dbs[k].close(), asio::use_awaitable);
  }
  out.throughput = static_cast<double>(ops) / elapsed;
  recorder& all = s.lanes[0].rec;
  for (std::size_t k = 1; k < s.lanes.size(); ++k)
    all.merge(s.lanes[k].rec);
  out.p50_us = all.percentile_us(0.50);
  out.p99_us = all.percentile_us(0.99);
  if (o.count_allocations)
    print_allocations(o.workload == "w1" ? "query" : "transaction", allocs, heap, ops);
}

asio::awaitable<void> run_sqlite(const options& o, result_line& out) {
  prepare_sqlite_kv(o.sqlite_db);
  awaitdb::database db = co_await awaitdb::open("sqlite:" + o.sqlite_db);
  observe(db, o);
  std::mt19937 random(42);
  std::uniform_int_distribution<std::int64_t> id(1, kv_rows);
  recorder rec;
  rec.reserve(o.ops);
  // Warm the statement cache and the page cache, as the reference does.
  for (int i = 0; i < 1000; ++i)
    co_await db.query("SELECT v FROM kv WHERE id = $1", id(random));
  const std::uint64_t allocs_before = awaitdb_bench::allocation_count();
  const std::uint64_t heap_before = awaitdb_bench::heap_allocation_count();
  const auto start = clock_type::now();
  std::int64_t checksum = 0;
  const bool each = o.deadline == "each";
  const bool scalar = o.lookup == "scalar";
  auto lookups = [&]() -> asio::awaitable<void> {
    for (std::uint64_t i = 0; i < o.ops; ++i) {
      const auto t0 = clock_type::now();
      if (scalar) {
        checksum += co_await maybe_with_deadline(
            each, db.query_scalar<std::int64_t>("SELECT v FROM kv WHERE id = $1", id(random)));
      } else {
        awaitdb::result r = co_await maybe_with_deadline(
            each, db.query("SELECT v FROM kv WHERE id = $1", id(random)));
        checksum += r[0].get<std::int64_t>(0);
      }
      rec.add(clock_type::now() - t0);
    }
  };
  if (o.deadline == "around")
    co_await awaitdb::with_timeout(std::chrono::hours(1), lookups());
  else
    co_await lookups();
  const double elapsed = std::chrono::duration<double>(clock_type::now() - start).count();
  const std::uint64_t allocs = awaitdb_bench::allocation_count() - allocs_before;
  const std::uint64_t heap = awaitdb_bench::heap_allocation_count() - heap_before;
  co_await db.close();
  std::fprintf(stderr, "w3 checksum %lld, %.3f s\n", static_cast<long long>(checksum), elapsed);
  if (o.count_allocations) print_allocations("query", allocs, heap, o.ops);
  out.connections = 1;
  out.throughput = static_cast<double>(o.ops) / elapsed;
  out.p50_us = rec.percentile_us(0.50);
  out.p99_us = rec.percentile_us(0.99);
}

// --allocations: the same run in awaitdb-bench-allocs, next to this program, which counts them.
[[noreturn]] void run_counting_twin(char** argv) {
  std::string self(4096, '\0');
  const ssize_t n = readlink("/proc/self/exe", self.data(), self.size() - 1);
  std::string twin = "awaitdb-bench-allocs";
  if (n > 0) {
    self.resize(static_cast<std::size_t>(n));
    twin = self.substr(0, self.rfind('/') + 1) + twin;
  }
  argv[0] = twin.data();
  execv(twin.c_str(), argv);
  std::fprintf(stderr, "awaitdb-bench: --allocations runs %s: %s\n", twin.c_str(),
               std::strerror(errno));
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  options o = parse_options(argc, argv, "awaitdb-bench");
  if (o.count_allocations && !awaitdb_bench::counts_allocations()) run_counting_twin(argv);
  if (o.count_allocations) awaitdb_bench::count_allocations();
  result_line out{"awaitdb", o.workload, o.clients};
  // One thread: the concurrency hint that lets awaitdb watch sockets with a readiness wait.
  const int hint = o.threads == 1 ? 1 : BOOST_ASIO_CONCURRENCY_HINT_DEFAULT;
  asio::io_context io(hint);
  // --contexts: the other contexts, each run by threads of its own until the run ends.
  std::vector<std::unique_ptr<asio::io_context>> others;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> keep;
  std::vector<asio::any_io_executor> executors;
  std::vector<std::thread> threads;
  for (int i = 1; i < o.contexts; ++i) {
    others.push_back(std::make_unique<asio::io_context>(hint));
    keep.push_back(asio::make_work_guard(*others.back()));
    executors.emplace_back(others.back()->get_executor());
  }
  int status = 0;
  auto on_end = [&](std::exception_ptr e) {
    keep.clear();
    if (!e) return;
    for (const auto& context : others)
      context->stop();  // a failed run may have left their databases open
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      std::fprintf(stderr, "awaitdb-bench: %s\n", x.what());
    }
    status = 1;
  };
  if (o.workload == "w3")
    asio::co_spawn(io, run_sqlite(o, out), on_end);
  else
    asio::co_spawn(io, run_postgres(o, out, executors), on_end);
  for (const auto& context : others)
    for (int t = 0; t < o.threads; ++t)
      threads.emplace_back([&context] { context->run(); });
  for (int t = 1; t < o.threads; ++t)
    threads.emplace_back([&io] { io.run(); });
  io.run();
  for (std::thread& t : threads)
    t.join();
  if (status == 0) print(out);
  return status;
}

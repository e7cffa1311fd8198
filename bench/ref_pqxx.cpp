// The W1/W2 reference: what services reach for today without an async driver. A blocking
// libpqxx client on a thread pool: min(C, 16) threads, one connection each, serving C clients
// through a queue (a client's next request is queued as soon as its previous one completes;
// latency runs from queueing to completion).
#include "bench_common.hpp"

#include <pqxx/pqxx>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <thread>

using namespace awaitdb_bench;

namespace {

struct queue {
  std::mutex mutex;
  std::condition_variable ready;
  std::deque<clock_type::time_point> requests;  // when each waiting request was queued
  bool stop = false;
};

}  // namespace

int main(int argc, char** argv) {
  options o = parse_options(argc, argv, "ref-pqxx");
  if (o.workload == "w3") usage("ref-pqxx", "only --workload w1 or w2");
  const int threads = std::min(o.clients, 16);
  queue q;
  for (int i = 0; i < o.clients; ++i)
    q.requests.push_back(clock_type::now());
  recorder rec;
  std::atomic<bool> measuring{false};
  std::atomic<std::uint64_t> ops{0};
  std::atomic<bool> failed{false};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      try {
        pqxx::connection conn(o.url.empty() ? "" : o.url);
        conn.prepare("w1", "SELECT abalance FROM pgbench_accounts WHERE aid = $1");
        conn.prepare("upd", "UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2");
        conn.prepare("ins",
                     "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) "
                     "VALUES ($1, $2, $3, $4, CURRENT_TIMESTAMP)");
        std::mt19937 random(1000 + t);
        std::uniform_int_distribution<int> aid(1, 1'000'000), delta(-5000, 5000), tid(1, 100),
            bid(1, 10);
        for (;;) {
          clock_type::time_point queued;
          {
            std::unique_lock lock(q.mutex);
            q.ready.wait(lock, [&] { return q.stop || !q.requests.empty(); });
            if (q.stop) return;
            queued = q.requests.front();
            q.requests.pop_front();
          }
          const int a = aid(random);
          if (o.workload == "w1") {
            pqxx::nontransaction n(conn);
            pqxx::result r = n.exec_prepared("w1", a);
            if (r.size() != 1) throw std::runtime_error("no such account");
          } else {
            const int d = delta(random);
            pqxx::work w(conn);
            w.exec_prepared("upd", d, a);
            w.exec_prepared("w1", a);
            w.exec_prepared("ins", tid(random), bid(random), a, d);
            w.commit();
          }
          const auto now = clock_type::now();
          ops.fetch_add(1, std::memory_order_relaxed);
          if (measuring.load(std::memory_order_relaxed)) rec.add(now - queued);
          {
            std::lock_guard lock(q.mutex);
            q.requests.push_back(now);
          }
          q.ready.notify_one();
        }
      } catch (const std::exception& e) {
        std::fprintf(stderr, "ref-pqxx: %s\n", e.what());
        failed = true;
        std::lock_guard lock(q.mutex);
        q.stop = true;
        q.ready.notify_all();
      }
    });
  std::this_thread::sleep_for(std::chrono::duration<double>(o.warmup));
  const std::uint64_t before = ops.load();
  measuring = true;
  const auto start = clock_type::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(o.seconds));
  measuring = false;
  const double elapsed = std::chrono::duration<double>(clock_type::now() - start).count();
  const std::uint64_t done = ops.load() - before;
  {
    std::lock_guard lock(q.mutex);
    q.stop = true;
  }
  q.ready.notify_all();
  for (auto& t : pool)
    t.join();
  if (failed) return 1;
  print({"libpqxx-pool", o.workload, o.clients, threads, static_cast<double>(done) / elapsed,
         rec.percentile_us(0.5), rec.percentile_us(0.99)});
}

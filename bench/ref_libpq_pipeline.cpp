// The W1 ceiling: a hand-written client on libpq's non-blocking pipeline API, with nothing
// between the program and libpq. One thread, K connections (--connections, default 1) in
// pipeline mode, C clients spread over them round-robin; each client has one query in flight
// (a prepared SELECT and its own Sync) and sends the next as soon as its result arrives. One
// poll() over the K sockets; every answer read is followed by one flush of the queries it
// released. What awaitdb's pipelining is measured against.
#include "bench_common.hpp"

#include <libpq-fe.h>
#include <poll.h>

#include <deque>
#include <memory>

using namespace awaitdb_bench;

namespace {

[[noreturn]] void fail(const std::string& what, PGconn* conn) {
  std::fprintf(stderr, "ref-libpq-pipeline: %s: %s\n", what.c_str(),
               conn ? PQerrorMessage(conn) : "");
  std::exit(1);
}

struct client {
  clock_type::time_point sent{};
};

struct connection {
  PGconn* conn = nullptr;
  std::deque<int> in_flight;  // clients, in the order their queries were sent
  bool got_result = false;    // the head's query result has arrived (its NULL and Sync next)
  bool wants_write = false;   // PQflush left data to send
};

class driver {
 public:
  driver(const options& o, int connections) : o_(o), clients_(static_cast<std::size_t>(o.clients)) {
    for (int i = 0; i < connections; ++i) {
      auto c = std::make_unique<connection>();
      c->conn = PQconnectdb(o.url.c_str());
      if (PQstatus(c->conn) != CONNECTION_OK) fail("connect", c->conn);
      PGresult* r = PQprepare(c->conn, "w1", "SELECT abalance FROM pgbench_accounts WHERE aid = $1",
                              1, nullptr);
      if (PQresultStatus(r) != PGRES_COMMAND_OK) fail("prepare", c->conn);
      PQclear(r);
      if (PQsetnonblocking(c->conn, 1) != 0 || PQenterPipelineMode(c->conn) != 1)
        fail("pipeline mode", c->conn);
      conns_.push_back(std::move(c));
    }
  }
  ~driver() {
    for (auto& c : conns_)
      PQfinish(c->conn);
  }

  result_line run() {
    for (int i = 0; i < o_.clients; ++i)
      send(i);
    flush_all();
    const auto start = clock_type::now();
    const auto measure_from = start + std::chrono::duration_cast<clock_type::duration>(
                                          std::chrono::duration<double>(o_.warmup));
    const auto end = measure_from + std::chrono::duration_cast<clock_type::duration>(
                                        std::chrono::duration<double>(o_.seconds));
    std::vector<pollfd> fds(conns_.size());
    for (;;) {
      const auto now = clock_type::now();
      if (now >= end) break;
      measuring_ = now >= measure_from;
      for (std::size_t i = 0; i < conns_.size(); ++i)
        fds[i] = pollfd{PQsocket(conns_[i]->conn),
                        static_cast<short>(POLLIN | (conns_[i]->wants_write ? POLLOUT : 0)), 0};
      if (::poll(fds.data(), fds.size(), 100) < 0) fail("poll", nullptr);
      for (std::size_t i = 0; i < conns_.size(); ++i) {
        if (fds[i].revents & (POLLIN | POLLERR | POLLHUP)) read(*conns_[i]);
        if (fds[i].revents & POLLOUT) flush(*conns_[i]);
      }
    }
    const double elapsed = o_.seconds;
    result_line out{"libpq-pipeline", "w1", o_.clients};
    out.connections = static_cast<int>(conns_.size());
    out.throughput = static_cast<double>(ops_) / elapsed;
    out.p50_us = rec_.percentile_us(0.50);
    out.p99_us = rec_.percentile_us(0.99);
    return out;
  }

 private:
  connection& of(int client_id) {
    return *conns_[static_cast<std::size_t>(client_id) % conns_.size()];
  }

  void send(int id) {
    connection& c = of(id);
    const std::string aid = std::to_string(aid_(random_));
    const char* values[] = {aid.c_str()};
    if (PQsendQueryPrepared(c.conn, "w1", 1, values, nullptr, nullptr, 0) != 1 ||
        PQpipelineSync(c.conn) != 1)
      fail("send", c.conn);
    clients_[static_cast<std::size_t>(id)].sent = clock_type::now();
    c.in_flight.push_back(id);
  }

  void flush(connection& c) {
    const int left = PQflush(c.conn);
    if (left < 0) fail("flush", c.conn);
    c.wants_write = left == 1;
  }
  void flush_all() {
    for (auto& c : conns_)
      flush(*c);
  }

  void read(connection& c) {
    if (PQconsumeInput(c.conn) != 1) fail("read", c.conn);
    bool sent = false;
    while (!c.in_flight.empty() && !PQisBusy(c.conn)) {
      PGresult* r = PQgetResult(c.conn);
      if (!r) continue;  // the end of the head's query; its Sync comes next
      const ExecStatusType status = PQresultStatus(r);
      if (status == PGRES_TUPLES_OK) {
        if (PQntuples(r) != 1) fail("no such account", c.conn);
        c.got_result = true;
      } else if (status == PGRES_PIPELINE_SYNC) {
        if (!c.got_result) fail("a query without its result", c.conn);
        c.got_result = false;
        const int id = c.in_flight.front();
        c.in_flight.pop_front();
        const auto now = clock_type::now();
        if (measuring_) {
          ++ops_;
          rec_.add(now - clients_[static_cast<std::size_t>(id)].sent);
        }
        send(id);
        sent = true;
      } else {
        fail(std::string("unexpected result: ") + PQresStatus(status), c.conn);
      }
      PQclear(r);
    }
    if (sent) flush(c);
  }

  const options& o_;
  std::vector<std::unique_ptr<connection>> conns_;
  std::vector<client> clients_;
  std::mt19937 random_{42};
  std::uniform_int_distribution<int> aid_{1, 1'000'000};
  recorder rec_;
  bool measuring_ = false;
  std::uint64_t ops_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  options o = parse_options(argc, argv, "ref-libpq-pipeline");
  if (o.workload != "w1") usage("ref-libpq-pipeline", "only --workload w1");
  driver d(o, o.connections > 0 ? o.connections : 1);
  print(d.run());
  return 0;
}

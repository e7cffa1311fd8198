// The vault service over real HTTP: the binary is started on a free loopback port with each
// engine and driven by an HTTP client, then stopped with SIGTERM.
#include "support.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <random>

namespace awaitdb::test {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = asio::ip::tcp;

/// The vault binary, running on a free port, stopped (and checked) at the end.
class vault_process {
 public:
  explicit vault_process(const std::string& database, int threads = 2) {
    const char* binary = std::getenv("VAULT_BINARY");
    if (!binary) throw std::runtime_error("VAULT_BINARY is not set (run through ctest)");
    int out[2];
    if (::pipe(out) != 0) throw std::runtime_error("pipe failed");
    pid_ = ::fork();
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive a crashed test
      ::dup2(out[1], STDOUT_FILENO);
      ::close(out[0]);
      ::close(out[1]);
      std::string t = std::to_string(threads);
      ::execl(binary, binary, "--database", database.c_str(), "--port", "0", "--threads", t.c_str(),
              static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ::close(out[1]);
    stdout_ = ::fdopen(out[0], "r");
    char line[256] = {};
    if (!std::fgets(line, sizeof line, stdout_))
      throw std::runtime_error("vault exited before listening");
    std::string_view l = line;
    const std::string_view prefix = "listening on http://127.0.0.1:";
    if (!l.starts_with(prefix))
      throw std::runtime_error("unexpected first line: " + std::string(l));
    port_ = static_cast<unsigned short>(std::stoi(std::string(l.substr(prefix.size()))));
  }

  ~vault_process() {
    if (pid_ > 0) stop();
    if (stdout_) std::fclose(stdout_);
  }

  unsigned short port() const { return port_; }

  /// SIGTERM; returns the exit status.
  int stop() {
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

 private:
  pid_t pid_ = -1;
  std::FILE* stdout_ = nullptr;
  unsigned short port_ = 0;
};

/// A blocking keep-alive HTTP client (the test's own thread, not the server's event loop).
class client {
 public:
  explicit client(unsigned short port) : socket_(io_) {
    socket_.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  }

  struct reply {
    int status;
    json::value body;
    std::string text;  // the body as sent, when it is not JSON
  };

  reply send(http::verb verb, std::string target, std::string body = {}) {
    http::request<http::string_body> req(verb, target, 11);
    req.set(http::field::host, "127.0.0.1");
    req.set(http::field::content_type, "application/json");
    req.keep_alive(true);
    req.body() = std::move(body);
    req.prepare_payload();
    http::write(socket_, req);
    http::response<http::string_body> res;
    http::read(socket_, buffer_, res);
    json::value parsed;
    const bool is_json = res[http::field::content_type] == "application/json";
    if (!res.body().empty() && is_json) parsed = json::parse(res.body());
    return {static_cast<int>(res.result_int()), parsed, is_json ? std::string() : res.body()};
  }
  reply get(std::string target) { return send(http::verb::get, std::move(target)); }
  reply post(std::string target, const json::value& body) {
    return send(http::verb::post, std::move(target), json::serialize(body));
  }
  reply put(std::string target, const json::value& body) {
    return send(http::verb::put, std::move(target), json::serialize(body));
  }

 private:
  asio::io_context io_;
  tcp::socket socket_;
  beast::flat_buffer buffer_;
};

class vault_service : public testing::TestWithParam<engine_case> {
 protected:
  void SetUp() override {
    if (GetParam().name != "postgres") return;
    // The PostgreSQL database is shared with other tests: start from an empty schema.
    run([]() -> asio::awaitable<void> {
      database db = co_await open(*postgres_url());
      co_await db.execute(
          "DROP TABLE IF EXISTS activity, items, memberships, groups, users, awaitdb_migrations");
    });
  }
  void TearDown() override {
    if (!GetParam().file.empty()) remove_sqlite_file(GetParam().file);
  }
};

std::int64_t as_int(const json::value& v) {
  return v.as_int64();
}

TEST_P(vault_service, every_endpoint_answers) {
  vault_process vault(GetParam().url);
  client c(vault.port());

  auto health = c.get("/health");
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(health.body.at("status"), "ok");
  EXPECT_EQ(health.body.at("engine"), GetParam().name == "postgres" ? "postgres" : "sqlite");

  auto g1 = c.post("/groups", {{"name", "climbers"}});
  ASSERT_EQ(g1.status, 201);
  EXPECT_EQ(g1.body.at("name"), "climbers");
  const std::int64_t id1 = as_int(g1.body.at("id"));
  const std::string code(g1.body.at("join_code").as_string());
  EXPECT_EQ(code.size(), 8u);
  auto g2 = c.post("/groups", {{"name", "hikers"}});
  const std::int64_t id2 = as_int(g2.body.at("id"));
  EXPECT_NE(id1, id2);
  const std::string base1 = "/groups/" + std::to_string(id1);

  EXPECT_EQ(c.post("/groups/join", {{"code", code}, {"user", "ada"}}).status, 200);
  EXPECT_EQ(c.post("/groups/join", {{"code", code}, {"user", "ada"}}).status, 200);  // idempotent
  EXPECT_EQ(c.post("/groups/join", {{"code", code}, {"user", "grace"}}).status, 200);
  auto members = c.get(base1 + "/members");
  EXPECT_EQ(members.status, 200);
  EXPECT_EQ(members.body.at("members"), (json::array{"ada", "grace"}));

  EXPECT_EQ(c.put(base1 + "/items/rope", {{"quantity", 5}}).status, 200);
  EXPECT_EQ(c.put(base1 + "/items/ice%20axe", {{"quantity", 2}}).status, 200);
  auto vault1 = c.get(base1 + "/vault");
  EXPECT_EQ(vault1.status, 200);
  EXPECT_EQ(vault1.body.at("items"),
            (json::array{json::object{{"name", "ice axe"}, {"quantity", 2}},
                         json::object{{"name", "rope"}, {"quantity", 5}}}));

  auto moved =
      c.post("/transfers", {{"from", id1}, {"to", id2}, {"item", "rope"}, {"quantity", 3}});
  EXPECT_EQ(moved.status, 200);
  auto refused =
      c.post("/transfers", {{"from", id1}, {"to", id2}, {"item", "rope"}, {"quantity", 3}});
  EXPECT_EQ(refused.status, 409);
  EXPECT_TRUE(refused.body.at("error").is_string());
  // The refused transfer rolled back entirely.
  EXPECT_EQ(c.get(base1 + "/vault").body.at("items").as_array().at(1).at("quantity"), 2);
  EXPECT_EQ(c.get("/groups/" + std::to_string(id2) + "/vault").body.at("items"),
            (json::array{json::object{{"name", "rope"}, {"quantity", 3}}}));

  auto activity = c.get(base1 + "/activity");
  EXPECT_EQ(activity.status, 200);
  std::vector<std::string> kinds;
  std::string last_at;
  for (auto& a : activity.body.at("activity").as_array()) {
    kinds.emplace_back(a.at("kind").as_string());
    // Each line carries its time, ISO 8601 in UTC, in order.
    const std::string at(a.at("at").as_string());
    EXPECT_EQ(at.size(), 27u) << at;
    EXPECT_EQ(at.back(), 'Z') << at;
    EXPECT_GE(at, last_at);
    last_at = at;
  }
  EXPECT_EQ(kinds,
            (std::vector<std::string>{"created", "joined", "joined", "set", "set", "transfer"}));
  EXPECT_EQ(
      c.get("/groups/" + std::to_string(id2) + "/activity").body.at("activity").as_array().size(),
      2u);  // created, transfer in

  // Bad input: 400 with a JSON error, nothing changed.
  auto expect_status = [&](client::reply r, int status) {
    EXPECT_EQ(r.status, status);
    EXPECT_TRUE(r.body.is_object() && r.body.as_object().contains("error"));
  };
  expect_status(c.send(http::verb::post, "/groups", "{\"name\": "), 400);
  expect_status(c.send(http::verb::post, "/groups", "[1, 2]"), 400);
  expect_status(c.post("/groups", json::object{}), 400);
  expect_status(c.post("/groups", {{"name", 7}}), 400);
  expect_status(c.put(base1 + "/items/rope", {{"quantity", -1}}), 400);
  expect_status(c.put(base1 + "/items/rope", {{"quantity", "many"}}), 400);
  expect_status(
      c.post("/transfers", {{"from", id1}, {"to", id2}, {"item", "rope"}, {"quantity", 0}}), 400);
  expect_status(
      c.post("/transfers", {{"from", id1}, {"to", id1}, {"item", "rope"}, {"quantity", 1}}), 400);
  expect_status(c.post("/transfers", {{"from", id1}, {"item", "rope"}, {"quantity", 1}}), 400);
  // Unknown groups and routes: 404.
  expect_status(c.get("/groups/999999/vault"), 404);
  expect_status(c.get("/groups/999999/members"), 404);
  expect_status(c.put("/groups/999999/items/rope", {{"quantity", 1}}), 404);
  expect_status(c.post("/groups/join", {{"code", "NOPE0000"}, {"user", "ada"}}), 404);
  expect_status(
      c.post("/transfers", {{"from", id1}, {"to", 999999}, {"item", "rope"}, {"quantity", 1}}),
      404);
  expect_status(c.get("/nowhere"), 404);
  expect_status(c.get("/groups/abc/vault"), 404);
  expect_status(c.send(http::verb::delete_, base1 + "/vault"), 404);
  EXPECT_EQ(c.get(base1 + "/vault").body.at("items").as_array().at(1).at("quantity"), 2);

  // What the database did, for Prometheus (the format itself is checked by metrics_test).
  auto metrics = c.get("/metrics");
  EXPECT_EQ(metrics.status, 200);
  EXPECT_NE(metrics.text.find("# TYPE awaitdb_statements_total counter\nawaitdb_statements_total "),
            std::string::npos)
      << metrics.text;
  EXPECT_NE(metrics.text.find("awaitdb_statement_duration_seconds_bucket{le=\"+Inf\"} "),
            std::string::npos)
      << metrics.text;
  EXPECT_NE(metrics.text.find("awaitdb_pool_connections{state=\"idle\"} "), std::string::npos)
      << metrics.text;

  // An oversized body: 413, and the server stays up.
  {
    client big(vault.port());
    auto r = big.send(http::verb::post, "/groups", std::string(100 * 1024, 'x'));
    EXPECT_EQ(r.status, 413);
  }
  EXPECT_EQ(client(vault.port()).get("/health").status, 200);

  EXPECT_EQ(vault.stop(), 0);
}

TEST_P(vault_service, concurrent_transfers_keep_the_invariant) {
  vault_process vault(GetParam().url, 2);
  constexpr int groups = 4, clients = 8;
  const std::vector<std::string> item_names{"rope", "tent"};
  std::vector<std::int64_t> ids;
  std::map<std::string, std::int64_t> totals;
  {
    client setup(vault.port());
    for (int g = 0; g < groups; ++g) {
      ids.push_back(
          as_int(setup.post("/groups", {{"name", "g" + std::to_string(g)}}).body.at("id")));
      for (const auto& item : item_names) {
        ASSERT_EQ(
            setup
                .put("/groups/" + std::to_string(ids.back()) + "/items/" + item, {{"quantity", 50}})
                .status,
            200);
        totals[item] += 50;
      }
    }
  }
  std::atomic<int> succeeded{0}, refused{0}, failed{0};
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < clients; ++t)
    threads.emplace_back([&, t] {
      client c(vault.port());
      std::mt19937 random(t);
      while (std::chrono::steady_clock::now() < until) {
        int from = random() % groups, to = random() % groups;
        if (from == to) continue;
        auto r = c.post("/transfers", {{"from", ids[from]},
                                       {"to", ids[to]},
                                       {"item", item_names[random() % 2]},
                                       {"quantity", 1 + random() % 20}});
        if (r.status == 200)
          ++succeeded;
        else if (r.status == 409)
          ++refused;
        else
          ++failed;
      }
    });
  for (auto& t : threads)
    t.join();
  std::printf("[ vault   ] %s: %d transfers, %d refused (409), %d failed\n",
              GetParam().name.c_str(), succeeded.load(), refused.load(), failed.load());
  EXPECT_EQ(failed, 0);
  EXPECT_GT(succeeded, 100);

  client c(vault.port());
  std::map<std::string, std::int64_t> seen;
  std::size_t transfer_rows = 0;
  for (std::int64_t id : ids) {
    auto vault_reply = c.get("/groups/" + std::to_string(id) + "/vault");
    for (auto& i : vault_reply.body.at("items").as_array()) {
      std::int64_t q = as_int(i.at("quantity"));
      EXPECT_GE(q, 0);
      seen[std::string(i.at("name").as_string())] += q;
    }
    // Each transfer is logged once, in its source group's activity (and shown in the target's).
    auto activity_reply = c.get("/groups/" + std::to_string(id) + "/activity");
    for (auto& a : activity_reply.body.at("activity").as_array())
      if (a.at("kind") == "transfer" && as_int(a.at("group")) == id) ++transfer_rows;
  }
  EXPECT_EQ(seen, totals);
  EXPECT_EQ(transfer_rows, static_cast<std::size_t>(succeeded.load()));
  EXPECT_EQ(vault.stop(), 0);
}

// The schema comes from migrations: the first instance applies them, a second one started on the
// same database finds them applied and serves the same data.
TEST_P(vault_service, a_second_instance_finds_the_schema_migrated) {
  vault_process first(GetParam().url);
  auto made = client(first.port()).post("/groups", {{"name", "climbers"}});
  ASSERT_EQ(made.status, 201);
  const std::string vault_of = "/groups/" + std::to_string(as_int(made.body.at("id"))) + "/vault";
  vault_process second(GetParam().url);
  EXPECT_EQ(client(second.port()).get(vault_of).status, 200);
  EXPECT_EQ(second.stop(), 0);
  EXPECT_EQ(first.stop(), 0);
  run([&]() -> asio::awaitable<void> {
    database db = co_await open(GetParam().url);
    result r = co_await db.query("SELECT version, name, state FROM awaitdb_migrations");
    CO_ASSERT(r.size() == 1);
    EXPECT_EQ(r[0].get<std::int64_t>(0), 1);
    EXPECT_EQ(r[0].get<std::string>(1), "schema");
    EXPECT_EQ(r[0].get<std::string>(2), "applied");
  });
}

INSTANTIATE_TEST_SUITE_P(engines, vault_service, testing::ValuesIn([] {
                           std::vector<engine_case> out;
                           for (auto& e : engine_cases())
                             if (e.name != "sqlite_memory") out.push_back(e);
                           return out;
                         }()),
                         engine_case_name);

}  // namespace
}  // namespace awaitdb::test

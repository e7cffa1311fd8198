#include "server.hpp"

#include "store.hpp"
#include <awaitdb/metrics.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>

#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <set>
#include <string_view>
#include <vector>

namespace vault {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = asio::ip::tcp;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

using request = http::request<http::string_body>;
using response = http::response<http::string_body>;

response json_response(http::status status, const json::value& body, const request& req) {
  response res(status, req.version());
  res.set(http::field::server, "vault");
  res.set(http::field::content_type, "application/json");
  res.keep_alive(req.keep_alive());
  res.body() = json::serialize(body);
  res.prepare_payload();
  return res;
}

json::object error_body(std::string_view message) {
  return json::object{{"error", message}};
}

// ---- request parsing: every failure is a 400 that names the problem

json::object parse_object(const request& req) {
  json::error_code ec;
  json::value v = json::parse(req.body(), ec);
  if (ec) throw request_error(400, "malformed JSON: " + ec.message());
  if (!v.is_object()) throw request_error(400, "the body must be a JSON object");
  return std::move(v.as_object());
}

std::string string_field(const json::object& o, std::string_view name) {
  const json::value* v = o.if_contains(name);
  if (!v) throw request_error(400, "missing field \"" + std::string(name) + "\"");
  if (!v->is_string()) throw request_error(400, "\"" + std::string(name) + "\" must be a string");
  std::string s(v->as_string());
  if (s.empty()) throw request_error(400, "\"" + std::string(name) + "\" must not be empty");
  if (s.size() > 200) throw request_error(400, "\"" + std::string(name) + "\" is too long");
  return s;
}

std::int64_t integer_field(const json::object& o, std::string_view name) {
  const json::value* v = o.if_contains(name);
  if (!v) throw request_error(400, "missing field \"" + std::string(name) + "\"");
  if (v->is_int64()) return v->as_int64();
  if (v->is_uint64() && v->as_uint64() <= static_cast<std::uint64_t>(INT64_MAX))
    return static_cast<std::int64_t>(v->as_uint64());
  throw request_error(400, "\"" + std::string(name) + "\" must be an integer");
}

std::int64_t quantity_field(const json::object& o, std::string_view name, bool allow_zero) {
  std::int64_t q = integer_field(o, name);
  if (q < 0 || (!allow_zero && q == 0))
    throw request_error(
        400, "\"" + std::string(name) + "\" must be " + (allow_zero ? "zero or more" : "positive"));
  if (q > 1'000'000'000'000) throw request_error(400, "\"" + std::string(name) + "\" is too large");
  return q;
}

std::vector<std::string_view> split_path(std::string_view target) {
  target = target.substr(0, target.find('?'));
  std::vector<std::string_view> parts;
  while (!target.empty()) {
    if (target.front() == '/') {
      target.remove_prefix(1);
      continue;
    }
    std::size_t slash = target.find('/');
    parts.push_back(target.substr(0, slash));
    target = slash == std::string_view::npos ? std::string_view() : target.substr(slash);
  }
  return parts;
}

std::optional<std::int64_t> path_id(std::string_view s) {
  std::int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v <= 0) return std::nullopt;
  return v;
}

// "2026-12-01T21:13:24.123456Z"
std::string iso8601(std::chrono::system_clock::time_point t) {
  using namespace std::chrono;
  const auto micros = floor<microseconds>(t);
  const auto day = floor<days>(micros);
  const year_month_day ymd(day);
  const hh_mm_ss hms(micros - day);
  char out[40];
  std::snprintf(out, sizeof out, "%04d-%02u-%02uT%02d:%02d:%02d.%06dZ", int(ymd.year()),
                unsigned(ymd.month()), unsigned(ymd.day()), int(hms.hours().count()),
                int(hms.minutes().count()), int(hms.seconds().count()),
                int(hms.subseconds().count()));
  return out;
}

std::string percent_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      int v = 0;
      auto [end, ec] = std::from_chars(s.data() + i + 1, s.data() + i + 3, v, 16);
      if (ec != std::errc() || end != s.data() + i + 3) throw request_error(400, "bad escape");
      out += static_cast<char>(v);
      i += 2;
    } else {
      out += s[i];
    }
  }
  if (out.empty() || out.size() > 200) throw request_error(400, "bad item name");
  return out;
}

[[noreturn]] void not_found() {
  throw request_error(404, "no such route");
}

// ---- routing

// What the database did, for Prometheus to scrape.
response metrics_response(const awaitdb::database& db, const awaitdb::statement_metrics& metrics,
                          const request& req) {
  response res(http::status::ok, req.version());
  res.set(http::field::server, "vault");
  res.set(http::field::content_type, "text/plain; version=0.0.4");
  res.keep_alive(req.keep_alive());
  res.body() = awaitdb::prometheus_text(metrics.read(), db.stats());
  res.prepare_payload();
  return res;
}

asio::awaitable<response> route(const awaitdb::database& db,
                                const awaitdb::statement_metrics& metrics, const request& req) {
  const auto parts = split_path(req.target());
  const auto method = req.method();
  auto is = [&](std::initializer_list<std::string_view> shape) {
    if (parts.size() != shape.size()) return false;
    std::size_t i = 0;
    for (std::string_view p : shape) {
      if (p != "*" && p != parts[i]) return false;
      ++i;
    }
    return true;
  };

  if (is({"metrics"}) && method == http::verb::get) co_return metrics_response(db, metrics, req);
  if (is({"health"}) && method == http::verb::get) {
    co_return json_response(
        http::status::ok,
        json::object{{"status", "ok"},
                     {"engine", db.engine() == awaitdb::engine::sqlite ? "sqlite" : "postgres"}},
        req);
  }
  if (is({"groups"}) && method == http::verb::post) {
    json::object body = parse_object(req);
    group g = co_await create_group(db, string_field(body, "name"));
    co_return json_response(
        http::status::created,
        json::object{{"id", g.id}, {"name", g.name}, {"join_code", g.join_code}}, req);
  }
  if (is({"groups", "join"}) && method == http::verb::post) {
    json::object body = parse_object(req);
    std::string code = string_field(body, "code");
    std::string user = string_field(body, "user");
    std::int64_t id = co_await join_group(db, code, user);
    co_return json_response(http::status::ok, json::object{{"group", id}, {"user", user}}, req);
  }
  if (is({"transfers"}) && method == http::verb::post) {
    json::object body = parse_object(req);
    std::int64_t from = integer_field(body, "from"), to = integer_field(body, "to");
    std::string item = string_field(body, "item");
    std::int64_t quantity = quantity_field(body, "quantity", false);
    co_await transfer(db, from, to, item, quantity);
    co_return json_response(
        http::status::ok,
        json::object{{"from", from}, {"to", to}, {"item", item}, {"quantity", quantity}}, req);
  }
  if (parts.size() >= 3 && parts[0] == "groups") {
    std::optional<std::int64_t> id = path_id(parts[1]);
    if (!id) not_found();
    if (is({"groups", "*", "members"}) && method == http::verb::get) {
      json::array names;
      for (auto& n : co_await members(db, *id))
        names.emplace_back(n);
      co_return json_response(http::status::ok, json::object{{"members", names}}, req);
    }
    if (is({"groups", "*", "vault"}) && method == http::verb::get) {
      json::array list;
      for (auto& i : co_await items(db, *id))
        list.emplace_back(json::object{{"name", i.name}, {"quantity", i.quantity}});
      co_return json_response(http::status::ok, json::object{{"items", list}}, req);
    }
    if (is({"groups", "*", "activity"}) && method == http::verb::get) {
      json::array list;
      for (auto& a : co_await activity(db, *id)) {
        json::object o{
            {"id", a.id}, {"kind", a.kind}, {"group", a.from_group}, {"at", iso8601(a.at)}};
        if (a.user) o["user"] = *a.user;
        if (a.item) o["item"] = *a.item;
        if (a.quantity) o["quantity"] = *a.quantity;
        if (a.to_group) o["to"] = *a.to_group;
        list.emplace_back(std::move(o));
      }
      co_return json_response(http::status::ok, json::object{{"activity", list}}, req);
    }
    if (is({"groups", "*", "items", "*"}) && method == http::verb::put) {
      std::string item = percent_decode(parts[3]);
      json::object body = parse_object(req);
      std::int64_t quantity = quantity_field(body, "quantity", true);
      co_await set_quantity(db, *id, item, quantity);
      co_return json_response(http::status::ok,
                              json::object{{"name", item}, {"quantity", quantity}}, req);
    }
  }
  not_found();
}

asio::awaitable<response> handle(const awaitdb::database& db,
                                 const awaitdb::statement_metrics& metrics, const request& req) {
  int status = 500;
  std::string message;
  try {
    co_return co_await route(db, metrics, req);
  } catch (const request_error& e) {
    status = e.status();
    message = e.what();
  } catch (const awaitdb::error& e) {
    // Logged here, not sent: the client gets no SQL and no server detail. awaitdb's what()
    // carries neither passwords nor parameter values.
    std::fprintf(stderr, "vault: %s %s: database error: %s\n",
                 std::string(req.method_string()).c_str(), std::string(req.target()).c_str(),
                 e.what());
    status = e.is_connection_error() || e.sqlstate() == "53300" ? 503 : 500;
    message = status == 503 ? "database unavailable" : "internal error";
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vault: %s %s: %s\n", std::string(req.method_string()).c_str(),
                 std::string(req.target()).c_str(), e.what());
    message = "internal error";
  }
  co_return json_response(static_cast<http::status>(status), error_body(message), req);
}

struct session {
  explicit session(tcp::socket socket) : stream(std::move(socket)) {}
  beast::tcp_stream stream;
  bool reading = false;  // waiting for a request: may be closed at shutdown
};

}  // namespace

struct server::impl : std::enable_shared_from_this<server::impl> {
  impl(asio::any_io_executor ex, awaitdb::database database, server_options opts)
      : executor(ex)
      , db(std::move(database))
      , metrics(std::make_shared<awaitdb::statement_metrics>())
      , options(std::move(opts))
      , strand(asio::make_strand(ex))
      , acceptor(strand)
      , drained(strand) {
    db.set_observer(metrics);  // counted from here on, served at /metrics
  }

  asio::any_io_executor executor;
  awaitdb::database db;
  std::shared_ptr<awaitdb::statement_metrics> metrics;
  server_options options;
  asio::strand<asio::any_io_executor> strand;  // the acceptor, `sessions`, `stopping`
  tcp::acceptor acceptor;
  asio::steady_timer drained;  // fires when the last session ends after stop()
  std::set<std::shared_ptr<session>> sessions;
  std::atomic<bool> stopping{false};

  asio::awaitable<void> serve(std::shared_ptr<session> s) {
    beast::flat_buffer buffer;
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.body_limit(options.body_limit);
      s->reading = true;
      s->stream.expires_after(std::chrono::seconds(60));  // idle keep-alive connections end
      auto [ec, n] = co_await http::async_read(s->stream, buffer, parser, use_tuple);
      s->reading = false;
      if (ec == http::error::body_limit) {
        request req;
        req.version(11);
        response res = json_response(http::status::payload_too_large,
                                     error_body("request body too large"), req);
        res.keep_alive(false);
        co_await http::async_write(s->stream, res, use_tuple);
        break;
      }
      if (ec) break;  // closed, timed out, malformed, or closed at shutdown
      const request& req = parser.get();
      s->stream.expires_never();  // a handler may wait on the database as long as it needs
      response res = co_await handle(db, *metrics, req);
      auto [wec, wn] = co_await http::async_write(s->stream, res, use_tuple);
      if (wec || !res.keep_alive() || stopping) break;
    }
    beast::error_code ignored;
    s->stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  }

  void session_ended(const std::shared_ptr<session>& s) {
    asio::post(strand, [self = shared_from_this(), s] {
      self->sessions.erase(s);
      if (self->stopping && self->sessions.empty()) self->drained.cancel();
    });
  }
};

server::server(asio::any_io_executor executor, awaitdb::database db, server_options options)
    : impl_(std::make_shared<impl>(std::move(executor), std::move(db), std::move(options))) {}

server::~server() = default;

std::uint16_t server::listen() {
  tcp::endpoint endpoint(asio::ip::make_address(impl_->options.address), impl_->options.port);
  impl_->acceptor.open(endpoint.protocol());
  impl_->acceptor.set_option(tcp::acceptor::reuse_address(true));
  impl_->acceptor.bind(endpoint);
  impl_->acceptor.listen();
  return impl_->acceptor.local_endpoint().port();
}

asio::awaitable<void> server::run() {
  std::shared_ptr<impl> self = impl_;
  // Runs on the server's strand: the acceptor and the session set are touched only there.
  // (A named lambda: GCC 12 destroys the captures of one written inside co_await twice.)
  auto accept_loop = [self]() -> asio::awaitable<void> {
    for (;;) {
      auto [ec, socket] =
          co_await self->acceptor.async_accept(asio::make_strand(self->executor), use_tuple);
      if (self->stopping) break;
      if (ec) {
        if (ec == asio::error::operation_aborted) break;
        std::fprintf(stderr, "vault: accept: %s\n", ec.message().c_str());
        continue;
      }
      auto s = std::make_shared<session>(std::move(socket));
      self->sessions.insert(s);
      asio::co_spawn(s->stream.get_executor(), self->serve(s),
                     [self, s](std::exception_ptr) { self->session_ended(s); });
    }
    // Requests in flight finish; then the server is done.
    if (!self->sessions.empty()) {
      self->drained.expires_at(asio::steady_timer::time_point::max());
      co_await self->drained.async_wait(use_tuple);
    }
  };
  co_await asio::co_spawn(self->strand, std::move(accept_loop), asio::use_awaitable);
}

void server::stop() {
  asio::post(impl_->strand, [self = impl_] {
    if (self->stopping) return;
    self->stopping = true;
    beast::error_code ignored;
    self->acceptor.close(ignored);
    for (const auto& s : self->sessions)
      asio::post(s->stream.get_executor(), [s] {
        if (s->reading) s->stream.cancel();  // idle: close; busy: finishes its request
      });
  });
}

}  // namespace vault

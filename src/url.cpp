#include "url.hpp"

#include "text_forms.hpp"
#include <awaitdb/error.hpp>

#include <charconv>
#include <optional>
#include <vector>

namespace awaitdb::detail {
namespace {

// Thrown while parsing; `parse_url` turns it into an `awaitdb::error` with passwords scrubbed.
struct url_problem {
  std::string why;
};

[[noreturn]] void bad_url(const std::string& why) {
  throw url_problem{why};
}

std::string percent_decode(std::string_view in, std::string_view what) {
  std::string out;
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out += in[i];
      continue;
    }
    const std::optional<char> byte = percent_escape_at(in, i);
    if (!byte) bad_url("malformed percent-encoding in the " + std::string(what));
    out += *byte;
    i += 2;
  }
  return out;
}

struct option {
  std::string_view raw;  // "key=value" as written
  std::string key;
  std::string value;
};

std::vector<option> split_query(std::string_view query) {
  std::vector<option> out;
  while (!query.empty()) {
    std::size_t amp = query.find('&');
    std::string_view part = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (part.empty()) continue;
    std::size_t eq = part.find('=');
    if (eq == std::string_view::npos || eq == 0)
      bad_url("option \"" + percent_decode(part.substr(0, eq), "option name") + "\" has no value");
    out.push_back({part, percent_decode(part.substr(0, eq), "option name"),
                   percent_decode(part.substr(eq + 1), "option value")});
  }
  return out;
}

std::size_t to_count(const option& o, std::size_t min, std::size_t max) {
  std::size_t v = 0;
  auto [end, ec] = std::from_chars(o.value.data(), o.value.data() + o.value.size(), v);
  if (ec != std::errc() || end != o.value.data() + o.value.size() || v < min || v > max)
    bad_url("option " + o.key + "=" + o.value + " must be a whole number from " +
            std::to_string(min) + " to " + std::to_string(max));
  return v;
}

bool to_bool(const option& o) {
  if (o.value == "on" || o.value == "true" || o.value == "1" || o.value == "yes") return true;
  if (o.value == "off" || o.value == "false" || o.value == "0" || o.value == "no") return false;
  bad_url("option " + o.key + "=" + o.value + " must be on or off");
}

sqlite_options parse_sqlite(std::string_view rest) {
  sqlite_options out;
  std::size_t q = rest.find('?');
  std::string_view path = rest.substr(0, q);
  std::string_view query = q == std::string_view::npos ? std::string_view() : rest.substr(q + 1);
  if (path.starts_with("//")) path.remove_prefix(2);  // sqlite:///abs/path.db
  if (path.empty()) bad_url("an sqlite: URL needs a file path or :memory:");
  out.path = percent_decode(path, "path");
  if (out.path.find('\0') != std::string::npos) bad_url("the path contains a NUL byte");
  out.memory = out.path == ":memory:";
  for (const option& o : split_query(query)) {
    if (o.key == "mode") {
      if (o.value == "ro")
        out.mode = sqlite_options::access::read_only;
      else if (o.value == "rw")
        out.mode = sqlite_options::access::read_write;
      else if (o.value == "rwc")
        out.mode = sqlite_options::access::read_write_create;
      else
        bad_url("option mode=" + o.value + " must be ro, rw or rwc");
    } else if (o.key == "busy_timeout") {
      out.busy_timeout = std::chrono::milliseconds(to_count(o, 0, 3'600'000));
    } else if (o.key == "statement_cache_size") {
      out.statement_cache_size = to_count(o, 0, 100'000);
    } else if (o.key == "foreign_keys") {
      out.foreign_keys = to_bool(o);
    } else if (o.key == "readers") {
      out.readers = to_count(o, 0, 64);
    } else if (o.key == "journal_mode") {
      static constexpr std::string_view modes[] = {"wal",     "delete", "truncate",
                                                   "persist", "memory", "off"};
      bool known = false;
      for (auto m : modes)
        known = known || o.value == m;
      if (!known) bad_url("option journal_mode=" + o.value + " is not an SQLite journal mode");
      out.journal_mode = o.value;
    } else {
      bad_url("unknown sqlite option \"" + o.key +
              "\" (known: mode, busy_timeout, statement_cache_size, foreign_keys, "
              "journal_mode, readers)");
    }
  }
  if (out.memory && out.mode == sqlite_options::access::read_only)
    bad_url("an in-memory database cannot be opened read-only");
  return out;
}

postgres_options parse_postgres(std::string_view url) {
  postgres_options out;
  out.secrets = secret_scrubber(url);
  out.display_name = out.secrets.scrub(url);
  std::size_t q = url.find('?');
  std::string_view base = url.substr(0, q);
  std::size_t scheme_end = base.find("://");
  std::string_view authority = base.substr(scheme_end + 3);
  authority = authority.substr(0, authority.find('/'));
  // libpq accepts an empty host (Unix socket) and several hosts; it validates the rest.
  if (authority.find_first_of(" \t\r\n") != std::string_view::npos)
    bad_url("white space in the host part of " + out.display_name);

  std::string passthrough;
  bool named_statements_given = false;
  bool pipeline_given = false;
  std::string_view query = q == std::string_view::npos ? std::string_view() : url.substr(q + 1);
  for (const option& o : split_query(query)) {
    if (o.key == "pool_max_size") {
      out.pool_max_size = to_count(o, 1, 10'000);
    } else if (o.key == "pool_acquire_timeout_ms") {
      out.pool_acquire_timeout = std::chrono::milliseconds(to_count(o, 1, 86'400'000));
    } else if (o.key == "connect_timeout") {
      // libpq's own option, in seconds; libpq does not enforce it on non-blocking connections,
      // so awaitdb takes it over.
      out.connect_timeout = std::chrono::seconds(to_count(o, 1, 86'400));
    } else if (o.key == "statement_timeout_ms") {
      out.statement_timeout = std::chrono::milliseconds(to_count(o, 0, 86'400'000));
    } else if (o.key == "named_statements") {
      out.named_statements = to_bool(o);
      named_statements_given = true;
    } else if (o.key == "pgbouncer") {
      out.pgbouncer = to_bool(o);
    } else if (o.key == "replica_reads") {
      out.replica_reads = to_bool(o);
    } else if (o.key == "statement_cache_size") {
      out.statement_cache_size = to_count(o, 0, 100'000);
    } else if (o.key == "pipeline") {
      out.pipeline = to_bool(o);
      pipeline_given = true;
    } else if (o.key == "pipeline_depth") {
      out.pipeline_depth = to_count(o, 1, 100'000);
    } else if (o.key == "pipeline_stall_ms") {
      out.stall_threshold = std::chrono::milliseconds(to_count(o, 0, 86'400'000));
    } else if (o.key == "pool_min_size") {
      out.pool_min_size = to_count(o, 0, 10'000);
    } else if (o.key == "pool_max_lifetime_ms") {
      out.pool_max_lifetime = std::chrono::milliseconds(to_count(o, 0, 864'000'000));
    } else if (o.key == "pool_idle_timeout_ms") {
      out.pool_idle_timeout = std::chrono::milliseconds(to_count(o, 0, 864'000'000));
    } else if (o.key == "connect_backoff_ms") {
      out.connect_backoff = std::chrono::milliseconds(to_count(o, 0, 3'600'000));
    } else if (o.key == "connect_backoff_max_ms") {
      out.connect_backoff_max = std::chrono::milliseconds(to_count(o, 0, 3'600'000));
    } else {
      passthrough += passthrough.empty() ? '?' : '&';
      passthrough += o.raw;
    }
  }
  if (out.pool_min_size > out.pool_max_size)
    bad_url("pool_min_size (" + std::to_string(out.pool_min_size) + ") is above pool_max_size (" +
            std::to_string(out.pool_max_size) + ") in " + out.display_name);
  if (out.pgbouncer) {
    // PgBouncer before 1.21 (and with max_prepared_statements = 0) passes a Parse of a named
    // statement to whichever server connection it picks: a later Bind may land elsewhere.
    if (!named_statements_given) out.named_statements = false;
    // PgBouncer before 1.21 gives the server connection back to its pool at the first
    // ReadyForQuery outside a transaction, so results of further Syncs in flight are lost
    // (pgbouncer#759): one statement at a time per connection.
    if (!pipeline_given) out.pipeline = false;
    // A session SET would stay on the one server connection it ran on, for other clients.
    if (out.statement_timeout.count() > 0)
      bad_url(
          "statement_timeout_ms cannot be applied through a transaction pooler "
          "(pgbouncer=on): a session SET would stay on one server connection; set it for "
          "the role (ALTER ROLE ... SET statement_timeout), or use awaitdb::with_timeout");
  }
  if (!out.named_statements) out.statement_cache_size = 0;
  out.libpq_url = std::string(base) + passthrough;
  return out;
}

}  // namespace

std::string redact_url(std::string_view url) {
  return secret_scrubber(url).scrub(url);
}

database_options parse_url(std::string_view url) {
  try {
    if (url.find('\0') != std::string_view::npos) bad_url("the URL contains a NUL byte");
    if (url.starts_with("sqlite:")) return parse_sqlite(url.substr(7));
    if (url.starts_with("postgresql://") || url.starts_with("postgres://"))
      return parse_postgres(url);
    std::size_t colon = url.find(':');
    if (colon == std::string_view::npos || colon == 0)
      bad_url("\"" + std::string(url) +
              "\" has no scheme; use sqlite:PATH, sqlite::memory: or postgresql://...");
    bad_url("unsupported scheme \"" + std::string(url.substr(0, colon)) +
            "\"; use sqlite: or postgresql://");
  } catch (const url_problem& p) {
    throw error(sqlstate::invalid_url,
                "invalid database URL: " + secret_scrubber(url).scrub(p.why));
  }
}

}  // namespace awaitdb::detail

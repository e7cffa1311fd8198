// awaitdb::prometheus_text: a database's figures in Prometheus' text exposition format, read
// back by a parser of that format written here (the rules of its version 0.0.4: comments,
// names, escaped label values, one TYPE per family before its samples, no series twice,
// histograms with cumulative buckets ending at +Inf equal to _count).
#include "support.hpp"
#include <awaitdb/metrics.hpp>

#include <cctype>
#include <cmath>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>

namespace awaitdb::test {
namespace {

struct series {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

bool valid_name(std::string_view s) {
  if (s.empty()) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (!(std::isalpha(static_cast<unsigned char>(c)) || c == '_' || c == ':' ||
          (i > 0 && std::isdigit(static_cast<unsigned char>(c)))))
      return false;
  }
  return true;
}

double parse_value(const std::string& text) {
  if (text == "+Inf") return INFINITY;
  if (text == "-Inf") return -INFINITY;
  std::size_t used = 0;
  const double v = std::stod(text, &used);
  if (used != text.size()) throw std::runtime_error("bad value: " + text);
  return v;
}

// Parses the exposition; throws std::runtime_error naming the first rule a line breaks.
std::vector<series> parse_exposition(const std::string& text) {
  std::vector<series> out;
  std::map<std::string, std::string> types;  // family -> type
  std::set<std::string> seen;                // series already given
  std::size_t at = 0;
  if (text.empty() || text.back() != '\n') throw std::runtime_error("must end with a newline");
  while (at < text.size()) {
    const std::size_t end = text.find('\n', at);
    const std::string line = text.substr(at, end - at);
    at = end + 1;
    if (line.starts_with("# ")) {
      const auto space1 = line.find(' ', 2), space2 = line.find(' ', space1 + 1);
      const std::string keyword = line.substr(2, space1 - 2);
      const std::string name = line.substr(space1 + 1, space2 - space1 - 1);
      if (!valid_name(name)) throw std::runtime_error("bad name in: " + line);
      if (keyword == "TYPE") {
        const std::string type = line.substr(space2 + 1);
        if (type != "counter" && type != "gauge" && type != "histogram")
          throw std::runtime_error("bad type in: " + line);
        if (!types.emplace(name, type).second) throw std::runtime_error("TYPE twice: " + line);
      } else if (keyword != "HELP") {
        throw std::runtime_error("unknown comment: " + line);
      }
      continue;
    }
    series s;
    std::size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ')
      ++i;
    s.name = line.substr(0, i);
    if (!valid_name(s.name)) throw std::runtime_error("bad metric name in: " + line);
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (line.at(i) != '}') {
        const std::size_t eq = line.find('=', i);
        const std::string label = line.substr(i, eq - i);
        if (!valid_name(label) || label.find(':') != std::string::npos)
          throw std::runtime_error("bad label name in: " + line);
        if (line.at(eq + 1) != '"') throw std::runtime_error("unquoted label in: " + line);
        std::string value;
        std::size_t j = eq + 2;
        for (; line.at(j) != '"'; ++j) {
          if (line[j] == '\\') {
            const char next = line.at(++j);
            if (next == 'n')
              value += '\n';
            else if (next == '\\' || next == '"')
              value += next;
            else
              throw std::runtime_error("bad escape in: " + line);
          } else {
            value += line[j];
          }
        }
        if (!s.labels.emplace(label, value).second)
          throw std::runtime_error("label twice in: " + line);
        i = j + 1;
        if (line.at(i) == ',') ++i;
      }
      ++i;
    }
    if (line.at(i) != ' ') throw std::runtime_error("no value in: " + line);
    s.value = parse_value(line.substr(i + 1));
    // The family: the name itself, or a histogram's without _bucket/_sum/_count.
    std::string family = s.name;
    for (std::string_view suffix : {"_bucket", "_sum", "_count"})
      if (!types.contains(family) && family.ends_with(suffix))
        family = family.substr(0, family.size() - suffix.size());
    if (!types.contains(family)) throw std::runtime_error("no TYPE before: " + line);
    std::string key = s.name;
    for (const auto& [k, v] : s.labels)
      key += "|" + k + "=" + v;
    if (!seen.insert(key).second) throw std::runtime_error("series twice: " + line);
    out.push_back(std::move(s));
  }
  return out;
}

// A histogram's buckets (less the `le` label, the rest equal), checked; its _count.
double check_histogram(const std::vector<series>& all, const std::string& name) {
  double last_le = -INFINITY, last_count = 0, count = -1;
  bool inf = false;
  for (const series& s : all) {
    if (s.name == name + "_bucket") {
      const double le = parse_value(s.labels.at("le"));
      EXPECT_GT(le, last_le) << name << ": buckets out of order";
      EXPECT_GE(s.value, last_count) << name << ": buckets not cumulative";
      last_le = le;
      last_count = s.value;
      inf = std::isinf(le);
    } else if (s.name == name + "_count") {
      count = s.value;
    }
  }
  EXPECT_TRUE(inf) << name << ": no +Inf bucket";
  EXPECT_EQ(last_count, count) << name << ": +Inf bucket and _count differ";
  return count;
}

double value_of(const std::vector<series>& all, const std::string& name,
                const std::map<std::string, std::string>& labels) {
  for (const series& s : all)
    if (s.name == name && s.labels == labels) return s.value;
  ADD_FAILURE() << "no series " << name;
  return -1;
}

TEST(metrics, prometheus_text_follows_the_format_and_counts_what_ran) {
  run([]() -> asio::awaitable<void> {
    database db = co_await open("sqlite::memory:");
    auto metrics = std::make_shared<statement_metrics>();
    db.set_observer(metrics);
    co_await db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER NOT NULL)");
    for (int i = 0; i < 8; ++i)
      co_await db.execute("INSERT INTO t (v) VALUES ($1)", i);
    co_await expect_sqlstate("23502", [&]() -> asio::awaitable<void> {
      co_await db.execute("INSERT INTO t (v) VALUES (NULL)");
    });
    co_await expect_sqlstate(
        "42P01", [&]() -> asio::awaitable<void> { co_await db.query("SELECT * FROM missing"); });
    prometheus_options options;
    options.labels = {{"db", "in \"memory\"\n\\"}};
    const std::string text = prometheus_text(metrics->read(), db.stats(), options);
    std::vector<series> all;
    try {
      all = parse_exposition(text);
    } catch (const std::exception& e) {
      ADD_FAILURE() << e.what() << "\n" << text;
      co_return;
    }
    const std::map<std::string, std::string> db_label{{"db", "in \"memory\"\n\\"}};
    EXPECT_EQ(value_of(all, "awaitdb_statements_total", db_label), 11);
    EXPECT_EQ(value_of(all, "awaitdb_statement_failures_total",
                       {{"db", db_label.at("db")}, {"class", "23"}}),
              1);
    EXPECT_EQ(value_of(all, "awaitdb_statement_failures_total",
                       {{"db", db_label.at("db")}, {"class", "42"}}),
              1);
    EXPECT_EQ(check_histogram(all, "awaitdb_statement_duration_seconds"), 11);
    EXPECT_GT(value_of(all, "awaitdb_statement_duration_seconds_sum", db_label), 0);
    EXPECT_EQ(check_histogram(all, "awaitdb_acquire_wait_seconds"), 0);
    EXPECT_EQ(
        value_of(all, "awaitdb_pool_connections", {{"db", db_label.at("db")}, {"state", "idle"}}),
        1);
    EXPECT_EQ(value_of(all, "awaitdb_pool_waiting", db_label), 0);
    co_await db.close();
  });
}

TEST(metrics, names_prometheus_refuses_are_refused) {
  const statement_metrics::snapshot none;
  prometheus_options bad_prefix;
  bad_prefix.prefix = "2fast";
  EXPECT_THROW(prometheus_text(none, {}, bad_prefix), std::invalid_argument);
  prometheus_options bad_label;
  bad_label.labels = {{"le", "x"}};
  EXPECT_THROW(prometheus_text(none, {}, bad_label), std::invalid_argument);
  bad_label.labels = {{"a-b", "x"}};
  EXPECT_THROW(prometheus_text(none, {}, bad_label), std::invalid_argument);
  prometheus_options custom;
  custom.prefix = "app_db";
  const std::string text = prometheus_text(none, {}, custom);
  EXPECT_NE(text.find("\napp_db_statements_total 0\n"), std::string::npos) << text;
  EXPECT_NO_THROW(parse_exposition(text));
}

}  // namespace
}  // namespace awaitdb::test

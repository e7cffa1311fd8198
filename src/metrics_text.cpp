// Prometheus' text exposition format (version 0.0.4) of statement_metrics and pool_stats.
#include <awaitdb/metrics.hpp>

#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string_view>

namespace awaitdb {
namespace {

bool is_name(std::string_view name, bool colons) {
  if (name.empty()) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool letter =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colons && c == ':');
    if (!letter && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

// A label value with \, " and newline escaped.
void append_escaped(std::string& out, std::string_view value) {
  for (char c : value) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
}

// Go's float syntax, shortest form that reads back the same.
std::string number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buffer[32];
  const auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, v);
  return ec == std::errc() ? std::string(buffer, end) : std::string("NaN");
}

class writer {
 public:
  explicit writer(const prometheus_options& options) : prefix_(options.prefix) {
    if (!is_name(prefix_, true))
      throw std::invalid_argument("awaitdb::prometheus_text: \"" + prefix_ +
                                  "\" is not a valid metric name prefix");
    for (const auto& [name, value] : options.labels) {
      if (!is_name(name, false) || name.starts_with("__") || name == "le")
        throw std::invalid_argument("awaitdb::prometheus_text: \"" + name +
                                    "\" is not a label name that may be used");
      if (!common_.empty()) common_ += ',';
      common_ += name;
      common_ += "=\"";
      append_escaped(common_, value);
      common_ += '"';
    }
  }

  void family(std::string_view name, std::string_view type, std::string_view help) {
    out_ += "# HELP ";
    out_ += prefix_;
    out_ += name;
    out_ += ' ';
    out_ += help;
    out_ += "\n# TYPE ";
    out_ += prefix_;
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
  }

  // One sample: `name` after the prefix, one more label (or none), its value.
  void sample(std::string_view name, std::string_view label, std::string_view label_value,
              std::string_view value) {
    out_ += prefix_;
    out_ += name;
    if (!common_.empty() || !label.empty()) {
      out_ += '{';
      out_ += common_;
      if (!label.empty()) {
        if (!common_.empty()) out_ += ',';
        out_ += label;
        out_ += "=\"";
        append_escaped(out_, label_value);
        out_ += '"';
      }
      out_ += '}';
    }
    out_ += ' ';
    out_ += value;
    out_ += '\n';
  }

  void counter(std::string_view name, std::string_view help, std::uint64_t value) {
    family(name, "counter", help);
    sample(name, {}, {}, std::to_string(value));
  }

  // statement_metrics' buckets: bucket i holds durations under 2^i µs; the last, the rest.
  void histogram(std::string_view name, std::string_view help,
                 const statement_metrics::histogram& h, std::chrono::nanoseconds sum) {
    family(name, "histogram", help);
    const std::string bucket = std::string(name) + "_bucket";
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i + 1 < statement_metrics::bucket_count; ++i) {
      cumulative += h.counts[i];
      sample(bucket, "le", number(std::ldexp(1e-6, static_cast<int>(i))),
             std::to_string(cumulative));
    }
    cumulative += h.counts[statement_metrics::bucket_count - 1];
    sample(bucket, "le", "+Inf", std::to_string(cumulative));
    sample(std::string(name) + "_sum", {}, {}, number(std::chrono::duration<double>(sum).count()));
    sample(std::string(name) + "_count", {}, {}, std::to_string(cumulative));
  }

  std::string take() { return std::move(out_); }

 private:
  std::string prefix_;
  std::string common_;  // the options' labels, written
  std::string out_;
};

}  // namespace

std::string prometheus_text(const statement_metrics::snapshot& metrics, const pool_stats& pool,
                            const prometheus_options& options) {
  writer w(options);
  w.counter("_statements_total", "Statements finished, failed or not.", metrics.statements);
  w.family("_statement_failures_total", "counter", "Statements that failed, by SQLSTATE class.");
  for (const auto& [sqlstate_class, count] : metrics.failures_by_class)
    w.sample("_statement_failures_total", "class", sqlstate_class, std::to_string(count));
  w.histogram("_statement_duration_seconds", "Statement latency, from the call to its end.",
              metrics.latency, metrics.latency_sum);
  w.histogram("_acquire_wait_seconds", "Waits for a pooled connection (PostgreSQL).",
              metrics.acquire_wait, metrics.acquire_wait_sum);
  w.counter("_notices_total", "Notices and warnings the server sent.", metrics.notices);
  w.family("_pool_connections", "gauge", "Connections open, by state.");
  w.sample("_pool_connections", "state", "idle", std::to_string(pool.idle));
  w.sample("_pool_connections", "state", "in_use", std::to_string(pool.in_use));
  w.family("_pool_waiting", "gauge", "Tasks waiting for a connection.");
  w.sample("_pool_waiting", {}, {}, std::to_string(pool.waiting));
  w.family("_pool_in_flight", "gauge", "Statements sent and not yet answered (PostgreSQL).");
  w.sample("_pool_in_flight", {}, {}, std::to_string(pool.in_flight));
  return w.take();
}

}  // namespace awaitdb

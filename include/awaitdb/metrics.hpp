// awaitdb: a database's figures in Prometheus' text exposition format, for a service's
// `/metrics` endpoint (the library serves no HTTP: the text is the service's to send).
#ifndef AWAITDB_METRICS_HPP
#define AWAITDB_METRICS_HPP

#include <awaitdb/database.hpp>
#include <awaitdb/observer.hpp>

#include <string>
#include <utility>
#include <vector>

namespace awaitdb {

struct prometheus_options {
  // (A constructor, so not an aggregate: see backup_options.)
  prometheus_options() noexcept {}

  /// The start of every metric's name: `awaitdb_statements_total`, ...
  std::string prefix = "awaitdb";
  /// Labels given to every series, e.g. {{"db", "inventory"}} when a service has several
  /// databases. Names must match [a-zA-Z_][a-zA-Z0-9_]*; values are escaped.
  std::vector<std::pair<std::string, std::string>> labels;
};

/// The figures of `metrics` (a snapshot of an installed `statement_metrics`) and of `pool`
/// (`database::stats()`) in Prometheus' text exposition format, version 0.0.4:
///
/// - `<prefix>_statements_total`, counter: statements finished;
/// - `<prefix>_statement_failures_total{class="23"}`, counter: failures by SQLSTATE class;
/// - `<prefix>_statement_duration_seconds`, histogram: statement latency (buckets 1 µs, 2 µs,
///   4 µs ... doubling);
/// - `<prefix>_acquire_wait_seconds`, histogram: waits for a pooled connection;
/// - `<prefix>_notices_total`, counter: server notices;
/// - `<prefix>_pool_connections{state="idle"|"in_use"}`, `<prefix>_pool_waiting`,
///   `<prefix>_pool_in_flight`, gauges.
///
/// Throws std::invalid_argument for a prefix or label name that is not a valid name.
std::string prometheus_text(const statement_metrics::snapshot& metrics, const pool_stats& pool,
                            const prometheus_options& options = {});

}  // namespace awaitdb

#endif  // AWAITDB_METRICS_HPP

// What the pool knows of each statement's recent server time, so that it can place a statement
// before it runs: a fast one is pipelined with others; a slow one gets a connection where nothing
// waits behind it. Plain: no I/O, no Asio; thread-safe (connections on several threads record
// into it).
//
// The rule, for a statement outside a transaction:
// - known (it has run before): slow when its recent server time (the median of its last three
//   runs: one run slowed by a busy host does not make it slow) is at least `slow_after`, else
//   fast;
// - never seen: it runs at once, as fast, and becomes the statement's first run;
// - seen but not yet measured (its first run is still going): the caller waits for that run to
//   end, up to `first_run_patience` x `slow_after` after it was sent; by then it has either
//   taught its time, or proved the statement slow. (While the first run waits for a connection,
//   so do the others: it has proved nothing yet.) Measured, the first run alone makes the
//   statement slow only if it took that long too. So a burst of one slow statement spreads over the
//   pool after a short wait, and a burst of one fast statement waits less than one round trip, then
//   pipelines.
//
// Statements are known by a 64-bit hash of their text: a collision only mixes two estimates.
#ifndef AWAITDB_SRC_POOL_STATEMENT_LATENCY_HPP
#define AWAITDB_SRC_POOL_STATEMENT_LATENCY_HPP

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string_view>
#include <unordered_map>

namespace awaitdb::detail {

class statement_latency {
 public:
  using clock = std::chrono::steady_clock;

  enum class route : std::uint8_t {
    fast,   // pipeline it with others
    first,  // as fast; it is the statement's first run: call `sent` as it is sent, or
            // `not_sent` if it never is
    slow,   // a connection where nothing waits behind it
    wait,   // its first run is still going: wait for it (at most until `until`), then ask
            // again
  };
  struct advice {
    route how = route::fast;
    clock::time_point until{};  // route::wait: when the first run proves the statement slow
  };

  /// `slow_after`: a statement whose recent runs took this long is slow (zero: every statement
  /// is fast, and nothing is recorded). `capacity`: statements remembered; when more are seen,
  /// the book starts again empty (an application whose SQL text varies without end keeps
  /// finding its statements new, which costs it nothing but the routing).
  explicit statement_latency(clock::duration slow_after, std::size_t capacity = 4096)
      : slow_after_(slow_after), capacity_(capacity) {}

  static std::uint64_t key(std::string_view sql) noexcept;

  /// Where a statement should go now.
  advice classify(std::uint64_t key, clock::time_point now);
  /// The statement's first run (route::first) is sent now: it proves the statement slow
  /// `slow_after` from now (not counting the time its task waited for a connection).
  void sent(std::uint64_t key, clock::time_point now);
  /// The first run was never sent (its task failed or left first): the next task to ask makes
  /// the first run.
  void not_sent(std::uint64_t key);
  /// A run of the statement ended after `ran` on the server. True when it was the first run
  /// measured (tasks waiting for it may now be placed).
  bool record(std::uint64_t key, clock::duration ran);

  /// The current estimate, if the statement was measured (for tests and diagnostics).
  std::optional<clock::duration> estimate(std::uint64_t key) const;
  bool enabled() const noexcept { return slow_after_.count() > 0; }
  clock::duration slow_after() const noexcept { return slow_after_; }

  /// How many thresholds a first run may take before it proves its statement slow: a first
  /// run also parses and plans (on a new server session, it loads the catalog too), a busy host
  /// delays it, and a fast statement taken for slow would open a connection for each of the
  /// tasks that waited for it.
  static constexpr int first_run_patience = 4;

 private:
  struct entry {
    clock::time_point first_sent = clock::time_point::max();  // max: not yet
    clock::duration runs[3]{};                                // the last three, newest at `next`
    std::uint8_t count = 0, next = 0;
    bool measured() const noexcept { return count > 0; }
    clock::duration recent() const noexcept;
    void add(clock::duration ran) noexcept;
  };

  const clock::duration slow_after_;
  const std::size_t capacity_;
  mutable std::mutex mutex_;
  std::unordered_map<std::uint64_t, entry> entries_;
};

}  // namespace awaitdb::detail

#endif  // AWAITDB_SRC_POOL_STATEMENT_LATENCY_HPP

#include "task_context.hpp"

#include "backend.hpp"

#include <boost/asio/execution.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/query.hpp>
#include <boost/asio/require.hpp>

#include <utility>

namespace awaitdb::detail {
namespace {

namespace asio = boost::asio;
namespace execution = boost::asio::execution;

/// An executor that behaves exactly like the one it wraps, and also carries a transaction.
/// Every property is forwarded to the wrapped executor, so strands, thread pools and
/// io_contexts keep their semantics.
class tx_executor {
 public:
  tx_executor(asio::any_io_executor inner, std::shared_ptr<tx_state> tx) noexcept
      : inner_(std::move(inner)), tx_(std::move(tx)) {}

  const asio::any_io_executor& inner() const noexcept { return inner_; }
  tx_state* transaction() const noexcept { return tx_.get(); }

  asio::execution_context& query(execution::context_t) const noexcept {
    return asio::query(inner_, execution::context);
  }
  execution::blocking_t query(execution::blocking_t) const noexcept {
    return asio::query(inner_, execution::blocking);
  }

  tx_executor require(execution::blocking_t::never_t p) const {
    return {asio::require(inner_, p), tx_};
  }
  tx_executor prefer(execution::blocking_t::possibly_t p) const {
    return {asio::prefer(inner_, p), tx_};
  }
  tx_executor prefer(execution::outstanding_work_t::tracked_t p) const {
    return {asio::prefer(inner_, p), tx_};
  }
  tx_executor prefer(execution::outstanding_work_t::untracked_t p) const {
    return {asio::prefer(inner_, p), tx_};
  }
  tx_executor prefer(execution::relationship_t::fork_t p) const {
    return {asio::prefer(inner_, p), tx_};
  }
  tx_executor prefer(execution::relationship_t::continuation_t p) const {
    return {asio::prefer(inner_, p), tx_};
  }

  template <class F>
  void execute(F&& f) const {
    inner_.execute(std::forward<F>(f));
  }

  friend bool operator==(const tx_executor& a, const tx_executor& b) noexcept {
    return a.tx_ == b.tx_ && a.inner_ == b.inner_;
  }
  friend bool operator!=(const tx_executor& a, const tx_executor& b) noexcept {
    return !(a == b);
  }

 private:
  asio::any_io_executor inner_;
  std::shared_ptr<tx_state> tx_;
};

static_assert(execution::is_executor<tx_executor>::value);

}  // namespace

asio::any_io_executor with_transaction(const asio::any_io_executor& current,
                                       std::shared_ptr<tx_state> innermost) {
  // Never wrap a wrapper: the new context already links to the old one through its parent.
  if (const auto* wrapped = current.target<tx_executor>())
    return asio::any_io_executor(tx_executor(wrapped->inner(), std::move(innermost)));
  return asio::any_io_executor(tx_executor(current, std::move(innermost)));
}

tx_state* innermost_transaction(const asio::any_io_executor& ex) noexcept {
  const auto* wrapped = ex.target<tx_executor>();
  return wrapped ? wrapped->transaction() : nullptr;
}

tx_state* find_transaction(const asio::any_io_executor& ex, const backend& owner) noexcept {
  for (tx_state* level = innermost_transaction(ex); level; level = level->parent())
    if (&level->owner() == &owner) return level;
  return nullptr;
}

}  // namespace awaitdb::detail

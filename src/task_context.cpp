#include "task_context.hpp"

#include "backend.hpp"
#include "util/thread_cache.hpp"

#include <boost/asio/execution.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/query.hpp>
#include <boost/asio/require.hpp>
#include <boost/asio/strand.hpp>

#include <memory>
#include <typeinfo>
#include <utility>

namespace awaitdb::detail {
namespace {

namespace asio = boost::asio;
namespace execution = boost::asio::execution;

/// What a task carries: the executor it really runs on, its innermost transaction, the label
/// observers see (awaitdb::with_label), and its deadline (awaitdb::with_timeout).
struct task_context {
  asio::any_io_executor inner;
  std::shared_ptr<tx_state> tx;
  std::shared_ptr<const std::string> label;
  std::shared_ptr<deadline_state> deadline;
};

/// `ex`'s blocking property, read off the executor of type `Io` that `ex` holds, if it does.
template <class Io>
bool io_blocking(const asio::any_io_executor& ex, execution::blocking_t& out) noexcept {
  const auto* io = ex.target<Io>();
  if (io) out = asio::query(*io, execution::blocking);
  return io != nullptr;
}

using io_plain = asio::io_context::executor_type;
using io_never = decltype(asio::require(std::declval<io_plain>(), execution::blocking.never));
using io_tracked =
    decltype(asio::prefer(std::declval<io_plain>(), execution::outstanding_work.tracked));
using io_tracked_never =
    decltype(asio::require(std::declval<io_tracked>(), execution::blocking.never));

/// The blocking property of `ex`. Asked of an io_context's executor itself when `ex` holds one
/// (untracked or tracked, blocking or not): through any_io_executor the answer, a polymorphic
/// property, is allocated on the heap, and any_io_executor asks it each time one is made of a
/// tx_executor (twice per transaction).
execution::blocking_t blocking_of(const asio::any_io_executor& ex) noexcept {
  execution::blocking_t out;
  if (io_blocking<io_plain>(ex, out) || io_blocking<io_never>(ex, out) ||
      io_blocking<io_tracked>(ex, out) || io_blocking<io_tracked_never>(ex, out))
    return out;
  return asio::query(ex, execution::blocking);
}

/// An executor that behaves exactly like the one it wraps, and also carries a transaction.
/// Every property is forwarded to the wrapped executor, so strands, thread pools and
/// io_contexts keep their semantics. It is a single shared pointer, small enough for
/// any_io_executor to store inline: copying it costs one reference count.
class tx_executor {
 public:
  explicit tx_executor(std::shared_ptr<const task_context> context) noexcept
      : context_(std::move(context)) {}

  const asio::any_io_executor& inner() const noexcept { return context_->inner; }
  tx_state* transaction() const noexcept { return context_->tx.get(); }
  const std::shared_ptr<tx_state>& transaction_ptr() const noexcept { return context_->tx; }
  const std::shared_ptr<const std::string>& label() const noexcept { return context_->label; }
  const std::shared_ptr<deadline_state>& deadline() const noexcept { return context_->deadline; }

  asio::execution_context& query(execution::context_t) const noexcept {
    return asio::query(inner(), execution::context);
  }
  execution::blocking_t query(execution::blocking_t) const noexcept { return blocking_of(inner()); }

  tx_executor require(execution::blocking_t::never_t p) const {
    return with(asio::require(inner(), p));
  }
  tx_executor prefer(execution::blocking_t::possibly_t p) const {
    return with(asio::prefer(inner(), p));
  }
  tx_executor prefer(execution::outstanding_work_t::tracked_t p) const {
    return with(asio::prefer(inner(), p));
  }
  tx_executor prefer(execution::outstanding_work_t::untracked_t p) const {
    return with(asio::prefer(inner(), p));
  }
  tx_executor prefer(execution::relationship_t::fork_t p) const {
    return with(asio::prefer(inner(), p));
  }
  tx_executor prefer(execution::relationship_t::continuation_t p) const {
    return with(asio::prefer(inner(), p));
  }

  template <class F>
  void execute(F&& f) const {
    // Straight to an io_context's executor when it is one: through any_io_executor the
    // function would be wrapped (and allocated) a second time.
    if (const auto* io = inner().target<io_plain>()) return io->execute(std::forward<F>(f));
    if (const auto* io = inner().target<io_tracked>()) return io->execute(std::forward<F>(f));
    inner().execute(std::forward<F>(f));
  }

  friend bool operator==(const tx_executor& a, const tx_executor& b) noexcept {
    return a.context_ == b.context_ ||
           (a.context_->tx == b.context_->tx && a.context_->label == b.context_->label &&
            a.context_->deadline == b.context_->deadline && a.context_->inner == b.context_->inner);
  }

 private:
  tx_executor with(asio::any_io_executor inner) const {
    // (co_spawn makes a tracked copy twice per operation: from the thread's cache.)
    return tx_executor(std::allocate_shared<const task_context>(
        thread_cache_allocator<const task_context>(),
        task_context{std::move(inner), context_->tx, context_->label, context_->deadline}));
  }

  std::shared_ptr<const task_context> context_;
};

static_assert(execution::is_executor<tx_executor>::value);

// The wrapper `ex` is (or that a strand `ex` is made of), if any.
[[gnu::hot]] const tx_executor* wrapper_of(const asio::any_io_executor& ex) noexcept {
  // The common case first: an io_context's executor carries no context. (Comparing a type with
  // the executor's own is one pointer comparison; with another type's, often a string
  // comparison of the two names.)
  const std::type_info& type = ex.target_type();
  if (type == typeid(io_plain)) return nullptr;
  if (const auto* wrapped = ex.target<tx_executor>()) return wrapped;
  // A strand made of a task's executor (`asio::make_strand(co_await this_coro::executor)`,
  // as with_timeout does on a multi-threaded executor) keeps the task's context.
  if (const auto* strand = ex.target<asio::strand<asio::any_io_executor>>())
    return wrapper_of(strand->get_inner_executor());
  return nullptr;
}

// `current`'s context, changed by `change`; never a wrapper of a wrapper (a new context keeps
// what the old one held).
template <class Change>
asio::any_io_executor rewrap(const asio::any_io_executor& current, Change change) {
  task_context context;
  if (const auto* wrapped = current.target<tx_executor>()) {
    context = task_context{wrapped->inner(), wrapped->transaction_ptr(), wrapped->label(),
                           wrapped->deadline()};
  } else {
    context.inner = current;
    if (const tx_executor* seen = wrapper_of(current)) {
      context.tx = seen->transaction_ptr();
      context.label = seen->label();
      context.deadline = seen->deadline();
    }
  }
  change(context);
  // (From the thread's cache: a deadline or a transaction per operation makes one each time.)
  return asio::any_io_executor(tx_executor(std::allocate_shared<const task_context>(
      thread_cache_allocator<const task_context>(), std::move(context))));
}

}  // namespace

asio::any_io_executor with_transaction(const asio::any_io_executor& current,
                                       std::shared_ptr<tx_state> innermost) {
  return rewrap(current, [&](task_context& c) { c.tx = std::move(innermost); });
}

asio::any_io_executor with_label(const asio::any_io_executor& current, std::string label) {
  return rewrap(current, [&](task_context& c) {
    c.label = std::make_shared<const std::string>(std::move(label));
  });
}

asio::any_io_executor with_deadline(const asio::any_io_executor& current,
                                    std::shared_ptr<deadline_state> deadline) {
  return rewrap(current, [&](task_context& c) { c.deadline = std::move(deadline); });
}

deadline_state* task_deadline(const asio::any_io_executor& ex) noexcept {
  const tx_executor* wrapped = wrapper_of(ex);
  return wrapped ? wrapped->deadline().get() : nullptr;
}

const asio::any_io_executor& underlying_executor(const asio::any_io_executor& ex) noexcept {
  const auto* wrapped = ex.target<tx_executor>();
  return wrapped ? wrapped->inner() : ex;
}

std::string_view task_label(const asio::any_io_executor& ex) noexcept {
  const tx_executor* wrapped = wrapper_of(ex);
  return wrapped && wrapped->label() ? std::string_view(*wrapped->label()) : std::string_view();
}

tx_state* innermost_transaction(const asio::any_io_executor& ex) noexcept {
  const tx_executor* wrapped = wrapper_of(ex);
  return wrapped ? wrapped->transaction() : nullptr;
}

[[gnu::hot]] task_view task_of(const asio::any_io_executor& ex) noexcept {
  const tx_executor* wrapped = wrapper_of(ex);
  if (!wrapped) return {};
  return {wrapped->transaction(), wrapped->deadline().get()};
}

tx_state* transaction_of(tx_state* innermost, const backend& owner) noexcept {
  if (!owner.has_transactions()) return nullptr;
  for (tx_state* level = innermost; level; level = level->parent())
    if (&level->owner() == &owner) return level;
  return nullptr;
}

tx_state* find_transaction(const asio::any_io_executor& ex, const backend& owner) noexcept {
  if (!owner.has_transactions()) return nullptr;  // (no need to unwrap the executor)
  return transaction_of(innermost_transaction(ex), owner);
}

}  // namespace awaitdb::detail

#include "context_guard.hpp"

#include <boost/asio/execution_context.hpp>
#include <boost/asio/query.hpp>

#include <mutex>
#include <vector>

namespace awaitdb::detail {
namespace asio = boost::asio;

namespace {

// How long the members of one context may spend, all together, on what they send at its end.
constexpr std::chrono::milliseconds shutdown_budget{200};

// The members of one context, held weakly: a member destroyed before the context is simply
// found gone, so members never unregister (and never reach a registry that is gone).
class context_guard : public asio::execution_context::service {
 public:
  using key_type = context_guard;
  static asio::execution_context::id id;

  explicit context_guard(asio::execution_context& context)
      : asio::execution_context::service(context) {}

  // False when the context is shutting down already.
  bool add(const std::shared_ptr<context_member>& member) {
    std::lock_guard lock(mutex_);
    if (shut_down_) return false;
    if (members_.size() >= 2 * live_after_prune_ + 16) {
      std::erase_if(members_, [](const auto& m) { return m.expired(); });
      live_after_prune_ = members_.size();
    }
    members_.push_back(member);
    return true;
  }

 private:
  void shutdown() override {
    std::vector<std::weak_ptr<context_member>> members;
    {
      std::lock_guard lock(mutex_);
      shut_down_ = true;
      members.swap(members_);
    }
    const auto deadline = std::chrono::steady_clock::now() + shutdown_budget;
    for (const auto& weak : members)
      if (auto m = weak.lock()) m->context_shutdown(deadline);
  }

  std::mutex mutex_;
  std::vector<std::weak_ptr<context_member>> members_;
  std::size_t live_after_prune_ = 0;
  bool shut_down_ = false;
};

asio::execution_context::id context_guard::id;

}  // namespace

void join_context(const asio::any_io_executor& executor,
                  const std::shared_ptr<context_member>& member) {
  asio::execution_context& context = asio::query(executor, asio::execution::context);
  if (!asio::use_service<context_guard>(context).add(member))
    member->context_shutdown(std::chrono::steady_clock::now());
}

}  // namespace awaitdb::detail

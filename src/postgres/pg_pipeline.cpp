#include "pg_pipeline.hpp"

#include "../sqlstates.hpp"
#include <awaitdb/error.hpp>

#include <algorithm>

namespace awaitdb::detail {

void throw_failure(const pg_group& g) {
  try {
    std::rethrow_exception(g.failure);
  } catch (const error& e) {
    throw error(e);
  }
}

namespace {

// A copy of the failure for one group. Groups of one connection are awaited by tasks on
// different threads: each gets an exception object of its own rather than one shared object
// whose reference count (kept inside the C++ runtime) would be the only thing ordering its
// last reader before its deletion.
std::exception_ptr own_copy(const std::exception_ptr& why) {
  try {
    std::rethrow_exception(why);
  } catch (const error& e) {
    return std::make_exception_ptr(error(e));
  } catch (...) {
    return why;
  }
}

}  // namespace

void pg_pipeline::push(pg_group_ptr g) {
  if (groups_.empty()) g->started_at = g->sent_at;
  groups_.push_back(std::move(g));
}

pg_clock::time_point pg_pipeline::busy_since() const noexcept {
  return groups_.empty() ? pg_clock::time_point::max() : groups_.front()->started_at;
}

pg_pipeline::step pg_pipeline::feed(pg_event e, pg_clock::time_point now) {
  step out;
  if (groups_.empty()) {
    out.protocol_error = true;
    return out;
  }
  pg_group& g = *groups_.front();
  if (e.what == pg_event::kind::end_of_command) {
    if (g.command_has_result) ++g.next;
    g.command_has_result = false;
    return out;
  }
  if (e.status == PGRES_PIPELINE_SYNC) return complete_head(now);
  g.command_has_result = true;
  g.answered = true;
  if (g.next >= g.commands.size()) {
    // More results than commands sent: libpq and this record disagree.
    out.protocol_error = true;
    return out;
  }
  const pg_command what = g.commands[g.next];
  switch (e.status) {
    case PGRES_FATAL_ERROR:
      // The server ends the session after these (admin or crash shutdown, ...): it reads
      // nothing more, so the groups behind this one never ran.
      if (e.sqlstate.size() == 5 && e.sqlstate.starts_with(code::server_shutdown_class))
        server_terminated_ = true;
      if (!g.failure) {
        g.failure =
            e.failure ? e.failure
                      : std::make_exception_ptr(error(
                            e.sqlstate.empty() ? sqlstate::internal_error : e.sqlstate, "failed"));
        g.sqlstate = std::move(e.sqlstate);
        g.failed_command = what;
      }
      break;
    case PGRES_TUPLES_OK:
    case PGRES_COMMAND_OK:
      if (what == pg_command::statement) g.rows = std::move(e.result);
      break;
    case PGRES_COPY_IN:
    case PGRES_COPY_OUT:
    case PGRES_COPY_BOTH:
      // A COPY would have to be driven outside the pipeline: the connection cannot go on.
      if (!g.failure) {
        g.failure = std::make_exception_ptr(error(
            sqlstate::feature_not_supported, "COPY is not supported through query() or execute()"));
        g.sqlstate = std::string(sqlstate::feature_not_supported);
        g.failed_command = what;
      }
      out.protocol_error = true;
      break;
    default:
      break;  // PGRES_PIPELINE_ABORTED after an earlier failure, PGRES_EMPTY_QUERY, notices
  }
  return out;
}

pg_pipeline::step pg_pipeline::complete_head(pg_clock::time_point now) {
  step out;
  out.completed = std::move(groups_.front());
  groups_.pop_front();
  pg_group& done = *out.completed;
  done.ran_for = now - done.started_at;
  decide(done, now);
  // The next group starts running on the server: if its awaiter left, stop it there.
  if (!groups_.empty()) {
    pg_group& next = *groups_.front();
    next.started_at = std::max(next.sent_at, now);
    if (next.watch == pg_watch::cancel_wanted) {
      next.watch = pg_watch::cancel_sent;
      out.cancel = groups_.front();
    }
  }
  return out;
}

pg_cache_action pg_pipeline::cache_action(const pg_group& g) noexcept {
  if (!g.failure) return pg_cache_action::none;
  if (g.failed_command == pg_command::prepare) return pg_cache_action::forget_prepared;
  if (g.failed_command != pg_command::statement || g.executed_name.empty())
    return pg_cache_action::none;
  if (g.sqlstate == sqlstate::feature_not_supported) return pg_cache_action::replan;
  if (g.sqlstate == code::invalid_sql_statement_name) return pg_cache_action::forget_executed;
  return pg_cache_action::none;
}

void pg_pipeline::decide(pg_group& g, pg_clock::time_point now) const {
  g.cache_action = cache_action(g);
  if (!g.failure) {
    g.verdict = pg_verdict::ok;
    return;
  }
  g.verdict = pg_verdict::failed;
  if (!g.retryable) return;
  // A cached plan made stale by a schema change, or a cached statement gone from the server:
  // prepared again, it runs as it should.
  const bool stale_statement = g.cache_action == pg_cache_action::replan ||
                               g.cache_action == pg_cache_action::forget_executed;
  // A cancel that hit this statement although it was meant for another one.
  const bool stray_cancel = g.sqlstate == sqlstate::query_canceled &&
                            g.watch == pg_watch::awaited && exposed_to_cancel(g, now);
  if (stale_statement || stray_cancel) g.verdict = pg_verdict::resend;
}

bool pg_pipeline::exposed_to_cancel(const pg_group& g, pg_clock::time_point now) const {
  const auto window_end = cancels_under_way_ > 0 ? pg_clock::time_point::max() : cancel_window_end_;
  return g.sent_at <= window_end && now >= cancel_window_start_;
}

std::vector<pg_group_ptr> pg_pipeline::lose(const std::exception_ptr& why) {
  std::vector<pg_group_ptr> out(groups_.begin(), groups_.end());
  groups_.clear();
  for (std::size_t i = 0; i < out.size(); ++i) {
    pg_group& g = *out[i];
    const bool never_ran = server_terminated_ && i > 0 && !g.answered;
    g.verdict = never_ran && g.retryable ? pg_verdict::resend_elsewhere : pg_verdict::failed;
    if (!g.failure) g.failure = own_copy(why);
  }
  return out;
}

pg_group_ptr pg_pipeline::abandon(const pg_group_ptr& g) {
  if (g->watch == pg_watch::cancel_sent) return nullptr;
  g->watch = pg_watch::cancel_wanted;
  if (!groups_.empty() && groups_.front() == g) {
    g->watch = pg_watch::cancel_sent;
    return g;
  }
  return nullptr;
}

bool pg_pipeline::only_abandoned_work() const noexcept {
  if (groups_.size() < drop_threshold) return false;
  std::size_t to_stop = 0;
  for (const pg_group_ptr& g : groups_) {
    if (!g->abandoned()) return false;
    if (g->watch != pg_watch::detached) ++to_stop;
  }
  return to_stop >= drop_threshold;
}

void pg_pipeline::cancel_issued(pg_clock::time_point now) {
  if (cancels_under_way_++ == 0 && now > cancel_window_end_) cancel_window_start_ = now;
  if (cancel_window_start_ == pg_clock::time_point::max()) cancel_window_start_ = now;
}

void pg_pipeline::cancel_finished(pg_clock::time_point now) {
  if (cancels_under_way_ > 0) --cancels_under_way_;
  if (cancels_under_way_ == 0) cancel_window_end_ = now + stray_cancel_grace;
}

}  // namespace awaitdb::detail

#include "sqlite_functions.hpp"

#include "../sqlstates.hpp"
#include "sqlite_errors.hpp"
#include "sqlite_values.hpp"

#include <sqlite3.h>

#include <exception>
#include <new>
#include <string>

namespace awaitdb::detail {
namespace {

// The error a function raised, from the call (inside sqlite3_step) to the statement's failure
// on the same thread.
thread_local std::optional<error> function_failure;

// A function's arguments as a row of one result: read by the library's own rules.
class argument_row final : public result_source {
 public:
  argument_row(const sql_function& f, int argc, sqlite3_value** argv) noexcept
      : function_(f), argc_(static_cast<std::size_t>(argc)), argv_(argv) {}
  std::size_t rows() const noexcept override { return 1; }
  std::size_t columns() const noexcept override { return argc_; }
  std::string_view column_name(std::size_t) const noexcept override { return {}; }
  cell at(std::size_t, std::size_t column) const override { return sqlite_cell(argv_[column]); }
  std::string describe_column(std::size_t column) const override {
    return "argument " + std::to_string(column + 1) + " of " + function_.name + "()";
  }

 private:
  const sql_function& function_;
  std::size_t argc_;
  sqlite3_value** argv_;
};

// Writes a function's result with sqlite3_result_* (always copied: the value dies after).
struct result_sink final : function_result {
  explicit result_sink(sqlite3_context* c) noexcept : context(c) {}
  sqlite3_context* context;
  int null() {
    sqlite3_result_null(context);
    return SQLITE_OK;
  }
  int integer(std::int64_t v) {
    sqlite3_result_int64(context, v);
    return SQLITE_OK;
  }
  int real(double v) {
    sqlite3_result_double(context, v);
    return SQLITE_OK;
  }
  int text(std::string_view v, bool) {
    sqlite3_result_text64(context, v.data(), v.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
    return SQLITE_OK;
  }
  int blob(std::string_view v) {
    // (A null pointer would give NULL: an empty blob must stay an empty blob.)
    if (v.empty())
      sqlite3_result_zeroblob(context, 0);
    else
      sqlite3_result_blob64(context, v.data(), v.size(), SQLITE_TRANSIENT);
    return SQLITE_OK;
  }
  void set(const param& value) override { write_sqlite_value(value, 0, *this); }
};

const sql_function& function_of(sqlite3_context* context) {
  return *static_cast<const sql_function*>(sqlite3_user_data(context));
}

// Runs a call of the function; what it throws fails the statement, kept for the statement's
// error: an awaitdb::error as it is, anything else as 38000 naming the function.
template <class Body>
void guarded(sqlite3_context* context, Body body) noexcept {
  try {
    body();
    return;
  } catch (const error& e) {
    function_failure = e;
  } catch (const std::bad_alloc&) {
    sqlite3_result_error_nomem(context);
    return;
  } catch (const std::exception& e) {
    function_failure = error(code::external_routine_exception,
                             function_of(context).name + "() failed: " + e.what());
  } catch (...) {
    function_failure =
        error(code::external_routine_exception, function_of(context).name +
                                                    "() threw an exception that is not a "
                                                    "std::exception");
  }
  sqlite3_result_error(context, function_failure->what(), -1);
}

void call_scalar(sqlite3_context* context, int argc, sqlite3_value** argv) {
  guarded(context, [&] {
    const sql_function& f = function_of(context);
    const argument_row args(f, argc, argv);
    result_sink out(context);
    f.call(row(&args, 0), out);
  });
}

// An aggregate's group keeps a pointer to its state in SQLite's aggregate context.
void** group_state(sqlite3_context* context, bool make) {
  return static_cast<void**>(sqlite3_aggregate_context(context, make ? sizeof(void*) : 0));
}

void step_aggregate(sqlite3_context* context, int argc, sqlite3_value** argv) {
  guarded(context, [&] {
    const sql_function& f = function_of(context);
    void** state = group_state(context, true);
    if (!state) throw std::bad_alloc();
    if (!*state) *state = f.start();
    const argument_row args(f, argc, argv);
    f.step(*state, row(&args, 0));
  });
}

void finish_aggregate(sqlite3_context* context) {
  const sql_function& f = function_of(context);
  void** state = group_state(context, false);
  void* mine = state ? *state : nullptr;
  guarded(context, [&] {
    if (!mine) mine = f.start();  // a group of no rows
    result_sink out(context);
    f.finish(mine, out);
  });
  if (mine) f.destroy(mine);
}

}  // namespace

void sqlite_functions::add(std::shared_ptr<const sql_function> f) {
  if (f->name.empty() || f->name.size() > 255 || f->name.find('\0') != std::string::npos)
    throw error(code::invalid_name,
                "an SQL function's name must be 1 to 255 bytes long, without NUL bytes");
  if (f->arity > 127)
    throw error(code::too_many_arguments, f->name + "() takes " + std::to_string(f->arity) +
                                              " arguments: SQLite's functions take at most 127");
  std::lock_guard lock(mutex_);
  list_.push_back(std::move(f));
  count_.store(list_.size(), std::memory_order_release);
}

void sqlite_functions::install_new(sqlite3* db, std::size_t& installed) const {
  std::lock_guard lock(mutex_);
  for (; installed < list_.size(); ++installed) {
    const sql_function& f = *list_[installed];
    const int flags = SQLITE_UTF8 | (f.deterministic ? SQLITE_DETERMINISTIC : 0);
    void* self = const_cast<sql_function*>(&f);
    const int rc =
        f.aggregate()
            ? sqlite3_create_function_v2(db, f.name.c_str(), f.arity, flags, self, nullptr,
                                         &step_aggregate, &finish_aggregate, nullptr)
            : sqlite3_create_function_v2(db, f.name.c_str(), f.arity, flags, self, &call_scalar,
                                         nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) throw sqlite_error(db, rc, "defining the function " + f.name + "()");
  }
}

std::optional<error> take_function_failure() noexcept {
  std::optional<error> out;
  out.swap(function_failure);
  return out;
}

}  // namespace awaitdb::detail

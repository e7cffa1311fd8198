// awaitdb: SQL functions written in C++ (database::define_function, define_aggregate).
#ifndef AWAITDB_FUNCTIONS_HPP
#define AWAITDB_FUNCTIONS_HPP

#include <awaitdb/row.hpp>
#include <awaitdb/value.hpp>

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

namespace awaitdb {

struct function_options {
  /// The same arguments always give the same result, and nothing else is read or changed: SQLite
  /// may then use the function in an index, a CHECK constraint or a generated column, and
  /// evaluate it once for a constant argument.
  bool deterministic = false;
};

namespace detail {

/// Where a function's body puts its result (the engine copies it before the body's value goes).
class function_result {
 public:
  virtual void set(const param& value) = 0;

 protected:
  ~function_result() = default;
};

/// A function, its types erased: arguments arrive as a row of `arity` columns, read as `row::get`
/// reads them (`std::optional` for NULL); results go through `make_param`.
struct sql_function {
  std::string name;
  int arity = 0;
  bool deterministic = false;
  // A scalar function: the body.
  std::function<void(const row& args, function_result& out)> call;
  // An aggregate: a new group's state, one row's step on it, the group's result, and the state's
  // end (each group's state is made by `start` and ended by `destroy`, exactly once).
  std::function<void*()> start;
  std::function<void(void* state, const row& args)> step;
  std::function<void(void* state, function_result& out)> finish;
  void (*destroy)(void* state) = nullptr;

  bool aggregate() const noexcept { return static_cast<bool>(step); }
};

/// The parameter types and result of a callable that is not overloaded (a lambda without `auto`
/// parameters, a function pointer, a std::function).
template <class F>
struct signature_of : signature_of<decltype(&F::operator())> {};
template <class R, class... A>
struct signature_of<R (*)(A...)> {
  using result = R;
  using args = std::tuple<A...>;
};
template <class R, class... A>
struct signature_of<R(A...)> : signature_of<R (*)(A...)> {};
template <class C, class R, class... A>
struct signature_of<R (C::*)(A...)> : signature_of<R (*)(A...)> {};
template <class C, class R, class... A>
struct signature_of<R (C::*)(A...) const> : signature_of<R (*)(A...)> {};
template <class C, class R, class... A>
struct signature_of<R (C::*)(A...) noexcept> : signature_of<R (*)(A...)> {};
template <class C, class R, class... A>
struct signature_of<R (C::*)(A...) const noexcept> : signature_of<R (*)(A...)> {};

/// Calls `f` with the arguments in `args` from column `first` on, each read as its parameter's
/// type (by value: a parameter `const std::string&` reads a std::string).
template <class Args, std::size_t first, class F, class... Before>
decltype(auto) call_with_row(F& f, const row& args, Before&... before) {
  return [&]<std::size_t... i>(std::index_sequence<i...>)->decltype(auto) {
    return f(before..., args.get<std::remove_cvref_t<std::tuple_element_t<first + i, Args>>>(i)...);
  }
  (std::make_index_sequence<std::tuple_size_v<Args> - first>());
}

template <class R>
void deliver(function_result& out, const R& value) {
  static_assert(!std::is_void_v<R>, "awaitdb: an SQL function must return a value");
  if constexpr (converts<R>)
    out.set(make_param(to_stored(value)));  // (set copies what the param views)
  else
    out.set(make_param(value));
}

template <class F>
std::shared_ptr<const sql_function> make_scalar(std::string name, F body,
                                                const function_options& options) {
  using sig = signature_of<std::decay_t<F>>;
  auto f = std::make_shared<sql_function>();
  f->name = std::move(name);
  f->arity = static_cast<int>(std::tuple_size_v<typename sig::args>);
  f->deterministic = options.deterministic;
  f->call = [body = std::move(body)](const row& args, function_result& out) mutable {
    deliver(out, call_with_row<typename sig::args, 0>(body, args));
  };
  return f;
}

template <class State, class Step, class Finish>
std::shared_ptr<const sql_function> make_aggregate(std::string name, State initial, Step step,
                                                   Finish finish, const function_options& options) {
  using step_sig = signature_of<std::decay_t<Step>>;
  static_assert(std::tuple_size_v<typename step_sig::args> >= 1 &&
                    std::is_same_v<std::tuple_element_t<0, typename step_sig::args>, State&>,
                "awaitdb::define_aggregate: the step's first parameter must be State&");
  auto f = std::make_shared<sql_function>();
  f->name = std::move(name);
  f->arity = static_cast<int>(std::tuple_size_v<typename step_sig::args>) - 1;
  f->deterministic = options.deterministic;
  f->start = [initial = std::move(initial)]() -> void* { return new State(initial); };
  f->step = [step = std::move(step)](void* state, const row& args) mutable {
    call_with_row<typename step_sig::args, 1>(step, args, *static_cast<State*>(state));
  };
  f->finish = [finish = std::move(finish)](void* state, function_result& out) mutable {
    deliver(out, finish(*static_cast<State*>(state)));
  };
  f->destroy = [](void* state) { delete static_cast<State*>(state); };
  return f;
}

}  // namespace detail
}  // namespace awaitdb

#endif  // AWAITDB_FUNCTIONS_HPP

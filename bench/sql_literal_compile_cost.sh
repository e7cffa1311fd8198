#!/usr/bin/env bash
# The compile-time cost of checking SQL literals: one translation unit with 200 statements
# written as literals (checked at compile time) against the same with the SQL given as
# std::string_view (not checked), each compiled N times in alternation (default 5) with the
# project's flags; prints the medians.
#   bench/sql_literal_compile_cost.sh [N] [CXX]
set -euo pipefail
runs=${1:-5}
cxx=${2:-g++}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

generate() {  # $1: how the SQL is written: literal | view
  echo '#include <awaitdb/awaitdb.hpp>'
  echo 'boost::asio::awaitable<void> calls(awaitdb::database db, std::int64_t id, std::string name) {'
  for i in $(seq 1 200); do
    sql="\"UPDATE t$i SET name = \$2::text, seen = now() WHERE id = \$1::int8 AND note <> 'x\$3' -- \$4\""
    if [ "$1" = view ]; then sql="std::string_view($sql)"; fi
    echo "  co_await db.execute($sql, id, name);"
  done
  echo '}'
}
generate literal >"$work/literal.cpp"
generate view >"$work/view.cpp"

compile() {
  local start end
  start=$(date +%s.%N)
  "$cxx" -std=c++20 -O2 -c -I"$root/include" -isystem /usr/include/postgresql "$work/$1.cpp" \
    -o "$work/$1.o"
  end=$(date +%s.%N)
  awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f\n", b - a }'
}
: >"$work/literal.times"
: >"$work/view.times"
for _ in $(seq 1 "$runs"); do
  compile literal >>"$work/literal.times"
  compile view >>"$work/view.times"
done
median() { sort -n "$1" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
l=$(median "$work/literal.times")
v=$(median "$work/view.times")
echo "200 statements, $cxx -O2, median of $runs: literals checked ${l} s, unchecked ${v} s," \
  "ratio $(awk -v a="$l" -v b="$v" 'BEGIN { printf "%.3f", a / b }')"

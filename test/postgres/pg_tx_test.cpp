// The transaction record alone: no server.
#include "postgres/pg_tx.hpp"

#include <awaitdb/database.hpp>
#include <awaitdb/error.hpp>

#include <gtest/gtest.h>

namespace awaitdb::detail {
namespace {

TEST(pg_tx_book, begin_travels_with_the_first_group_only) {
  pg_tx_book book;
  EXPECT_EQ(book.current(), pg_tx_book::status::not_begun);
  EXPECT_EQ(book.before_group(), "BEGIN");
  EXPECT_EQ(book.current(), pg_tx_book::status::open);
  EXPECT_EQ(book.before_group(), "");
  EXPECT_EQ(book.end(), pg_tx_book::ending::send);
  EXPECT_EQ(book.end(), pg_tx_book::ending::already_ended);
}

TEST(pg_tx_book, the_begin_says_how_the_transaction_runs) {
  using level = transaction_options::isolation_level;
  transaction_options o;
  EXPECT_EQ(begin_statement(o), "BEGIN");
  o.isolation = level::serializable;
  o.read_only = true;
  o.deferrable = true;
  EXPECT_EQ(begin_statement(o), "BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY DEFERRABLE");
  o = {};
  o.isolation = level::read_committed;
  EXPECT_EQ(begin_statement(o), "BEGIN ISOLATION LEVEL READ COMMITTED");
  o.isolation = level::repeatable_read;
  EXPECT_EQ(begin_statement(o), "BEGIN ISOLATION LEVEL REPEATABLE READ");
  pg_tx_book book;
  book.set_begin(begin_statement(o));
  EXPECT_EQ(book.before_group(), "BEGIN ISOLATION LEVEL REPEATABLE READ");
  EXPECT_EQ(book.before_group(), "");
}

TEST(pg_tx_book, an_ended_transaction_refuses_groups) {
  pg_tx_book book;
  book.before_group();
  book.end();
  try {
    book.before_group();
    ADD_FAILURE() << "no error";
  } catch (const error& e) {
    EXPECT_EQ(e.sqlstate(), "25P01");
  }
}

TEST(pg_tx_book, a_transaction_that_sent_nothing_has_nothing_to_end) {
  pg_tx_book book;
  EXPECT_EQ(book.end(), pg_tx_book::ending::nothing_sent);
  EXPECT_EQ(book.current(), pg_tx_book::status::ended);
  EXPECT_THROW(book.before_group(), error);
}

}  // namespace
}  // namespace awaitdb::detail

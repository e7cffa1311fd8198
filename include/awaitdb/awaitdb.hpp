// awaitdb: one awaitable interface over PostgreSQL and SQLite for Boost.Asio.
#ifndef AWAITDB_AWAITDB_HPP
#define AWAITDB_AWAITDB_HPP

#include <awaitdb/backup.hpp>
#include <awaitdb/copy.hpp>
#include <awaitdb/database.hpp>
#include <awaitdb/error.hpp>
#include <awaitdb/functions.hpp>
#include <awaitdb/listen.hpp>
#include <awaitdb/migrate.hpp>
#include <awaitdb/result.hpp>
#include <awaitdb/row.hpp>
#include <awaitdb/session.hpp>
#include <awaitdb/sql_literal.hpp>
#include <awaitdb/stream.hpp>
#include <awaitdb/value.hpp>

#endif  // AWAITDB_AWAITDB_HPP

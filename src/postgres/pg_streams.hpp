// What a reader of a PostgreSQL stream or COPY holds between its steps: the connection (its
// own lease outside a transaction) and where the rows or pieces come from.
#ifndef AWAITDB_SRC_POSTGRES_PG_STREAMS_HPP
#define AWAITDB_SRC_POSTGRES_PG_STREAMS_HPP

#include "../backend.hpp"
#include "../pool/pool.hpp"
#include "pg_connection.hpp"

#include <memory>

namespace awaitdb::detail {

/// The rows of a streamed group (`request::stream`), read one at a time; the group is ended
/// (cancelled on the server) when the source is destroyed before its last row.
std::unique_ptr<row_source> pg_stream_rows(std::shared_ptr<pg_connection> conn, pool_lease lease,
                                           pg_group_ptr g);
/// The two ends of a COPY started on `conn` (copy_start); left before the end, the connection
/// is closed.
std::unique_ptr<copy_sink> pg_copy_in_end(std::shared_ptr<pg_connection> conn, pool_lease lease);
std::unique_ptr<copy_source> pg_copy_out_end(std::shared_ptr<pg_connection> conn, pool_lease lease);

}  // namespace awaitdb::detail

#endif  // AWAITDB_SRC_POSTGRES_PG_STREAMS_HPP

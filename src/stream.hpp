// Row streams: what both engines share.
#ifndef AWAITDB_SRC_STREAM_HPP
#define AWAITDB_SRC_STREAM_HPP

#include <awaitdb/result.hpp>
#include <awaitdb/stream.hpp>

#include <memory>

namespace awaitdb::detail {

/// A stream over a result that was read whole (a statement that could not be streamed).
std::unique_ptr<row_source> buffered_rows(result r);

}  // namespace awaitdb::detail

#endif  // AWAITDB_SRC_STREAM_HPP

// Headers nearly every source of the library includes, parsed once per build (CMake's
// precompiled header): the Asio coroutine machinery and the public API. Each source still
// includes what it uses.
#ifndef AWAITDB_SRC_PRECOMPILED_HPP
#define AWAITDB_SRC_PRECOMPILED_HPP

#include <awaitdb/database.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/system/system_error.hpp>

#endif  // AWAITDB_SRC_PRECOMPILED_HPP

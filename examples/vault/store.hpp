// The vault's domain: groups, members, items and transfers, on any awaitdb database.
#ifndef VAULT_STORE_HPP
#define VAULT_STORE_HPP

#include <awaitdb/awaitdb.hpp>

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace vault {

namespace asio = boost::asio;

/// A failure the client caused, with the HTTP status that says so.
class request_error : public std::runtime_error {
 public:
  request_error(int status, const std::string& message)
      : std::runtime_error(message), status_(status) {}
  int status() const noexcept { return status_; }

 private:
  int status_;
};

struct group {
  std::int64_t id;
  std::string name;
  std::string join_code;
};

struct item {
  std::string name;
  std::int64_t quantity;
};

/// One line of a group's activity: a row of the `activity` table, mapped by position.
struct activity_entry {
  std::int64_t id;
  std::string kind;  // "created", "joined", "set", "transfer"
  std::optional<std::string> user;
  std::optional<std::string> item;
  std::optional<std::int64_t> quantity;
  std::int64_t from_group;
  std::optional<std::int64_t> to_group;
  std::chrono::system_clock::time_point at;
};

/// The schema's migrations (either engine): `co_await db.migrate(schema())`.
awaitdb::migrations schema();

asio::awaitable<group> create_group(const awaitdb::database& db, const std::string& name);
/// Adds `user` to the group with `code`; joining twice changes nothing. Returns the group id.
asio::awaitable<std::int64_t> join_group(const awaitdb::database& db, const std::string& code,
                                         const std::string& user);
asio::awaitable<std::vector<std::string>> members(const awaitdb::database& db, std::int64_t group);
asio::awaitable<void> set_quantity(const awaitdb::database& db, std::int64_t group,
                                   const std::string& item, std::int64_t quantity);
asio::awaitable<std::vector<item>> items(const awaitdb::database& db, std::int64_t group);
/// Moves `quantity` of `item` between groups in one transaction; 409 when `from` holds less.
asio::awaitable<void> transfer(const awaitdb::database& db, std::int64_t from, std::int64_t to,
                               const std::string& item, std::int64_t quantity);
asio::awaitable<std::vector<activity_entry>> activity(const awaitdb::database& db,
                                                      std::int64_t group);

}  // namespace vault

#endif  // VAULT_STORE_HPP

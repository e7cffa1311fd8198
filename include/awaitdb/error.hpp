// awaitdb: the one exception type the library throws for database failures.
#ifndef AWAITDB_ERROR_HPP
#define AWAITDB_ERROR_HPP

#include <stdexcept>
#include <string>
#include <string_view>

namespace awaitdb {

/// Well-known SQLSTATE codes, reported identically by both engines.
namespace sqlstate {
inline constexpr std::string_view unique_violation = "23505";
inline constexpr std::string_view not_null_violation = "23502";
inline constexpr std::string_view foreign_key_violation = "23503";
inline constexpr std::string_view check_violation = "23514";
inline constexpr std::string_view syntax_error = "42601";
inline constexpr std::string_view undefined_table = "42P01";
inline constexpr std::string_view undefined_column = "42703";
inline constexpr std::string_view duplicate_table = "42P07";
inline constexpr std::string_view datatype_mismatch = "42804";
inline constexpr std::string_view numeric_value_out_of_range = "22003";
inline constexpr std::string_view null_value_not_allowed = "22004";
inline constexpr std::string_view invalid_text_representation = "22P02";
inline constexpr std::string_view wrong_parameter_count = "07001";
inline constexpr std::string_view invalid_parameter = "22023";
inline constexpr std::string_view in_failed_transaction = "25P02";
inline constexpr std::string_view no_active_transaction = "25P01";
inline constexpr std::string_view read_only_transaction = "25006";
inline constexpr std::string_view connection_failure = "08006";
inline constexpr std::string_view connection_not_established = "08001";
inline constexpr std::string_view connection_does_not_exist = "08003";
inline constexpr std::string_view query_canceled = "57014";
inline constexpr std::string_view admin_shutdown = "57P01";
inline constexpr std::string_view too_many_connections = "53300";
inline constexpr std::string_view feature_not_supported = "0A000";
inline constexpr std::string_view invalid_url = "08000";  // class 08: cannot connect
inline constexpr std::string_view undefined_file = "58P01";
inline constexpr std::string_view internal_error = "XX000";
inline constexpr std::string_view no_data_found = "P0002";  // query_one: no row
inline constexpr std::string_view too_many_rows = "P0003";  // query_one, query_opt: several
}  // namespace sqlstate

/// The exception thrown by every awaitdb operation that fails for a database reason.
///
/// `what()` is the client-side description: it never contains a password or the value of a
/// statement parameter. Text that came from the server (which may quote user data, for example
/// the duplicate key in a unique violation) is kept apart in `server_message()`, `detail()` and
/// `hint()`, so that a service can decide what it logs.
///
/// Cancellation is reported as `boost::system::system_error` with
/// `boost::asio::error::operation_aborted`, like every Asio operation, not as this type.
class error : public std::runtime_error {
 public:
  error(std::string_view sqlstate, const std::string& message);
  /// Copies are deep: a copy shares no storage with the original, so an error made on one
  /// thread can be copied to another while the original is released.
  error(const error& other);
  error& operator=(const error& other);

  /// The five-character SQLSTATE, e.g. "23505"; identical on both engines for the codes
  /// in `awaitdb::sqlstate`.
  const std::string& sqlstate() const noexcept { return sqlstate_; }
  /// The server's primary message, if the error came from a server ("" otherwise).
  const std::string& server_message() const noexcept { return server_message_; }
  /// The server's DETAIL and HINT fields, where it sent them.
  const std::string& detail() const noexcept { return detail_; }
  const std::string& hint() const noexcept { return hint_; }
  /// The constraint that was violated, where the server named it.
  const std::string& constraint() const noexcept { return constraint_; }
  /// True for class 08 (connection) and 57P0x (server shutting down) errors: the connection
  /// the statement ran on is gone.
  bool is_connection_error() const noexcept;

  error& with_server_fields(std::string server_message, std::string detail, std::string hint,
                            std::string constraint);

 private:
  std::string sqlstate_;
  std::string server_message_;
  std::string detail_;
  std::string hint_;
  std::string constraint_;
};

}  // namespace awaitdb

#endif  // AWAITDB_ERROR_HPP

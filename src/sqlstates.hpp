// Named SQLSTATEs the library raises or tests beyond the public ones (awaitdb::sqlstate), so that
// no code is spelled as a bare string in src/. Names are PostgreSQL's condition names (Appendix A
// of its manual).
#ifndef AWAITDB_SRC_SQLSTATES_HPP
#define AWAITDB_SRC_SQLSTATES_HPP

#include <string_view>

namespace awaitdb::detail::code {

inline constexpr std::string_view transaction_resolution_unknown = "08007";
inline constexpr std::string_view protocol_violation = "08P01";
inline constexpr std::string_view data_exception = "22000";
inline constexpr std::string_view datetime_field_overflow = "22008";
inline constexpr std::string_view invalid_datetime_format = "22007";
inline constexpr std::string_view interval_field_overflow = "22015";
inline constexpr std::string_view character_not_in_repertoire = "22021";
inline constexpr std::string_view integrity_constraint_violation = "23000";
inline constexpr std::string_view active_sql_transaction = "25001";
inline constexpr std::string_view invalid_sql_statement_name = "26000";
inline constexpr std::string_view external_routine_exception = "38000";
inline constexpr std::string_view invalid_savepoint_specification = "3B001";
inline constexpr std::string_view transaction_rollback = "40000";
inline constexpr std::string_view serialization_failure = "40001";
inline constexpr std::string_view deadlock_detected = "40P01";
inline constexpr std::string_view syntax_error_or_access_rule_violation = "42000";
inline constexpr std::string_view insufficient_privilege = "42501";
inline constexpr std::string_view invalid_name = "42602";
inline constexpr std::string_view name_too_long = "42622";
inline constexpr std::string_view undefined_function = "42883";
inline constexpr std::string_view undefined_parameter = "42P02";
inline constexpr std::string_view disk_full = "53100";
inline constexpr std::string_view out_of_memory = "53200";
inline constexpr std::string_view program_limit_exceeded = "54000";
inline constexpr std::string_view too_many_arguments = "54023";
inline constexpr std::string_view object_not_in_prerequisite_state = "55000";
inline constexpr std::string_view lock_not_available = "55P03";
/// 57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now, ...: the server ends
/// the session.
inline constexpr std::string_view server_shutdown_class = "57P0";
inline constexpr std::string_view io_error = "58030";
inline constexpr std::string_view raise_exception = "P0001";
inline constexpr std::string_view data_corrupted = "XX001";

}  // namespace awaitdb::detail::code

#endif  // AWAITDB_SRC_SQLSTATES_HPP

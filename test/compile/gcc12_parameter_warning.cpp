// Compiled (not run) by the test `gcc12_parameter_warning` (see gcc12_capture_warning.cmake): an
// aggregate temporary of a mapped type as a parameter inside co_await, which g++ 12
// miscompiles, draws a warning naming the bug from g++ 12 alone.
#include <awaitdb/awaitdb.hpp>

#include <string>

struct email {
  std::string text;
};

template <>
struct awaitdb::type_mapping<email> {
  using db_type = std::string;
  static std::string to_db(const email& e) { return e.text; }
  static email from_db(std::string text) { return email{std::move(text)}; }
};

boost::asio::awaitable<void> risky(awaitdb::database db) {
  co_await db.execute("SELECT $1", email{"ada@example.org"});
}

// Types of your own as parameters and columns: a strong id, a wrapper that checks its value,
// and an enum read and written by name. On the database named by the first argument (default:
// an in-memory SQLite database); prints what it reads back.
#include <awaitdb/awaitdb.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/describe/enum.hpp>

#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>

namespace asio = boost::asio;

namespace shop {

// A strong id: not interchangeable with other integers, stored as BIGINT.
struct customer_id {
  std::int64_t value = 0;
};

// A wrapper whose values are checked both ways.
class email {
 public:
  explicit email(std::string text) : text_(std::move(text)) {
    if (text_.find('@') == std::string::npos) throw std::invalid_argument("not an e-mail address");
  }
  const std::string& text() const { return text_; }

 private:
  std::string text_;
};

// Written and read as its enumerators' names: a PostgreSQL ENUM type, or text.
enum class tier { basic, gold, platinum };
BOOST_DESCRIBE_ENUM(tier, basic, gold, platinum)

struct customer {
  customer_id id;
  std::optional<email> contact;
  tier level = tier::basic;
};

}  // namespace shop

template <>
struct awaitdb::type_mapping<shop::customer_id> {
  using db_type = std::int64_t;
  static std::int64_t to_db(const shop::customer_id& id) { return id.value; }
  static shop::customer_id from_db(std::int64_t v) { return shop::customer_id{v}; }
  static constexpr std::string_view name = "customer_id";
};

template <>
struct awaitdb::type_mapping<shop::email> {
  using db_type = std::string;
  static const std::string& to_db(const shop::email& e) { return e.text(); }
  static shop::email from_db(std::string text) { return shop::email(std::move(text)); }
  static constexpr std::string_view name = "email";
};

asio::awaitable<void> show(std::string url) {
  awaitdb::database db = co_await awaitdb::open(url);
  const bool pg = db.engine() == awaitdb::engine::postgres;
  co_await db.execute("DROP TABLE IF EXISTS own_types_customers");
  if (pg) {
    co_await db.execute("DROP TYPE IF EXISTS own_types_tier");
    co_await db.execute("CREATE TYPE own_types_tier AS ENUM ('basic', 'gold', 'platinum')");
  }
  co_await db.execute(std::string("CREATE TABLE own_types_customers (id BIGINT PRIMARY KEY, ") +
                      "contact TEXT, level " + (pg ? "own_types_tier" : "TEXT") + " NOT NULL)");

  const shop::customer_id ada{1}, alan{2};
  const shop::email ada_mail("ada@example.org");
  co_await db.execute("INSERT INTO own_types_customers VALUES ($1, $2, $3)", ada, ada_mail,
                      shop::tier::gold);
  const std::optional<shop::email> none;
  co_await db.execute("INSERT INTO own_types_customers VALUES ($1, $2, $3)", alan, none,
                      shop::tier::basic);

  // `= $1` against the enum column: the name is sent as text of no stated type.
  for (const shop::customer& c : co_await db.query_as<shop::customer>(
           "SELECT id, contact, level FROM own_types_customers WHERE level = $1 ORDER BY id",
           shop::tier::gold))
    std::printf("customer %lld <%s> %s\n", static_cast<long long>(c.id.value),
                c.contact ? c.contact->text().c_str() : "-",
                boost::describe::enum_to_string(c.level, "?"));

  const shop::customer_id found = co_await db.query_scalar<shop::customer_id>(
      "SELECT id FROM own_types_customers WHERE contact IS NULL");
  std::printf("without an address: %lld\n", static_cast<long long>(found.value));

  // A value from_db refuses: an error naming the column and the type.
  co_await db.execute("UPDATE own_types_customers SET contact = 'nobody' WHERE id = 2");
  try {
    co_await db.query_scalar<shop::email>("SELECT contact FROM own_types_customers WHERE id = 2");
  } catch (const awaitdb::error& e) {
    std::printf("refused: %s\n", e.what());
  }
  co_await db.execute("DROP TABLE own_types_customers");
  if (pg) co_await db.execute("DROP TYPE own_types_tier");
  co_await db.close();
}

int main(int argc, char** argv) {
  asio::io_context io;
  int status = 0;
  asio::co_spawn(io, show(argc > 1 ? argv[1] : "sqlite::memory:"), [&](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& failure) {
      std::fprintf(stderr, "failed: %s\n", failure.what());
      status = 1;
    }
  });
  io.run();
  return status;
}

// Exporting a query's rows as CSV on stdout, a piece at a time: memory stays flat however many
// rows there are. On PostgreSQL with COPY (the server writes the CSV); on SQLite with a row
// stream, quoting here.
//
//   export_csv DATABASE_URL "SELECT ..."
#include <awaitdb/awaitdb.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <cstdio>
#include <exception>
#include <string>

namespace asio = boost::asio;

// One CSV field (RFC 4180): quoted when it holds a comma, a quote or a line break.
std::string field(const awaitdb::row& r, std::size_t column) {
  if (r.is_null(column)) return "";
  std::string text = r.get<std::string>(column);
  if (text.find_first_of(",\"\r\n") == std::string::npos) return text;
  std::string out = "\"";
  for (char c : text)
    out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

asio::awaitable<void> export_csv(std::string url, std::string sql) {
  awaitdb::database db = co_await awaitdb::open(url);
  if (db.engine() == awaitdb::engine::postgres) {
    awaitdb::copy_reader out =
        co_await db.copy_out("COPY (" + sql + ") TO STDOUT (FORMAT csv, HEADER)");
    while (std::optional<std::string> piece = co_await out.next())
      std::fwrite(piece->data(), 1, piece->size(), stdout);
    co_await db.close();
    co_return;
  }
  awaitdb::row_stream rows = co_await db.stream(sql);
  bool header = true;
  while (std::optional<awaitdb::row> r = co_await rows.next()) {
    if (header) {
      for (std::size_t c = 0; c < r->size(); ++c)
        std::printf("%s%.*s", c ? "," : "", static_cast<int>(r->column_name(c).size()),
                    r->column_name(c).data());
      std::printf("\n");
      header = false;
    }
    for (std::size_t c = 0; c < r->size(); ++c)
      std::printf("%s%s", c ? "," : "", field(*r, c).c_str());
    std::printf("\n");
  }
  co_await db.close();
}

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: export_csv DATABASE_URL \"SELECT ...\"\n");
    return 2;
  }
  asio::io_context io;
  int status = 0;
  auto done = [&](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      std::fprintf(stderr, "export_csv: %s\n", x.what());
      status = 1;
    }
  };
  asio::co_spawn(io, export_csv(argv[1], argv[2]), done);
  io.run();
  return status;
}

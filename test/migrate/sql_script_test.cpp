// Migration scripts split into statements, and their directives: no database.
#include "migrate/sql_script.hpp"

#include <awaitdb/error.hpp>

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace awaitdb::detail {
namespace {

std::vector<std::string> texts(const sql_script& s) {
  std::vector<std::string> out;
  for (const script_statement& st : s.statements)
    out.emplace_back(st.sql);
  return out;
}

std::string error_of(std::string_view text, engine kind) {
  try {
    parse_script(text, kind);
  } catch (const error& e) {
    EXPECT_EQ(e.sqlstate(), "42601") << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no error for: " << text;
  return {};
}

TEST(sql_script, statements_end_at_semicolons_and_keep_their_first_line) {
  const sql_script s = parse_script(
      "-- the users\nCREATE TABLE users (id INT);\n\n  INSERT INTO users VALUES (1);\n"
      "SELECT 1",
      engine::postgres);
  EXPECT_TRUE(s.transactional);
  ASSERT_EQ(texts(s), (std::vector<std::string>{"CREATE TABLE users (id INT)",
                                                "INSERT INTO users VALUES (1)", "SELECT 1"}));
  EXPECT_EQ(s.statements[0].line, 2u);
  EXPECT_EQ(s.statements[1].line, 4u);
  EXPECT_EQ(s.statements[2].line, 5u);
}

TEST(sql_script, semicolons_inside_literals_names_and_comments_do_not_count) {
  const sql_script s = parse_script(
      "INSERT INTO t VALUES ('a;b', 'it''s;', E'\\';x', \"odd;name\");\n"
      "/* one; /* nested; */ still; */ SELECT 2; -- trailing; comment\n"
      "SELECT $1, $$ dollar; $$, $fn$ tagged; $$ $fn$;",
      engine::postgres);
  ASSERT_EQ(s.statements.size(), 3u);
  EXPECT_EQ(s.statements[0].sql, "INSERT INTO t VALUES ('a;b', 'it''s;', E'\\';x', \"odd;name\")");
  EXPECT_EQ(s.statements[1].sql, "SELECT 2");  // (from its first token)
  EXPECT_EQ(s.statements[1].line, 2u);
  EXPECT_EQ(s.statements[2].sql, "SELECT $1, $$ dollar; $$, $fn$ tagged; $$ $fn$");
  EXPECT_EQ(s.statements[2].line, 3u);
}

TEST(sql_script, a_plain_string_ends_at_a_quote_after_a_backslash) {
  // Without E, a backslash is an ordinary character (standard_conforming_strings).
  const sql_script s = parse_script("SELECT 'a\\'; SELECT 2;", engine::postgres);
  EXPECT_EQ(texts(s), (std::vector<std::string>{"SELECT 'a\\'", "SELECT 2"}));
}

TEST(sql_script, sqlite_quotes_with_brackets_and_backticks_and_does_not_nest_comments) {
  const sql_script s =
      parse_script("CREATE TABLE [a;b] (`c;d` TEXT);\n/* x /* y */ SELECT 1;", engine::sqlite);
  EXPECT_EQ(texts(s), (std::vector<std::string>{"CREATE TABLE [a;b] (`c;d` TEXT)", "SELECT 1"}));
}

TEST(sql_script, a_trigger_body_is_one_statement_with_its_case_expressions) {
  const sql_script s = parse_script(
      "CREATE TEMP TRIGGER audit AFTER UPDATE ON t WHEN CASE WHEN 1 THEN 1 END BEGIN\n"
      "  INSERT INTO log VALUES (CASE new.x WHEN 1 THEN 'one' ELSE 'many' END);\n"
      "  UPDATE t SET n = n + 1;\n"
      "END;\n"
      "CREATE TABLE after_it (x INT);",
      engine::sqlite);
  ASSERT_EQ(s.statements.size(), 2u);
  EXPECT_TRUE(s.statements[0].sql.ends_with("UPDATE t SET n = n + 1;\nEND"));
  EXPECT_EQ(s.statements[1].sql, "CREATE TABLE after_it (x INT)");
  EXPECT_EQ(s.statements[1].line, 5u);
}

TEST(sql_script, a_standard_sql_function_body_is_one_statement) {
  const sql_script s = parse_script(
      "CREATE OR REPLACE FUNCTION add(a int, b int) RETURNS int LANGUAGE sql\n"
      "BEGIN ATOMIC\n  SELECT a + b;\n  SELECT CASE WHEN a > 0 THEN a END;\nEND;\n"
      "CREATE FUNCTION f() RETURNS int AS $$ BEGIN RETURN 1; END $$ LANGUAGE plpgsql;\n"
      "CREATE RULE r AS ON INSERT TO t DO INSTEAD (INSERT INTO u VALUES (1); NOTIFY t);\n"
      "CREATE TABLE begin_here (\"end\" int)",
      engine::postgres);
  ASSERT_EQ(s.statements.size(), 4u);
  EXPECT_TRUE(s.statements[0].sql.ends_with("END"));
  EXPECT_TRUE(s.statements[1].sql.starts_with("CREATE FUNCTION f()"));
  EXPECT_TRUE(s.statements[2].sql.ends_with("NOTIFY t)"));
  EXPECT_EQ(s.statements[3].sql, "CREATE TABLE begin_here (\"end\" int)");
}

TEST(sql_script, a_byte_order_mark_is_not_part_of_the_first_statement) {
  const sql_script s =
      parse_script("\xEF\xBB\xBF-- awaitdb:no-transaction\nVACUUM;", engine::sqlite);
  EXPECT_FALSE(s.transactional);
  EXPECT_EQ(texts(s), (std::vector<std::string>{"VACUUM"}));
}

TEST(sql_script, blank_and_comment_only_pieces_are_dropped) {
  EXPECT_TRUE(parse_script("", engine::sqlite).statements.empty());
  EXPECT_TRUE(parse_script("  ;;\n-- nothing\n/* here */;", engine::postgres).statements.empty());
}

TEST(sql_script, the_no_transaction_directive_comes_before_the_first_statement) {
  const sql_script s = parse_script(
      "-- Builds the index without blocking writes.\n-- awaitdb:no-transaction\n"
      "CREATE INDEX CONCURRENTLY i ON t (x);",
      engine::postgres);
  EXPECT_FALSE(s.transactional);
  EXPECT_EQ(s.statements.size(), 1u);
  EXPECT_NE(
      error_of("SELECT 1;\n-- awaitdb:no-transaction\nSELECT 2;", engine::postgres).find("line 2"),
      std::string::npos);
  EXPECT_NE(
      error_of("-- awaitdb:notransaction\nSELECT 1;", engine::sqlite).find("unknown directive"),
      std::string::npos);
}

TEST(sql_script, unterminated_pieces_name_the_line_they_start_on) {
  EXPECT_NE(error_of("SELECT 1;\nSELECT 'open;\n\n", engine::postgres).find("line 2"),
            std::string::npos);
  EXPECT_NE(error_of("SELECT 1;\n\n/* open", engine::sqlite).find("line 3"), std::string::npos);
  EXPECT_NE(error_of("SELECT $x$ never closed", engine::postgres).find("dollar"),
            std::string::npos);
  EXPECT_NE(error_of("SELECT \"open", engine::postgres).find("quoted name"), std::string::npos);
  EXPECT_NE(
      error_of("CREATE TRIGGER x AFTER INSERT ON t BEGIN SELECT 1;", engine::sqlite).find("END"),
      std::string::npos);
}

TEST(sql_script, statements_that_control_transactions_are_refused) {
  EXPECT_NE(error_of("BEGIN;\nCREATE TABLE t (x int);\nCOMMIT;", engine::postgres)
                .find("must not begin or end transactions"),
            std::string::npos);
  EXPECT_NE(error_of("CREATE TABLE t (x int);\n  commit;", engine::sqlite).find("line 2"),
            std::string::npos);
}

TEST(sql_script, the_checksum_ignores_carriage_returns_before_line_feeds_only) {
  EXPECT_EQ(script_checksum("SELECT 1;\nSELECT 2;\n"),
            script_checksum("SELECT 1;\r\nSELECT 2;\r\n"));
  EXPECT_NE(script_checksum("SELECT 1;"), script_checksum("SELECT 2;"));
  EXPECT_NE(script_checksum("a\rb"), script_checksum("ab"));
  EXPECT_EQ(script_checksum(""), 0);
}

}  // namespace
}  // namespace awaitdb::detail

// Passwords never reach a message: every spelling libpq accepts, with the characters that break
// naive parsing, checked against awaitdb's own messages and libpq's (no server needed).
#include "secrets.hpp"

#include "secret_helpers.hpp"
#include "url.hpp"
#include <awaitdb/error.hpp>

#include <gtest/gtest.h>
#include <libpq-fe.h>

namespace awaitdb::detail {
namespace {

using test::leaked_piece;
using test::percent_encode;

// A keyword/value value: quoted, with ' and \ escaped.
std::string kv_quoted(std::string_view in) {
  std::string out = "'";
  for (char c : in) {
    if (c == '\'' || c == '\\') out += '\\';
    out += c;
  }
  return out + "'";
}

struct spelling {
  std::string url;
  std::string password;
};

// Every password in every spelling.
std::vector<spelling> spellings() {
  const std::vector<std::string> passwords = {
      "s3cret-Passw0rd", "pa/ss?wo@rd:xy", "with space & amp=1", "quote'back\\slash",
      "pct%41encoded",   "@@@@////????",   "password=inner",
  };
  std::vector<spelling> out;
  for (const std::string& p : passwords) {
    const std::string e = percent_encode(p);
    for (const std::string& url : {
             "postgresql://ann:" + p + "@127.0.0.1:1/db",
             "postgresql://ann:" + e + "@127.0.0.1:1/db",
             "postgres://ann:" + p + "@127.0.0.1:1,127.0.0.1:2/db?sslmode=disable",
             "postgresql://ann@127.0.0.1:1/db?password=" + p,
             "postgresql://ann@127.0.0.1:1/db?password=" + e,
             "postgresql://ann@127.0.0.1:1/db?pass%77ord=" + e,
             "postgresql://ann@127.0.0.1:1/db?%70%61ssword=" + p,
             "postgresql://ann@127.0.0.1:1/db?sslmode=disable&password=" + e +
                 "&application_name=x",
             "postgresql://ann@127.0.0.1:1/db?options=" +
                 percent_encode("password=" + kv_quoted(p)),
         })
      out.push_back({url, p});
  }
  return out;
}

TEST(secrets, no_spelling_of_a_password_reaches_a_message) {
  for (const spelling& s : spellings()) {
    SCOPED_TRACE(s.url);
    const secret_scrubber scrubber(s.url);
    EXPECT_EQ(leaked_piece(redact_url(s.url), s.password), "") << redact_url(s.url);
    // awaitdb's own URL errors.
    try {
      parse_url(s.url + (s.url.find('?') == std::string::npos ? "?" : "&") + "pool_max_size=x");
      ADD_FAILURE() << "no error";
    } catch (const error& e) {
      EXPECT_EQ(leaked_piece(e.what(), s.password), "") << e.what();
    }
    // What awaitdb shows of a URL that parses.
    try {
      const auto options = std::get<postgres_options>(parse_url(s.url));
      EXPECT_EQ(leaked_piece(options.display_name, s.password), "") << options.display_name;
    } catch (const error& e) {
      EXPECT_EQ(leaked_piece(e.what(), s.password), "") << e.what();
    }
    // libpq's own complaints about the URL, as awaitdb passes them on.
    char* message = nullptr;
    PQconninfoOption* parsed = PQconninfoParse(s.url.c_str(), &message);
    if (parsed) PQconninfoFree(parsed);
    if (message) {
      const std::string shown = scrubber.scrub(message);
      EXPECT_EQ(leaked_piece(shown, s.password), "") << shown;
      PQfreemem(message);
    }
  }
}

TEST(secrets, ordinary_text_is_left_alone) {
  const secret_scrubber scrubber("postgresql://ann:s3cret-Passw0rd@db.example:5432/app");
  EXPECT_EQ(scrubber.scrub("connection to server at \"db.example\" (10.0.0.1), port 5432 failed"),
            "connection to server at \"db.example\" (10.0.0.1), port 5432 failed");
  EXPECT_EQ(scrubber.scrub("user ann: s3cret-Passw0rd"), "user ann: ***");
  EXPECT_EQ(scrubber.scrub("tail: Passw0rd!"), "tail: ***!");
  // A short password is hidden where it stands alone, not inside words.
  const secret_scrubber short_one("postgresql://ann:ab@h/db");
  EXPECT_EQ(short_one.scrub("invalid port \"ab\" in label abc"),
            "invalid port \"***\" in label abc");
  // No password: nothing to hide.
  EXPECT_TRUE(secret_scrubber("postgresql://ann@h/db").candidates().empty());
  EXPECT_EQ(secret_scrubber("postgresql://h/db").scrub("anything"), "anything");
}

}  // namespace
}  // namespace awaitdb::detail

#include "sql_script.hpp"

#include "../placeholders.hpp"
#include <awaitdb/error.hpp>
#include <awaitdb/sql_literal.hpp>

#include <boost/crc.hpp>

#include <string>

namespace awaitdb::detail {
namespace {

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
// (PostgreSQL allows `$` inside a name.)
bool is_word_char(char c) {
  return is_sql_word_char(c) || c == '$';
}

[[noreturn]] void fail(std::size_t line, const std::string& what) {
  throw error(sqlstate::syntax_error, "line " + std::to_string(line) + ": " + what);
}

constexpr std::string_view directive_prefix = "awaitdb:";
constexpr std::string_view no_transaction = "no-transaction";

/// One pass over a script: a lexer that knows only what decides where a statement ends.
class splitter {
 public:
  splitter(std::string_view text, engine kind) : text_(text), kind_(kind) {}

  sql_script run() {
    while (i_ < text_.size())
      step();
    if (body_depth_ > 0) fail(start_line_, "the body of this statement has no END");
    finish_statement();
    return std::move(out_);
  }

 private:
  char at(std::size_t k) const { return k < text_.size() ? text_[k] : '\0'; }

  void step() {
    const char c = text_[i_];
    if (c == '\n') {
      ++line_;
      ++i_;
    } else if (is_space(c)) {
      ++i_;
    } else if (c == '-' && at(i_ + 1) == '-') {
      line_comment();
    } else if (c == '/' && at(i_ + 1) == '*') {
      block_comment();
    } else if (c == ';' && body_depth_ == 0 && paren_depth_ <= 0) {
      finish_statement();
      ++i_;
    } else {
      token(c);
    }
  }

  void token(char c) {
    if (!in_statement_) {
      in_statement_ = true;
      start_ = i_;
      start_line_ = line_;
      words_ = 0;
      body_capable_ = false;
      paren_depth_ = 0;
    }
    end_ = i_ + 1;
    if (c == '\'') {
      const bool escapes = kind_ == engine::postgres && i_ > 0 &&
                           (text_[i_ - 1] == 'E' || text_[i_ - 1] == 'e') &&
                           (i_ < 2 || !is_word_char(text_[i_ - 2]));
      quoted('\'', escapes, "string literal");
    } else if (c == '"') {
      quoted('"', false, "quoted name");
    } else if (kind_ == engine::sqlite && c == '`') {
      quoted('`', false, "quoted name");
    } else if (kind_ == engine::sqlite && c == '[') {
      const std::size_t close = text_.find(']', i_ + 1);
      if (close == std::string_view::npos) fail(line_, "a [quoted name] has no closing ]");
      count_lines(i_, close + 1);
      i_ = close + 1;
    } else if (kind_ == engine::postgres && c == '$' && dollar_quote()) {
      // (consumed)
    } else if (c == '(' || c == ')') {
      paren_depth_ += c == '(' ? 1 : -1;  // (a rule's actions: `DO INSTEAD (a; b)`)
      ++i_;
    } else if (is_sql_ident_start(c)) {
      const std::size_t from = i_;
      while (i_ < text_.size() && is_word_char(text_[i_]))
        ++i_;
      word(text_.substr(from, i_ - from));
    } else {
      ++i_;
    }
    end_ = i_;
  }

  void quoted(char quote, bool escapes, const char* what) {
    const std::size_t from_line = line_;
    ++i_;
    while (i_ < text_.size()) {
      const char c = text_[i_];
      if (c == '\n') ++line_;
      if (escapes && c == '\\') {
        if (at(i_ + 1) == '\n') ++line_;
        i_ += 2;
      } else if (c == quote) {
        if (at(i_ + 1) != quote) {
          ++i_;
          return;
        }
        i_ += 2;
      } else {
        ++i_;
      }
    }
    std::string message = "a ";  // (appended: g++ 12 misreads `+` chains here, -Warray-bounds)
    message.append(what).append(" is not closed");
    fail(from_line, message);
  }

  // A $tag$ ... $tag$ string; false when the `$` starts none (a `$1`, or a lone `$`).
  bool dollar_quote() {
    std::size_t j = i_ + 1;
    if (j < text_.size() && is_sql_ident_start(text_[j]))
      while (j < text_.size() && is_word_char(text_[j]) && text_[j] != '$')
        ++j;
    if (j >= text_.size() || text_[j] != '$') return false;
    const std::string_view tag = text_.substr(i_, j - i_ + 1);
    const std::size_t close = text_.find(tag, j + 1);
    if (close == std::string_view::npos)
      fail(line_, "the dollar-quoted string " + std::string(tag) + " is not closed");
    count_lines(i_, close + tag.size());
    i_ = close + tag.size();
    return true;
  }

  void line_comment() {
    const std::size_t from = i_ + 2;
    std::size_t eol = text_.find('\n', from);
    if (eol == std::string_view::npos) eol = text_.size();
    std::string_view body = text_.substr(from, eol - from);
    while (!body.empty() && is_space(body.front()))
      body.remove_prefix(1);
    while (!body.empty() && is_space(body.back()))
      body.remove_suffix(1);
    if (body.starts_with(directive_prefix)) directive(body.substr(directive_prefix.size()));
    i_ = eol;
  }

  void directive(std::string_view name) {
    if (name != no_transaction)
      fail(line_, "unknown directive `-- awaitdb:" + std::string(name) +
                      "` (the one known is `-- awaitdb:no-transaction`)");
    if (in_statement_ || !out_.statements.empty())
      fail(line_, "`-- awaitdb:no-transaction` must come before the first statement");
    out_.transactional = false;
  }

  void block_comment() {
    const std::size_t from_line = line_;
    int depth = 1;
    i_ += 2;
    while (i_ < text_.size() && depth > 0) {
      if (text_[i_] == '\n') ++line_;
      if (kind_ == engine::postgres && text_[i_] == '/' && at(i_ + 1) == '*') {
        ++depth;  // PostgreSQL nests comments; SQLite ends one at the first */
        i_ += 2;
      } else if (text_[i_] == '*' && at(i_ + 1) == '/') {
        --depth;
        i_ += 2;
      } else {
        ++i_;
      }
    }
    if (depth > 0) fail(from_line, "a /* comment */ is not closed");
  }

  // Keywords that open and close a body in which semicolons do not end the statement: the
  // BEGIN ... END of CREATE [OR REPLACE] [TEMP] FUNCTION / PROCEDURE / TRIGGER, with the CASE
  // ... END expressions inside it.
  void word(std::string_view w) {
    ++words_;
    if (words_ == 1) {
      kind_decided_ = !sql_word_is(w, "create");
      return;
    }
    if (!kind_decided_) {
      if (sql_word_is(w, "or") || sql_word_is(w, "replace") || sql_word_is(w, "temp") ||
          sql_word_is(w, "temporary"))
        return;
      kind_decided_ = true;
      body_capable_ =
          sql_word_is(w, "function") || sql_word_is(w, "procedure") || sql_word_is(w, "trigger");
      return;
    }
    if (!body_capable_) return;
    if (sql_word_is(w, "begin")) {
      ++body_depth_;
    } else if (sql_word_is(w, "case")) {
      if (body_depth_ > 0) ++body_depth_;
    } else if (sql_word_is(w, "end")) {
      if (body_depth_ > 0) --body_depth_;
    }
  }

  void finish_statement() {
    if (!in_statement_) return;
    in_statement_ = false;
    const std::string_view sql = text_.substr(start_, end_ - start_);
    if (is_transaction_control(sql))
      fail(start_line_,
           "a migration must not begin or end transactions itself (each runs in a transaction "
           "of its own; mark it `-- awaitdb:no-transaction` to run its statements outside one)");
    out_.statements.push_back({sql, start_line_});
  }

  void count_lines(std::size_t from, std::size_t to) {
    for (std::size_t k = from; k < to && k < text_.size(); ++k)
      if (text_[k] == '\n') ++line_;
  }

  std::string_view text_;
  engine kind_;
  std::size_t i_ = 0;
  std::size_t line_ = 1;
  sql_script out_;
  // The statement being read.
  bool in_statement_ = false;
  std::size_t start_ = 0, end_ = 0, start_line_ = 0;
  unsigned words_ = 0;
  bool kind_decided_ = false, body_capable_ = false;
  int body_depth_ = 0;
  int paren_depth_ = 0;
};

}  // namespace

sql_script parse_script(std::string_view text, engine kind) {
  constexpr std::string_view byte_order_mark = "\xEF\xBB\xBF";  // (editors on Windows add it)
  if (text.starts_with(byte_order_mark)) text.remove_prefix(byte_order_mark.size());
  return splitter(text, kind).run();
}

std::int64_t script_checksum(std::string_view text) noexcept {
  boost::crc_32_type crc;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\r' && i + 1 < text.size() && text[i + 1] == '\n') continue;
    crc.process_byte(static_cast<unsigned char>(text[i]));
  }
  return static_cast<std::int64_t>(crc.checksum());
}

}  // namespace awaitdb::detail

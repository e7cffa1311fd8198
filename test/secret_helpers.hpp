// Shared by the password tests: whether a message leaks a piece of a password.
#ifndef AWAITDB_TEST_SECRET_HELPERS_HPP
#define AWAITDB_TEST_SECRET_HELPERS_HPP

#include <string>
#include <string_view>

namespace awaitdb::test {

/// The first run of 4 of the password's characters found in `text`, or "".
inline std::string leaked_piece(std::string_view text, std::string_view password) {
  for (std::size_t i = 0; i + 4 <= password.size(); ++i)
    if (text.find(password.substr(i, 4)) != std::string_view::npos)
      return std::string(password.substr(i, 4));
  return {};
}

/// Every byte but letters and digits as %XX.
inline std::string percent_encode(std::string_view in) {
  static const char hex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : in) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

}  // namespace awaitdb::test

#endif  // AWAITDB_TEST_SECRET_HELPERS_HPP

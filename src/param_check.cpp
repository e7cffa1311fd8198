#include "param_check.hpp"

#include "sqlstates.hpp"
#include <awaitdb/error.hpp>

#include <cstring>
#include <string>

namespace awaitdb::detail {

bool is_valid_utf8(std::string_view text) noexcept {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t n = text.size();
  std::size_t i = 0;
  while (i < n) {
    // Plain ASCII, eight bytes at a time.
    if (i + 8 <= n) {
      unsigned long long word;
      std::memcpy(&word, s + i, 8);
      if ((word & 0x8080808080808080ULL) == 0) {
        i += 8;
        continue;
      }
    }
    const unsigned char c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t length;
    unsigned char low = 0x80, high = 0xBF;  // the allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      length = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      length = 3;
      if (c == 0xE0) low = 0xA0;   // overlong
      if (c == 0xED) high = 0x9F;  // surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
      length = 4;
      if (c == 0xF0) low = 0x90;   // overlong
      if (c == 0xF4) high = 0x8F;  // above U+10FFFF
    } else {
      return false;
    }
    if (i + length > n || s[i + 1] < low || s[i + 1] > high) return false;
    for (std::size_t k = 2; k < length; ++k)
      if (s[i + k] < 0x80 || s[i + k] > 0xBF) return false;
    i += length;
  }
  return true;
}

void check_text_parameter(std::string_view text, std::size_t number) {
  if (text.find('\0') != std::string_view::npos)
    throw error(code::character_not_in_repertoire,
                "text parameter $" + std::to_string(number) +
                    " contains a NUL byte; pass binary data as awaitdb::blob");
  if (!is_valid_utf8(text))
    throw error(code::character_not_in_repertoire,
                "text parameter $" + std::to_string(number) +
                    " is not valid UTF-8; pass binary data as awaitdb::blob");
}

}  // namespace awaitdb::detail

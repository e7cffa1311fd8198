// Passwords kept out of messages. Pure: no I/O.
//
// A database URL can carry a password in many spellings that libpq accepts (user info,
// `password=` with its key percent-encoded, keyword/value text), and libpq may echo pieces of a
// URL it could not parse (an unencoded '/' in a password makes part of it a "port"). Rather than
// trust every message to be clean, every text that could hold part of a URL is scrubbed.
#ifndef AWAITDB_SRC_SECRETS_HPP
#define AWAITDB_SRC_SECRETS_HPP

#include <string>
#include <string_view>
#include <vector>

namespace awaitdb::detail {

class secret_scrubber {
 public:
  secret_scrubber() = default;
  /// Collects every string of `url` that could be a password, in every reading of it.
  explicit secret_scrubber(std::string_view url);

  /// `text` with every run of 4 or more characters of any password replaced by "***" (and a
  /// password shorter than 4 characters replaced where it stands alone).
  std::string scrub(std::string_view text) const;

  const std::vector<std::string>& candidates() const noexcept { return candidates_; }

  /// This scrubber, also hiding `password` (one that did not come from the URL).
  secret_scrubber with(std::string_view password) const {
    secret_scrubber out = *this;
    out.add(password);
    return out;
  }

 private:
  void add(std::string_view candidate);

  std::vector<std::string> candidates_;
};

}  // namespace awaitdb::detail

#endif  // AWAITDB_SRC_SECRETS_HPP

#include "secrets.hpp"

#include "text_forms.hpp"

#include <algorithm>

namespace awaitdb::detail {
namespace {

// Percent-decoding that never fails: a malformed escape stays as written.
std::string lenient_decode(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (const std::optional<char> byte = percent_escape_at(in, i)) {
      out += *byte;
      i += 2;
    } else {
      out += in[i];
    }
  }
  return out;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c; };
           return lower(x) == lower(y);
         });
}

// libpq's connection keywords and awaitdb's own options: libpq never quotes the value of a known
// keyword in a complaint, and a piece of a URL that starts with one is not part of a password.
bool is_known_key(std::string_view key) {
  static constexpr std::string_view keys[] = {"application_name",
                                              "channel_binding",
                                              "client_encoding",
                                              "connect_backoff_max_ms",
                                              "connect_backoff_ms",
                                              "connect_timeout",
                                              "dbname",
                                              "fallback_application_name",
                                              "gssencmode",
                                              "gsslib",
                                              "host",
                                              "hostaddr",
                                              "keepalives",
                                              "keepalives_count",
                                              "keepalives_idle",
                                              "keepalives_interval",
                                              "krbsrvname",
                                              "load_balance_hosts",
                                              "named_statements",
                                              "options",
                                              "passfile",
                                              "password",
                                              "pgbouncer",
                                              "pipeline",
                                              "pipeline_depth",
                                              "pipeline_stall_ms",
                                              "pool_acquire_timeout_ms",
                                              "pool_idle_timeout_ms",
                                              "pool_max_lifetime_ms",
                                              "pool_max_size",
                                              "pool_min_size",
                                              "port",
                                              "replica_reads",
                                              "replication",
                                              "requirepeer",
                                              "requiressl",
                                              "service",
                                              "ssl",
                                              "ssl_max_protocol_version",
                                              "ssl_min_protocol_version",
                                              "sslcert",
                                              "sslcompression",
                                              "sslcrl",
                                              "sslcrldir",
                                              "sslkey",
                                              "sslmode",
                                              "sslpassword",
                                              "sslrootcert",
                                              "sslsni",
                                              "statement_cache_size",
                                              "statement_timeout_ms",
                                              "target_session_attrs",
                                              "tcp_user_timeout",
                                              "user"};
  for (std::string_view k : keys)
    if (iequals(key, k)) return true;
  return false;
}

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

bool is_word(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

// Values of `password` in keyword/value text: `password=x`, `password = 'x y'`.
void keyword_values(std::string_view text, std::vector<std::string>& out) {
  for (std::size_t i = 0; i + 8 <= text.size(); ++i) {
    if (!iequals(text.substr(i, 8), "password")) continue;
    std::size_t j = i + 8;
    while (j < text.size() && is_space(text[j]))
      ++j;
    if (j >= text.size() || text[j] != '=') continue;
    ++j;
    while (j < text.size() && is_space(text[j]))
      ++j;
    std::string value;
    if (j < text.size() && text[j] == '\'') {
      for (++j; j < text.size() && text[j] != '\''; ++j) {
        if (text[j] == '\\' && j + 1 < text.size()) ++j;
        value += text[j];
      }
    } else {
      for (; j < text.size() && !is_space(text[j]) && text[j] != '&'; ++j)
        value += text[j];
    }
    out.push_back(std::move(value));
  }
}

}  // namespace

secret_scrubber::secret_scrubber(std::string_view url) {
  std::vector<std::string> found;
  const std::size_t scheme = url.find("://");
  const std::string_view rest = scheme == std::string_view::npos ? url : url.substr(scheme + 3);

  // User info: "user:password@". The password may itself hold '@', '/', '?' or ':' unencoded, so
  // every '@' is a possible end of it.
  if (const std::size_t colon = rest.find(':'); colon != std::string_view::npos)
    for (std::size_t at = rest.find('@', colon); at != std::string_view::npos;
         at = rest.find('@', at + 1))
      found.emplace_back(rest.substr(colon + 1, at - colon - 1));

  // Query parameters whose key decodes to "password" (libpq decodes keys too), with the value as
  // written and decoded.
  for (std::size_t start = rest.find_first_of("?&"); start != std::string_view::npos;
       start = rest.find_first_of("?&", start + 1)) {
    const std::size_t eq = rest.find('=', start + 1);
    if (eq == std::string_view::npos) break;
    const std::string_view key = rest.substr(start + 1, eq - start - 1);
    if (key.find_first_of("?&") != std::string_view::npos) continue;
    if (!iequals(lenient_decode(key), "password")) continue;
    // An unencoded '&' in the value makes what follows it a "parameter" of its own, whose
    // name libpq quotes in its complaint: pieces up to the next known option belong to the
    // value.
    std::size_t end = rest.find('&', eq + 1);
    while (end != std::string_view::npos) {
      const std::size_t after = rest.find('&', end + 1);
      const std::string_view piece =
          rest.substr(end + 1, after == std::string_view::npos ? after : after - end - 1);
      if (is_known_key(lenient_decode(piece.substr(0, piece.find('='))))) break;
      end = after;
    }
    found.emplace_back(rest.substr(eq + 1, end == std::string_view::npos ? end : end - eq - 1));
  }

  // Keyword/value text, in the URL as written and decoded.
  keyword_values(url, found);
  keyword_values(lenient_decode(url), found);

  for (const std::string& f : found) {
    add(f);
    add(lenient_decode(f));
  }
}

void secret_scrubber::add(std::string_view candidate) {
  if (candidate.empty()) return;
  if (std::find(candidates_.begin(), candidates_.end(), candidate) == candidates_.end())
    candidates_.emplace_back(candidate);
}

std::string secret_scrubber::scrub(std::string_view text) const {
  if (candidates_.empty()) return std::string(text);
  // The text as written, and percent-decoded with each decoded character's span in the text: a
  // password percent-encoded differently than in the URL is found too.
  std::string decoded;
  std::vector<std::pair<std::size_t, std::size_t>> spans;
  for (std::size_t i = 0; i < text.size();) {
    const std::optional<char> byte = percent_escape_at(text, i);
    decoded += byte ? *byte : text[i];
    spans.emplace_back(i, byte ? 3 : 1);
    i += byte ? 3 : 1;
  }
  std::vector<bool> hidden(text.size(), false);
  auto hide = [&](std::size_t pos, std::size_t n) {
    std::fill(hidden.begin() + static_cast<std::ptrdiff_t>(pos),
              hidden.begin() + static_cast<std::ptrdiff_t>(pos + n), true);
  };
  auto hide_decoded = [&](std::size_t pos, std::size_t n) {
    const std::size_t from = spans[pos].first;
    const std::size_t to = spans[pos + n - 1].first + spans[pos + n - 1].second;
    hide(from, to - from);
  };
  constexpr std::size_t window = 4;
  for (const std::string& c : candidates_) {
    if (c.size() >= window) {
      for (std::size_t j = 0; j + window <= c.size(); ++j) {
        const std::string_view piece = std::string_view(c).substr(j, window);
        for (std::size_t p = text.find(piece); p != std::string_view::npos;
             p = text.find(piece, p + 1))
          hide(p, window);
        for (std::size_t p = decoded.find(piece); p != std::string::npos;
             p = decoded.find(piece, p + 1))
          hide_decoded(p, window);
      }
    } else {
      // Too short to hide wherever it occurs without hiding ordinary words: hide it where it
      // stands alone.
      for (std::size_t p = text.find(c); p != std::string_view::npos; p = text.find(c, p + 1)) {
        const bool left = p == 0 || !is_word(text[p - 1]);
        const bool right = p + c.size() == text.size() || !is_word(text[p + c.size()]);
        if (left && right) hide(p, c.size());
      }
    }
  }
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    if (!hidden[i]) {
      out += text[i++];
      continue;
    }
    out += "***";
    while (i < text.size() && hidden[i])
      ++i;
  }
  return out;
}

}  // namespace awaitdb::detail

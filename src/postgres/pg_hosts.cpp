#include "pg_hosts.hpp"

#include "pg_resolve.hpp"

#include <libpq-fe.h>

#include <cstdlib>
#include <memory>

namespace awaitdb::detail {
namespace {

std::vector<std::string> split_commas(const std::string& list) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (;;) {
    const std::size_t comma = list.find(',', start);
    out.push_back(list.substr(start, comma - start));
    if (comma == std::string::npos) return out;
    start = comma + 1;
  }
}

}  // namespace

std::vector<pg_host_attempt> plan_host_attempts(const std::string& conninfo,
                                                std::string_view session_attrs) {
  char* problem = nullptr;
  std::unique_ptr<PQconninfoOption, decltype(&PQconninfoFree)> parsed(
      PQconninfoParse(conninfo.c_str(), &problem), &PQconninfoFree);
  if (problem) PQfreemem(problem);  // (it may quote a password: never shown)
  if (!parsed) return {};

  std::string host, hostaddr, port, attrs(session_attrs);
  std::vector<std::string> keys, values;  // everything else, as given
  for (const PQconninfoOption* o = parsed.get(); o->keyword; ++o) {
    if (!o->val) continue;
    const std::string_view key = o->keyword;
    if (key == "host")
      host = o->val;
    else if (key == "hostaddr")
      hostaddr = o->val;
    else if (key == "port")
      port = o->val;
    else if (key == "target_session_attrs" && session_attrs.empty())
      attrs = o->val;
    else if (key != "target_session_attrs") {
      keys.emplace_back(key);
      values.emplace_back(o->val);
    }
  }
  if (host.empty() && hostaddr.empty()) {
    // libpq would take these from the environment (and look PGHOST up).
    if (const char* env = std::getenv("PGHOST")) host = env;
    if (const char* env = std::getenv("PGHOSTADDR")) hostaddr = env;
  }
  const std::vector<std::string> hosts = split_commas(host);
  const std::vector<std::string> addrs = split_commas(hostaddr);
  const std::vector<std::string> ports = split_commas(port);
  std::size_t n = hosts.size();
  if (!hostaddr.empty()) {
    if (!host.empty() && addrs.size() != n) return {};
    n = addrs.size();
  }
  if (ports.size() != 1 && ports.size() != n) return {};
  const bool two_rounds = attrs == "prefer-standby";

  std::vector<pg_host_attempt> out;
  for (int round = 0; round < (two_rounds ? 2 : 1); ++round) {
    for (std::size_t i = 0; i < n; ++i) {
      pg_host_attempt a{keys, values, {}, {}};
      const std::string h = host.empty() ? std::string() : hosts[i];
      const std::string addr = hostaddr.empty() ? std::string() : addrs[i];
      const std::string p = ports.size() == 1 ? ports[0] : ports[i];
      auto add = [&a](const char* key, const std::string& value) {
        if (value.empty()) return;
        a.keys.emplace_back(key);
        a.values.push_back(value);
      };
      add("host", h);
      add("hostaddr", addr);
      add("port", p);
      add("target_session_attrs", two_rounds ? std::string(round == 0 ? "standby" : "any") : attrs);
      a.label = (h.empty() ? addr : h) + (p.empty() ? "" : ":" + p);
      if (addr.empty() && host_needs_lookup(h)) a.lookup = h;
      out.push_back(std::move(a));
    }
  }
  return out;
}

}  // namespace awaitdb::detail

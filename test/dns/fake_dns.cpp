#include "fake_dns.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstring>
#include <queue>
#include <stdexcept>

namespace awaitdb::test {
namespace {

using clock = std::chrono::steady_clock;

constexpr std::uint16_t type_a = 1, type_aaaa = 28, class_in = 1;

void put16(std::string& out, std::uint16_t v) {
  out += static_cast<char>(v >> 8);
  out += static_cast<char>(v & 0xff);
}

struct question {
  std::uint16_t id = 0;
  bool recursion_desired = false;
  std::string host;  // lower case, dotted
  std::string raw;   // the question section as received
  std::uint16_t type = 0;
};

// Parses a query of one question; false for anything else.
bool parse(const unsigned char* p, std::size_t n, question& q) {
  if (n < 12 || (p[2] & 0x80) != 0) return false;  // too short, or a response
  q.id = static_cast<std::uint16_t>(p[0] << 8 | p[1]);
  q.recursion_desired = (p[2] & 0x01) != 0;
  if ((p[4] << 8 | p[5]) != 1) return false;
  std::size_t at = 12;
  while (at < n && p[at] != 0) {
    const std::size_t len = p[at];
    if ((len & 0xc0) != 0 || at + 1 + len > n) return false;
    if (!q.host.empty()) q.host += '.';
    for (std::size_t i = 0; i < len; ++i)
      q.host += static_cast<char>(std::tolower(p[at + 1 + i]));
    at += 1 + len;
  }
  if (at + 5 > n) return false;
  q.type = static_cast<std::uint16_t>(p[at + 1] << 8 | p[at + 2]);
  q.raw.assign(reinterpret_cast<const char*>(p) + 12, at + 5 - 12);
  return true;
}

std::string answer(const question& q, const fake_dns::name* n) {
  std::string out;
  put16(out, q.id);
  const bool missing = !n || n->missing;
  out += static_cast<char>(0x80 | 0x04 | (q.recursion_desired ? 0x01 : 0));  // QR, AA, RD
  out += static_cast<char>(0x80 | (missing ? 3 : 0));                        // RA, RCODE
  std::vector<std::string> records;
  if (!missing) {
    for (const std::string& a : n->addresses) {
      unsigned char bytes[16];
      if (q.type == type_a && ::inet_pton(AF_INET, a.c_str(), bytes) == 1)
        records.emplace_back(reinterpret_cast<char*>(bytes), 4);
      else if (q.type == type_aaaa && ::inet_pton(AF_INET6, a.c_str(), bytes) == 1)
        records.emplace_back(reinterpret_cast<char*>(bytes), 16);
    }
  }
  put16(out, 1);
  put16(out, static_cast<std::uint16_t>(records.size()));
  put16(out, 0);
  put16(out, 0);
  out += q.raw;
  for (const std::string& r : records) {
    put16(out, 0xc00c);  // the name: a pointer to the question's
    put16(out, q.type);
    put16(out, class_in);
    put16(out, 0);
    put16(out, 0);  // TTL 0
    put16(out, static_cast<std::uint16_t>(r.size()));
    out += r;
  }
  return out;
}

}  // namespace

fake_dns::fake_dns(std::string address) {
  fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in at{};
  at.sin_family = AF_INET;
  at.sin_port = htons(53);
  if (fd_ < 0 || ::inet_pton(AF_INET, address.c_str(), &at.sin_addr) != 1 ||
      ::bind(fd_, reinterpret_cast<sockaddr*>(&at), sizeof at) != 0 || ::pipe(wake_) != 0) {
    const std::string why = std::strerror(errno);
    if (fd_ >= 0) ::close(fd_);
    throw std::runtime_error("the test DNS server cannot listen on " + address + ":53: " + why);
  }
  thread_ = std::thread([this] { serve(); });
}

fake_dns::~fake_dns() {
  stop_ = true;
  (void)!::write(wake_[1], "x", 1);
  thread_.join();
  ::close(fd_);
  ::close(wake_[0]);
  ::close(wake_[1]);
}

void fake_dns::set(const std::string& host, name n) {
  std::lock_guard lock(mutex_);
  names_[host] = std::move(n);
}

int fake_dns::questions(const std::string& host) const {
  std::lock_guard lock(mutex_);
  auto it = asked_.find(host);
  return it == asked_.end() ? 0 : it->second;
}

void fake_dns::serve() {
  struct reply {
    clock::time_point at;
    std::string bytes;
    sockaddr_storage to;
    socklen_t to_len;
    bool operator>(const reply& o) const { return at > o.at; }
  };
  std::priority_queue<reply, std::vector<reply>, std::greater<>> due;
  while (!stop_) {
    int wait_ms = -1;
    if (!due.empty())
      wait_ms = static_cast<int>(std::max<std::int64_t>(
          0, std::chrono::ceil<std::chrono::milliseconds>(due.top().at - clock::now()).count()));
    pollfd fds[2] = {{fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    ::poll(fds, 2, wait_ms);
    while (!due.empty() && due.top().at <= clock::now()) {
      const reply& r = due.top();
      (void)::sendto(fd_, r.bytes.data(), r.bytes.size(), 0,
                     reinterpret_cast<const sockaddr*>(&r.to), r.to_len);
      due.pop();
    }
    if (!(fds[0].revents & POLLIN)) continue;
    unsigned char buffer[512];
    reply r{};
    r.to_len = sizeof r.to;
    const ssize_t n =
        ::recvfrom(fd_, buffer, sizeof buffer, 0, reinterpret_cast<sockaddr*>(&r.to), &r.to_len);
    question q;
    if (n <= 0 || !parse(buffer, static_cast<std::size_t>(n), q)) continue;
    std::lock_guard lock(mutex_);
    ++asked_[q.host];
    auto it = names_.find(q.host);
    const name* found = it == names_.end() ? nullptr : &it->second;
    if (found && found->never_answers) continue;
    r.at = clock::now() + (found ? found->delay : std::chrono::milliseconds(0));
    r.bytes = answer(q, found);
    due.push(std::move(r));
  }
}

}  // namespace awaitdb::test

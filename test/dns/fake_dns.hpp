// A DNS server of the tests' own: answers A and AAAA questions for the names it is given, each
// after a delay of its own, or never, or with "no such name". UDP only, on a thread of its own
// (test machinery, not the library). Used where /etc/resolv.conf points at it: inside a private
// mount namespace (see run-isolated), so nothing else on the machine asks it anything.
#ifndef AWAITDB_TEST_DNS_FAKE_DNS_HPP
#define AWAITDB_TEST_DNS_FAKE_DNS_HPP

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace awaitdb::test {

class fake_dns {
 public:
  struct name {
    std::vector<std::string> addresses;  // IPv4 and IPv6, answered as A and AAAA records
    std::chrono::milliseconds delay{0};
    bool never_answers = false;
    bool missing = false;  // NXDOMAIN
  };

  /// Listens on `address`:53 (UDP). Throws std::runtime_error when it cannot.
  explicit fake_dns(std::string address);
  ~fake_dns();
  fake_dns(const fake_dns&) = delete;
  fake_dns& operator=(const fake_dns&) = delete;

  /// Adds or replaces a name (lower case, without the final dot).
  void set(const std::string& host, name n);
  /// Questions received for `host` so far.
  int questions(const std::string& host) const;

 private:
  void serve();

  int fd_ = -1;
  int wake_[2] = {-1, -1};
  mutable std::mutex mutex_;
  std::map<std::string, name> names_;
  std::map<std::string, int> asked_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace awaitdb::test

#endif  // AWAITDB_TEST_DNS_FAKE_DNS_HPP

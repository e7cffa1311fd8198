// awaitdb: the rows a query returns.
#ifndef AWAITDB_RESULT_HPP
#define AWAITDB_RESULT_HPP

#include <awaitdb/row.hpp>

#include <cstddef>
#include <iterator>
#include <memory>
#include <string_view>

namespace awaitdb {

/// The complete result of `database::query`: every row, already received.
///
/// A `result` owns its data and is cheap to copy (copies share it) and to move. It is not tied to
/// a connection: it stays valid after the connection, the transaction or the `database` is gone.
/// Rows from `operator[]` and `at` share the data; rows met while iterating, and the
/// `std::string_view`s of `column_name`, are views valid while a `result` sharing the data is
/// alive.
///
/// Thread safety: distinct objects, safe; a shared `result`, safe for concurrent reads.
class result {
 public:
  class iterator {
   public:
    using iterator_category = std::random_access_iterator_tag;
    using value_type = row;
    using difference_type = std::ptrdiff_t;
    using pointer = void;
    using reference = row;

    iterator() = default;
    row operator*() const noexcept { return row(src_, index_); }
    row operator[](difference_type n) const noexcept { return row(src_, index_ + n); }
    iterator& operator++() noexcept {
      ++index_;
      return *this;
    }
    iterator operator++(int) noexcept {
      iterator t = *this;
      ++index_;
      return t;
    }
    iterator& operator--() noexcept {
      --index_;
      return *this;
    }
    iterator operator--(int) noexcept {
      iterator t = *this;
      --index_;
      return t;
    }
    iterator& operator+=(difference_type n) noexcept {
      index_ += n;
      return *this;
    }
    iterator& operator-=(difference_type n) noexcept {
      index_ -= n;
      return *this;
    }
    friend iterator operator+(iterator it, difference_type n) noexcept { return it += n; }
    friend iterator operator+(difference_type n, iterator it) noexcept { return it += n; }
    friend iterator operator-(iterator it, difference_type n) noexcept { return it -= n; }
    friend difference_type operator-(const iterator& a, const iterator& b) noexcept {
      return static_cast<difference_type>(a.index_) - static_cast<difference_type>(b.index_);
    }
    friend bool operator==(const iterator& a, const iterator& b) noexcept {
      return a.index_ == b.index_;
    }
    friend auto operator<=>(const iterator& a, const iterator& b) noexcept {
      return a.index_ <=> b.index_;
    }

   private:
    friend class result;
    iterator(const detail::result_source* src, std::size_t index) : src_(src), index_(index) {}
    const detail::result_source* src_ = nullptr;
    std::size_t index_ = 0;
  };

  /// An empty result: no rows, no columns.
  result() = default;
  explicit result(std::shared_ptr<const detail::result_source> src) : src_(std::move(src)) {}

  std::size_t size() const noexcept { return src_ ? src_->rows() : 0; }
  bool empty() const noexcept { return size() == 0; }
  iterator begin() const noexcept { return iterator(src_.get(), 0); }
  iterator end() const noexcept { return iterator(src_.get(), size()); }

  /// The row at `index`; unchecked, like `std::vector::operator[]`. The row keeps the result's
  /// data alive.
  row operator[](std::size_t index) const noexcept { return row(src_, index); }
  /// The row at `index`, keeping the data alive; throws `awaitdb::error` when out of range.
  row at(std::size_t index) const;

  std::size_t column_count() const noexcept { return src_ ? src_->columns() : 0; }
  /// The name of column `index`, as the database reported it. Throws `awaitdb::error` when out
  /// of range. The view is valid while this result is alive.
  std::string_view column_name(std::size_t index) const;

 private:
  std::shared_ptr<const detail::result_source> src_;
};

}  // namespace awaitdb

#endif  // AWAITDB_RESULT_HPP

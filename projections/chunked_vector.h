#pragma once
// ChunkedVector: a growing array of T in fixed chunks of 2^kShift elements. An
// element's address never changes (chunks are not moved as the array grows), and
// reaching element n takes one look into a small table of chunks, which stays in the
// CPU's caches: std::deque, which also keeps addresses, cuts its array into nodes of
// 512 bytes (9 elements of 56 bytes), so at a million elements its table of nodes
// alone is ~900 KB and each random access misses twice.
//
// Elements are value-initialized a chunk at a time. Not thread-safe.

#include <cstddef>
#include <memory>
#include <vector>

namespace lifecycle::projections {

template <typename T, int kShift = 12>
class ChunkedVector {
 public:
  static constexpr size_t kChunk = size_t{1} << kShift;

  ChunkedVector() = default;
  ChunkedVector(const ChunkedVector&) = delete;
  ChunkedVector& operator=(const ChunkedVector&) = delete;

  T& operator[](size_t n) { return chunks_[n >> kShift][n & (kChunk - 1)]; }
  const T& operator[](size_t n) const { return chunks_[n >> kShift][n & (kChunk - 1)]; }
  size_t size() const { return size_; }
  // A new last element, value-initialized.
  T& emplace_back() {
    if ((size_ & (kChunk - 1)) == 0) chunks_.push_back(std::make_unique<T[]>(kChunk));
    return (*this)[size_++];
  }
  template <typename F>
  void ForEach(F&& f) {
    for (size_t n = 0; n < size_; ++n) f((*this)[n]);
  }

 private:
  std::vector<std::unique_ptr<T[]>> chunks_;
  size_t size_ = 0;
};

}  // namespace lifecycle::projections

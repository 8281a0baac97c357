#pragma once
// The byte primitives of the stored layouts (record.h, history.h): unsigned and
// zigzag varints, fixed 64-bit little-endian words, length-prefixed bytes.

#include <bit>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace lifecycle::projections::codec {

inline void PutVarint(uint64_t v, std::string* out) {
  char buf[10];
  int n = 0;
  while (v >= 0x80) {
    buf[n++] = static_cast<char>(v | 0x80);
    v >>= 7;
  }
  buf[n++] = static_cast<char>(v);
  out->append(buf, n);
}
// Zigzag: small negative and positive numbers become small unsigned ones.
inline uint64_t ZigZag(int64_t v) {
  return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
}
inline int64_t UnZigZag(uint64_t v) { return static_cast<int64_t>((v >> 1) ^ (~(v & 1) + 1)); }

inline void PutSigned(int64_t v, std::string* out) { PutVarint(ZigZag(v), out); }
inline void PutFixed64(uint64_t v, std::string* out) {
  char b[8];
  for (int i = 0; i < 8; ++i) b[i] = static_cast<char>(v >> (8 * i));
  out->append(b, 8);
}
inline void PutDouble(double d, std::string* out) {
  uint64_t v;
  std::memcpy(&v, &d, 8);
  PutFixed64(v, out);
}
inline void PutBytes(std::string_view s, std::string* out) {
  PutVarint(s.size(), out);
  out->append(s);
}

// Reads what the Put functions wrote; any overrun sets ok() to false and reads zeros.
class Reader {
 public:
  explicit Reader(std::string_view in) : p_(in.data()), end_(in.data() + in.size()) {}
  bool ok() const { return ok_; }
  bool done() const { return p_ == end_; }

  uint64_t Varint() {
    // Most values are one byte; with ten bytes left no byte needs its own bounds check.
    if (end_ - p_ >= 10) [[likely]] {
      uint64_t b = static_cast<uint8_t>(*p_++);
      if (b < 0x80) return b;
      uint64_t v = b & 0x7f;
      for (int shift = 7; shift < 64; shift += 7) {
        b = static_cast<uint8_t>(*p_++);
        v |= (b & 0x7f) << shift;
        if (b < 0x80) return v;
      }
      return Fail();
    }
    return VarintNearEnd();
  }
  int64_t Signed() {
    return UnZigZag(Varint());
  }
  uint64_t Fixed64() {
    if (end_ - p_ < 8) return Fail();
    uint64_t v;
    std::memcpy(&v, p_, 8);
    if constexpr (std::endian::native == std::endian::big) v = __builtin_bswap64(v);
    p_ += 8;
    return v;
  }
  double Double() {
    const uint64_t v = Fixed64();
    double d;
    std::memcpy(&d, &v, 8);
    return d;
  }
  std::string_view Bytes() {
    const uint64_t n = Varint();
    if (static_cast<uint64_t>(end_ - p_) < n) {
      Fail();
      return {};
    }
    std::string_view s(p_, n);
    p_ += n;
    return s;
  }
  // Everything not read yet.
  std::string_view Rest() {
    std::string_view s(p_, static_cast<size_t>(end_ - p_));
    p_ = end_;
    return s;
  }
  // A count of list elements: bounded by the bytes left (each element takes one at least).
  size_t Count() {
    const uint64_t n = Varint();
    if (n > static_cast<uint64_t>(end_ - p_)) return static_cast<size_t>(Fail());
    return static_cast<size_t>(n);
  }

 private:
  [[gnu::noinline]] uint64_t VarintNearEnd() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p_ == end_) return Fail();
      const uint8_t b = static_cast<uint8_t>(*p_++);
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (b < 0x80) return v;
    }
    return Fail();
  }
  uint64_t Fail() {
    ok_ = false;
    p_ = end_;
    return 0;
  }
  const char* p_;
  const char* end_;
  bool ok_ = true;
};

}  // namespace lifecycle::projections::codec

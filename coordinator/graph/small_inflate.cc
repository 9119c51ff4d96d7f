#include "coordinator/graph/small_inflate.h"

#include <algorithm>
#include <array>
#include <cstring>

namespace farm {
namespace {

constexpr uint16_t kLengthBase[29] = {3,  4,  5,  6,   7,   8,   9,   10,  11, 13,
                                      15, 17, 19, 23,  27,  31,  35,  43,  51, 59,
                                      67, 83, 99, 115, 131, 163, 195, 227, 258};
constexpr uint8_t kLengthExtra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                      2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
constexpr uint16_t kDistBase[30] = {1,    2,    3,    4,    5,    7,    9,    13,    17,    25,
                                    33,   49,   65,   97,   129,  193,  257,  385,   513,   769,
                                    1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
constexpr uint8_t kDistExtra[30] = {0, 0, 0, 0, 1, 1, 2, 2,  3,  3,  4,  4,  5,  5,  6,
                                    6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};
constexpr uint8_t kPrecodeOrder[19] = {16, 17, 18, 0, 8,  7, 9,  6, 10, 5,
                                       11, 4,  12, 3, 13, 2, 14, 1, 15};

using Code = SmallInflater::Code;

// Lookup bits per code: most literals of a commit (hex digits, letters) have codes of 4-8
// bits, distances and code-length codes fewer; longer ones take the slow path.
constexpr int kLiteralBits = 9, kDistanceBits = 6, kPrecodeBits = 7;

// 9-bit values with their bits reversed.
const std::array<uint16_t, 512> kReversed9 = [] {
  std::array<uint16_t, 512> table{};
  for (uint32_t v = 0; v < 512; ++v) {
    for (int b = 0; b < 9; ++b) table[v] |= static_cast<uint16_t>(((v >> b) & 1u) << (8 - b));
  }
  return table;
}();

// Builds `code` from code lengths; false if they are over-subscribed. An incomplete code is
// accepted: a missing code is an error when met.
bool Build(Code& code, const uint8_t* lengths, int n, int fast_bits) {
  code.fast_bits = fast_bits;
  // Without branches on the (mostly zero, unpredictable) lengths: four count arrays break the
  // chain of increments of one counter, and the used symbols are listed first.
  uint16_t counts[4][16] = {};
  uint16_t used[288];
  int n_used = 0;
  for (int i = 0; i < n; ++i) {
    ++counts[i & 3][lengths[i]];
    used[n_used] = static_cast<uint16_t>(i);
    n_used += lengths[i] != 0;
  }
  for (int len = 0; len < 16; ++len) {
    code.count[len] =
        static_cast<uint16_t>(counts[0][len] + counts[1][len] + counts[2][len] + counts[3][len]);
  }
  code.count[0] = 0;
  int left = 1;
  for (int len = 1; len < 16; ++len) {
    left = 2 * left - code.count[len];
    if (left < 0) return false;
  }
  uint16_t offset[16];
  offset[1] = 0;
  for (int len = 1; len < 15; ++len) offset[len + 1] = offset[len] + code.count[len];
  // Symbols in canonical order: by length, then by value.
  for (int u = 0; u < n_used; ++u) code.symbol[offset[lengths[used[u]]]++] = used[u];
  // The lookup table grows a bit at a time: doubling it (one memcpy) repeats every shorter code
  // over the new bit, then each code of this length is one entry, at its reversed code (codes
  // are sent first bit first). Unset entries (0) are prefixes of longer codes.
  code.fast[0] = 0;
  uint32_t filled = 1, canonical = 0;
  int next_symbol = 0;
  for (int len = 1; len <= fast_bits; ++len) {
    std::memcpy(code.fast + filled, code.fast, filled * sizeof code.fast[0]);
    filled *= 2;
    for (int k = 0; k < code.count[len]; ++k, ++canonical) {
      code.fast[kReversed9[canonical] >> (Code::kMaxFastBits - len)] =
          static_cast<uint16_t>(len << 9 | code.symbol[next_symbol++]);
    }
    canonical <<= 1;
  }
  return true;
}

const Code& FixedLiterals() {
  static const Code code = [] {
    Code c;
    uint8_t lengths[288];
    std::fill(lengths, lengths + 144, 8);
    std::fill(lengths + 144, lengths + 256, 9);
    std::fill(lengths + 256, lengths + 280, 7);
    std::fill(lengths + 280, lengths + 288, 8);
    Build(c, lengths, 288, kLiteralBits);
    return c;
  }();
  return code;
}

const Code& FixedDistances() {
  static const Code code = [] {
    Code c;
    uint8_t lengths[30];
    std::fill(lengths, lengths + 30, 5);
    Build(c, lengths, 30, kDistanceBits);
    return c;
  }();
  return code;
}

}  // namespace

SmallInflater::SmallInflater() {
  FixedLiterals();
  FixedDistances();
}

bool SmallInflater::Start(const uint8_t* in, size_t in_size, size_t size) {
  in_ = in;
  in_end_ = in + in_size;
  bit_buf_ = 0;
  bit_count_ = 0;
  pad_bits_ = 0;
  size_ = size;
  produced_ = 0;
  in_block_ = last_block_ = ended_ = stored_ = false;
  if (out_.size() < size) out_.resize(size);
  if (in_size < 2) return false;
  const uint8_t cmf = in[0], flg = in[1];
  in_ += 2;
  return (cmf & 15) == 8 && (cmf >> 4) <= 7 && (cmf * 256 + flg) % 31 == 0 && !(flg & 0x20);
}

void SmallInflater::Fill() {
  if (in_end_ - in_ >= 8) {
    // Eight bytes at once; the bytes above the whole ones counted are ORed in again, with the
    // same values, by the next fill.
    uint64_t word;
    std::memcpy(&word, in_, sizeof word);
    bit_buf_ |= word << bit_count_;
    const int bytes = (63 - bit_count_) >> 3;
    in_ += bytes;
    bit_count_ += 8 * bytes;
    return;
  }
  // Past the input, zero bits: consuming one is an error, checked at the end of Produce.
  while (bit_count_ <= 56) {
    if (in_ < in_end_) {
      bit_buf_ |= uint64_t{*in_++} << bit_count_;
    } else {
      pad_bits_ += 8;
    }
    bit_count_ += 8;
  }
}

uint32_t SmallInflater::Bits(int bits) {
  if (bit_count_ < bits) Fill();
  const uint32_t value = static_cast<uint32_t>(bit_buf_ & ((uint64_t{1} << bits) - 1));
  bit_buf_ >>= bits;
  bit_count_ -= bits;
  return value;
}

int SmallInflater::Decode(const Code& code) {
  if (bit_count_ < 15) Fill();
  const uint16_t entry = code.fast[bit_buf_ & ((1u << code.fast_bits) - 1)];
  if (entry != 0) {
    const int len = entry >> 9;
    bit_buf_ >>= len;
    bit_count_ -= len;
    return entry & 511;
  }
  int first = 0, index = 0, canonical = 0;
  for (int len = 1; len < 16; ++len) {
    canonical |= static_cast<int>((bit_buf_ >> (len - 1)) & 1);
    const int count = code.count[len];
    if (canonical - count < first) {
      bit_buf_ >>= len;
      bit_count_ -= len;
      return code.symbol[index + (canonical - first)];
    }
    index += count;
    first = (first + count) << 1;
    canonical <<= 1;
  }
  return -1;
}

bool SmallInflater::DynamicCodes() {
  const int literals = static_cast<int>(Bits(5)) + 257;
  const int distances = static_cast<int>(Bits(5)) + 1;
  const int precodes = static_cast<int>(Bits(4)) + 4;
  if (literals > 286 || distances > 30) return false;
  uint8_t lengths[286 + 30] = {};
  for (int i = 0; i < precodes; ++i) lengths[kPrecodeOrder[i]] = static_cast<uint8_t>(Bits(3));
  Code precode;
  if (!Build(precode, lengths, 19, kPrecodeBits)) return false;
  std::memset(lengths, 0, sizeof lengths);
  for (int index = 0; index < literals + distances;) {
    const int sym = Decode(precode);
    if (sym < 0) return false;
    if (sym < 16) {
      lengths[index++] = static_cast<uint8_t>(sym);
      continue;
    }
    uint8_t len = 0;
    int repeat;
    if (sym == 16) {
      if (index == 0) return false;
      len = lengths[index - 1];
      repeat = 3 + static_cast<int>(Bits(2));
    } else if (sym == 17) {
      repeat = 3 + static_cast<int>(Bits(3));
    } else {
      repeat = 11 + static_cast<int>(Bits(7));
    }
    if (index + repeat > literals + distances) return false;
    while (repeat-- > 0) lengths[index++] = len;
  }
  if (lengths[256] == 0) return false;  // no end-of-block code
  if (!Build(dyn_lit_, lengths, literals, kLiteralBits) ||
      !Build(dyn_dist_, lengths + literals, distances, kDistanceBits)) {
    return false;
  }
  lit_ = &dyn_lit_;
  dist_ = &dyn_dist_;
  return true;
}

bool SmallInflater::NextBlock() {
  last_block_ = Bits(1) != 0;
  switch (Bits(2)) {
    case 0: {
      // Stored: byte-aligned LEN and NLEN, then LEN bytes. Give back the whole bytes buffered.
      if (pad_bits_ > 0) return false;
      Bits(bit_count_ % 8);
      in_ -= bit_count_ / 8;
      bit_buf_ = 0;
      bit_count_ = 0;
      if (in_end_ - in_ < 4) return false;
      const uint16_t len = static_cast<uint16_t>(in_[0] | in_[1] << 8);
      const uint16_t nlen = static_cast<uint16_t>(in_[2] | in_[3] << 8);
      if (len != static_cast<uint16_t>(~nlen)) return false;
      in_ += 4;
      stored_ = true;
      stored_left_ = len;
      break;
    }
    case 1:
      stored_ = false;
      lit_ = &FixedLiterals();
      dist_ = &FixedDistances();
      break;
    case 2:
      stored_ = false;
      if (!DynamicCodes()) return false;
      break;
    default:
      return false;
  }
  in_block_ = true;
  return true;
}

bool SmallInflater::Produce(size_t want) {
  want = std::min(want, size_);
  while (produced_ < want && !ended_) {
    if (!in_block_) {
      if (last_block_) {
        ended_ = true;
        break;
      }
      if (!NextBlock()) return false;
      continue;
    }
    if (stored_) {
      const size_t n = std::min(stored_left_, size_ - produced_);
      if (static_cast<size_t>(in_end_ - in_) < n) return false;
      std::memcpy(out_.data() + produced_, in_, n);
      in_ += n;
      produced_ += n;
      stored_left_ -= n;
      if (stored_left_ > 0) return false;  // more than the size
      in_block_ = false;
      ended_ = last_block_;
      continue;
    }
    const int sym = Decode(*lit_);
    if (sym < 0) return false;
    if (sym < 256) {
      if (produced_ >= size_) return false;
      out_[produced_++] = static_cast<uint8_t>(sym);
    } else if (sym == 256) {
      in_block_ = false;
      ended_ = last_block_;
    } else {
      if (sym > 285) return false;
      const size_t len = kLengthBase[sym - 257] + Bits(kLengthExtra[sym - 257]);
      const int dsym = Decode(*dist_);
      if (dsym < 0 || dsym > 29) return false;
      const size_t dist = kDistBase[dsym] + Bits(kDistExtra[dsym]);
      if (dist > produced_ || len > size_ - produced_) return false;
      uint8_t* out = out_.data() + produced_;
      const uint8_t* from = out - dist;                   // dist <= produced_: within the output
      for (size_t i = 0; i < len; ++i) out[i] = from[i];  // may overlap: byte by byte
      produced_ += len;
    }
  }
  return pad_bits_ <= bit_count_;
}

}  // namespace farm

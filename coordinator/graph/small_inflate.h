// SmallInflater: a zlib-stream (RFC 1950/1951) decoder for many small objects that are read
// only in part, such as the parent lines at the start of each commit of a pack. General
// decoders build 2,048-entry Huffman tables per block (libdeflate) or keep a 32 KB window
// (zlib): on 200-byte commits that is most of the time. This one builds 512-entry tables and
// stops as soon as the caller has what it needs. Internal to PackCommits.
#ifndef FARM_COORDINATOR_GRAPH_SMALL_INFLATE_H_
#define FARM_COORDINATOR_GRAPH_SMALL_INFLATE_H_

#include <cstddef>
#include <cstdint>
#include <vector>

namespace farm {

// Not thread-safe; one per thread, reused for every object.
class SmallInflater {
 public:
  SmallInflater();

  // Starts decoding the zlib stream at `in` (at most `in_size` bytes; it may be followed by
  // anything) whose decoded size is `size`. False if the zlib header is not deflate.
  bool Start(const uint8_t* in, size_t in_size, size_t size);

  // Decodes until at least `want` bytes (capped at the size) are out, or the stream ends.
  // False if the stream is malformed, reads past `in_size`, or decodes to more than the size.
  bool Produce(size_t want);

  // What has been decoded so far.
  const uint8_t* data() const { return out_.data(); }
  size_t produced() const { return produced_; }
  // True once the final block has ended.
  bool ended() const { return ended_; }

  // A canonical Huffman code: a 2^kFastBits lookup on the next bits for codes up to that
  // long, counts and sorted symbols for longer ones.
  struct Code {
    static constexpr int kMaxFastBits = 9;
    int fast_bits;  // the table's size is 2^fast_bits: filling it is most of building a code
    uint16_t count[16];
    uint16_t symbol[288];
    uint16_t fast[1 << kMaxFastBits];  // length << 9 | symbol; 0: longer than fast_bits
  };

 private:
  void Fill();
  uint32_t Bits(int bits);
  int Decode(const Code& code);
  bool NextBlock();
  bool DynamicCodes();

  const uint8_t* in_ = nullptr;
  const uint8_t* in_end_ = nullptr;
  uint64_t bit_buf_ = 0;
  int bit_count_ = 0;
  int pad_bits_ = 0;  // zero bits added past the input
  std::vector<uint8_t> out_;
  size_t size_ = 0, produced_ = 0;
  bool in_block_ = false, last_block_ = false, ended_ = false;
  bool stored_ = false;
  size_t stored_left_ = 0;
  const Code* lit_ = nullptr;
  const Code* dist_ = nullptr;
  Code dyn_lit_, dyn_dist_;
};

}  // namespace farm

#endif  // FARM_COORDINATOR_GRAPH_SMALL_INFLATE_H_

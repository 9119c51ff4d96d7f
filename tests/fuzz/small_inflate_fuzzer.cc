// Fuzz target: SmallInflater (coordinator/graph/small_inflate.h), the hand-written zlib decoder
// of the pack pass, differentially against zlib itself.
//
// Properties:
//  * round trip: the input's tail, compressed by zlib at the level its first byte picks, decodes
//    to exactly that tail, both at once and when asked for a prefix first (as the pack pass asks
//    for the parent lines only);
//  * arbitrary streams: whatever SmallInflater decodes from the input taken as a zlib stream is
//    what zlib decodes from it (a prefix of it when zlib rejects the stream later, e.g. on the
//    checksum, which SmallInflater does not read); it never reads past the input (ASan) and
//    never produces more than the size it was told.
#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "coordinator/graph/small_inflate.h"
#include "tests/fuzz/fuzz_env.h"

namespace {

void Check(bool ok, const char* kind, const std::string& details, const uint8_t* data,
           size_t size) {
  if (!ok) farm::fuzz::Finding(kind, details, data, size);
}

void RoundTrip(const uint8_t* data, size_t size) {
  if (size == 0) return;
  const int level = data[0] % 10;
  const size_t want = size > 1 ? data[1] : 0;  // the prefix asked for first
  const uint8_t* plain = data + std::min<size_t>(size, 2);
  const size_t plain_size = size - std::min<size_t>(size, 2);
  uLongf zsize = compressBound(plain_size);
  std::vector<uint8_t> z(zsize);
  if (compress2(z.data(), &zsize, plain, plain_size, level) != Z_OK) return;
  farm::SmallInflater inf;
  Check(inf.Start(z.data(), zsize, plain_size), "start", "a zlib stream was refused", data, size);
  Check(inf.Produce(want), "prefix", "decoding a prefix failed", data, size);
  Check(inf.produced() >= std::min(want, plain_size), "prefix-short", "fewer bytes than asked for",
        data, size);
  const size_t prefix = std::min(inf.produced(), plain_size);
  Check(prefix == 0 || std::memcmp(inf.data(), plain, prefix) == 0, "prefix-differs",
        "the prefix differs from the input", data, size);
  Check(inf.Produce(plain_size), "whole", "decoding the whole stream failed", data, size);
  Check(inf.produced() == plain_size, "whole-size", "wrong decoded size", data, size);
  Check(plain_size == 0 || std::memcmp(inf.data(), plain, plain_size) == 0, "whole-differs",
        "the decoded stream differs from the input", data, size);
}

void Arbitrary(const uint8_t* data, size_t size) {
  // The claimed size: the first two bytes, so that short and long outputs are both tried.
  if (size < 2) return;
  const size_t claimed = (size_t{data[0]} << 8 | data[1]) % 8192;
  const uint8_t* stream = data + 2;
  const size_t stream_size = size - 2;
  // A copy of exactly the stream's bytes, so that ASan sees a read past its end.
  std::vector<uint8_t> copy(stream, stream + stream_size);
  farm::SmallInflater inf;
  if (!inf.Start(copy.data(), copy.size(), claimed)) return;
  const bool ok = inf.Produce(claimed);
  Check(inf.produced() <= claimed, "overproduce", "more bytes than the size it was told", data,
        size);
  if (!ok || inf.produced() == 0) return;
  // zlib on the same deflate data (raw, past the 2-byte header: no checksum to disagree on).
  std::vector<uint8_t> out(claimed + 1);
  z_stream zs{};
  if (inflateInit2(&zs, -15) != Z_OK) return;
  zs.next_in = const_cast<Bytef*>(copy.data() + 2);
  zs.avail_in = static_cast<uInt>(copy.size() - 2);
  zs.next_out = out.data();
  zs.avail_out = static_cast<uInt>(out.size());
  const int rc = inflate(&zs, Z_FINISH);
  const size_t zlib_out = zs.total_out;
  inflateEnd(&zs);
  const bool zlib_ok = rc == Z_STREAM_END || rc == Z_BUF_ERROR || rc == Z_OK;
  Check(zlib_out >= inf.produced() || !zlib_ok, "zlib-shorter",
        "SmallInflater decoded bytes that zlib does not", data, size);
  const size_t n = std::min(zlib_out, inf.produced());
  Check(n == 0 || std::memcmp(out.data(), inf.data(), n) == 0, "differs-from-zlib",
        "SmallInflater and zlib decode the same stream differently", data, size);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  // Half the inputs as plain text to compress, half as streams to decode.
  if (data[0] & 0x80) {
    RoundTrip(data + 1, size - 1);
  } else {
    Arbitrary(data + 1, size - 1);
  }
  return 0;
}

#include "agent/runner/output_limiter.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_format.h"

namespace farm {

void OutputLimiter::Write(std::string_view data) {
  total_ += data.size();
  if (head_sent_ < head_) {
    size_t n = std::min<uint64_t>(head_ - head_sent_, data.size());
    sink_(data.substr(0, n));
    head_sent_ += n;
    data.remove_prefix(n);
  }
  if (tail_ == 0) return;
  if (ring_.size() != tail_) ring_.resize(tail_);
  after_head_ += data.size();
  if (data.size() > tail_) data.remove_prefix(data.size() - tail_);
  while (!data.empty()) {
    size_t n = std::min(data.size(), tail_ - ring_pos_);
    std::memcpy(&ring_[ring_pos_], data.data(), n);
    ring_pos_ = (ring_pos_ + n) % tail_;
    data.remove_prefix(n);
  }
}

void OutputLimiter::Finish() {
  if (after_head_ == 0) return;
  uint64_t kept = std::min<uint64_t>(after_head_, tail_);
  if (after_head_ > kept) {
    sink_(
        absl::StrFormat("\n[farm: %d bytes of output elided; the first %d and the last %d "
                        "bytes are kept]\n",
                        after_head_ - kept, head_sent_, kept));
  }
  size_t start = (ring_pos_ + tail_ - kept) % tail_;  // oldest kept byte
  std::string tail;
  tail.reserve(kept);
  tail.append(ring_, start, std::min<uint64_t>(kept, tail_ - start));
  if (tail.size() < kept) tail.append(ring_, 0, kept - tail.size());
  sink_(tail);
}

}  // namespace farm

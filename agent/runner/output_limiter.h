// OutputLimiter: a task's output, bounded (the first and the last bytes kept, the middle elided).
#ifndef FARM_AGENT_RUNNER_OUTPUT_LIMITER_H_
#define FARM_AGENT_RUNNER_OUTPUT_LIMITER_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace farm {

// Keeps a task's output bounded: the first `head` bytes pass through, then only the last `tail`
// bytes are kept and flushed at the end behind a line that says how much was elided.
// Not thread-safe.
class OutputLimiter {
 public:
  using Sink = std::function<void(std::string_view)>;
  OutputLimiter(Sink sink, size_t head = 4 << 20, size_t tail = 1 << 20)
      : sink_(std::move(sink)), head_(head), tail_(tail) {}
  void Write(std::string_view data);
  // Flushes the kept tail. Call once, at the end.
  void Finish();
  uint64_t total() const { return total_; }

 private:
  Sink sink_;
  const size_t head_, tail_;
  uint64_t total_ = 0;
  uint64_t head_sent_ = 0;
  uint64_t after_head_ = 0;  // bytes past the head, of which the ring keeps the last tail_
  std::string ring_;
  size_t ring_pos_ = 0;
};

}  // namespace farm

#endif  // FARM_AGENT_RUNNER_OUTPUT_LIMITER_H_

// The queue of job events waiting to be written to one WatchJob stream.
//
// farm.proto promises a watcher the first event (the full snapshot) and the last (the terminal
// state), and allows one that cannot keep up to miss events in between. A stalled watcher (a
// client that stopped reading, a slow link) must not make the coordinator hold every event of a
// job with thousands of tasks: past `bound` queued events, a new RUNNING event replaces the newest
// queued one (which it supersedes: every event is a whole status), so the queue never holds more
// than bound + 1 events, and a terminal event is always kept.
//
// Thread safety: none; the caller holds its own lock.
#ifndef FARM_COORDINATOR_SERVICE_EVENT_QUEUE_H_
#define FARM_COORDINATOR_SERVICE_EVENT_QUEUE_H_

#include <cstddef>
#include <deque>

#include "farm/v1/farm.pb.h"

namespace farm {

class EventQueue {
 public:
  explicit EventQueue(size_t bound) : bound_(bound < 2 ? 2 : bound) {}

  // Queues `ev`; after a terminal event, later ones are ignored (the stream ends with it).
  // The front (possibly being written) is never replaced.
  void Push(const farm::v1::JobEvent& ev) {
    if (saw_terminal_) return;
    if (queue_.size() > bound_ && ev.status().state() == farm::v1::RUNNING) {
      queue_.pop_back();
      ++dropped_;
    }
    queue_.push_back(ev);
    if (ev.status().state() != farm::v1::RUNNING) saw_terminal_ = true;
  }
  bool empty() const { return queue_.empty(); }
  size_t size() const { return queue_.size(); }
  farm::v1::JobEvent& front() { return queue_.front(); }
  void pop_front() { queue_.pop_front(); }
  bool saw_terminal() const { return saw_terminal_; }
  // Events replaced unsent so far.
  size_t dropped() const { return dropped_; }

 private:
  size_t bound_;
  std::deque<farm::v1::JobEvent> queue_;
  bool saw_terminal_ = false;
  size_t dropped_ = 0;
};

}  // namespace farm

#endif  // FARM_COORDINATOR_SERVICE_EVENT_QUEUE_H_

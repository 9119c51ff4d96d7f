// The watcher queue bound (farm.proto WatchJob): a watcher that stops reading costs the
// coordinator at most bound + 1 queued events, and still gets the first and the last.
#include "coordinator/service/event_queue.h"

#include "gtest/gtest.h"

namespace farm {
namespace {

v1::JobEvent Event(uint64_t seq, v1::JobState state) {
  v1::JobEvent ev;
  ev.set_seq(seq);
  ev.mutable_status()->set_state(state);
  return ev;
}

TEST(EventQueue, StalledWatcherIsBoundedAndKeepsTheFirstAndTheLast) {
  EventQueue q(64);
  q.Push(Event(1, v1::RUNNING));  // the snapshot, being written when the watcher stalls
  size_t most = 0;
  for (uint64_t seq = 2; seq <= 10000; ++seq) {
    q.Push(Event(seq, v1::RUNNING));
    most = std::max(most, q.size());
  }
  EXPECT_LE(most, 65u);
  q.Push(Event(10001, v1::FOUND));
  EXPECT_LE(q.size(), 66u);
  EXPECT_GT(q.dropped(), 9000u);
  EXPECT_TRUE(q.saw_terminal());
  // Drained in order: the first is the snapshot, the last the terminal event, seqs increasing,
  // and the newest running event before the end survived (what the watcher shows last).
  ASSERT_EQ(q.front().seq(), 1u);
  uint64_t last_seq = 0, before_last = 0;
  while (!q.empty()) {
    EXPECT_GT(q.front().seq(), last_seq);
    before_last = last_seq;
    last_seq = q.front().seq();
    q.pop_front();
  }
  EXPECT_EQ(last_seq, 10001u);
  EXPECT_EQ(before_last, 10000u);
}

TEST(EventQueue, NothingAfterTheTerminalEvent) {
  EventQueue q(4);
  q.Push(Event(1, v1::RUNNING));
  q.Push(Event(2, v1::CANCELLED));
  q.Push(Event(3, v1::RUNNING));
  EXPECT_EQ(q.size(), 2u);
}

TEST(EventQueue, AWatcherThatKeepsUpMissesNothing) {
  EventQueue q(64);
  for (uint64_t seq = 1; seq <= 1000; ++seq) {
    q.Push(Event(seq, v1::RUNNING));
    ASSERT_EQ(q.front().seq(), seq);
    q.pop_front();
  }
  EXPECT_EQ(q.dropped(), 0u);
}

}  // namespace
}  // namespace farm

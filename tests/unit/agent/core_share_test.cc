#include "agent/link/core_share.h"

#include <gtest/gtest.h>

namespace farm {
namespace {

TEST(CoreShare, AloneGetsEveryCoreTogetherShare) {
  CoreShare share(8);
  EXPECT_EQ(share.Start(), 8);  // alone: the whole machine
  EXPECT_EQ(share.Start(), 4);  // a second task started beside it
  EXPECT_EQ(share.Start(), 2);
  EXPECT_EQ(share.Start(), 2);
  for (int i = 0; i < 4; ++i) share.End();
  EXPECT_EQ(share.Start(), 8);  // the others ended: alone again
  share.End();
}

TEST(CoreShare, NeverLessThanOneAndEndsOnlyWhatStarted) {
  CoreShare share(2);
  EXPECT_EQ(share.Start(), 2);
  EXPECT_EQ(share.Start(), 1);
  EXPECT_EQ(share.Start(), 1);              // more tasks than cores: one each
  for (int i = 0; i < 5; ++i) share.End();  // extra Ends do not go below zero
  EXPECT_EQ(share.Start(), 2);
  EXPECT_EQ(CoreShare(0).Start(), 1);
  EXPECT_GE(CoreShare::MachineCores(), 1);
}

}  // namespace
}  // namespace farm

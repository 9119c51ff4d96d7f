// CoreShare: the cores of one machine, shared by the tasks that run on it at once.
//
// A task is given its share when it starts (FARM_JOBS, make -j): every core when it runs alone,
// the cores divided by the tasks running with it otherwise. Agents on one machine (the local
// agents of `farm bisect --agents K`) share one CoreShare, so K speculative builds do not each
// start as many compilers as the machine has cores.
#ifndef FARM_AGENT_LINK_CORE_SHARE_H_
#define FARM_AGENT_LINK_CORE_SHARE_H_

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace farm {

class CoreShare {
 public:
  // `cores` < 1 counts as 1.
  explicit CoreShare(int cores);
  // A task starts: returns the cores it may use, max(1, cores / (tasks running + 1)), and
  // counts it as running until End(). Thread-safe.
  int Start();
  // A task that Start() counted has ended. Thread-safe.
  void End();
  // The machine's cores (hardware_concurrency, at least 1).
  static int MachineCores();

 private:
  const int cores_;
  absl::Mutex mu_;
  int running_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace farm

#endif  // FARM_AGENT_LINK_CORE_SHARE_H_

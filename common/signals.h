// Orderly shutdown on SIGINT/SIGTERM without doing work in a signal handler.
#ifndef FARM_COMMON_SIGNALS_H_
#define FARM_COMMON_SIGNALS_H_

#include <signal.h>

#include <functional>
#include <thread>

namespace farm {

// Blocks SIGINT and SIGTERM in the calling thread (and so in every thread it starts later: call
// it first in main) and runs `on_signal(signo)` on a detached thread each time one arrives.
// SIGPIPE is ignored.
inline void HandleTerminationSignals(std::function<void(int)> on_signal) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
  std::thread([set, fn = std::move(on_signal)] {
    while (true) {
      int sig = 0;
      if (sigwait(&set, &sig) == 0) fn(sig);
    }
  }).detach();
}

}  // namespace farm

#endif  // FARM_COMMON_SIGNALS_H_

// A small filesystem for tests of a full disk: a tmpfs mounted for one test.
#ifndef FARM_TESTS_LIB_TMPFS_H_
#define FARM_TESTS_LIB_TMPFS_H_

#include <cstdint>
#include <string>

namespace farm::testing {

// Mounts a tmpfs of `size_bytes` at `dir` (created if missing). The first mount of a process
// first moves the calling thread into a private mount namespace of its own, so the mount is seen
// only by this process and the processes it starts afterwards (from this thread), never by the
// rest of the machine, and vanishes with the process even when a test crashes. Needs root
// (CAP_SYS_ADMIN); when the mount cannot be made, ok() is false and error() says why (a test then
// GTEST_SKIPs with it). The destructor unmounts.
class TmpfsMount {
 public:
  TmpfsMount(const std::string& dir, uint64_t size_bytes);
  ~TmpfsMount();
  TmpfsMount(const TmpfsMount&) = delete;
  TmpfsMount& operator=(const TmpfsMount&) = delete;

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  std::string error_;
  bool mounted_ = false;
};

// Writes zeros to `file` until its filesystem is full; returns the bytes written.
uint64_t FillDisk(const std::string& file);

}  // namespace farm::testing

#endif  // FARM_TESTS_LIB_TMPFS_H_

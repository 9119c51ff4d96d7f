// A git repository whose top Makefile plays the kernel's for agent/build's BuildKernel (config
// targets, olddefconfig, bzImage), so that host kernels given as revisions are built for real in
// tests: each commit's bzImage carries a setup header naming the release written in the tree's
// `release` file (what BzImageRelease reads), and every bzImage build appends a line to a file.
#ifndef FARM_TESTS_UNIT_KEXEC_FAKE_KERNEL_REPO_H_
#define FARM_TESTS_UNIT_KEXEC_FAKE_KERNEL_REPO_H_

#include <string>

namespace farm::testing {

class FakeKernelRepo {
 public:
  // Creates the repository (no commit yet) in `dir`; builds are counted in `dir`.builds.
  explicit FakeKernelRepo(const std::string& dir);
  // Commits the tree with `release` as its kernel's `uname -r`; a `broken` commit's bzImage does
  // not build (a compiler error). Returns the commit's sha.
  std::string Commit(const std::string& release, bool broken = false);
  // bzImage builds so far, in any worktree of this repository.
  int Builds() const;
  const std::string& path() const { return path_; }

 private:
  void Write(const std::string& name, const std::string& content) const;
  std::string path_;
  std::string builds_;
};

}  // namespace farm::testing

#endif  // FARM_TESTS_UNIT_KEXEC_FAKE_KERNEL_REPO_H_

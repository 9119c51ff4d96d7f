#include "tests/unit/kexec/fake_kernel_repo.h"

#include <filesystem>
#include <fstream>

#include "gtest/gtest.h"
#include "tests/lib/test_util.h"

namespace farm::testing {

FakeKernelRepo::FakeKernelRepo(const std::string& dir) : path_(dir), builds_(dir + ".builds") {
  std::filesystem::create_directories(path_);
  EXPECT_EQ(Sh("git init -q " + Quote(path_)).exit_code, 0);
  Write("Kconfig", "# fake\n");
  Write("Makefile",
        "tinyconfig defconfig:\n\techo CONFIG_FAKE=y > $(O)/.config\n"
        "olddefconfig:\n\tmkdir -p $(O)/include/config\n"
        "\tprintf 'deps_config := \\\\\\n\\tKconfig\\n' > $(O)/include/config/auto.conf.cmd\n"
        "bzImage:\n\techo built >> " +
            builds_ + "\n\tsh $(CURDIR)/mkbz.sh $(O)\n");
}

std::string FakeKernelRepo::Commit(const std::string& release, bool broken) {
  // The setup header BzImageRelease reads: "HdrS" at 0x202, the version's offset (0x42c0,
  // relative to 0x200) at 0x20e, the version at 0x44c0.
  Write("mkbz.sh", broken
                       ? "echo 'drivers/vhost/net.c:42:7: error: expected expression'; exit 1\n"
                       : "out=$1/arch/x86/boot; mkdir -p $out; f=$out/bzImage\n"
                         "head -c 20480 /dev/zero > $f\n"
                         "printf HdrS | dd of=$f bs=1 seek=514 conv=notrunc 2>/dev/null\n"
                         "printf '\\300\\102' | dd of=$f bs=1 seek=526 conv=notrunc 2>/dev/null\n"
                         "printf '%s (farm@test) #1' \"$(cat release)\" | "
                         "dd of=$f bs=1 seek=17600 conv=notrunc 2>/dev/null\n");
  Write("release", release);
  CommandResult r = Sh("cd " + Quote(path_) +
                       " && git add -A && git -c user.name=t -c user.email=t@t commit -qm " +
                       Quote(release) + " && git rev-parse HEAD");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  return r.output.substr(0, 40);
}

int FakeKernelRepo::Builds() const {
  std::ifstream in(builds_);
  int n = 0;
  for (std::string line; std::getline(in, line);) ++n;
  return n;
}

void FakeKernelRepo::Write(const std::string& name, const std::string& content) const {
  std::ofstream(path_ + "/" + name) << content;
}

}  // namespace farm::testing

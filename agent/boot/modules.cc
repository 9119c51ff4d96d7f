#include "agent/boot/modules.h"

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "agent/boot/text.h"
#include "common/status_macros.h"

namespace farm::boot {
namespace {

namespace fs = std::filesystem;

std::string Normalize(std::string_view name) {
  std::string n(name);
  for (char& c : n) {
    if (c == '-') c = '_';
  }
  return n;
}

}  // namespace

absl::StatusOr<std::vector<std::string>> ModuleDependencies(std::string_view ko) {
  if (ko.size() < 64 ||
      ko.substr(0, 4) !=
          "\x7f"
          "ELF" ||
      ko[4] != 2 || ko[5] != 1) {
    return absl::InvalidArgumentError("not a 64-bit little-endian ELF module");
  }
  const uint64_t shoff = text::LittleEndian(ko, 0x28, 8);
  const uint64_t shentsize = text::LittleEndian(ko, 0x3a, 2);
  const uint64_t shnum = text::LittleEndian(ko, 0x3c, 2);
  const uint64_t shstrndx = text::LittleEndian(ko, 0x3e, 2);
  if (shentsize < 64 || shstrndx >= shnum || shoff + shnum * shentsize > ko.size()) {
    return absl::InvalidArgumentError("malformed ELF section table");
  }
  auto section = [&](uint64_t i, uint64_t field, int bytes) {
    return text::LittleEndian(ko, shoff + i * shentsize + field, bytes);
  };
  const uint64_t strtab = section(shstrndx, 0x18, 8);
  for (uint64_t i = 0; i < shnum; ++i) {
    const uint64_t name = strtab + section(i, 0, 4);
    if (name >= ko.size()) continue;
    if (std::string_view(ko.data() + name, strnlen(ko.data() + name, ko.size() - name)) !=
        ".modinfo") {
      continue;
    }
    const uint64_t off = section(i, 0x18, 8), size = section(i, 0x20, 8);
    if (off + size > ko.size()) return absl::InvalidArgumentError("malformed .modinfo");
    std::string_view info = ko.substr(off, size);
    std::vector<std::string> deps;
    for (absl::string_view entry : absl::StrSplit(text::Av(info), '\0')) {
      if (entry.substr(0, 8) != "depends=") continue;
      for (absl::string_view d : absl::StrSplit(entry.substr(8), ',', absl::SkipEmpty())) {
        deps.emplace_back(d);
      }
    }
    return deps;
  }
  return absl::InvalidArgumentError("no .modinfo section: not a kernel module");
}

absl::StatusOr<std::vector<std::string>> ResolveModules(const std::string& modules_dir,
                                                        const std::vector<std::string>& names) {
  std::map<std::string, std::string> index;  // normalized name -> path
  std::set<std::string> compressed;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(modules_dir, ec), end; !ec && it != end;
       it.increment(ec)) {
    if (!it->is_regular_file()) continue;
    const std::string file = it->path().filename().string();
    const size_t ko = file.find(".ko");
    if (ko == std::string::npos) continue;
    const std::string name = Normalize(file.substr(0, ko));
    if (ko + 3 == file.size()) {
      index[name] = it->path().string();
    } else {
      compressed.insert(name);
    }
  }
  if (ec) {
    return absl::InternalError(
        absl::StrCat("cannot read the module tree ", modules_dir, ": ", ec.message()));
  }
  std::set<std::string> builtin;
  {
    std::ifstream f(modules_dir + "/modules.builtin");
    std::string line;
    while (std::getline(f, line)) {
      std::string file = line.substr(line.rfind('/') + 1);
      builtin.insert(Normalize(file.substr(0, file.find(".ko"))));
    }
  }

  std::vector<std::string> order;
  std::set<std::string> done, visiting;
  std::function<absl::Status(const std::string&)> visit = [&](const std::string& raw) {
    const std::string name = Normalize(raw);
    if (done.count(name) || builtin.count(name)) return absl::OkStatus();
    if (visiting.count(name)) return absl::OkStatus();  // a cycle: the kernel refuses those anyway
    auto it = index.find(name);
    if (it == index.end()) {
      if (compressed.count(name)) {
        return absl::InvalidArgumentError(absl::StrCat("module ", raw, " is compressed in ",
                                                       modules_dir, ": decompress the tree first"));
      }
      return absl::NotFoundError(absl::StrCat("module ", raw, " is neither in ", modules_dir,
                                              " nor built into the kernel"));
    }
    visiting.insert(name);
    std::ifstream f(it->second, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    absl::StatusOr<std::vector<std::string>> deps = ModuleDependencies(ss.str());
    if (!deps.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(it->second, ": ", deps.status().message()));
    }
    for (const std::string& d : *deps) FARM_RETURN_IF_ERROR(visit(d));
    visiting.erase(name);
    done.insert(name);
    order.push_back(it->second);
    return absl::OkStatus();
  };
  for (const std::string& n : names) FARM_RETURN_IF_ERROR(visit(n));
  return order;
}

}  // namespace farm::boot

#include "agent/build/config_flag.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace farm {
namespace {

namespace fs = std::filesystem;

constexpr char kAccepted[] =
    "use FILE (a .config), TARGET (tinyconfig, defconfig, ...) or TARGET+FRAGMENT[+...] "
    "(a fragment is a file or a name the kernel provides, e.g. kvm_guest)";

bool IsName(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.';
    if (!ok) return false;
  }
  return s[0] != '.' && s[0] != '-';
}

bool ReadIfFile(const std::string& path, std::string* content) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return false;
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::stringstream ss;
  ss << in.rdbuf();
  *content = ss.str();
  return true;
}

}  // namespace

absl::Status ParseKernelConfigFlag(const std::string& flag, farm::v1::KernelBuild* spec) {
  if (flag.empty())
    return absl::InvalidArgumentError(absl::StrCat("--config is empty: ", kAccepted));
  std::vector<std::string> parts = absl::StrSplit(flag, '+');
  for (const std::string& p : parts) {
    if (p.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--config ", flag, ": an empty part between '+'s: ", kAccepted));
    }
  }
  spec->clear_config();
  spec->clear_config_target();
  spec->clear_fragments();

  std::string content;
  const std::string& base = parts[0];
  if (ReadIfFile(base, &content)) {
    spec->set_config(content);
  } else if (base.find('/') != std::string::npos) {
    return absl::NotFoundError(
        absl::StrCat("--config ", flag, ": cannot read the configuration file ", base));
  } else if (IsName(base)) {
    spec->set_config_target(base);
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "--config ", flag, ": \"", base, "\" is neither a file nor a make target: ", kAccepted));
  }

  for (size_t i = 1; i < parts.size(); ++i) {
    const std::string& frag = parts[i];
    bool looks_like_path = frag.find('/') != std::string::npos;
    if ((looks_like_path || absl::EndsWith(frag, ".config")) && ReadIfFile(frag, &content)) {
      // Content is told from names by its newlines or '=' (IsFragmentContent); an empty or
      // comment-only file still must not read as a name.
      if (content.find('\n') == std::string::npos && content.find('=') == std::string::npos) {
        content += "\n";
      }
      spec->add_fragments(content);
    } else if (looks_like_path) {
      return absl::NotFoundError(
          absl::StrCat("--config ", flag, ": cannot read the config fragment ", frag));
    } else if (IsName(frag)) {
      spec->add_fragments(frag);
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("--config ", flag, ": \"", frag,
                       "\" is neither a fragment file nor a name: ", kAccepted));
    }
  }
  return absl::OkStatus();
}

}  // namespace farm

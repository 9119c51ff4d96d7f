// std::string_view helpers for agent/boot: Debian's Abseil has its own string_view type
// (ABSL_OPTION_USE_STD_STRING_VIEW=0), so absl's string functions do not take std::string_view.
#ifndef FARM_AGENT_BOOT_TEXT_H_
#define FARM_AGENT_BOOT_TEXT_H_

#include <cctype>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "absl/strings/string_view.h"

namespace farm::boot::text {

inline absl::string_view Av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// The unsigned little-endian integer of `bytes` bytes (at most 8) at `off` in `d` (ELF headers,
// bzImage setup headers); 0 when it lies outside `d`.
inline uint64_t LittleEndian(std::string_view d, size_t off, int bytes) {
  uint64_t v = 0;
  if (off > d.size() || static_cast<size_t>(bytes) > d.size() - off) return 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(d[off + i]);
  return v;
}

inline bool Contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

inline bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

inline bool StartsWithIgnoreCase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(s[i])) !=
        std::tolower(static_cast<unsigned char>(prefix[i]))) {
      return false;
    }
  }
  return true;
}

inline std::string_view TrimLeft(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  return s;
}

inline std::string_view Trim(std::string_view s) {
  s = TrimLeft(s);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

}  // namespace farm::boot::text

#endif  // FARM_AGENT_BOOT_TEXT_H_

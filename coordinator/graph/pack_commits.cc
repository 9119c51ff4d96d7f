#include "coordinator/graph/pack_commits.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <memory>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/log/log.h"
#include "coordinator/graph/small_inflate.h"

namespace farm {
namespace {

constexpr absl::string_view kTree = "tree ", kParent = "parent ";
constexpr size_t kTreeLine = kTree.size() + GIT_OID_HEXSZ + 1;      // 46
constexpr size_t kParentLine = kParent.size() + GIT_OID_HEXSZ + 1;  // 48
constexpr size_t kTrailer = GIT_OID_RAWSZ;                          // a pack's checksum
// A bigger commit (its message) is left to libgit2 rather than inflated into memory here.
constexpr uint64_t kMaxCommit = 1 << 20;

uint32_t Be32(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}
uint64_t Be64(const unsigned char* p) { return (uint64_t{Be32(p)} << 32) | Be32(p + 4); }

// A read-only mapping of a whole file.
class Mapping {
 public:
  Mapping() = default;
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping() {
    if (data_ != nullptr) munmap(const_cast<unsigned char*>(data_), size_);
  }
  bool Open(const std::string& path) {
    const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    struct stat st;
    void* map = MAP_FAILED;
    if (fstat(fd, &st) == 0 && st.st_size > 0) {
      map = mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
    }
    close(fd);
    if (map == MAP_FAILED) return false;
    data_ = static_cast<const unsigned char*>(map);
    size_ = static_cast<size_t>(st.st_size);
    return true;
  }
  const unsigned char* data() const { return data_; }
  size_t size() const { return size_; }
  // Unmaps the pages read so far (they are read again from the file if touched).
  void DropPages() const {
    if (data_ != nullptr) madvise(const_cast<unsigned char*>(data_), size_, MADV_DONTNEED);
  }

 private:
  const unsigned char* data_ = nullptr;
  size_t size_ = 0;
};

// One pack and its version-2 index, checked.
struct Pack {
  Mapping idx, pack;
  uint32_t count = 0;
  const unsigned char* oids = nullptr;   // count * 20 bytes, in id order
  const unsigned char* off32 = nullptr;  // count * 4
  const unsigned char* off64 = nullptr;  // count64 * 8
  size_t count64 = 0;
};

// Opens `base`.idx and `base`.pack; an empty string, or why the pack is skipped.
std::string OpenPack(const std::string& base, Pack& pack) {
  if (!pack.idx.Open(base + ".idx")) return "cannot map its .idx";
  if (!pack.pack.Open(base + ".pack")) return "cannot map its .pack";
  const unsigned char* idx = pack.idx.data();
  const size_t idx_size = pack.idx.size();
  constexpr size_t kHeader = 8 + 256 * 4;
  if (idx_size < kHeader + 2 * kTrailer || std::memcmp(idx, "\377tOc", 4) != 0) {
    return "its .idx is version 1 or not an index";
  }
  if (Be32(idx + 4) != 2) return absl::StrCat("its .idx is version ", Be32(idx + 4));
  pack.count = Be32(idx + 8 + 255 * 4);
  const size_t fixed = kHeader + size_t{pack.count} * (GIT_OID_RAWSZ + 4 + 4) + 2 * kTrailer;
  if (idx_size < fixed || (idx_size - fixed) % 8 != 0) return "its .idx is truncated";
  pack.oids = idx + kHeader;
  pack.off32 = pack.oids + size_t{pack.count} * (GIT_OID_RAWSZ + 4);
  pack.off64 = pack.off32 + size_t{pack.count} * 4;
  pack.count64 = (idx_size - fixed) / 8;
  const unsigned char* data = pack.pack.data();
  const size_t size = pack.pack.size();
  if (size < 12 + kTrailer || std::memcmp(data, "PACK", 4) != 0 ||
      (Be32(data + 4) != 2 && Be32(data + 4) != 3) || Be32(data + 8) != pack.count) {
    return "its .pack header does not match the .idx";
  }
  // The index names the pack it describes by the pack's checksum.
  if (std::memcmp(idx + idx_size - 2 * kTrailer, data + size - kTrailer, kTrailer) != 0) {
    return "its .idx belongs to another .pack";
  }
  return "";
}

// A commit stored whole: where it starts, and its id (copied while the index is read in order,
// rather than looked up at random later).
struct Candidate {
  uint64_t offset;
  uint32_t pack;
  git_oid oid;
};

// Appends the commits of `pack` (number `p`) to `out`; false if an offset is out of range.
bool FindCommits(const Pack& pack, uint32_t p, std::vector<Candidate>& out) {
  const unsigned char* data = pack.pack.data();
  const uint64_t limit = pack.pack.size() - kTrailer;
  for (uint32_t i = 0; i < pack.count; ++i) {
    uint64_t offset = Be32(pack.off32 + 4 * size_t{i});
    if (offset & 0x80000000u) {
      const size_t large = offset & 0x7fffffffu;
      if (large >= pack.count64) return false;
      offset = Be64(pack.off64 + 8 * large);
    }
    if (offset < 12 || offset >= limit) return false;
    if (((data[offset] >> 4) & 7) == GIT_OBJECT_COMMIT) {
      Candidate c{offset, p, {}};
      std::memcpy(c.oid.id, pack.oids + size_t{i} * GIT_OID_RAWSZ, GIT_OID_RAWSZ);
      out.push_back(c);
    }
  }
  return true;
}

// Commits parsed by one thread.
struct Parsed {
  std::vector<git_oid> oids;
  std::vector<size_t> begin{0};
  std::vector<git_oid> parents;
};

// Inflates the start of each candidate (one SmallInflater, reused) just far enough to read its
// parent lines. A candidate that does not inflate or parse is left out (read by id
// later, where libgit2 reports what is wrong with it).
void ParseCandidates(const std::vector<Pack>& packs, absl::Span<const Candidate> candidates,
                     Parsed& out) {
  SmallInflater inflater;
  std::vector<git_oid> parents;
  out.oids.reserve(candidates.size());
  out.begin.reserve(candidates.size() + 1);
  out.parents.reserve(candidates.size() + candidates.size() / 4);
  for (const Candidate& c : candidates) {
    const Pack& pack = packs[c.pack];
    const unsigned char* p = pack.pack.data() + c.offset;
    const unsigned char* end = pack.pack.data() + pack.pack.size() - kTrailer;
    // Object header: type and size, 4 bits then 7 per byte while the high bit is set.
    unsigned char byte = *p++;
    uint64_t size = byte & 15;
    bool header_ok = true;
    for (int shift = 4; byte & 0x80; shift += 7) {
      if (p >= end || shift > 57) {
        header_ok = false;
        break;
      }
      byte = *p++;
      size |= uint64_t{byte & 0x7fu} << shift;
    }
    if (!header_ok || size < kTreeLine || size > kMaxCommit) continue;
    // Only as far as the parent lines: a tree line and a parent line at a time.
    if (!inflater.Start(p, end - p, size)) continue;
    CommitParse parsed = CommitParse::kNeedMore;
    // Most commits have one parent: the tree line, a parent line and the next line's start.
    for (size_t want = kTreeLine + kParentLine + kParent.size(); parsed == CommitParse::kNeedMore;
         want += kParentLine) {
      if (!inflater.Produce(want)) break;
      const bool whole = inflater.produced() == size;
      if (!whole && inflater.ended()) break;  // shorter than its header said
      parents.clear();
      parsed = ParseCommitParents(
          absl::string_view(reinterpret_cast<const char*>(inflater.data()), inflater.produced()),
          whole, parents);
      if (whole) break;
    }
    if (parsed != CommitParse::kDone) continue;
    out.oids.push_back(c.oid);
    out.parents.insert(out.parents.end(), parents.begin(), parents.end());
    out.begin.push_back(out.parents.size());
  }
}

}  // namespace

CommitParse ParseCommitParents(absl::string_view data, bool whole, std::vector<git_oid>& out) {
  if (data.size() < kTreeLine) return whole ? CommitParse::kMalformed : CommitParse::kNeedMore;
  if (!absl::StartsWith(data, kTree)) return CommitParse::kMalformed;
  data.remove_prefix(kTreeLine);
  while (true) {
    if (data.size() < kParentLine) {
      // A short rest ends the parent lines, unless more of the object could make it one.
      if (whole || !absl::StartsWith(kParent, data.substr(0, kParent.size()))) {
        return CommitParse::kDone;
      }
      return CommitParse::kNeedMore;
    }
    if (!absl::StartsWith(data, kParent)) return CommitParse::kDone;
    git_oid parent;
    if (git_oid_fromstrn(&parent, data.data() + kParent.size(), GIT_OID_HEXSZ) < 0) {
      return CommitParse::kMalformed;
    }
    out.push_back(parent);
    data.remove_prefix(kParentLine);
  }
}

PackCommits PackCommits::Scan(const std::string& objects_dir, int threads) {
  PackCommits result;
  struct stat st;
  if (stat(absl::StrCat(objects_dir, "/info/alternates").c_str(), &st) == 0) {
    FARM_LOG(Debug) << "pack scan: " << objects_dir
                    << " has alternates; their commits are read one by one";
  }
  const std::string pack_dir = objects_dir + "/pack";
  std::vector<std::string> bases;
  if (DIR* dir = opendir(pack_dir.c_str())) {
    while (const dirent* entry = readdir(dir)) {
      absl::string_view name = entry->d_name;
      if (absl::EndsWith(name, ".idx")) {
        name.remove_suffix(4);
        bases.push_back(absl::StrCat(pack_dir, "/", name));
      }
    }
    closedir(dir);
  }
  std::sort(bases.begin(), bases.end());
  if (bases.empty() && stat((pack_dir + "/multi-pack-index").c_str(), &st) == 0) {
    FARM_LOG(Debug) << "pack scan: " << pack_dir
                    << " has a multi-pack-index and no .idx; its commits are read one by one";
  }
  std::vector<Pack> packs(bases.size());
  std::vector<Candidate> candidates;
  for (size_t i = 0; i < bases.size(); ++i) {
    std::string skip;
    if (stat((bases[i] + ".promisor").c_str(), &st) == 0) {
      skip = "it is a promisor pack";
    } else {
      skip = OpenPack(bases[i], packs[i]);
    }
    const size_t before = candidates.size();
    if (skip.empty() && !FindCommits(packs[i], static_cast<uint32_t>(i), candidates)) {
      skip = "its .idx has an offset beyond the .pack";
    }
    if (!skip.empty()) {
      candidates.resize(before);
      ++result.packs_skipped_;
      FARM_LOG(Debug) << "pack scan: skipping " << bases[i] << ".pack (" << skip
                      << "); its commits are read one by one";
      continue;
    }
    ++result.packs_read_;
    Pack& pack = packs[i];
    // Every page of the pack was touched for one byte: let them go from this process (they stay
    // in the page cache), so that only the pages holding commits are mapped again below.
    pack.idx.DropPages();
    pack.pack.DropPages();
    // In pack order, so that each thread reads its part of the pack front to back.
    std::sort(candidates.begin() + before, candidates.end(),
              [](const Candidate& a, const Candidate& b) { return a.offset < b.offset; });
  }

  // Below this, a second thread costs more than it saves.
  constexpr size_t kPerThread = 20000;
  const size_t n = candidates.size();
  const size_t parts = std::clamp<size_t>(n / kPerThread, 1, std::max(threads, 1));
  std::vector<Parsed> parsed(parts);
  std::vector<std::thread> workers;
  auto part = [&](size_t k) {
    return absl::MakeConstSpan(candidates)
        .subspan(n * k / parts, n * (k + 1) / parts - n * k / parts);
  };
  for (size_t k = 1; k < parts; ++k) {
    workers.emplace_back([&, k] { ParseCandidates(packs, part(k), parsed[k]); });
  }
  ParseCandidates(packs, part(0), parsed[0]);
  for (std::thread& t : workers) t.join();
  candidates = std::vector<Candidate>();
  packs = std::vector<Pack>();  // unmapped before the copies below, for a lower peak

  size_t commits = 0, links = 0;
  for (const Parsed& p : parsed) {
    commits += p.oids.size();
    links += p.parents.size();
  }
  result.oids_.reserve(commits);
  result.begin_.reserve(commits + 1);
  result.parents_.reserve(links);
  for (Parsed& p : parsed) {
    const size_t base = result.parents_.size();
    result.oids_.insert(result.oids_.end(), p.oids.begin(), p.oids.end());
    for (size_t i = 1; i < p.begin.size(); ++i) result.begin_.push_back(base + p.begin[i]);
    result.parents_.insert(result.parents_.end(), p.parents.begin(), p.parents.end());
    p = Parsed();
  }
  return result;
}

}  // namespace farm

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

#include "absl/container/flat_hash_map.h"
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
    const int type = (data[offset] >> 4) & 7;
    if (type == GIT_OBJECT_COMMIT || type == GIT_OBJECT_OFS_DELTA) {
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

// An object's header at `offset`: its type, size and where its data (or a delta's base
// offset) starts. False if it runs past `end`.
bool ReadHeader(const Pack& pack, uint64_t offset, int& type, uint64_t& size,
                const unsigned char*& data) {
  const unsigned char* p = pack.pack.data() + offset;
  const unsigned char* end = pack.pack.data() + pack.pack.size() - kTrailer;
  unsigned char byte = *p++;
  type = (byte >> 4) & 7;
  size = byte & 15;
  for (int shift = 4; byte & 0x80; shift += 7) {
    if (p >= end || shift > 57) return false;
    byte = *p++;
    size |= uint64_t{byte & 0x7fu} << shift;
  }
  data = p;
  return p < end;
}

// An OFS_DELTA's base offset, read at `p` (advanced past it); 0 if malformed.
uint64_t DeltaBase(const Pack& pack, uint64_t offset, const unsigned char*& p) {
  const unsigned char* end = pack.pack.data() + pack.pack.size() - kTrailer;
  unsigned char byte = *p++;
  uint64_t back = byte & 0x7f;
  while (byte & 0x80) {
    if (p >= end || back > (uint64_t{1} << 56)) return 0;
    byte = *p++;
    back = ((back + 1) << 7) | (byte & 0x7f);
  }
  return back < offset ? offset - back : 0;
}

// A 7-bits-a-byte size at the start of a delta.
bool DeltaSize(const uint8_t*& p, const uint8_t* end, uint64_t& size) {
  size = 0;
  for (int shift = 0; p < end && shift < 64; shift += 7) {
    const uint8_t byte = *p++;
    size |= uint64_t{byte & 0x7fu} << shift;
    if (!(byte & 0x80)) return true;
  }
  return false;
}

// Applies a git delta (copy and insert instructions) to `base`.
bool ApplyDelta(const std::string& base, const uint8_t* p, const uint8_t* end, std::string& out) {
  uint64_t base_size, size;
  if (!DeltaSize(p, end, base_size) || !DeltaSize(p, end, size) || base_size != base.size()) {
    return false;
  }
  out.clear();
  out.reserve(size);
  while (p < end) {
    const uint8_t op = *p++;
    if (op & 0x80) {
      uint64_t from = 0, n = 0;
      for (int b = 0; b < 4; ++b) {
        if (op & (1 << b)) {
          if (p >= end) return false;
          from |= uint64_t{*p++} << (8 * b);
        }
      }
      for (int b = 0; b < 3; ++b) {
        if (op & (0x10 << b)) {
          if (p >= end) return false;
          n |= uint64_t{*p++} << (8 * b);
        }
      }
      if (n == 0) n = 0x10000;
      if (from + n > base.size() || out.size() + n > size) return false;
      out.append(base, from, n);
    } else if (op != 0) {
      if (static_cast<uint64_t>(end - p) < op || out.size() + op > size) return false;
      out.append(reinterpret_cast<const char*>(p), op);
      p += op;
    } else {
      return false;
    }
  }
  return out.size() == size;
}

// Commits stored as deltas (OFS_DELTA chains ending at a commit): whole objects rebuilt from
// their bases, the last few thousand kept, since in pack order a base comes shortly before the
// objects made from it.
class DeltaCommits {
 public:
  explicit DeltaCommits(SmallInflater& inflater) : inflater_(inflater) {}

  // The object at `offset` if its chain ends at a commit; false otherwise or if malformed.
  bool Commit(const Pack& pack, uint64_t offset, std::string& out) {
    // First the chain's root type from the headers alone: most deltas are trees and blobs.
    uint64_t at = offset;
    for (int depth = 0;; ++depth) {
      int type;
      uint64_t size;
      const unsigned char* data;
      if (depth > kMaxDepth || !ReadHeader(pack, at, type, size, data)) return false;
      if (type == GIT_OBJECT_COMMIT) break;
      if (type != GIT_OBJECT_OFS_DELTA || (at = DeltaBase(pack, at, data)) == 0) return false;
    }
    return Build(pack, offset, 0, out);
  }

 private:
  static constexpr int kMaxDepth = 64;
  static constexpr size_t kKept = 8192;

  bool Inflate(const unsigned char* data, const Pack& pack, uint64_t size, std::string& out) {
    const unsigned char* end = pack.pack.data() + pack.pack.size() - kTrailer;
    if (size > kMaxCommit || !inflater_.Start(data, end - data, size) || !inflater_.Produce(size) ||
        inflater_.produced() != size) {
      return false;
    }
    out.assign(reinterpret_cast<const char*>(inflater_.data()), size);
    return true;
  }

  bool Build(const Pack& pack, uint64_t offset, int depth, std::string& out) {
    if (auto it = kept_.find(offset); it != kept_.end()) {
      out = ring_[it->second].second;
      return true;
    }
    int type;
    uint64_t size;
    const unsigned char* data;
    if (depth > kMaxDepth || !ReadHeader(pack, offset, type, size, data)) return false;
    if (type == GIT_OBJECT_COMMIT) {
      if (!Inflate(data, pack, size, out)) return false;
    } else {
      const uint64_t base_offset = DeltaBase(pack, offset, data);
      std::string base, delta;
      if (base_offset == 0 || !Build(pack, base_offset, depth + 1, base) ||
          !Inflate(data, pack, size, delta) ||
          !ApplyDelta(base, reinterpret_cast<const uint8_t*>(delta.data()),
                      reinterpret_cast<const uint8_t*>(delta.data()) + delta.size(), out)) {
        return false;
      }
    }
    Keep(offset, out);
    return true;
  }

  void Keep(uint64_t offset, const std::string& content) {
    if (ring_.size() < kKept) {
      ring_.emplace_back(offset, content);
      kept_[offset] = ring_.size() - 1;
      return;
    }
    kept_.erase(ring_[next_].first);
    ring_[next_] = {offset, content};
    kept_[offset] = next_;
    next_ = (next_ + 1) % kKept;
  }

  SmallInflater& inflater_;
  std::vector<std::pair<uint64_t, std::string>> ring_;
  absl::flat_hash_map<uint64_t, size_t> kept_;
  size_t next_ = 0;
};

// Inflates the start of each candidate (one SmallInflater, reused) just far enough to read its
// parent lines. A candidate that does not inflate or parse is left out (read by id
// later, where libgit2 reports what is wrong with it).
void ParseCandidates(const std::vector<Pack>& packs, absl::Span<const Candidate> candidates,
                     Parsed& out) {
  SmallInflater inflater;
  DeltaCommits deltas(inflater);
  std::string rebuilt;
  std::vector<git_oid> parents;
  out.oids.reserve(candidates.size());
  out.begin.reserve(candidates.size() + 1);
  out.parents.reserve(candidates.size() + candidates.size() / 4);
  for (const Candidate& c : candidates) {
    const Pack& pack = packs[c.pack];
    const unsigned char* end = pack.pack.data() + pack.pack.size() - kTrailer;
    int type;
    uint64_t size;
    const unsigned char* p;
    if (!ReadHeader(pack, c.offset, type, size, p)) continue;
    if (type == GIT_OBJECT_OFS_DELTA) {
      parents.clear();
      if (deltas.Commit(pack, c.offset, rebuilt) &&
          ParseCommitParents(rebuilt, /*whole=*/true, parents) == CommitParse::kDone) {
        out.oids.push_back(c.oid);
        out.parents.insert(out.parents.end(), parents.begin(), parents.end());
        out.begin.push_back(out.parents.size());
      }
      continue;
    }
    if (size < kTreeLine || size > kMaxCommit) continue;
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

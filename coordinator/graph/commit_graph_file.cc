#include "coordinator/graph/commit_graph_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace farm {
namespace {

constexpr uint32_t kNoParent = 0x70000000u;
constexpr uint32_t kExtraEdges = 0x80000000u;  // in the second parent: index into EDGE
constexpr uint32_t kLastEdge = 0x80000000u;    // in an EDGE entry: the last parent
constexpr size_t kDataWidth = GIT_OID_RAWSZ + 16;

uint32_t Be32(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}
uint64_t Be64(const unsigned char* p) { return (uint64_t{Be32(p)} << 32) | Be32(p + 4); }
uint32_t ChunkId(const char* s) { return Be32(reinterpret_cast<const unsigned char*>(s)); }

}  // namespace

CommitGraphFile::~CommitGraphFile() {
  for (Layer& l : layers_) {
    if (l.map != nullptr) munmap(l.map, l.map_size);
  }
}

std::unique_ptr<CommitGraphFile> CommitGraphFile::Empty() {
  return std::unique_ptr<CommitGraphFile>(new CommitGraphFile());
}

absl::StatusOr<std::unique_ptr<CommitGraphFile>> CommitGraphFile::Open(
    const std::string& objects_dir) {
  std::unique_ptr<CommitGraphFile> file(new CommitGraphFile());
  const std::string single = objects_dir + "/info/commit-graph";
  const std::string chain = objects_dir + "/info/commit-graphs/commit-graph-chain";
  struct stat st;
  if (stat(single.c_str(), &st) == 0) {
    if (absl::Status s = file->AddLayer(single); !s.ok()) return s;
  } else if (stat(chain.c_str(), &st) == 0) {
    std::ifstream in(chain);
    std::string hash;
    while (std::getline(in, hash)) {
      if (hash.empty()) continue;
      const std::string path =
          absl::StrCat(objects_dir, "/info/commit-graphs/graph-", hash, ".graph");
      if (absl::Status s = file->AddLayer(path); !s.ok()) return s;
    }
    if (file->layers_.empty()) return absl::DataLossError(chain + " lists no graph files");
  } else {
    return absl::NotFoundError(absl::StrCat("no commit-graph file in ", objects_dir));
  }
  if (absl::Status s = file->Validate(); !s.ok()) return s;
  return file;
}

absl::Status CommitGraphFile::AddLayer(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::InternalError(absl::StrCat("cannot open ", path, ": ", strerror(errno)));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    close(fd);
    return absl::InternalError(absl::StrCat("cannot stat ", path, ": ", strerror(errno)));
  }
  const size_t size = static_cast<size_t>(st.st_size);
  void* map = size > 0 ? mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0) : MAP_FAILED;
  close(fd);
  if (map == MAP_FAILED) return absl::DataLossError(absl::StrCat("cannot map ", path));
  Layer layer;
  layer.map = map;
  layer.map_size = size;
  layers_.push_back(layer);  // unmapped by the destructor from here on
  Layer& l = layers_.back();
  const auto* bytes = static_cast<const unsigned char*>(map);
  auto bad = [&path](absl::string_view why) {
    return absl::DataLossError(absl::StrCat("malformed commit-graph file ", path, ": ", why));
  };
  if (size < 8 + 12 + GIT_OID_RAWSZ || std::memcmp(bytes, "CGPH", 4) != 0) {
    return bad("no CGPH signature");
  }
  if (bytes[4] != 1) return bad("unsupported version");
  if (bytes[5] != 1) return bad("not a SHA-1 graph");
  const size_t chunks = bytes[6];
  if (8 + (chunks + 1) * 12 > size) return bad("chunk table past the end");
  uint64_t oidf = 0, oidl = 0, cdat = 0, edge = 0, edge_end = 0;
  for (size_t i = 0; i < chunks; ++i) {
    const unsigned char* entry = bytes + 8 + i * 12;
    const uint32_t id = Be32(entry);
    const uint64_t offset = Be64(entry + 4);
    const uint64_t next = Be64(entry + 12 + 4);
    if (offset > next || next > size) return bad("chunk offsets out of order or past the end");
    if (id == ChunkId("OIDF")) oidf = offset;
    if (id == ChunkId("OIDL")) oidl = offset;
    if (id == ChunkId("CDAT")) cdat = offset;
    if (id == ChunkId("EDGE")) {
      edge = offset;
      edge_end = next;
    }
  }
  if (oidf == 0 || oidl == 0 || cdat == 0) return bad("missing OIDF, OIDL or CDAT");
  if (oidf + 256 * 4 > size) return bad("OIDF past the end");
  l.fanout = bytes + oidf;
  l.count = Be32(l.fanout + 255 * 4);
  if (oidl + uint64_t{l.count} * GIT_OID_RAWSZ > size) return bad("OIDL past the end");
  if (cdat + uint64_t{l.count} * kDataWidth > size) return bad("CDAT past the end");
  l.oids = bytes + oidl;
  l.data = bytes + cdat;
  if (edge != 0) {
    l.edges = bytes + edge;
    l.edge_count = static_cast<size_t>((edge_end - edge) / 4);
  }
  l.base = total_;
  if (uint64_t{total_} + l.count >= kNoParent) return bad("too many commits");
  total_ += l.count;
  return absl::OkStatus();
}

absl::Status CommitGraphFile::Validate() const {
  // Every parent position must exist (a corrupt file must not make us read out of bounds).
  for (const Layer& l : layers_) {
    for (int b = 1; b < 256; ++b) {
      if (Be32(l.fanout + b * 4) < Be32(l.fanout + (b - 1) * 4)) {
        return absl::DataLossError("malformed commit-graph file: OIDF not monotone");
      }
    }
    const uint32_t limit = l.base + l.count;
    for (uint32_t i = 0; i < l.count; ++i) {
      const unsigned char* d = l.data + size_t{i} * kDataWidth + GIT_OID_RAWSZ;
      const uint32_t p1 = Be32(d), p2 = Be32(d + 4);
      if (p1 != kNoParent && p1 >= limit) {
        return absl::DataLossError("malformed commit-graph file: parent out of range");
      }
      if (p2 == kNoParent) continue;
      if ((p2 & kExtraEdges) == 0) {
        if (p2 >= limit)
          return absl::DataLossError("malformed commit-graph file: parent out of range");
        continue;
      }
      for (size_t e = p2 & ~kExtraEdges;; ++e) {
        if (e >= l.edge_count) return absl::DataLossError("malformed commit-graph file: EDGE");
        const uint32_t v = Be32(l.edges + e * 4);
        if ((v & ~kLastEdge) >= limit) {
          return absl::DataLossError("malformed commit-graph file: parent out of range");
        }
        if (v & kLastEdge) break;
      }
    }
  }
  return absl::OkStatus();
}

const CommitGraphFile::Layer& CommitGraphFile::LayerOf(uint32_t pos) const {
  for (size_t i = layers_.size(); i-- > 1;) {
    if (pos >= layers_[i].base) return layers_[i];
  }
  return layers_[0];
}

std::optional<uint32_t> CommitGraphFile::Find(const git_oid& oid) const {
  const unsigned char first = oid.id[0];
  for (const Layer& l : layers_) {
    uint32_t lo = first == 0 ? 0 : Be32(l.fanout + (first - 1) * 4);
    uint32_t hi = Be32(l.fanout + first * 4);
    while (lo < hi) {
      const uint32_t mid = lo + (hi - lo) / 2;
      const int c = std::memcmp(l.oids + size_t{mid} * GIT_OID_RAWSZ, oid.id, GIT_OID_RAWSZ);
      if (c == 0) return l.base + mid;
      if (c < 0) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
  }
  return std::nullopt;
}

git_oid CommitGraphFile::Oid(uint32_t pos) const {
  const Layer& l = LayerOf(pos);
  git_oid oid;
  std::memcpy(oid.id, l.oids + size_t{pos - l.base} * GIT_OID_RAWSZ, GIT_OID_RAWSZ);
  return oid;
}

void CommitGraphFile::Parents(uint32_t pos, bool first_only, std::vector<uint32_t>& out) const {
  const Layer& l = LayerOf(pos);
  const unsigned char* d = l.data + size_t{pos - l.base} * kDataWidth + GIT_OID_RAWSZ;
  const uint32_t p1 = Be32(d), p2 = Be32(d + 4);
  if (p1 == kNoParent) return;
  out.push_back(p1);
  if (first_only || p2 == kNoParent) return;
  if ((p2 & kExtraEdges) == 0) {
    out.push_back(p2);
    return;
  }
  for (size_t e = p2 & ~kExtraEdges;; ++e) {
    const uint32_t v = Be32(l.edges + e * 4);
    out.push_back(v & ~kLastEdge);
    if (v & kLastEdge) break;
  }
}

}  // namespace farm

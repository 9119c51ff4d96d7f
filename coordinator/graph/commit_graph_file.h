// CommitGraphFile: a reader for git's commit-graph files (gitformat-commit-graph(5)), the
// parent lists of every commit written by `git commit-graph write` / `git gc`, so that loading a
// bisect range needs no object decompression. Internal to CommitGraph::Load.
#ifndef FARM_COORDINATOR_GRAPH_COMMIT_GRAPH_FILE_H_
#define FARM_COORDINATOR_GRAPH_COMMIT_GRAPH_FILE_H_

#include <git2.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace farm {

// The commits of one commit-graph file, or of a chain of split files, memory-mapped.
// Positions are global over the chain (base layers first), as the files' parent entries are.
// Thread safety: immutable after Open; all methods may be called concurrently.
class CommitGraphFile {
 public:
  // Opens <objects_dir>/info/commit-graph, or failing that the chain listed in
  // <objects_dir>/info/commit-graphs/commit-graph-chain.
  // Errors: NOT_FOUND if there is neither; DATA_LOSS if a file is malformed (bad signature,
  // version, hash, chunk table or parent positions); INTERNAL for I/O errors.
  static absl::StatusOr<std::unique_ptr<CommitGraphFile>> Open(const std::string& objects_dir);

  // A file with no commits, for reading every commit from the object database through the same
  // code (CommitGraph::Load without a commit-graph file).
  static std::unique_ptr<CommitGraphFile> Empty();

  ~CommitGraphFile();
  CommitGraphFile(const CommitGraphFile&) = delete;
  CommitGraphFile& operator=(const CommitGraphFile&) = delete;

  // Number of commits.
  uint32_t size() const { return total_; }

  // Position of commit `oid`, or nullopt if the file does not have it. O(log size()).
  std::optional<uint32_t> Find(const git_oid& oid) const;

  // Object id of the commit at `pos` (< size()).
  git_oid Oid(uint32_t pos) const;

  // Appends the positions of the parents of `pos` (< size()), first parent first; with
  // `first_only` at most the first one.
  void Parents(uint32_t pos, bool first_only, std::vector<uint32_t>& out) const;

 private:
  struct Layer {
    const unsigned char* fanout = nullptr;  // 256 big-endian counts
    const unsigned char* oids = nullptr;    // count * 20 bytes, sorted
    const unsigned char* data = nullptr;    // count * 36 bytes (CDAT)
    const unsigned char* edges = nullptr;   // EDGE chunk (may be null)
    size_t edge_count = 0;
    uint32_t count = 0;
    uint32_t base = 0;  // global position of its first commit
    void* map = nullptr;
    size_t map_size = 0;
  };

  CommitGraphFile() = default;
  absl::Status AddLayer(const std::string& path);
  absl::Status Validate() const;
  const Layer& LayerOf(uint32_t pos) const;

  std::vector<Layer> layers_;
  uint32_t total_ = 0;
};

}  // namespace farm

#endif  // FARM_COORDINATOR_GRAPH_COMMIT_GRAPH_FILE_H_

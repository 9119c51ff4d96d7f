#include "coordinator/graph/commit_graph.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/log/log.h"
#include "coordinator/graph/commit_graph_file.h"
#include "coordinator/graph/pack_commits.h"

namespace farm {
namespace {

// libgit2's int + git_error_last() -> absl::Status, keeping git's message.
absl::Status GitError(int code, absl::string_view what) {
  const git_error* e = git_error_last();
  std::string message = absl::StrCat(
      what, ": ", e != nullptr && e->message != nullptr ? e->message : "unknown libgit2 error");
  switch (code) {
    case GIT_ENOTFOUND:
      return absl::NotFoundError(message);
    case GIT_EAMBIGUOUS:
    case GIT_EINVALIDSPEC:
    case GIT_EINVALID:
      return absl::InvalidArgumentError(message);
    default:
      return absl::InternalError(message);
  }
}

std::string OidHex(const git_oid& oid) {
  char hex[GIT_OID_HEXSZ];
  git_oid_fmt(hex, &oid);
  return std::string(hex, GIT_OID_HEXSZ);
}

struct RevwalkFree {
  void operator()(git_revwalk* w) const { git_revwalk_free(w); }
};
struct CommitFree {
  void operator()(git_commit* c) const { git_commit_free(c); }
};
struct OdbFree {
  void operator()(git_odb* o) const { git_odb_free(o); }
};
struct OdbObjectFree {
  void operator()(git_odb_object* o) const { git_odb_object_free(o); }
};

[[noreturn]] void Die(const char* what) {
  FARM_LOG(Error) << "CommitGraph::FromParents: " << what;
  std::abort();
}

// Renumbers `order` (indices into `parents`, which holds indices too) so that every parent comes
// before its children: a depth-first post-order that keeps the given order where it is already
// topological. Only used if libgit2's topological order ever disagrees with ours.
std::vector<uint32_t> PostOrder(const std::vector<std::vector<uint32_t>>& parents) {
  const size_t n = parents.size();
  std::vector<uint32_t> order;
  order.reserve(n);
  std::vector<uint8_t> state(n, 0);  // 0 new, 1 on stack, 2 emitted
  std::vector<std::pair<uint32_t, size_t>> stack;
  for (uint32_t root = 0; root < n; ++root) {
    if (state[root] != 0) continue;
    stack.emplace_back(root, 0);
    state[root] = 1;
    while (!stack.empty()) {
      auto& [node, next] = stack.back();
      if (next < parents[node].size()) {
        uint32_t p = parents[node][next++];
        if (state[p] == 0) {
          state[p] = 1;
          stack.emplace_back(p, 0);
        }
        // state 1 would be a cycle, impossible in a commit graph: ignore the link.
      } else {
        state[node] = 2;
        order.push_back(node);
        stack.pop_back();
      }
    }
  }
  return order;
}

// True when parents are what the commit objects say: no grafts, replace refs or shallow
// boundary (which change what git sees). Then the commit-graph file applies, and commits can be
// read straight from the object database.
bool PlainHistory(git_repository* repo) {
  const char* common = git_repository_commondir(repo);
  if (common == nullptr) return false;
  struct stat st;
  for (const char* name : {"/shallow", "/info/grafts"}) {
    if (stat(absl::StrCat(common, name).c_str(), &st) == 0) return false;
  }
  git_reference_iterator* raw_it = nullptr;
  if (git_reference_iterator_glob_new(&raw_it, repo, "refs/replace/*") < 0) return false;
  git_reference* ref = nullptr;
  const bool any = git_reference_next(&ref, raw_it) == 0;
  git_reference_free(ref);
  git_reference_iterator_free(raw_it);
  return !any;
}

// Reads the parents of commit `oid` from the raw object ("tree ...\nparent ...\n..."): no
// libgit2 object cache, which would hold every commit of a big range in memory.
absl::Status ReadParents(git_odb* odb, const git_oid& oid, std::vector<git_oid>& out) {
  out.clear();
  git_odb_object* raw = nullptr;
  if (int rc = git_odb_read(&raw, odb, &oid); rc < 0) {
    return GitError(rc, absl::StrCat("cannot read commit ", OidHex(oid)));
  }
  std::unique_ptr<git_odb_object, OdbObjectFree> object(raw);
  if (git_odb_object_type(object.get()) != GIT_OBJECT_COMMIT) {
    return absl::InvalidArgumentError(absl::StrCat(OidHex(oid), " is not a commit"));
  }
  absl::string_view data(static_cast<const char*>(git_odb_object_data(object.get())),
                         git_odb_object_size(object.get()));
  if (ParseCommitParents(data, /*whole=*/true, out) != CommitParse::kDone) {
    return absl::DataLossError(absl::StrCat("malformed commit ", OidHex(oid)));
  }
  return absl::OkStatus();
}

// Reads the parents of commits without keeping them. libgit2 caches every commit object it
// reads in the reading odb's cache (up to GIT_OPT_SET_CACHE_MAX_SIZE, 256 MB by default), so a
// whole big history read through the repository's odb would fill it; this reads through a
// private odb on the same objects directory and reopens it every kReopenEvery commits, which
// drops the cache (the packs themselves are shared by libgit2, not reloaded).
class CommitReader {
 public:
  explicit CommitReader(git_repository* repo) : repo_(repo) {}

  absl::Status Read(const git_oid& oid, std::vector<git_oid>& parents) {
    if (odb_ == nullptr || (private_ && reads_ % kReopenEvery == 0)) {
      if (absl::Status st = Open(); !st.ok()) return st;
    }
    ++reads_;
    return ReadParents(odb_.get(), oid, parents);
  }

 private:
  static constexpr size_t kReopenEvery = 65536;

  absl::Status Open() {
    odb_.reset();
    git_odb* raw = nullptr;
    const char* common = git_repository_commondir(repo_);
    if (common != nullptr && git_odb_open(&raw, absl::StrCat(common, "/objects").c_str()) == 0) {
      private_ = true;
    } else if (int rc = git_repository_odb(&raw, repo_); rc < 0) {
      return GitError(rc, "cannot open the object database");
    }
    odb_.reset(raw);
    return absl::OkStatus();
  }

  git_repository* repo_;
  std::unique_ptr<git_odb, OdbFree> odb_;
  bool private_ = false;  // false: the repository's own odb, kept
  size_t reads_ = 0;
};

// Commits read from the object database, numbered 0, 1, ... in reading order, with an index by
// object id. Flat arrays, about 60 bytes a commit with its parents and its index slot, because
// without a commit-graph file every commit of the history comes through here (a node per commit
// with a vector of parents and a string-keyed map cost 3-4 times that).
class LooseCommits {
 public:
  size_t size() const { return oids_.size(); }
  const git_oid& oid(uint32_t i) const { return oids_[i]; }
  uint8_t& mark(uint32_t i) { return marks_[i]; }
  size_t parent_count(uint32_t i) const { return begin_[i + 1] - begin_[i]; }
  // Returned by value: Add may move the array.
  git_oid parent(uint32_t i, size_t k) const { return parents_[begin_[i] + k]; }

  // The node a parent link was resolved to by SetResolved, or kUnresolved.
  static constexpr uint32_t kUnresolved = UINT32_MAX;
  uint32_t resolved(uint32_t i, size_t k) const { return resolved_[begin_[i] + k]; }
  void SetResolved(uint32_t i, size_t k, uint32_t node) { resolved_[begin_[i] + k] = node; }

  std::optional<uint32_t> Find(const git_oid& oid) const {
    if (slots_.empty()) return std::nullopt;
    const uint64_t tag = uint64_t{Tag(oid)} << 32;
    for (size_t at = Hash(oid) & (slots_.size() - 1);; at = (at + 1) & (slots_.size() - 1)) {
      const uint64_t slot = slots_[at];
      const uint32_t i = static_cast<uint32_t>(slot);
      if (i == kEmpty) return std::nullopt;
      // The tag (id bytes 4-7) in the slot spares most misses a visit to oids_.
      if ((slot & ~uint64_t{UINT32_MAX}) == tag &&
          std::memcmp(oids_[i].id, oid.id, GIT_OID_RAWSZ) == 0) {
        return i;
      }
    }
  }

  // Adds a commit that Find does not know; false if the arrays would overflow their indices.
  bool Add(const git_oid& oid, absl::Span<const git_oid> parents) {
    if (oids_.size() >= UINT32_MAX / 4 || parents_.size() + parents.size() >= UINT32_MAX) {
      return false;
    }
    if (2 * (oids_.size() + 1) > slots_.size()) Rehash(std::max<size_t>(1024, 2 * slots_.size()));
    const uint32_t i = static_cast<uint32_t>(oids_.size());
    oids_.push_back(oid);
    marks_.push_back(0);
    parents_.insert(parents_.end(), parents.begin(), parents.end());
    resolved_.resize(parents_.size(), kUnresolved);
    begin_.push_back(static_cast<uint32_t>(parents_.size()));
    Insert(i);
    return true;
  }

  // Adds every commit of a pack scan, also those Find knows already (read by id earlier, or
  // in two packs): Find keeps returning the first copy, so a later one is never reached.
  // False if the arrays would overflow their indices.
  bool AddAll(const PackCommits& scanned) {
    const size_t first = oids_.size(),
                 links = scanned.size() == 0 ? 0 : scanned.begin(scanned.size());
    if (first + scanned.size() >= UINT32_MAX / 4 || parents_.size() + links >= UINT32_MAX) {
      return false;
    }
    const uint32_t base = static_cast<uint32_t>(parents_.size());
    oids_.insert(oids_.end(), scanned.oids().begin(), scanned.oids().end());
    marks_.resize(oids_.size(), 0);
    parents_.insert(parents_.end(), scanned.all_parents().begin(), scanned.all_parents().end());
    resolved_.resize(parents_.size(), kUnresolved);
    begin_.reserve(oids_.size() + 1);
    for (size_t i = 1; i <= scanned.size(); ++i) {
      begin_.push_back(base + static_cast<uint32_t>(scanned.begin(i)));
    }
    size_t capacity = std::max<size_t>(1024, slots_.size());
    while (capacity < 2 * oids_.size()) capacity *= 2;
    if (capacity > slots_.size()) {
      Rehash(capacity);
    } else {
      for (size_t i = first; i < oids_.size(); ++i) Insert(static_cast<uint32_t>(i));
    }
    return true;
  }

 private:
  static constexpr uint32_t kEmpty = UINT32_MAX;
  // Object ids are uniformly distributed: their first bytes are a hash already.
  static size_t Hash(const git_oid& oid) {
    uint32_t h;
    std::memcpy(&h, oid.id, sizeof h);
    return h;
  }
  static uint32_t Tag(const git_oid& oid) {
    uint32_t t;
    std::memcpy(&t, oid.id + 4, sizeof t);
    return t;
  }
  void Insert(uint32_t i) {
    size_t at = Hash(oids_[i]) & (slots_.size() - 1);
    while (static_cast<uint32_t>(slots_[at]) != kEmpty) at = (at + 1) & (slots_.size() - 1);
    slots_[at] = (uint64_t{Tag(oids_[i])} << 32) | i;
  }
  void Rehash(size_t capacity) {
    slots_.assign(capacity, kEmpty);
    for (uint32_t i = 0; i < oids_.size(); ++i) Insert(i);
  }

  std::vector<git_oid> oids_;
  std::vector<uint8_t> marks_;
  std::vector<uint32_t> begin_{0};  // parents of i: parents_[begin_[i], begin_[i + 1])
  std::vector<git_oid> parents_;
  std::vector<uint32_t> resolved_;  // by parent link: its node once known, else kUnresolved
  std::vector<uint64_t> slots_;     // open addressing, at most half full: tag << 32 | index
};

}  // namespace

absl::StatusOr<std::shared_ptr<const CommitGraph>> CommitGraph::Load(
    git_repository* repo, const git_oid& bad, const std::vector<git_oid>& good, bool first_parent) {
  return Load(repo, bad, good, first_parent, GraphLoadOptions(), nullptr);
}

absl::StatusOr<std::shared_ptr<const CommitGraph>> CommitGraph::Load(
    git_repository* repo, const git_oid& bad, const std::vector<git_oid>& good, bool first_parent,
    const GraphLoadOptions& options, GraphLoadInfo* info) {
  GraphLoadInfo unused;
  if (info == nullptr) info = &unused;
  *info = GraphLoadInfo();
  if (options.use_commit_graph_file && PlainHistory(repo)) {
    const char* common = git_repository_commondir(repo);
    absl::StatusOr<std::unique_ptr<CommitGraphFile>> file =
        CommitGraphFile::Open(absl::StrCat(common != nullptr ? common : "", "/objects"));
    if (file.ok()) {
      info->used_commit_graph_file = true;
      return LoadWithFile(repo, **file, bad, good, first_parent, options, info);
    }
    // A missing or unreadable file only costs speed: every commit is read from the objects by
    // the same walk, which holds ~60 bytes a commit; libgit2's revision walk held ~640 (and its
    // object cache up to 256 MB more) on a 1M-commit history.
    return LoadWithFile(repo, *CommitGraphFile::Empty(), bad, good, first_parent, options, info);
  }
  return LoadWithRevwalk(repo, bad, good, first_parent, info);
}

absl::StatusOr<std::shared_ptr<const CommitGraph>> CommitGraph::LoadWithFile(
    git_repository* repo, const CommitGraphFile& file, const git_oid& bad,
    const std::vector<git_oid>& good, bool first_parent, const GraphLoadOptions& options,
    GraphLoadInfo* info) {
  // Nodes: [0, F) are the file's positions, F + i the i-th commit read from the objects.
  const uint32_t f = file.size();
  CommitReader reader(repo);
  constexpr uint8_t kHidden = 1, kOnStack = 2, kDone = 4;
  std::vector<uint8_t> file_mark(f, 0);
  LooseCommits loose;
  std::vector<git_oid> read_parents;
  auto mark = [&](uint32_t node) -> uint8_t& {
    return node < f ? file_mark[node] : loose.mark(node - f);
  };
  size_t read_by_id = 0;
  bool packs_scanned = false;
  // Reading commits one by one (pack index search and inflate per id) costs ~9 us each; past a
  // few thousand, one pass over the packs is cheaper (~1 us a commit, on every core).
  auto scan_packs = [&]() -> absl::Status {
    packs_scanned = true;
    const char* common = git_repository_commondir(repo);
    if (common == nullptr) return absl::OkStatus();
    const int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    const PackCommits scanned = PackCommits::Scan(absl::StrCat(common, "/objects"), threads);
    if (f + loose.size() + scanned.size() >= UINT32_MAX - 1 || !loose.AddAll(scanned)) {
      return absl::ResourceExhaustedError("history too large");
    }
    info->commits_from_objects += scanned.size();
    info->commits_from_pack_scan += scanned.size();
    FARM_LOG(Debug) << "CommitGraph::Load: " << info->commits_from_pack_scan
                    << " commits from a scan of " << scanned.packs_read() << " pack(s) ("
                    << scanned.packs_skipped() << " skipped) after " << read_by_id << " read by id";
    return absl::OkStatus();
  };
  auto node_of = [&](const git_oid& oid) -> absl::StatusOr<uint32_t> {
    if (std::optional<uint32_t> pos = file.Find(oid)) return *pos;
    if (std::optional<uint32_t> i = loose.Find(oid)) return f + *i;
    if (!packs_scanned && read_by_id >= options.scan_packs_after) {
      if (absl::Status st = scan_packs(); !st.ok()) return st;
      if (std::optional<uint32_t> i = loose.Find(oid)) return f + *i;
    }
    if (absl::Status st = reader.Read(oid, read_parents); !st.ok()) return st;
    ++read_by_id;
    ++info->commits_from_objects;
    if (f + loose.size() >= UINT32_MAX - 1 || !loose.Add(oid, read_parents)) {
      return absl::ResourceExhaustedError("history too large");
    }
    return f + static_cast<uint32_t>(loose.size() - 1);
  };
  auto parents_of = [&](uint32_t node, bool first_only,
                        std::vector<uint32_t>& out) -> absl::Status {
    out.clear();
    if (node < f) {
      file.Parents(node, first_only, out);
      return absl::OkStatus();
    }
    const size_t count = loose.parent_count(node - f);
    for (size_t k = 0; k < count && !(first_only && k > 0); ++k) {
      // Resolved once: the walk asks for most commits' parents twice.
      if (const uint32_t known = loose.resolved(node - f, k); known != LooseCommits::kUnresolved) {
        out.push_back(known);
        continue;
      }
      const git_oid parent = loose.parent(node - f, k);  // node_of may grow `loose`
      absl::StatusOr<uint32_t> p = node_of(parent);
      if (!p.ok()) return p.status();
      loose.SetResolved(node - f, k, *p);
      out.push_back(*p);
    }
    return absl::OkStatus();
  };

  // Everything reachable from a good commit is hidden (all parents, as git does even with
  // --first-parent).
  // Errors about the starting commits name them as the revision walk does.
  auto named = [](const absl::Status& s, absl::string_view what, const git_oid& oid) {
    return absl::Status(s.code(), absl::StrCat(what, " ", OidHex(oid), ": ", s.message()));
  };
  std::vector<uint32_t> stack, parents, good_nodes;
  for (const git_oid& g : good) {
    absl::StatusOr<uint32_t> start = node_of(g);
    if (!start.ok()) return named(start.status(), "good commit", g);
    good_nodes.push_back(*start);
    if (mark(*start) & kHidden) continue;
    mark(*start) |= kHidden;
    stack.push_back(*start);
    while (!stack.empty()) {
      const uint32_t x = stack.back();
      stack.pop_back();
      if (absl::Status s = parents_of(x, false, parents); !s.ok()) return s;
      for (uint32_t p : parents) {
        if (mark(p) & kHidden) continue;
        mark(p) |= kHidden;
        stack.push_back(p);
      }
    }
  }
  absl::StatusOr<uint32_t> bad_node = node_of(bad);
  if (!bad_node.ok()) return named(bad_node.status(), "bad commit", bad);
  std::vector<uint32_t> wanted = good_nodes;  // distinct, sorted
  std::sort(wanted.begin(), wanted.end());
  wanted.erase(std::unique(wanted.begin(), wanted.end()), wanted.end());
  auto is_good = [&wanted](uint32_t node) {
    return std::binary_search(wanted.begin(), wanted.end(), node);
  };
  constexpr uint8_t kReached = 8;  // a good found to be an ancestor of bad
  size_t goods_reached = 0;

  std::shared_ptr<CommitGraph> graph(new CommitGraph());
  std::vector<uint32_t> order;  // the range in post-order from bad: parents first, bad last
  if (!(mark(*bad_node) & kHidden)) {
    // Iterative DFS; the parent lists of the nodes on the path share one stack.
    struct Frame {
      uint32_t node;
      size_t begin, next, end;  // its parents: pstack[begin, end), unvisited from next
    };
    std::vector<Frame> dfs;
    std::vector<uint32_t> pstack;
    auto push = [&](uint32_t node) -> absl::Status {
      mark(node) |= kOnStack;
      if (absl::Status s = parents_of(node, first_parent, parents); !s.ok()) return s;
      const size_t begin = pstack.size();
      pstack.insert(pstack.end(), parents.begin(), parents.end());
      dfs.push_back(Frame{node, begin, begin, pstack.size()});
      return absl::OkStatus();
    };
    if (absl::Status s = push(*bad_node); !s.ok()) return s;
    while (!dfs.empty()) {
      Frame& top = dfs.back();
      if (top.next < top.end) {
        const uint32_t p = pstack[top.next++];
        const uint8_t m = mark(p);
        if (m & kHidden) {
          // On the boundary of the range: an ancestor of bad.
          if (!(m & kReached) && is_good(p)) {
            mark(p) |= kReached;
            ++goods_reached;
          }
          continue;
        }
        if (m & (kOnStack | kDone)) continue;
        if (absl::Status s = push(p); !s.ok()) return s;
        continue;
      }
      mark(top.node) = static_cast<uint8_t>((mark(top.node) & ~kOnStack) | kDone);
      order.push_back(top.node);
      pstack.resize(top.begin);
      dfs.pop_back();
    }
  }
  // Which goods bad reaches (through all parents), as `git merge-base --is-ancestor`. With one
  // good, or goods that are not ancestors of one another, they are all on the range's boundary;
  // otherwise (or with --first-parent) walk from bad until all are seen.
  if (goods_reached < wanted.size()) {
    std::vector<uint32_t> reached{*bad_node};
    mark(*bad_node) |= kOnStack;  // as "seen" for this walk, cleared below
    stack.assign(1, *bad_node);
    if (is_good(*bad_node) && !(mark(*bad_node) & kReached)) {
      mark(*bad_node) |= kReached;
      ++goods_reached;
    }
    while (!stack.empty() && goods_reached < wanted.size()) {
      const uint32_t x = stack.back();
      stack.pop_back();
      if (absl::Status s = parents_of(x, false, parents); !s.ok()) return s;
      for (uint32_t p : parents) {
        if (mark(p) & kOnStack) continue;
        mark(p) |= kOnStack;
        reached.push_back(p);
        if (is_good(p) && !(mark(p) & kReached)) {
          mark(p) |= kReached;
          ++goods_reached;
        }
        stack.push_back(p);
      }
    }
    for (uint32_t x : reached) mark(x) &= static_cast<uint8_t>(~kOnStack);
  }
  info->good_is_ancestor.assign(good.size(), false);
  for (size_t i = 0; i < good.size(); ++i) {
    info->good_is_ancestor[i] = (mark(good_nodes[i]) & kReached) != 0;
  }
  if (order.empty()) {
    graph->parent_offsets_.push_back(0);
    return std::shared_ptr<const CommitGraph>(std::move(graph));
  }

  const size_t n = order.size();
  if (n > UINT32_MAX - 1) return absl::ResourceExhaustedError("bisect range too large");
  constexpr CommitId kOutside = UINT32_MAX;
  std::vector<CommitId> file_id(f, kOutside);  // new id by node
  std::vector<CommitId> loose_id(loose.size(), kOutside);
  auto id_slot = [&](uint32_t node) -> CommitId& {
    return node < f ? file_id[node] : loose_id[node - f];
  };
  for (size_t i = 0; i < n; ++i) id_slot(order[i]) = static_cast<CommitId>(i);
  graph->oids_.resize(n);
  graph->parent_offsets_.reserve(n + 1);
  graph->parent_offsets_.push_back(0);
  graph->parent_ids_.reserve(n + n / 4);
  bool all_in_file = true;
  for (size_t i = 0; i < n; ++i) {
    const uint32_t node = order[i];
    all_in_file = all_in_file && node < f;
    graph->oids_[i] = node < f ? file.Oid(node) : loose.oid(node - f);
    if (absl::Status s = parents_of(node, first_parent, parents); !s.ok()) return s;
    for (uint32_t p : parents) {
      const CommitId id = id_slot(p);
      if (id != kOutside) graph->parent_ids_.push_back(id);
    }
    graph->parent_offsets_.push_back(static_cast<uint32_t>(graph->parent_ids_.size()));
  }
  if (all_in_file) {
    // The file's positions are in object id order already.
    graph->by_oid_.reserve(n);
    for (uint32_t pos = 0; pos < f; ++pos) {
      if (file_id[pos] != kOutside) graph->by_oid_.push_back(file_id[pos]);
    }
    // A chain of split files is sorted per layer only.
    if (!std::is_sorted(
            graph->by_oid_.begin(), graph->by_oid_.end(), [&graph](CommitId a, CommitId b) {
              return std::memcmp(graph->oids_[a].id, graph->oids_[b].id, GIT_OID_RAWSZ) < 0;
            })) {
      graph->BuildIndex();
    }
  } else {
    graph->BuildIndex();
  }
  return std::shared_ptr<const CommitGraph>(std::move(graph));
}

absl::StatusOr<std::shared_ptr<const CommitGraph>> CommitGraph::LoadWithRevwalk(
    git_repository* repo, const git_oid& bad, const std::vector<git_oid>& good, bool first_parent,
    GraphLoadInfo* info) {
  git_revwalk* raw_walk = nullptr;
  if (int rc = git_revwalk_new(&raw_walk, repo); rc < 0) {
    return GitError(rc, "cannot start a revision walk");
  }
  std::unique_ptr<git_revwalk, RevwalkFree> walk(raw_walk);
  if (int rc = git_revwalk_sorting(walk.get(), GIT_SORT_TOPOLOGICAL | GIT_SORT_REVERSE); rc < 0) {
    return GitError(rc, "cannot sort the revision walk");
  }
  if (first_parent) {
    if (int rc = git_revwalk_simplify_first_parent(walk.get()); rc < 0) {
      return GitError(rc, "cannot set up a first-parent walk");
    }
  }
  if (int rc = git_revwalk_push(walk.get(), &bad); rc < 0) {
    return GitError(rc, absl::StrCat("bad commit ", OidHex(bad)));
  }
  for (const git_oid& g : good) {
    if (int rc = git_revwalk_hide(walk.get(), &g); rc < 0) {
      return GitError(rc, absl::StrCat("good commit ", OidHex(g)));
    }
  }

  std::shared_ptr<CommitGraph> graph(new CommitGraph());
  git_oid oid;
  while (true) {
    int rc = git_revwalk_next(&oid, walk.get());
    if (rc == GIT_ITEROVER) break;
    if (rc < 0) return GitError(rc, "revision walk failed");
    graph->oids_.push_back(oid);
  }
  walk.reset();
  const size_t n = graph->oids_.size();
  if (n == 0) {
    graph->parent_offsets_.push_back(0);
    return std::shared_ptr<const CommitGraph>(std::move(graph));
  }
  if (n > UINT32_MAX - 1) return absl::ResourceExhaustedError("bisect range too large");
  graph->BuildIndex();

  // Parent links, by the walk's numbering; checked for topological order below.
  std::vector<uint32_t> offsets;
  std::vector<CommitId> links;
  std::vector<bool> boundary_goods(good.size(), false);
  offsets.reserve(n + 1);
  links.reserve(n + n / 4);
  offsets.push_back(0);
  bool topological = git_oid_equal(&graph->oids_.back(), &bad) != 0;
  std::unique_ptr<git_odb, OdbFree> odb;
  if (PlainHistory(repo)) {
    git_odb* raw_odb = nullptr;
    if (git_repository_odb(&raw_odb, repo) == 0) odb.reset(raw_odb);
  }
  std::vector<git_oid> parent_ids;
  for (size_t i = 0; i < n; ++i) {
    ++info->commits_from_objects;
    if (odb != nullptr) {
      if (absl::Status st = ReadParents(odb.get(), graph->oids_[i], parent_ids); !st.ok()) {
        return st;
      }
    } else {
      // Grafts or replace refs: let libgit2 say what the parents are.
      git_commit* raw_commit = nullptr;
      if (int rc = git_commit_lookup(&raw_commit, repo, &graph->oids_[i]); rc < 0) {
        return GitError(rc, absl::StrCat("cannot read commit ", OidHex(graph->oids_[i])));
      }
      std::unique_ptr<git_commit, CommitFree> commit(raw_commit);
      parent_ids.clear();
      for (unsigned int k = 0; k < git_commit_parentcount(commit.get()); ++k) {
        if (const git_oid* p = git_commit_parent_id(commit.get(), k)) parent_ids.push_back(*p);
      }
    }
    for (size_t k = 0; k < parent_ids.size(); ++k) {
      const git_oid* parent = &parent_ids[k];
      std::optional<CommitId> pid = graph->Find(*parent);
      if (!pid) {
        // Outside the range: a good on this boundary is an ancestor of bad.
        for (size_t g = 0; g < good.size(); ++g) {
          if (git_oid_equal(parent, &good[g])) boundary_goods[g] = true;
        }
        continue;
      }
      if (first_parent && k > 0) continue;
      if (*pid >= i) topological = false;
      links.push_back(*pid);
    }
    offsets.push_back(static_cast<uint32_t>(links.size()));
  }
  // Goods hidden behind other goods are not on the boundary: then the caller must ask libgit2.
  if (std::all_of(boundary_goods.begin(), boundary_goods.end(), [](bool b) { return b; })) {
    info->good_is_ancestor.assign(good.size(), true);
  }

  if (topological) {
    graph->parent_offsets_ = std::move(offsets);
    graph->parent_ids_ = std::move(links);
    return std::shared_ptr<const CommitGraph>(std::move(graph));
  }

  // libgit2's order was not usable as is: renumber. Every in-range commit is an ancestor of bad
  // through in-range commits, so a post-order puts bad last.
  std::vector<std::vector<uint32_t>> parents(n);
  for (size_t i = 0; i < n; ++i) {
    parents[i].assign(links.begin() + offsets[i], links.begin() + offsets[i + 1]);
  }
  std::vector<uint32_t> order = PostOrder(parents);
  std::vector<CommitId> new_id(n);
  for (size_t k = 0; k < n; ++k) new_id[order[k]] = static_cast<CommitId>(k);
  std::vector<git_oid> oids(n);
  std::vector<std::vector<CommitId>> renumbered(n);
  for (size_t old = 0; old < n; ++old) {
    oids[new_id[old]] = graph->oids_[old];
    for (uint32_t p : parents[old]) renumbered[new_id[old]].push_back(new_id[p]);
  }
  if (!git_oid_equal(&oids.back(), &bad)) {
    return absl::InternalError(
        absl::StrCat("revision walk from ", OidHex(bad), " did not end at the bad commit"));
  }
  return std::shared_ptr<const CommitGraph>(FromParents(std::move(oids), std::move(renumbered)));
}

std::shared_ptr<const CommitGraph> CommitGraph::FromParents(
    std::vector<git_oid> oids, std::vector<std::vector<CommitId>> parents) {
  if (oids.size() != parents.size()) Die("oids and parents differ in size");
  if (oids.size() > UINT32_MAX - 1) Die("too many commits");
  std::shared_ptr<CommitGraph> graph(new CommitGraph());
  graph->oids_ = std::move(oids);
  graph->parent_offsets_.reserve(parents.size() + 1);
  graph->parent_offsets_.push_back(0);
  for (size_t i = 0; i < parents.size(); ++i) {
    for (CommitId p : parents[i]) {
      if (p >= i) Die("a parent id is not smaller than its child's");
      graph->parent_ids_.push_back(p);
    }
    graph->parent_offsets_.push_back(static_cast<uint32_t>(graph->parent_ids_.size()));
  }
  graph->BuildIndex();
  for (size_t k = 1; k < graph->by_oid_.size(); ++k) {
    if (git_oid_equal(&graph->oids_[graph->by_oid_[k - 1]], &graph->oids_[graph->by_oid_[k]])) {
      Die("duplicate object id");
    }
  }
  return graph;
}

void CommitGraph::BuildIndex() {
  // Sorted by the ids' first 8 bytes as a number (the whole id on a tie): 3x faster than
  // comparing ids through the oids_ array on a million commits.
  std::vector<std::pair<uint64_t, CommitId>> keyed(oids_.size());
  for (size_t i = 0; i < keyed.size(); ++i) {
    uint64_t key = 0;
    for (int b = 0; b < 8; ++b) key = (key << 8) | oids_[i].id[b];
    keyed[i] = {key, static_cast<CommitId>(i)};
  }
  std::sort(keyed.begin(), keyed.end(), [this](const auto& a, const auto& b) {
    if (a.first != b.first) return a.first < b.first;
    return std::memcmp(oids_[a.second].id, oids_[b.second].id, GIT_OID_RAWSZ) < 0;
  });
  by_oid_.resize(keyed.size());
  for (size_t i = 0; i < keyed.size(); ++i) by_oid_[i] = keyed[i].second;
}

std::string CommitGraph::Hex(CommitId id) const { return OidHex(oids_[id]); }

std::optional<CommitId> CommitGraph::Find(const git_oid& oid) const {
  auto it =
      std::lower_bound(by_oid_.begin(), by_oid_.end(), oid, [this](CommitId a, const git_oid& key) {
        return std::memcmp(oids_[a].id, key.id, GIT_OID_RAWSZ) < 0;
      });
  if (it == by_oid_.end() || std::memcmp(oids_[*it].id, oid.id, GIT_OID_RAWSZ) != 0) {
    return std::nullopt;
  }
  return *it;
}

std::optional<CommitId> CommitGraph::FindHex(std::string_view sha) const {
  if (sha.size() != GIT_OID_HEXSZ) return std::nullopt;
  git_oid oid;
  if (git_oid_fromstrn(&oid, sha.data(), sha.size()) < 0) return std::nullopt;
  return Find(oid);
}

}  // namespace farm

#include "coordinator/graph/commit_graph.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

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

[[noreturn]] void Die(const char* what) {
  std::fprintf(stderr, "CommitGraph::FromParents: %s\n", what);
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

}  // namespace

absl::StatusOr<std::shared_ptr<const CommitGraph>> CommitGraph::Load(
    git_repository* repo, const git_oid& bad, const std::vector<git_oid>& good, bool first_parent) {
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
  offsets.reserve(n + 1);
  links.reserve(n + n / 4);
  offsets.push_back(0);
  bool topological = git_oid_equal(&graph->oids_.back(), &bad) != 0;
  for (size_t i = 0; i < n; ++i) {
    git_commit* raw_commit = nullptr;
    if (int rc = git_commit_lookup(&raw_commit, repo, &graph->oids_[i]); rc < 0) {
      return GitError(rc, absl::StrCat("cannot read commit ", OidHex(graph->oids_[i])));
    }
    std::unique_ptr<git_commit, CommitFree> commit(raw_commit);
    unsigned int count = git_commit_parentcount(commit.get());
    if (first_parent && count > 1) count = 1;
    for (unsigned int k = 0; k < count; ++k) {
      const git_oid* parent = git_commit_parent_id(commit.get(), k);
      if (parent == nullptr) continue;
      std::optional<CommitId> pid = graph->Find(*parent);
      if (!pid) continue;  // outside the range
      if (*pid >= i) topological = false;
      links.push_back(*pid);
    }
    offsets.push_back(static_cast<uint32_t>(links.size()));
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
  by_oid_.resize(oids_.size());
  for (size_t i = 0; i < by_oid_.size(); ++i) by_oid_[i] = static_cast<CommitId>(i);
  std::sort(by_oid_.begin(), by_oid_.end(), [this](CommitId a, CommitId b) {
    return std::memcmp(oids_[a].id, oids_[b].id, GIT_OID_RAWSZ) < 0;
  });
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

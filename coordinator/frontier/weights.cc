#include "coordinator/frontier/weights.h"

#include <algorithm>
#include <optional>

#include "absl/container/flat_hash_map.h"
#include "coordinator/graph/separation_walk.h"

namespace farm {
namespace {

// Computing w(merge) is the only expensive part of the weights: the candidates reachable from a
// merge through several parents must be counted once (git walks each merge's whole ancestry:
// O(N x merges)). Only candidate parents are ever followed: the candidate ancestors of a
// candidate are exactly the candidates reachable through candidates (a commit on a path between
// two candidates is an ancestor of bad and a descendant of a non-good commit, so it is a
// candidate too). For the same reason a candidate with a single candidate parent p has
// w = w(p) + 1.
//
// Main method: a hierarchical chain decomposition.
//  - Level 0: the region R is every candidate; its chain c_0 < ... < c_k follows the first
//    in-region parent down from the top (bad). For every member y, h(y) is the lowest chain index
//    whose commit reaches y (one descending pass: h(p) = min over children). Since the chain is
//    nested (anc(c_{i-1}) is inside anc(c_i)), y is an ancestor of c_i iff h(y) <= i, so
//    w(c_i) = #{y : h(y) <= i}: a prefix sum. That settles every merge on the chain, in O(1).
//  - The group S_i = {y : h(y) = i}, minus c_i, becomes a region of level 1, with its own chain
//    from c_i's other parent inside S_i. Groups are convex (a path between two members stays
//    inside), so everything above applies within the region and recursively below.
//  - A commit x on the chain of a deeper region R reaches, outside R, the set
//    Out(x) = anc(x) - R, the union of the ancestries of its maximal elements, the "exits" of x
//    (a topic forked from c_f has the one exit c_f; a branch merged several times, its previous
//    tip; a tree that merged another tree, both trees' bases). Then
//    w(x) = #{y in R : h(y) <= index of x} + |Out(x)|. Exits are propagated upwards per level
//    (the exits of a parent inside R, or the parent itself outside), keeping maximal elements by
//    an ancestry test answered from the labels: y is an ancestor of c_i iff h(y) <= i, and of
//    any member z if h(y) <= m(z) (the highest chain index z reaches); h(y) > h(z) rules it out;
//    equal h descends a level; a lower h asks whether y reaches an exit of z one level down.
//  - |Out(x)| is w(e) for a single exit e. For several, UnionSize peels them: descend the levels
//    while several share the highest group; a single highest element b contributes what it
//    reaches inside its group, w(b) - |Out(b)| one level down, which no other element reaches,
//    and is replaced by its own exits; a chain commit among them reaches all of them.
// Cost: O(candidates + parent links) per level, and levels are few (a kernel-shaped history
// nests main line > subsystem tree > topic > ...). Merges it cannot settle (more than
// kMaxExits exits, an ancestry test over budget, octopus leftovers, nesting beyond
// kMaxLevels) fall back to:
//  1. A paint walk (SeparationWalk, coordinator/graph/separation_walk.h), counting the candidates
//  reachable from the merge's
//     other parents but not from its first candidate parent, so that
//     w(merge) = w(first) + 1 + that count. Its cost is the part of the graph between the merge
//     and where its branches meet.
//  2. A bit-parallel count of the whole candidate ancestry of 64 merges at a time: one sweep down
//     the ids ORs 64-bit masks into parents and adds them to bit-sliced counters, O(size()) per
//     64 merges. Used for merges whose walk exceeds its budget.

class MergeCounter {
 public:
  MergeCounter(const CommitGraph& graph, const std::vector<uint8_t>& flags, uint8_t candidate_bit,
               size_t budget)
      : graph_(graph), flags_(flags), candidate_bit_(candidate_bit), budget_(budget) {}

  // Method (1): the number of candidates reachable from the other candidate parents of `merge`
  // and not from `first`, or nullopt if that takes more than the budget.
  std::optional<uint32_t> Separation(CommitId merge, CommitId first) {
    uint32_t count = 0;
    const bool done = walk_.Run(
        merge, first, [this](CommitId p) { return (flags_[p] & candidate_bit_) != 0; },
        [&count](CommitId) { ++count; }, budget_);
    if (!done) return std::nullopt;
    return count;
  }

  // Method (2): for each of `merges` (ascending ids), the number of candidates that are its
  // ancestors-or-self, stored into out[merge].
  void CountAncestries(const std::vector<CommitId>& merges, std::vector<uint32_t>& out) {
    if (merges.empty()) return;
    std::vector<uint64_t> mask(graph_.size(), 0);
    for (size_t begin = 0; begin < merges.size(); begin += 64) {
      const size_t end = std::min(merges.size(), begin + 64);
      for (size_t j = begin; j < end; ++j) mask[merges[j]] |= uint64_t{1} << (j - begin);
      // planes[k] holds bit k of each of the 64 counters.
      uint64_t planes[33] = {};
      for (int64_t x = merges[end - 1]; x >= 0; --x) {
        uint64_t m = mask[x];
        if (m == 0) continue;
        mask[x] = 0;
        for (uint64_t carry = m, *plane = planes; carry != 0; ++plane) {
          const uint64_t next = *plane & carry;
          *plane ^= carry;
          carry = next;
        }
        for (CommitId p : graph_.parents(static_cast<CommitId>(x))) {
          if (flags_[p] & candidate_bit_) mask[p] |= m;
        }
      }
      for (size_t j = begin; j < end; ++j) {
        uint32_t total = 0;
        for (int k = 0; k < 33; ++k) {
          total |= static_cast<uint32_t>((planes[k] >> (j - begin)) & 1) << k;
        }
        out[merges[j]] = total;
      }
    }
  }

 private:
  const CommitGraph& graph_;
  const std::vector<uint8_t>& flags_;
  const uint8_t candidate_bit_;
  const size_t budget_;
  SeparationWalk walk_{graph_};
};

constexpr uint32_t kNoId = UINT32_MAX;       // no label / no commit; as an exit value: empty
constexpr uint32_t kUnreached = UINT32_MAX;  // h of a member no chain commit reaches
// Exit values: kNoId (empty), kComplexExit (unknown), a commit id, or kSetTag | offset in sets_.
constexpr uint32_t kComplexExit = UINT32_MAX - 1;
constexpr uint32_t kSetTag = 0x80000000u;
constexpr int kMaxLevels = 64;
constexpr uint32_t kMaxExits = 16;    // larger exit sets count as unknown
constexpr uint32_t kMaxPending = 48;  // elements of a union being counted
constexpr int kWorkBudget = 256;      // steps per ancestry test or union count before giving up

class ChainDecomposition {
 public:
  ChainDecomposition(const CommitGraph& graph, const std::vector<uint8_t>& flags,
                     uint8_t candidate_bit, CommitId limit)
      : graph_(graph), flags_(flags), bit_(candidate_bit), limit_(limit) {}

  // Builds the labels of every level and the exits. Returns the number of levels.
  int Build();

  // True if the weight of candidate x follows from the decomposition (given all smaller ones).
  bool Resolvable(CommitId x);

  // The weight of a Resolvable x, from the weights `w` of all smaller ids; false if it cannot
  // be counted after all (not expected).
  bool Weight(CommitId x, const std::vector<uint32_t>& w, uint32_t* weight);

  size_t num_labels() const { return labels_.size(); }

 private:
  // One commit at one level: its place in the region (a group of the level above) it belongs to.
  // Level-0 labels are indexed by commit id; deeper ones follow.
  struct Label {
    uint32_t region;  // unique over all levels
    uint32_t h;       // lowest chain index reaching it; kUnreached if none
    int32_t m;        // highest chain index among its ancestors-or-self; == h iff on the chain
    uint32_t next;    // its label one level down, or kNoId
    uint32_t exit;    // maximal elements of (its ancestors) - (its region), as an exit value
  };
  struct Region {
    uint32_t id;
    CommitId top;
    uint32_t begin, end;  // its members, ascending, in the level's member list
  };
  enum class Answer { kNo, kYes, kUnknown };
  // A small set of commits being counted.
  struct Pending {
    uint32_t size = 0;
    uint32_t ids[kMaxPending];
    bool Add(uint32_t id) {
      for (uint32_t i = 0; i < size; ++i) {
        if (ids[i] == id) return true;
      }
      if (size == kMaxPending) return false;
      ids[size++] = id;
      return true;
    }
  };

  static bool OnChain(const Label& l) { return l.m == static_cast<int32_t>(l.h); }
  bool IsCandidate(CommitId id) const { return (flags_[id] & bit_) != 0; }

  void ProcessRegion(const Region& r, const std::vector<CommitId>& members, bool last_level,
                     std::vector<CommitId>& next_members, std::vector<Region>& next_regions);
  void ComputeExits();

  // Appends the commits of exit value v to `out`; false if v is unknown or `out` overflows.
  bool AddExits(uint32_t v, Pending& out) const;
  // Folds exit value v into the exit of label l, keeping only maximal elements.
  void Combine(uint32_t l, uint32_t v);
  // Is a an ancestor-or-self of b?
  Answer Reaches(CommitId a, CommitId b, int& budget) const;
  // |union of the ancestries of e| (count mode with w, else only whether it can be counted).
  bool UnionSize(Pending e, const std::vector<uint32_t>* w, int& budget, uint64_t* total);
  // |the ancestries of the exits of label l|, memoised.
  bool OutSize(uint32_t l, const std::vector<uint32_t>* w, int& budget, uint64_t* size);

  const CommitGraph& graph_;
  const std::vector<uint8_t>& flags_;
  const uint8_t bit_;
  const CommitId limit_;
  std::vector<Label> labels_;
  std::vector<uint32_t> sets_;  // exit sets: size, then the commits
  // By commit while building: its current region (kNoId: not a candidate), h, m and deepest
  // label, together so that looking at a parent touches one cache line.
  struct Current {
    uint32_t region;
    uint32_t h;
    int32_t m;
    uint32_t last;
  };
  std::vector<Current> cur_;
  // By commit, for chain commits: its chain label and #{y in its region : h(y) <= its h}.
  std::vector<uint32_t> chain_label_;
  std::vector<uint32_t> local_;
  // OutSize memo for labels with several exits (rare): the size (count mode; kNoId until
  // counted) and whether it can be counted at all (dry runs).
  struct OutMemo {
    uint32_t size = kNoId;
    bool checked = false;
    bool ok = false;
  };
  absl::flat_hash_map<uint32_t, OutMemo> out_memo_;
  uint32_t next_region_id_ = 0;
  // Scratch for ProcessRegion.
  std::vector<CommitId> chain_;
  std::vector<uint32_t> count_;
  std::vector<uint32_t> sub_;
};

int ChainDecomposition::Build() {
  if (limit_ == 0 || limit_ >= kSetTag) return 0;  // everything left to the fallback
  chain_label_.assign(limit_, kNoId);
  labels_.assign(limit_, Label{kNoId, kUnreached, -1, kNoId, kNoId});
  cur_.assign(limit_, Current{kNoId, kUnreached, -1, kNoId});
  local_.assign(limit_, 0);
  std::vector<CommitId> members;
  const uint32_t root = next_region_id_++;
  for (CommitId x = 0; x < limit_; ++x) {
    if (!IsCandidate(x)) continue;
    members.push_back(x);
    cur_[x].region = root;
    cur_[x].last = x;
    labels_[x].region = root;
  }
  if (members.empty()) return 0;
  labels_.reserve(limit_ + members.size() * 2);
  std::vector<Region> regions{{root, members.back(), 0, static_cast<uint32_t>(members.size())}};
  std::vector<CommitId> next_members;
  std::vector<Region> next_regions;
  int level = 0;
  for (; !regions.empty(); ++level) {
    next_members.clear();
    next_regions.clear();
    for (const Region& r : regions) {
      ProcessRegion(r, members, level + 1 >= kMaxLevels, next_members, next_regions);
    }
    members.swap(next_members);
    regions.swap(next_regions);
  }
  std::vector<Current>().swap(cur_);  // only needed while building
  ComputeExits();
  return level;
}

void ChainDecomposition::ProcessRegion(const Region& r, const std::vector<CommitId>& members,
                                       bool last_level, std::vector<CommitId>& next_members,
                                       std::vector<Region>& next_regions) {
  const uint32_t rid = r.id;
  // The chain, from the top down through the first in-region parent.
  chain_.clear();
  for (CommitId x = r.top;;) {
    chain_.push_back(x);
    CommitId down = kNoId;
    for (CommitId p : graph_.parents(x)) {
      if (cur_[p].region == rid) {
        down = p;
        break;
      }
    }
    if (down == kNoId) break;
    x = down;
  }
  std::reverse(chain_.begin(), chain_.end());
  const uint32_t k = static_cast<uint32_t>(chain_.size());
  for (uint32_t i = 0; i < k; ++i) {
    cur_[chain_[i]].h = i;
    cur_[chain_[i]].m = static_cast<int32_t>(i);
  }
  // h, descending: each member's children inside the region come before it.
  for (uint32_t pos = r.end; pos-- > r.begin;) {
    const CommitId x = members[pos];
    const uint32_t hx = cur_[x].h;
    if (hx == kUnreached) continue;
    for (CommitId p : graph_.parents(x)) {
      Current& cp = cur_[p];
      if (cp.region == rid && hx < cp.h) cp.h = hx;
    }
  }
  // m, ascending (a member off the chain reaches only lower chain commits: m < h), group sizes.
  count_.assign(k, 0);
  for (uint32_t pos = r.begin; pos < r.end; ++pos) {
    const CommitId x = members[pos];
    Current& cx = cur_[x];
    const uint32_t hx = cx.h;
    Label& label = labels_[cx.last];
    label.h = hx;
    if (hx == kUnreached) continue;
    if (cx.m != static_cast<int32_t>(hx)) {
      int32_t m = -1;
      for (CommitId p : graph_.parents(x)) {
        if (cur_[p].region == rid) m = std::max(m, cur_[p].m);
      }
      cx.m = m;
    }
    label.m = cx.m;
    ++count_[hx];
  }
  uint32_t below = 0;
  for (uint32_t i = 0; i < k; ++i) {
    below += count_[i];
    local_[chain_[i]] = below;
    chain_label_[chain_[i]] = cur_[chain_[i]].last;
  }
  if (last_level) return;  // deeper members stay unresolved: their merges use the fallback
  // Groups with more than their chain commit become regions of the next level, each with its
  // own chain from the chain commit's highest parent inside the group.
  sub_.assign(k, kNoId);
  uint32_t slot = static_cast<uint32_t>(next_members.size());
  for (uint32_t i = 0; i < k; ++i) {
    if (count_[i] < 2) continue;
    CommitId top = kNoId;
    for (CommitId p : graph_.parents(chain_[i])) {
      const Current& cp = cur_[p];
      if (cp.region == rid && cp.h == i && cp.m != static_cast<int32_t>(i)) {
        top = p;
        break;
      }
    }
    sub_[i] = static_cast<uint32_t>(next_regions.size());
    next_regions.push_back(Region{next_region_id_++, top, slot, slot});
    slot += count_[i] - 1;
  }
  next_members.resize(slot);
  for (uint32_t pos = r.begin; pos < r.end; ++pos) {
    const CommitId x = members[pos];
    Current& cx = cur_[x];
    const uint32_t hx = cx.h;
    if (hx == kUnreached || cx.m == static_cast<int32_t>(hx)) continue;
    Region& sub = next_regions[sub_[hx]];
    next_members[sub.end++] = x;
    labels_.push_back(Label{sub.id, kUnreached, -1, kNoId, kNoId});
    const uint32_t l = static_cast<uint32_t>(labels_.size() - 1);
    labels_[cx.last].next = l;
    cx = Current{sub.id, kUnreached, -1, l};
  }
}

void ChainDecomposition::ComputeExits() {
  // Ascending, so that the exits of every parent (at every level) are final.
  for (CommitId x = 0; x < limit_; ++x) {
    if (!IsCandidate(x)) continue;
    const uint32_t first = labels_[x].next;
    if (first == kNoId) continue;
    for (CommitId p : graph_.parents(x)) {
      if (!IsCandidate(p)) continue;
      uint32_t lp = labels_[p].next;
      bool inside = true;
      for (uint32_t lx = first; lx != kNoId; lx = labels_[lx].next) {
        if (inside && lp != kNoId && labels_[lp].region == labels_[lx].region) {
          Combine(lx, labels_[lp].exit);
          lp = labels_[lp].next;
        } else {
          inside = false;  // regions nest: p is outside every deeper region of x too
          Combine(lx, p);
        }
      }
    }
  }
}

bool ChainDecomposition::AddExits(uint32_t v, Pending& out) const {
  if (v == kNoId) return true;
  if (v == kComplexExit) return false;
  if ((v & kSetTag) == 0) return out.Add(v);
  const uint32_t at = v & ~kSetTag;
  for (uint32_t i = 0; i < sets_[at]; ++i) {
    if (!out.Add(sets_[at + 1 + i])) return false;
  }
  return true;
}

void ChainDecomposition::Combine(uint32_t l, uint32_t v) {
  uint32_t& d = labels_[l].exit;
  if (v == kNoId || v == d || d == kComplexExit) return;
  if (d == kNoId || v == kComplexExit) {
    d = v;
    return;
  }
  Pending all;
  if (!AddExits(d, all) || !AddExits(v, all)) {
    d = kComplexExit;
    return;
  }
  // Keep the maximal elements: drop any that another reaches. An unknown answer keeps both,
  // which is still exact (a redundant element only costs time).
  int budget = kWorkBudget;
  bool dropped[kMaxPending] = {};
  uint32_t kept = all.size;
  for (uint32_t i = 0; i < all.size; ++i) {
    for (uint32_t j = 0; j < all.size && !dropped[i]; ++j) {
      if (i == j || dropped[j]) continue;
      if (Reaches(all.ids[i], all.ids[j], budget) == Answer::kYes) {
        dropped[i] = true;
        --kept;
      }
    }
  }
  if (kept > kMaxExits) {
    d = kComplexExit;
    return;
  }
  if (kept == 1) {
    for (uint32_t i = 0; i < all.size; ++i) {
      if (!dropped[i]) d = all.ids[i];
    }
    return;
  }
  const uint32_t at = static_cast<uint32_t>(sets_.size());
  if (at >= kSetTag) {
    d = kComplexExit;
    return;
  }
  sets_.push_back(kept);
  for (uint32_t i = 0; i < all.size; ++i) {
    if (!dropped[i]) sets_.push_back(all.ids[i]);
  }
  d = kSetTag | at;
}

ChainDecomposition::Answer ChainDecomposition::Reaches(CommitId a, CommitId b, int& budget) const {
  if (a == b) return Answer::kYes;
  if (a > b) return Answer::kNo;  // ids are topological
  if (--budget < 0) return Answer::kUnknown;
  uint32_t la = a, lb = b;  // level-0 labels; both in the one region of level 0
  while (true) {
    const Label& A = labels_[la];
    const Label& B = labels_[lb];  // in A's region
    if (A.h == kUnreached || B.h == kUnreached) return Answer::kUnknown;
    if (OnChain(A)) return static_cast<int32_t>(A.h) <= B.m ? Answer::kYes : Answer::kNo;
    if (A.h > B.h) return Answer::kNo;  // b's ancestors in the region all have h <= h(b)
    if (static_cast<int32_t>(A.h) <= B.m) return Answer::kYes;
    if (B.next == kNoId) return Answer::kUnknown;
    if (A.h == B.h) {
      if (A.next == kNoId) return Answer::kUnknown;
      la = A.next;  // same group: compare one level down
      lb = B.next;
      continue;
    }
    // A.h < B.h: b (off the chain, since m(b) < h(a)) leaves its group only through its exits
    // one level down, and a is outside that group.
    Pending exits;
    if (!AddExits(labels_[B.next].exit, exits)) return Answer::kUnknown;
    Answer answer = Answer::kNo;
    for (uint32_t i = 0; i < exits.size; ++i) {
      const Answer r = Reaches(a, exits.ids[i], budget);
      if (r == Answer::kYes) return r;
      if (r == Answer::kUnknown) answer = r;
    }
    return answer;
  }
}

bool ChainDecomposition::OutSize(uint32_t l, const std::vector<uint32_t>* w, int& budget,
                                 uint64_t* size) {
  const uint32_t v = labels_[l].exit;
  if (v == kComplexExit) return false;
  if (v == kNoId) {
    *size = 0;
    return true;
  }
  if ((v & kSetTag) == 0) {
    if (w != nullptr) *size = (*w)[v];
    return true;
  }
  {
    const OutMemo& memo = out_memo_[l];
    if (memo.checked && !memo.ok) return false;
    if (w == nullptr && memo.checked) return true;
    if (w != nullptr && memo.size != kNoId) {
      *size = memo.size;
      return true;
    }
  }
  Pending exits;
  AddExits(v, exits);
  uint64_t total = 0;
  const bool ok = UnionSize(exits, w, budget, &total);
  OutMemo& memo = out_memo_[l];  // UnionSize may have rehashed the map
  if (w == nullptr || !ok) {
    memo.checked = true;
    memo.ok = ok;
  }
  if (!ok) return false;
  if (w != nullptr) {
    memo.size = static_cast<uint32_t>(total);
    *size = total;
  }
  return true;
}

// Counts |anc(e_1) u ... u anc(e_k)| by peeling off, one at a time, an element whose part
// inside its group no other element can reach: descend the levels while several elements share
// the highest group; a chain commit among them reaches all of them and everything below in its
// region (count local_, continue with its exits); a single highest element b contributes
// w(b) - |its exits' ancestries| one level down (continue with the others and its exits).
bool ChainDecomposition::UnionSize(Pending e, const std::vector<uint32_t>* w, int& budget,
                                   uint64_t* total) {
  while (true) {
    if (e.size == 0) return true;
    if (e.size == 1) {
      if (w != nullptr) *total += (*w)[e.ids[0]];
      return true;
    }
    if (--budget < 0) return false;
    uint32_t label[kMaxPending];
    bool current[kMaxPending];
    for (uint32_t i = 0; i < e.size; ++i) {
      label[i] = e.ids[i];
      current[i] = true;
    }
    Pending next;
    while (true) {
      uint32_t top_h = 0;
      for (uint32_t i = 0; i < e.size; ++i) {
        if (!current[i]) continue;
        const uint32_t h = labels_[label[i]].h;
        if (h == kUnreached) return false;
        top_h = std::max(top_h, h);
      }
      int chain_i = -1, top_i = -1, tops = 0;
      for (uint32_t i = 0; i < e.size; ++i) {
        if (!current[i] || labels_[label[i]].h != top_h) continue;
        ++tops;
        top_i = static_cast<int>(i);
        if (OnChain(labels_[label[i]])) chain_i = static_cast<int>(i);
      }
      if (chain_i >= 0) {
        // Reaches every current element; counts its region part, continues with its exits.
        const uint32_t b = e.ids[chain_i];
        if (w != nullptr) *total += local_[b];
        for (uint32_t i = 0; i < e.size; ++i) {
          if (!current[i] && !next.Add(e.ids[i])) return false;
        }
        if (!AddExits(labels_[label[chain_i]].exit, next)) return false;
        break;
      }
      if (tops == 1) {
        const uint32_t b = e.ids[top_i];
        const uint32_t down = labels_[label[top_i]].next;
        if (down == kNoId) return false;
        uint64_t out = 0;
        if (!OutSize(down, w, budget, &out)) return false;
        if (w != nullptr) *total += (*w)[b] - out;
        for (uint32_t i = 0; i < e.size; ++i) {
          if (static_cast<int>(i) != top_i && !next.Add(e.ids[i])) return false;
        }
        if (!AddExits(labels_[down].exit, next)) return false;
        break;
      }
      for (uint32_t i = 0; i < e.size; ++i) {
        if (!current[i]) continue;
        if (labels_[label[i]].h != top_h) {
          current[i] = false;
          continue;
        }
        label[i] = labels_[label[i]].next;
        if (label[i] == kNoId) return false;
      }
    }
    e = next;
  }
}

bool ChainDecomposition::Resolvable(CommitId x) {
  if (x >= chain_label_.size()) return false;
  const uint32_t l = chain_label_[x];
  if (l == kNoId) return false;
  const uint32_t v = labels_[l].exit;
  if (v == kComplexExit) return false;
  if ((v & kSetTag) == 0) return true;  // none or one exit
  int budget = kWorkBudget;
  uint64_t unused;
  return OutSize(l, nullptr, budget, &unused);
}

bool ChainDecomposition::Weight(CommitId x, const std::vector<uint32_t>& w, uint32_t* weight) {
  const uint32_t l = chain_label_[x];
  int budget = kWorkBudget * 64;
  uint64_t out = 0;
  if (l == kNoId || !OutSize(l, &w, budget, &out)) return false;
  *weight = static_cast<uint32_t>(local_[x] + out);
  return true;
}

}  // namespace

void ComputeCandidateWeights(const CommitGraph& graph, const std::vector<uint8_t>& flags,
                             uint8_t candidate_bit, CommitId limit, size_t merge_walk_budget,
                             std::vector<uint32_t>& weights, WeightStats* stats) {
  weights.assign(graph.size(), 0);
  WeightStats local_stats;
  WeightStats& st = stats != nullptr ? *stats : local_stats;
  st = WeightStats();
  ChainDecomposition chains(graph, flags, candidate_bit, limit);
  st.levels = chains.Build();
  st.labels = chains.num_labels();

  enum : uint8_t { kNotMerge = 0, kByChains, kByWalk, kBySweep };
  std::vector<uint8_t> method(limit, kNotMerge);
  std::vector<CommitId> full;  // merges left to the sweep
  MergeCounter counter(graph, flags, candidate_bit, merge_walk_budget);
  for (CommitId id = 0; id < limit; ++id) {
    if (!(flags[id] & candidate_bit)) continue;
    CommitId first = kNoId;
    int in_set = 0;
    for (CommitId p : graph.parents(id)) {
      if (flags[p] & candidate_bit) {
        if (in_set++ == 0) first = p;
      }
    }
    if (in_set < 2) continue;
    ++st.merges;
    if (chains.Resolvable(id)) {
      method[id] = kByChains;
      ++st.merges_by_chains;
    } else if (std::optional<uint32_t> separated = counter.Separation(id, first)) {
      method[id] = kByWalk;
      weights[id] = *separated;
      ++st.merges_by_walks;
    } else {
      method[id] = kBySweep;
      full.push_back(id);
      ++st.merges_by_sweeps;
    }
  }
  counter.CountAncestries(full, weights);
  // Parents before children.
  std::optional<MergeCounter> unbounded;
  for (CommitId id = 0; id < limit; ++id) {
    if (!(flags[id] & candidate_bit)) continue;
    if (method[id] == kBySweep) continue;
    if (method[id] == kByChains) {
      if (chains.Weight(id, weights, &weights[id])) continue;
      // Not expected: the dry run said it could be counted. Walk without a budget.
      if (!unbounded) unbounded.emplace(graph, flags, candidate_bit, SIZE_MAX);
      method[id] = kByWalk;
      CommitId first = kNoId;
      for (CommitId p : graph.parents(id)) {
        if (flags[p] & candidate_bit) {
          first = p;
          break;
        }
      }
      weights[id] = *unbounded->Separation(id, first);
    }
    CommitId first = kNoId;
    for (CommitId p : graph.parents(id)) {
      if (flags[p] & candidate_bit) {
        first = p;
        break;
      }
    }
    if (first == kNoId) {
      weights[id] = 1;
    } else if (method[id] == kNotMerge) {
      weights[id] = weights[first] + 1;
    } else {
      weights[id] += weights[first] + 1;  // kByWalk: the separation count was stored
    }
  }
}

void ComputeCandidateWeightsByWalks(const CommitGraph& graph, const std::vector<uint8_t>& flags,
                                    uint8_t candidate_bit, CommitId limit, size_t merge_walk_budget,
                                    std::vector<uint32_t>& weights) {
  weights.assign(graph.size(), 0);
  constexpr CommitId kNone = UINT32_MAX;
  std::vector<CommitId> full;  // merges whose whole ancestry is counted by method (2)
  std::vector<uint8_t> is_merge(limit, 0);
  MergeCounter counter(graph, flags, candidate_bit, merge_walk_budget);
  auto first_candidate_parent = [&](CommitId id, int* in_set) {
    CommitId first = kNone;
    *in_set = 0;
    for (CommitId p : graph.parents(id)) {
      if (flags[p] & candidate_bit) {
        if (*in_set == 0) first = p;
        ++*in_set;
      }
    }
    return first;
  };
  // Pass 1: merges. weights[merge] temporarily holds its separation count (is_merge 1) or, for
  // those left to method (2), its full weight (is_merge 2).
  for (CommitId id = 0; id < limit; ++id) {
    if (!(flags[id] & candidate_bit)) continue;
    int in_set;
    CommitId first = first_candidate_parent(id, &in_set);
    if (in_set < 2) continue;
    if (std::optional<uint32_t> separated = counter.Separation(id, first)) {
      is_merge[id] = 1;
      weights[id] = *separated;
    } else {
      is_merge[id] = 2;
      full.push_back(id);
    }
  }
  counter.CountAncestries(full, weights);
  // Pass 2: everything, parents before children.
  for (CommitId id = 0; id < limit; ++id) {
    if (!(flags[id] & candidate_bit) || is_merge[id] == 2) continue;
    int in_set;
    CommitId first = first_candidate_parent(id, &in_set);
    if (in_set == 0) {
      weights[id] = 1;
    } else if (in_set == 1) {
      weights[id] = weights[first] + 1;
    } else {
      weights[id] += weights[first] + 1;
    }
  }
}

}  // namespace farm

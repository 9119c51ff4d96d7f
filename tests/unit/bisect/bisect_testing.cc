#include "tests/unit/bisect/bisect_testing.h"

#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace farm::bisect_testing {

git_oid OrderedOid(uint32_t i) {
  git_oid oid;
  for (int k = 0; k < GIT_OID_RAWSZ; ++k) oid.id[k] = static_cast<unsigned char>(0xa5 ^ k);
  oid.id[0] = static_cast<unsigned char>(i >> 24);
  oid.id[1] = static_cast<unsigned char>(i >> 16);
  oid.id[2] = static_cast<unsigned char>(i >> 8);
  oid.id[3] = static_cast<unsigned char>(i);
  return oid;
}

std::vector<git_oid> OrderedOids(size_t n) {
  std::vector<git_oid> oids;
  oids.reserve(n);
  for (size_t i = 0; i < n; ++i) oids.push_back(OrderedOid(static_cast<uint32_t>(i)));
  return oids;
}

std::shared_ptr<const CommitGraph> GraphOf(const Dag& dag) {
  return CommitGraph::FromParents(OrderedOids(dag.size()), dag);
}

std::vector<std::vector<bool>> AncestorSets(const Dag& dag) {
  std::vector<std::vector<bool>> anc(dag.size(), std::vector<bool>(dag.size(), false));
  for (size_t i = 0; i < dag.size(); ++i) {
    anc[i][i] = true;
    for (uint32_t p : dag[i]) {
      for (size_t j = 0; j <= p; ++j) {
        if (anc[p][j]) anc[i][j] = true;
      }
    }
  }
  return anc;
}

Dag LinearHistory(uint32_t n) {
  Dag dag(n);
  for (uint32_t i = 1; i < n; ++i) dag[i] = {i - 1};
  return dag;
}

Dag RandomHistory(std::mt19937_64& rng, size_t n) {
  std::uniform_real_distribution<double> coin(0.0, 1.0);
  auto below = [&rng](size_t k) { return std::uniform_int_distribution<size_t>(0, k - 1)(rng); };
  Dag dag;
  dag.push_back({});
  std::vector<uint32_t> main_line{0};
  std::vector<uint32_t> topics;  // tips of open topic branches
  auto add = [&dag](std::vector<uint32_t> parents) {
    dag.push_back(std::move(parents));
    return static_cast<uint32_t>(dag.size() - 1);
  };
  while (dag.size() < n) {
    const double r = coin(rng);
    if (topics.empty() || r < 0.30) {
      if (!topics.empty() || coin(rng) < 0.5) {
        main_line.push_back(add({main_line.back()}));
        continue;
      }
    }
    if (topics.empty() || r < 0.50) {
      // Fork a topic, usually from a recent main commit, sometimes from an old one.
      size_t back =
          coin(rng) < 0.8 ? below(std::min<size_t>(main_line.size(), 6)) : below(main_line.size());
      topics.push_back(add({main_line[main_line.size() - 1 - back]}));
    } else if (r < 0.75) {
      uint32_t& tip = topics[below(topics.size())];
      tip = add({tip});
    } else if (r < 0.92) {
      // Merge a topic into main.
      size_t t = below(topics.size());
      main_line.push_back(add({main_line.back(), topics[t]}));
      if (coin(rng) < 0.7) topics.erase(topics.begin() + static_cast<ptrdiff_t>(t));
    } else {
      // Back-merge main, or another topic, into a topic.
      size_t t = below(topics.size());
      uint32_t other = main_line.back();
      if (topics.size() > 1 && coin(rng) < 0.4) {
        size_t u = below(topics.size());
        if (u != t) other = topics[u];
      }
      topics[t] = add({topics[t], other});
    }
  }
  return dag;
}

Dag KernelShapedHistory(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> coin(0.0, 1.0);
  auto below = [&rng](size_t k) { return std::uniform_int_distribution<size_t>(0, k - 1)(rng); };
  Dag dag;
  dag.reserve(n);
  auto add = [&dag](std::vector<uint32_t> parents) {
    dag.push_back(std::move(parents));
    return static_cast<uint32_t>(dag.size() - 1);
  };
  struct Topic {
    uint32_t tip;
    bool unmerged;  // has commits its line has not merged yet
  };
  struct Line {
    uint32_t tip = 0;
    bool unmerged = false;  // (trees) has commits the main line has not merged yet
    std::vector<Topic> topics;
    std::vector<uint32_t> recent;  // recent tips, to fork topics from slightly older points
  };
  const size_t cycle = std::clamp<size_t>(n / 8, 400, 15000);
  const size_t num_trees = std::clamp<size_t>(cycle / 120, 4, 30);
  std::vector<Line> lines(num_trees + 1);  // lines[0] is the main line
  // Bigger trees first, as in the kernel (drivers, net, ...): weight 1 / (1 + 0.25 s).
  std::vector<double> cumulative;
  double total = 0;
  for (size_t s = 1; s <= num_trees; ++s) cumulative.push_back(total += 1.0 / (1.0 + 0.25 * s));

  add({});
  for (int i = 0; i < 8; ++i) lines[0].tip = add({lines[0].tip});
  for (Line& l : lines) l.tip = lines[0].tip;
  const size_t reserve = num_trees + 2;  // room for a final merge window

  auto advance = [&](Line& line, uint32_t commit) {
    line.tip = commit;
    line.unmerged = true;
    line.recent.push_back(commit);
    if (line.recent.size() > 32) line.recent.erase(line.recent.begin());
  };
  auto merge_window = [&]() {
    std::vector<size_t> order;
    for (size_t s = 1; s <= num_trees; ++s) order.push_back(s);
    std::shuffle(order.begin(), order.end(), rng);
    for (size_t s : order) {
      Line& tree = lines[s];
      if (!tree.unmerged || dag.size() >= n - 1) continue;
      lines[0].tip = add({lines[0].tip, tree.tip});
      tree.unmerged = false;
    }
    // Each tree continues from its merged tip or restarts from the new main line ("rc1").
    for (size_t s = 1; s <= num_trees; ++s) {
      if (coin(rng) < 0.5) {
        lines[s].tip = lines[0].tip;
        lines[s].recent.assign(1, lines[0].tip);
      }
    }
  };

  while (dag.size() + reserve < n) {
    const size_t cycle_end = std::min(n - reserve, dag.size() + cycle - num_trees);
    while (dag.size() < cycle_end) {
      const bool on_main = coin(rng) < 0.12;
      size_t s = 0;
      if (!on_main) {
        const double pick = coin(rng) * total;
        s = 1 + static_cast<size_t>(std::lower_bound(cumulative.begin(), cumulative.end(), pick) -
                                    cumulative.begin());
        s = std::min(s, num_trees);
      }
      Line& line = lines[s];
      const double r = coin(rng);
      if (r < 0.40) {
        advance(line, add({line.tip}));
      } else if (r < 0.70) {
        if (line.topics.empty() || (line.topics.size() < 4 && coin(rng) < 0.3)) {
          uint32_t base = line.tip;
          if (!line.recent.empty() && coin(rng) < 0.3)
            base = line.recent[below(line.recent.size())];
          line.topics.push_back({add({base}), true});
        } else {
          Topic& t = line.topics[below(line.topics.size())];
          t.tip = add({t.tip});
          t.unmerged = true;
        }
      } else if (r < 0.982) {
        if (line.topics.empty()) continue;
        const size_t k = below(line.topics.size());
        if (!line.topics[k].unmerged) continue;
        advance(line, add({line.tip, line.topics[k].tip}));
        line.topics[k].unmerged = false;
        if (coin(rng) < 0.8) line.topics.erase(line.topics.begin() + static_cast<ptrdiff_t>(k));
      } else if (r < 0.997) {
        if (s == 0 || line.tip == lines[0].tip) continue;
        advance(line, add({line.tip, lines[0].tip}));  // back-merge of the main line
      } else {
        const size_t u = 1 + below(num_trees);
        if (s == 0 || u == s || !lines[u].unmerged || lines[u].tip == line.tip) continue;
        advance(line, add({line.tip, lines[u].tip}));  // cross-merge of another tree
      }
    }
    merge_window();
  }
  merge_window();
  while (dag.size() < n) lines[0].tip = add({lines[0].tip});
  // Unmerged topics and trees are left out of the main line: the last commit must still be the
  // main tip, which it is, since every step above appends to the end.
  return dag;
}

void IsolateGitConfig() {
  setenv("GIT_CONFIG_NOSYSTEM", "1", 1);
  setenv("GIT_CONFIG_GLOBAL", "/dev/null", 1);
  unsetenv("GIT_DIR");
  unsetenv("GIT_WORK_TREE");
  unsetenv("GIT_INDEX_FILE");
  unsetenv("GIT_OBJECT_DIRECTORY");
}

bool GitAvailable() { return Sh("git --version").exit_code == 0; }

absl::StatusOr<std::vector<std::string>> CreateRepository(const std::string& dir, const Dag& dag) {
  const std::string stream_path = dir + ".fi";
  const std::string marks_path = dir + ".marks";
  {
    std::ofstream stream(stream_path, std::ios::binary);
    for (size_t i = 0; i < dag.size(); ++i) {
      if (dag[i].empty()) stream << "reset refs/heads/main\n";
      std::string message = absl::StrCat("c", i, "\n");
      stream << "commit refs/heads/main\nmark :" << i + 1 << "\ncommitter T <t@example.com> "
             << 1700000000 + i << " +0000\ndata " << message.size() << "\n"
             << message;
      for (size_t k = 0; k < dag[i].size(); ++k) {
        stream << (k == 0 ? "from :" : "merge :") << dag[i][k] + 1 << "\n";
      }
    }
    if (!stream) return absl::InternalError("cannot write " + stream_path);
  }
  CommandResult r = Sh(absl::StrCat(
      "git init -q ", Quote(dir), " && cd ", Quote(dir),
      " && git symbolic-ref HEAD refs/heads/main && git fast-import --quiet --export-marks=",
      Quote(marks_path), " < ", Quote(stream_path)));
  if (r.exit_code != 0) {
    return absl::InternalError(absl::StrCat("git fast-import failed: ", r.output));
  }
  std::ifstream marks(marks_path);
  std::vector<std::string> shas(dag.size());
  std::string mark, sha;
  while (marks >> mark >> sha) {
    size_t index;
    if (mark.size() < 2 || !absl::SimpleAtoi(mark.substr(1), &index) || index < 1 ||
        index > dag.size() || sha.size() != GIT_OID_HEXSZ) {
      return absl::InternalError("bad marks line: " + mark + " " + sha);
    }
    shas[index - 1] = sha;
  }
  for (const std::string& s : shas) {
    if (s.empty()) return absl::InternalError("marks file incomplete");
  }
  std::remove(stream_path.c_str());
  std::remove(marks_path.c_str());
  return shas;
}

std::string GraphDifference(const CommitGraph& a, const CommitGraph& b) {
  if (a.size() != b.size()) return absl::StrCat("sizes differ: ", a.size(), " vs ", b.size());
  for (CommitId id = 0; id < a.size(); ++id) {
    std::optional<CommitId> same = b.Find(a.oid(id));
    if (!same.has_value()) return absl::StrCat(a.Hex(id), " is only in the first");
    std::vector<std::string> pa, pb;
    for (CommitId p : a.parents(id)) pa.push_back(a.Hex(p));
    for (CommitId p : b.parents(*same)) pb.push_back(b.Hex(p));
    if (pa != pb) {
      return absl::StrCat(a.Hex(id), "'s parents differ: ", absl::StrJoin(pa, ","), " vs ",
                          absl::StrJoin(pb, ","));
    }
  }
  return "";
}

git_oid OidFromHex(absl::string_view hex) {
  git_oid oid;
  if (hex.size() != GIT_OID_HEXSZ || git_oid_fromstrn(&oid, hex.data(), hex.size()) < 0) {
    std::fprintf(stderr, "bad sha: %.*s\n", static_cast<int>(hex.size()), hex.data());
    std::abort();
  }
  return oid;
}

}  // namespace farm::bisect_testing

#include "tests/unit/bisect/bisect_testing.h"

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
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

CommandResult RunShell(const std::string& command) {
  CommandResult result;
  std::string wrapped = absl::StrCat("( ", command, " ) 2>&1");
  FILE* pipe = popen(wrapped.c_str(), "r");
  if (pipe == nullptr) return result;
  char buffer[4096];
  size_t got;
  while ((got = fread(buffer, 1, sizeof(buffer), pipe)) > 0) result.output.append(buffer, got);
  int status = pclose(pipe);
  if (status != -1 && WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  return result;
}

std::string ShellQuote(absl::string_view s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  out += "'";
  return out;
}

void IsolateGitConfig() {
  setenv("GIT_CONFIG_NOSYSTEM", "1", 1);
  setenv("GIT_CONFIG_GLOBAL", "/dev/null", 1);
  unsetenv("GIT_DIR");
  unsetenv("GIT_WORK_TREE");
  unsetenv("GIT_INDEX_FILE");
  unsetenv("GIT_OBJECT_DIRECTORY");
}

bool GitAvailable() { return RunShell("git --version").exit_code == 0; }

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
  CommandResult r = RunShell(absl::StrCat(
      "git init -q ", ShellQuote(dir), " && cd ", ShellQuote(dir),
      " && git symbolic-ref HEAD refs/heads/main && git fast-import --quiet --export-marks=",
      ShellQuote(marks_path), " < ", ShellQuote(stream_path)));
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

git_oid OidFromHex(absl::string_view hex) {
  git_oid oid;
  if (hex.size() != GIT_OID_HEXSZ || git_oid_fromstrn(&oid, hex.data(), hex.size()) < 0) {
    std::fprintf(stderr, "bad sha: %.*s\n", static_cast<int>(hex.size()), hex.data());
    std::abort();
  }
  return oid;
}

}  // namespace farm::bisect_testing

#include "agent/workspace/checkout_filters.h"

#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <cstring>

namespace farm {
namespace {

// Subtrees remembered at most (a kernel tree has ~5,000; each entry is ~60 bytes).
constexpr size_t kMaxTrees = 1 << 20;

bool ConfigSays(git_config* cfg, const char* name, const char* value) {
  git_config_entry* e = nullptr;
  if (git_config_get_entry(&e, cfg, name) < 0) {
    git_error_clear();
    return false;
  }
  bool says = value == nullptr || strcasecmp(e->value, value) == 0;
  git_config_entry_free(e);
  return says;
}

bool Exists(const std::string& path) { return !path.empty() && access(path.c_str(), F_OK) == 0; }

}  // namespace

bool CheckoutFilters::AttributesMayNeed(std::string_view text) {
  // Each line: a pattern, then attributes: NAME, -NAME, !NAME or NAME=VALUE. The filters libgit2
  // applies on checkout are driven by text, eol, crlf and ident (and filter=, whose drivers it
  // does not run, but which is counted too); "diff=cpp" and the like ask for nothing.
  static const char* const kNames[] = {"text",  "eol",    "crlf",
                                       "ident", "filter", "working-tree-encoding"};
  for (size_t start = 0; start < text.size();) {
    size_t nl = text.find('\n', start);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view line = text.substr(start, nl - start);
    start = nl + 1;
    bool pattern = true;
    for (size_t i = 0; i < line.size();) {
      while (i < line.size() && std::isspace(static_cast<unsigned char>(line[i]))) ++i;
      size_t j = i;
      while (j < line.size() && !std::isspace(static_cast<unsigned char>(line[j]))) ++j;
      std::string_view token = line.substr(i, j - i);
      i = j;
      if (token.empty()) break;
      if (pattern) {  // the first token names files (or is a comment, or defines a macro)
        if (token[0] == '#') break;
        pattern = false;
        continue;
      }
      if (token[0] == '-' || token[0] == '!') token.remove_prefix(1);
      token = token.substr(0, token.find('='));
      for (const char* name : kNames) {
        if (token == name) return true;
      }
    }
  }
  return false;
}

bool CheckoutFilters::MayNeed(git_repository* repo, const git_oid& tree) {
  git_config* cfg = nullptr;
  if (git_repository_config_snapshot(&cfg, repo) < 0) {
    git_error_clear();
    return true;
  }
  bool needs = ConfigSays(cfg, "core.autocrlf", "true") || ConfigSays(cfg, "core.eol", "crlf") ||
               ConfigSays(cfg, "core.attributesfile", nullptr);
  git_config_free(cfg);
  if (needs) return true;
  if (Exists(std::string(git_repository_commondir(repo)) + "/info/attributes")) return true;
  const char* xdg = std::getenv("XDG_CONFIG_HOME");
  const char* home = std::getenv("HOME");
  if (xdg != nullptr && *xdg != '\0') {
    if (Exists(std::string(xdg) + "/git/attributes")) return true;
  } else if (home != nullptr && Exists(std::string(home) + "/.config/git/attributes")) {
    return true;
  }
  return TreeMayNeed(repo, tree, 0);
}

bool CheckoutFilters::TreeMayNeed(git_repository* repo, const git_oid& id, int depth) {
  const std::string key(reinterpret_cast<const char*>(id.id), GIT_OID_RAWSZ);
  {
    absl::MutexLock lock(&mu_);
    if (auto it = trees_.find(key); it != trees_.end()) return it->second;
  }
  if (depth > 256) return true;
  git_tree* tree = nullptr;
  if (git_tree_lookup(&tree, repo, &id) < 0) {
    git_error_clear();
    return true;
  }
  bool needs = false;
  const size_t n = git_tree_entrycount(tree);
  for (size_t i = 0; i < n && !needs; ++i) {
    const git_tree_entry* e = git_tree_entry_byindex(tree, i);
    if (git_tree_entry_type(e) == GIT_OBJECT_TREE) {
      needs = TreeMayNeed(repo, *git_tree_entry_id(e), depth + 1);
    } else if (std::strcmp(git_tree_entry_name(e), ".gitattributes") == 0) {
      git_blob* blob = nullptr;
      if (git_blob_lookup(&blob, repo, git_tree_entry_id(e)) < 0) {
        git_error_clear();
        needs = true;
        break;
      }
      needs =
          AttributesMayNeed(std::string_view(static_cast<const char*>(git_blob_rawcontent(blob)),
                                             static_cast<size_t>(git_blob_rawsize(blob))));
      git_blob_free(blob);
    }
  }
  git_tree_free(tree);
  absl::MutexLock lock(&mu_);
  if (trees_.size() >= kMaxTrees) trees_.clear();
  trees_.emplace(key, needs);
  return needs;
}

}  // namespace farm

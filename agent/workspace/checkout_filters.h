// Does a checkout need libgit2's filters? git converts line endings (core.autocrlf, core.eol, the
// text/eol/crlf attributes) and expands $Id$ (ident) as it writes files; libgit2 does the same, but
// to find out it looks up the attributes of every file it writes (a realpath and a stat of each
// directory's .gitattributes per file: a third of a step's time on a 10,000-commit bisect). Most
// repositories, the kernel among them, ask for none of it: their checkouts can skip the lookups
// (git_checkout_options.disable_filters) and write the same files.
#ifndef FARM_AGENT_WORKSPACE_CHECKOUT_FILTERS_H_
#define FARM_AGENT_WORKSPACE_CHECKOUT_FILTERS_H_

#include <git2.h>

#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"

namespace farm {

class CheckoutFilters {
 public:
  // Whether checking out `tree` in `repo` may need filters, answered conservatively: yes when the
  // configuration sets core.autocrlf true, core.eol crlf or core.attributesFile, when
  // info/attributes or the user's git/attributes file exists, when a .gitattributes anywhere in
  // the tree mentions text, eol, crlf, ident or filter, or when anything cannot be read.
  // Subtrees are remembered by id, so a step after the first reads only the trees it changed.
  // Thread-safe.
  bool MayNeed(git_repository* repo, const git_oid& tree);

  // Whether the text of a .gitattributes file may ask for a filter (exposed for tests).
  static bool AttributesMayNeed(std::string_view text);

 private:
  bool TreeMayNeed(git_repository* repo, const git_oid& tree, int depth);

  absl::Mutex mu_;
  // Tree id (raw bytes) -> whether it or a subtree has a .gitattributes asking for a filter.
  absl::flat_hash_map<std::string, bool> trees_ ABSL_GUARDED_BY(mu_);
};

}  // namespace farm

#endif  // FARM_AGENT_WORKSPACE_CHECKOUT_FILTERS_H_

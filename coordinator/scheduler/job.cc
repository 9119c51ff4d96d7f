#include "coordinator/scheduler/job.h"

#include "coordinator/engine/report_text.h"

namespace farm {

git_oid ProbeOid(const Job& job, CommitId id) {
  if (id < job.graph->size()) return job.graph->oid(id);
  return job.engine->ExtraProbes().at(id - job.graph->size());
}

std::string ProbeHex(const Job& job, CommitId id) {
  if (id < job.graph->size()) return job.graph->Hex(id);
  return OidHex(ProbeOid(job, id));
}

std::optional<CommitId> FindProbe(const Job& job, const std::string& hex) {
  if (std::optional<CommitId> id = job.graph->FindHex(hex)) return id;
  git_oid oid;
  if (!job.engine || hex.size() != GIT_OID_HEXSZ || git_oid_fromstr(&oid, hex.c_str()) != 0) {
    return std::nullopt;
  }
  std::vector<git_oid> extra = job.engine->ExtraProbes();
  for (size_t i = 0; i < extra.size(); ++i) {
    if (git_oid_equal(&extra[i], &oid)) return static_cast<CommitId>(job.graph->size() + i);
  }
  return std::nullopt;
}

EngineVerification JobVerification(const Job& job) {
  return job.engine ? job.engine->Verification() : job.final_verification;
}

const std::string& JobSubject(Job& job, CommitId id) {
  auto it = job.subjects.find(id);
  if (it != job.subjects.end()) return it->second;
  std::string subject;
  if (job.repo) {
    absl::StatusOr<CommitInfo> info = GetCommitInfo(job.repo.get(), ProbeOid(job, id));
    if (info.ok()) subject = info->subject;
  }
  return job.subjects[id] = subject;
}

const std::string& JobTree(Job& job, CommitId id) {
  auto it = job.trees.find(id);
  if (it != job.trees.end()) return it->second;
  std::string tree;
  git_commit* commit = nullptr;
  const git_oid oid = job.repo ? ProbeOid(job, id) : git_oid{};
  if (job.repo && git_commit_lookup(&commit, job.repo.get(), &oid) == 0) {
    char hex[GIT_OID_HEXSZ + 1];
    git_oid_tostr(hex, sizeof(hex), git_commit_tree_id(commit));
    tree = hex;
    git_commit_free(commit);
  }
  return job.trees[id] = tree;
}

std::optional<std::string> JobCommitTexts::Show(CommitId id) {
  if (!job_.repo) return std::nullopt;
  absl::StatusOr<std::string> show = ShowCommit(job_.repo.get(), ProbeOid(job_, id));
  if (!show.ok()) return std::nullopt;
  return *show;
}

}  // namespace farm

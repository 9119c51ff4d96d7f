#include "coordinator/scheduler/job.h"

namespace farm {

const std::string& JobSubject(Job& job, CommitId id) {
  auto it = job.subjects.find(id);
  if (it != job.subjects.end()) return it->second;
  std::string subject;
  if (job.repo) {
    absl::StatusOr<CommitInfo> info = GetCommitInfo(job.repo.get(), job.graph->oid(id));
    if (info.ok()) subject = info->subject;
  }
  return job.subjects[id] = subject;
}

const std::string& JobTree(Job& job, CommitId id) {
  auto it = job.trees.find(id);
  if (it != job.trees.end()) return it->second;
  std::string tree;
  git_commit* commit = nullptr;
  if (job.repo && git_commit_lookup(&commit, job.repo.get(), &job.graph->oid(id)) == 0) {
    char hex[GIT_OID_HEXSZ + 1];
    git_oid_tostr(hex, sizeof(hex), git_commit_tree_id(commit));
    tree = hex;
    git_commit_free(commit);
  }
  return job.trees[id] = tree;
}

std::optional<std::string> JobCommitTexts::Show(CommitId id) {
  if (!job_.repo) return std::nullopt;
  absl::StatusOr<std::string> show = ShowCommit(job_.repo.get(), job_.graph->oid(id));
  if (!show.ok()) return std::nullopt;
  return *show;
}

}  // namespace farm

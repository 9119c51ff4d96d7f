#include "common/spec/spec.h"

#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace farm {

namespace spec {

namespace {
constexpr const char* kBisectCommands[] = {"help", "start",  "skip", "next", "reset", "visualize",
                                           "view", "replay", "log",  "run",  "terms"};
}  // namespace

bool IsBisectCommand(const std::string& word) {
  for (const char* c : kBisectCommands) {
    if (word == c) return true;
  }
  return false;
}

absl::Status CheckTerm(const std::string& term, bool is_new) {
  if (IsBisectCommand(term)) {
    return absl::InvalidArgumentError(
        absl::StrCat("can't use the builtin command '", term,
                     "' as a term (as git bisect refuses it): choose another word"));
  }
  bool means_new = term == "bad" || term == "new";
  bool means_old = term == "good" || term == "old";
  if ((means_new && !is_new) || (means_old && is_new)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "can't change the meaning of term '", term, "' (as git bisect refuses it): --term-old ",
        "names the state before the change (e.g. fast), --term-new the state after (e.g. slow)"));
  }
  return absl::OkStatus();
}

bool ValidTerm(const std::string& t) {
  if (t.empty()) return false;
  return std::all_of(t.begin(), t.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
  });
}

bool ValidLabelKey(const std::string& k) {
  return !k.empty() && std::all_of(k.begin(), k.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == '/';
  });
}

absl::Status ParseLabel(const std::string& text, const std::string& what, std::string* key,
                        std::string* value) {
  size_t eq = text.find('=');
  std::string k = text.substr(0, eq);
  if (eq == std::string::npos || !ValidLabelKey(k)) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " '", text,
        "': expected KEY=VALUE with a key of letters, digits, '.', '-', '_' or '/' (e.g. "
        "gpu=a100)"));
  }
  *key = k;
  *value = text.substr(eq + 1);
  return absl::OkStatus();
}

uint32_t Priority(const farm::v1::BisectSpec& spec) {
  return spec.has_priority() ? spec.priority() : kDefaultPriority;
}

}  // namespace spec

namespace {

std::string MiB(size_t bytes) { return absl::StrCat(bytes >> 20, " MiB"); }

absl::Status TooBig(const char* field, size_t size, size_t limit) {
  return absl::InvalidArgumentError(
      absl::StrCat(field, " is ", size, " bytes; at most ", MiB(limit), " is allowed"));
}

// A number that is 0 (the default) or in [lo, hi].
absl::Status InRange(const char* field, uint32_t v, uint32_t lo, uint32_t hi, const char* unit,
                     const char* default_text) {
  if (v == 0 || (v >= lo && v <= hi)) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(field, " is ", v, ": give ", lo, "..", hi, " (",
                                                 unit, "), or 0 for the default", default_text));
}

absl::Status ValidateBoot(const v1::BootSpec& b) {
  if (b.payload().empty() && b.disk_image().empty()) {
    return absl::InvalidArgumentError(
        "spec.recipe.boot.payload is empty: give the test to run in the booted kernel");
  }
  if (b.payload().size() > spec::kMaxPayloadBytes) {
    return TooBig("spec.recipe.boot.payload", b.payload().size(), spec::kMaxPayloadBytes);
  }
  absl::Status st = InRange("spec.recipe.boot.memory_mb", b.memory_mb(), spec::kMinMemoryMb,
                            spec::kMaxMemoryMb, "MiB", " (512)");
  if (st.ok()) {
    st = InRange("spec.recipe.boot.cpus", b.cpus(), spec::kMinCpus, spec::kMaxCpus, "CPUs", " (1)");
  }
  if (st.ok()) {
    st = InRange("spec.recipe.boot.boot_timeout_seconds", b.boot_timeout_seconds(), 1,
                 spec::kMaxBootTimeoutSeconds, "seconds", " (60)");
  }
  if (st.ok()) {
    st = InRange("spec.recipe.boot.test_timeout_seconds", b.test_timeout_seconds(), 1,
                 spec::kMaxTestTimeoutSeconds, "seconds", " (300)");
  }
  if (st.ok() && !b.result_file().empty() && b.shared_dir().empty()) {
    st = absl::InvalidArgumentError(
        "spec.recipe.boot.result_file needs spec.recipe.boot.shared_dir (the directory it is "
        "read from)");
  }
  return st;
}

}  // namespace

namespace {

absl::Status ValidateMatrix(const v1::BisectSpec& spec) {
  const v1::MatrixSpec& m = spec.matrix();
  if (m.hosts().empty()) {
    return absl::InvalidArgumentError(
        "spec.matrix.hosts is empty: give at least one host kernel (--host-kernels)");
  }
  // A two-dimensional bisect's host range built from source may hold many commits (it tests
  // only the corners and a k-section of each line); a matrix tests every cell.
  const int max_hosts = m.bisect() ? spec::kMaxBisectHostCommits : spec::kMaxMatrixKernels;
  if (m.hosts_size() > max_hosts || m.guests_size() > spec::kMaxMatrixKernels) {
    return absl::InvalidArgumentError(absl::StrCat(
        "spec.matrix has ", m.hosts_size(), " host and ", m.guests_size(),
        " guest kernels: give at most ", max_hosts, " host and ", spec::kMaxMatrixKernels,
        " guest kernels", m.bisect() ? " (narrow the host range)" : ""));
  }
  for (int i = 0; i < m.hosts_size(); ++i) {
    const v1::HostKernel& k = m.hosts(i);
    const bool from_source = !k.repo().empty() && !k.commit().empty();
    if ((k.image().empty() && !from_source) || k.key().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("spec.matrix.hosts[", i,
                       "] has no image (nor repo and commit) or no key: give the image's path and "
                       "sha256, or a repository, a commit and the build recipe"));
    }
    if (from_source && !k.image().empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "spec.matrix.hosts[", i, "] has both an image and a commit: give one of them"));
    }
    if (from_source && k.build().config().empty() && k.build().config_target().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("spec.matrix.hosts[", i,
                       "] is built from source without a configuration: give --config"));
    }
  }
  const int cells = m.hosts_size() * std::max(1, m.guests_size());
  if (m.cells_size() != cells) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec.matrix.cells has ", m.cells_size(), " commits for ", m.hosts_size(),
                     " x ", std::max(1, m.guests_size()), " cells: give one commit per cell"));
  }
  if (m.bisect() && (m.hosts_size() < 2 || m.guests_size() < 2)) {
    return absl::InvalidArgumentError(
        "spec.matrix.bisect needs at least two host and two guest kernels (the good one first, "
        "the bad one last); for one dimension use a plain bisect (--kernels)");
  }
  if (!spec.flaky().empty()) {
    return absl::InvalidArgumentError(
        "spec.flaky does not apply to a matrix or a two-dimensional bisect: drop --flaky");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateBisectSpec(const v1::BisectSpec& spec) {
  if (spec.repo().empty()) {
    return absl::InvalidArgumentError("spec.repo is empty: give the repository path or URL");
  }
  if (spec.bad().empty()) {
    return absl::InvalidArgumentError("spec.bad is empty: give the known-bad revision (--bad)");
  }
  if (spec.good().empty()) {
    return absl::InvalidArgumentError(
        "spec.good is empty: give at least one known-good revision (--good)");
  }
  const v1::Recipe& r = spec.recipe();
  if (r.has_boot()) {
    if (absl::Status st = ValidateBoot(r.boot()); !st.ok()) return st;
  } else if (r.test_argv().empty() || r.test_argv(0).empty()) {
    return absl::InvalidArgumentError(
        "spec.recipe.test_argv is empty: give the test command after `--`");
  }
  if (r.test_script().size() > spec::kMaxTestScriptBytes) {
    return TooBig("spec.recipe.test_script", r.test_script().size(), spec::kMaxTestScriptBytes);
  }
  if (r.has_kernel()) {
    if (r.kernel().config().size() > spec::kMaxKernelConfigBytes) {
      return TooBig("spec.recipe.kernel.config", r.kernel().config().size(),
                    spec::kMaxKernelConfigBytes);
    }
    if (r.kernel().jobs() > spec::kMaxMakeJobs) {
      return absl::InvalidArgumentError(absl::StrCat("spec.recipe.kernel.jobs is ",
                                                     r.kernel().jobs(), ": give 0..",
                                                     spec::kMaxMakeJobs, " (0: one per CPU)"));
    }
  }
  if (r.timeout_seconds() > spec::kMaxStepTimeoutSeconds) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec.recipe.timeout_seconds is ", r.timeout_seconds(), ": give 1..",
                     spec::kMaxStepTimeoutSeconds, " (7 days), or 0 for the default"));
  }
  if (spec.max_parallel() > spec::kMaxParallel) {
    return absl::InvalidArgumentError(absl::StrCat("spec.max_parallel is ", spec.max_parallel(),
                                                   ": give 0..", spec::kMaxParallel,
                                                   " (0: no limit)"));
  }
  if (spec.priority() > spec::kMaxPriority) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec.priority is ", spec.priority(), ": give 0..", spec::kMaxPriority,
                     " (higher is served first; default ", spec::kDefaultPriority, ")"));
  }
  if (spec.verify() > spec::kMaxVerifyRuns) {
    return absl::InvalidArgumentError(absl::StrCat("spec.verify is ", spec.verify(), ": give 0..",
                                                   spec::kMaxVerifyRuns,
                                                   " retests per commit (0: no verification)"));
  }
  if (spec.description().size() > spec::kMaxDescriptionBytes) {
    return absl::InvalidArgumentError(absl::StrCat("spec.description is ",
                                                   spec.description().size(), " bytes; at most ",
                                                   spec::kMaxDescriptionBytes, " are allowed"));
  }
  for (const auto& [k, v] : spec.require()) {
    if (!spec::ValidLabelKey(k)) {
      return absl::InvalidArgumentError(
          absl::StrCat("spec.require has the key '", k,
                       "': give keys of letters, digits, '.', '-', '_' or '/' (e.g. gpu=a100)"));
    }
  }
  if (spec.has_matrix()) {
    if (absl::Status st = ValidateMatrix(spec); !st.ok()) return st;
  }
  bool has_terms = !spec.term_old().empty() || !spec.term_new().empty();
  if (has_terms && (!spec::ValidTerm(spec.term_old()) || !spec::ValidTerm(spec.term_new()) ||
                    spec.term_old() == spec.term_new())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "spec.term_old/term_new ('", spec.term_old(), "', '", spec.term_new(),
        "') must be two different words of letters, digits, '-' or '_' (e.g. old/new)"));
  }
  if (has_terms) {
    FARM_RETURN_IF_ERROR(spec::CheckTerm(spec.term_old(), /*is_new=*/false));
    FARM_RETURN_IF_ERROR(spec::CheckTerm(spec.term_new(), /*is_new=*/true));
  }
  return absl::OkStatus();
}

}  // namespace farm

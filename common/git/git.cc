#include "common/git/git.h"

#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "common/git/commit_graph_write.h"
#include "common/log/log.h"
#include "common/status_macros.h"

namespace farm {
namespace {

// Debian's Abseil has its own string_view type, distinct from std::string_view.
absl::string_view AsAbsl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

std::string OidToHex(const git_oid& oid) {
  char hex[GIT_OID_HEXSZ + 1];
  git_oid_tostr(hex, sizeof(hex), &oid);
  return hex;
}

std::string StripTrailingSlash(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return path;
}

// How a repository is named in messages: its work tree, or its git dir if bare.
std::string RepoDisplayPath(git_repository* repo) {
  const char* workdir = git_repository_workdir(repo);
  return StripTrailingSlash(workdir != nullptr ? workdir : git_repository_path(repo));
}

absl::StatusOr<GitCommit> LookupCommit(git_repository* repo, const git_oid& oid) {
  git_commit* commit = nullptr;
  int rc = git_commit_lookup(&commit, repo, &oid);
  if (rc == GIT_ENOTFOUND) {
    return absl::NotFoundError(
        absl::StrCat("commit ", OidToHex(oid), " not found in ", RepoDisplayPath(repo)));
  }
  if (rc < 0) return GitError(rc, absl::StrCat("looking up commit ", OidToHex(oid)));
  return GitCommit(commit);
}

bool IsDirectory(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// Appends `line` with tabs expanded to 8-column stops, as git log does for the medium format.
void AppendTabExpanded(std::string& out, absl::string_view line) {
  size_t column = 0;
  for (char c : line) {
    if (c == '\t') {
      size_t spaces = 8 - column % 8;
      out.append(spaces, ' ');
      column += spaces;
      continue;
    }
    out.push_back(c);
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++column;  // Count UTF-8 characters.
  }
}

// The message as git's medium format prints it: leading blank lines dropped, each line indented
// by 4 with trailing whitespace removed, trailing blank lines dropped.
std::string IndentMessage(absl::string_view message) {
  std::vector<absl::string_view> lines = absl::StrSplit(message, '\n');
  auto blank = [](absl::string_view l) {
    return l.find_first_not_of(" \t\r\f\v") == absl::string_view::npos;
  };
  size_t begin = 0, end = lines.size();
  while (begin < end && blank(lines[begin])) ++begin;
  while (end > begin && blank(lines[end - 1])) --end;
  std::string out;
  for (size_t i = begin; i < end; ++i) {
    absl::string_view line = lines[i];
    while (!line.empty() && strchr(" \t\r\f\v", line.back()) != nullptr) line.remove_suffix(1);
    out.append("    ");
    AppendTabExpanded(out, line);
    out.push_back('\n');
  }
  return out;
}

// git's quote_c_style with core.quotePath=true: names with control characters, '"', '\\' or
// non-ASCII bytes are double-quoted with C escapes (octal for the rest).
std::string QuotePath(absl::string_view name) {
  bool needs = false;
  for (unsigned char c : name) needs |= (c < 0x20 || c == '"' || c == '\\' || c >= 0x7f);
  if (!needs) return std::string(name);
  static constexpr absl::string_view kSpecial = "\a\b\t\n\v\f\r\"\\";
  static constexpr absl::string_view kLetters = "abtnvfr\"\\";
  std::string out = "\"";
  for (unsigned char c : name) {
    size_t k = kSpecial.find(static_cast<char>(c));
    if (k != absl::string_view::npos) {
      out.push_back('\\');
      out.push_back(kLetters[k]);
    } else if (c < 0x20 || c >= 0x7f) {
      out += absl::StrFormat("\\%03o", c);
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  out += "\"";
  return out;
}

// git's pprint_rename: "dir/{old => new}/rest", factoring out a common prefix and suffix that end
// at '/' boundaries.
std::string RenameName(const std::string& a, const std::string& b) {
  if (QuotePath(a) != a || QuotePath(b) != b) return QuotePath(a) + " => " + QuotePath(b);
  const int len_a = static_cast<int>(a.size());
  const int len_b = static_cast<int>(b.size());
  int pfx = 0;
  for (int i = 0; i < len_a && i < len_b && a[i] == b[i]; ++i) {
    if (a[i] == '/') pfx = i + 1;
  }
  int sfx = 0;
  // With a common prefix (ending in '/'), the suffix scan may reach back onto that slash.
  const int adjust = pfx ? 1 : 0;
  for (int ia = len_a, ib = len_b; pfx - adjust <= ia && pfx - adjust <= ib; --ia, --ib) {
    char ca = ia < len_a ? a[ia] : '\0';
    char cb = ib < len_b ? b[ib] : '\0';
    if (ca != cb) break;
    if (ca == '/') sfx = len_a - ia;
  }
  int a_mid = std::max(0, len_a - pfx - sfx);
  int b_mid = std::max(0, len_b - pfx - sfx);
  std::string out;
  if (pfx + sfx) absl::StrAppend(&out, a.substr(0, pfx), "{");
  absl::StrAppend(&out, a.substr(pfx, a_mid), " => ", b.substr(pfx, b_mid));
  if (pfx + sfx) absl::StrAppend(&out, "}", a.substr(len_a - sfx));
  return out;
}

int DecimalWidth(int64_t n) {
  int w = 1;
  for (; n >= 10; n /= 10) ++w;
  return w;
}

// git's scale_linear: at least one column for any change.
int64_t ScaleLinear(int64_t it, int64_t width, int64_t max_change) {
  if (it == 0) return 0;
  return 1 + (it * (width - 1) / max_change);
}

// What `git diff --stat --summary` prints for `diff` in `width` columns (git's show_stats and
// diff_summary in diff.c); empty if nothing changed. libgit2's git_diff_stats_to_buf is not used:
// in 1.5 it does not fit long names into the width, scales the graph differently, and prints no
// "rename" summary lines.
absl::StatusOr<std::string> FormatDiffStat(git_diff* diff, int width) {
  struct FileStat {
    std::string name;
    bool binary = false;
    int64_t added = 0;    // Lines, or for binary files the new size in bytes.
    int64_t deleted = 0;  // Lines, or for binary files the old size in bytes.
  };
  std::vector<FileStat> files;
  std::string summary;
  const size_t n = git_diff_num_deltas(diff);
  for (size_t i = 0; i < n; ++i) {
    git_patch* patch = nullptr;
    int rc = git_patch_from_diff(&patch, diff, i);
    if (rc < 0) return GitError(rc, "cannot compute a diffstat");
    const git_diff_delta* delta = git_patch_get_delta(patch);
    FileStat f;
    const std::string old_path = delta->old_file.path ? delta->old_file.path : "";
    const std::string new_path = delta->new_file.path ? delta->new_file.path : "";
    f.name = delta->status == GIT_DELTA_RENAMED || delta->status == GIT_DELTA_COPIED
                 ? RenameName(old_path, new_path)
                 : QuotePath(new_path.empty() ? old_path : new_path);
    f.binary = (delta->flags & GIT_DIFF_FLAG_BINARY) != 0;
    if (f.binary) {
      f.added = delta->status == GIT_DELTA_DELETED ? 0 : static_cast<int64_t>(delta->new_file.size);
      f.deleted = delta->status == GIT_DELTA_ADDED ? 0 : static_cast<int64_t>(delta->old_file.size);
    } else {
      size_t additions = 0, deletions = 0;
      git_patch_line_stats(nullptr, &additions, &deletions, patch);
      f.added = static_cast<int64_t>(additions);
      f.deleted = static_cast<int64_t>(deletions);
    }
    git_patch_free(patch);
    files.push_back(std::move(f));

    const unsigned old_mode = delta->old_file.mode, new_mode = delta->new_file.mode;
    auto mode_change = [&](bool with_name) {
      if (old_mode && new_mode && old_mode != new_mode) {
        absl::StrAppend(&summary, absl::StrFormat(" mode change %06o => %06o", old_mode, new_mode),
                        with_name ? " " + QuotePath(new_path) : "", "\n");
      }
    };
    switch (delta->status) {
      case GIT_DELTA_ADDED:
        absl::StrAppend(&summary, absl::StrFormat(" create mode %06o ", new_mode),
                        QuotePath(new_path), "\n");
        break;
      case GIT_DELTA_DELETED:
        absl::StrAppend(&summary, absl::StrFormat(" delete mode %06o ", old_mode),
                        QuotePath(old_path), "\n");
        break;
      case GIT_DELTA_RENAMED:
      case GIT_DELTA_COPIED:
        absl::StrAppend(&summary, delta->status == GIT_DELTA_RENAMED ? " rename " : " copy ",
                        RenameName(old_path, new_path),
                        absl::StrFormat(" (%d%%)\n", delta->similarity));
        mode_change(false);
        break;
      default:
        mode_change(true);
    }
  }
  if (files.empty()) return std::string();

  int64_t max_len = 0, max_change = 0;
  int number_width = 0, bin_width = 0;
  for (const FileStat& f : files) {
    max_len = std::max<int64_t>(max_len, static_cast<int64_t>(f.name.size()));
    if (f.binary) {
      bin_width = std::max(bin_width, 14 + DecimalWidth(f.added) + DecimalWidth(f.deleted));
      number_width = 3;  // Counts align with "Bin".
      continue;
    }
    max_change = std::max(max_change, f.added + f.deleted);
  }
  number_width = std::max(number_width, DecimalWidth(max_change));
  int64_t total_width = std::max<int64_t>(width, 16 + 6 + number_width);
  int64_t graph_width = max_change + 4 > bin_width ? max_change : bin_width - 4;
  int64_t name_width = max_len;
  if (name_width + number_width + 6 + graph_width > total_width) {
    if (graph_width > total_width * 3 / 8 - number_width - 6) {
      graph_width = std::max<int64_t>(6, total_width * 3 / 8 - number_width - 6);
    }
    if (name_width > total_width - number_width - 6 - graph_width) {
      name_width = total_width - number_width - 6 - graph_width;
    } else {
      graph_width = total_width - number_width - 6 - name_width;
    }
  }

  std::string out;
  int64_t adds = 0, dels = 0;
  for (const FileStat& f : files) {
    // Long names keep their end, cut at a '/', behind "...".
    absl::string_view name = f.name;
    absl::string_view prefix;
    int64_t len = name_width;
    if (name_width < static_cast<int64_t>(name.size())) {
      prefix = "...";
      len = std::max<int64_t>(0, len - 3);
      name.remove_prefix(name.size() - static_cast<size_t>(len));
      size_t slash = name.find('/');
      if (slash != absl::string_view::npos) name.remove_prefix(slash);
    }
    std::string padding(static_cast<size_t>(std::max<int64_t>(0, len - name.size())), ' ');
    absl::StrAppend(&out, " ", prefix, name, padding, " | ");
    if (f.binary) {
      absl::StrAppend(&out, absl::StrFormat("%*s", number_width, "Bin"));
      if (f.added || f.deleted) {
        absl::StrAppend(&out, " ", f.deleted, " -> ", f.added, " bytes");
      }
      out.append("\n");
      continue;
    }
    adds += f.added;
    dels += f.deleted;
    int64_t add = f.added, del = f.deleted;
    if (graph_width <= max_change) {
      int64_t total = ScaleLinear(add + del, graph_width, max_change);
      if (total < 2 && add && del) total = 2;
      if (add < del) {
        add = ScaleLinear(add, graph_width, max_change);
        del = total - add;
      } else {
        del = ScaleLinear(del, graph_width, max_change);
        add = total - del;
      }
    }
    absl::StrAppend(&out, absl::StrFormat("%*d", number_width, f.added + f.deleted),
                    f.added + f.deleted ? " " : "", std::string(static_cast<size_t>(add), '+'),
                    std::string(static_cast<size_t>(del), '-'), "\n");
  }
  absl::StrAppend(&out, " ", files.size(), files.size() == 1 ? " file changed" : " files changed");
  if (adds || !dels)
    absl::StrAppend(&out, ", ", adds, adds == 1 ? " insertion(+)" : " insertions(+)");
  if (dels || !adds)
    absl::StrAppend(&out, ", ", dels, dels == 1 ? " deletion(-)" : " deletions(-)");
  absl::StrAppend(&out, "\n", summary);
  return out;
}

absl::Status MkdirAll(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return absl::InternalError(absl::StrCat("cannot create directory '", dir, "': ", ec.message()));
  }
  return absl::OkStatus();
}

// Fetches all branches and tags of `url` into the bare mirror `repo`.
//
// Through an anonymous remote that skips url.<base>.insteadOf: on Debian 12, libgit2 1.5.1 leaks
// the pcre2 match data (~20 KB with pcre2 10.42) of every regex match that fails, and resolving
// insteadOf matches a regex against every config entry, tens of leaks per fetch (fixed upstream
// by libgit2 PR #6382, after 1.5). Named remotes (git_remote_lookup) always resolve it.
absl::Status FetchMirror(git_repository* repo, const std::string& url) {
  git_remote_create_options create;
  git_remote_create_options_init(&create, GIT_REMOTE_CREATE_OPTIONS_VERSION);
  create.repository = repo;
  create.flags = GIT_REMOTE_CREATE_SKIP_INSTEADOF | GIT_REMOTE_CREATE_SKIP_DEFAULT_FETCHSPEC;
  git_remote* raw = nullptr;
  int rc = git_remote_create_with_opts(&raw, url.c_str(), &create);
  if (rc < 0) return GitError(rc, absl::StrCat("bad repository url '", url, "'"));
  GitRemote remote(raw);
  char heads[] = "+refs/heads/*:refs/heads/*";
  char tags[] = "+refs/tags/*:refs/tags/*";
  char* specs[] = {heads, tags};
  git_strarray refspecs = {specs, 2};
  git_fetch_options opts;
  git_fetch_options_init(&opts, GIT_FETCH_OPTIONS_VERSION);
  opts.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_ALL;
  opts.update_fetchhead = 0;
  rc = git_remote_fetch(remote.get(), &refspecs, &opts, "farm: fetch");
  if (rc < 0) return GitError(rc, "git fetch");
  // So that `git log` etc. in the mirror show the default branch; not needed by us.
  git_buf head = GIT_BUF_INIT;
  if (git_remote_default_branch(&head, remote.get()) == 0) {
    git_repository_set_head(repo, head.ptr);
  }
  git_buf_dispose(&head);
  git_error_clear();
  // So that loading a range of a big history reads no commit object (CommitGraph::Load).
  if (absl::Status graph = WriteCommitGraph(git_repository_path(repo)); !graph.ok()) {
    FARM_LOG(Warning) << "mirror of " << url << ": " << graph.message();
  }
  return absl::OkStatus();
}

// A failed clone or fetch of `url`, as the user who gave the URL must see it: the repository is
// what failed, not the farm. UNAVAILABLE (libgit2's network, TLS and HTTP errors: an unknown host,
// a refused connection) would read as "the coordinator is unreachable" to a client, so it becomes
// FAILED_PRECONDITION; a refused login stays PERMISSION_DENIED.
absl::Status RemoteError(const absl::Status& failed, const char* verb, const std::string& url) {
  absl::StatusCode code = failed.code();
  if (code != absl::StatusCode::kPermissionDenied && code != absl::StatusCode::kCancelled) {
    code = absl::StatusCode::kFailedPrecondition;
  }
  return absl::Status(code, absl::StrCat("cannot ", verb, " '", url, "': ", failed.message(),
                                         " (check the URL, and that this host can reach it)"));
}

// Creates a bare mirror of `url` (branches and tags) at `path`: built in a temporary directory
// and renamed into place, so `path` only ever holds a complete mirror.
absl::Status CreateMirror(const std::string& url, const std::string& path) {
  static std::atomic<int> counter{0};
  const std::string tmp = absl::StrCat(path, ".tmp-", getpid(), "-", counter++);
  std::error_code ec;
  std::filesystem::remove_all(tmp, ec);
  auto cleanup_and = [&tmp](absl::Status status) {
    std::error_code ignored;
    std::filesystem::remove_all(tmp, ignored);
    return status;
  };
  git_repository* raw = nullptr;
  int rc = git_repository_init(&raw, tmp.c_str(), /*is_bare=*/1);
  if (rc < 0) {
    return cleanup_and(GitError(rc, absl::StrCat("cannot create mirror of '", url, "' in ", tmp)));
  }
  GitRepository repo(raw);
  // An "origin" for people looking at the mirror with git; FetchMirror does not use it.
  git_config* config = nullptr;
  rc = git_repository_config(&config, repo.get());
  if (rc == 0) rc = git_config_set_string(config, "remote.origin.url", url.c_str());
  if (rc == 0)
    rc = git_config_set_string(config, "remote.origin.fetch", "+refs/heads/*:refs/heads/*");
  if (rc == 0) rc = git_config_set_string(config, "remote.origin.tagOpt", "--tags");
  git_config_free(config);
  if (rc < 0) {
    return cleanup_and(GitError(rc, absl::StrCat("cannot set up mirror of '", url, "'")));
  }
  absl::Status fetched = FetchMirror(repo.get(), url);
  if (!fetched.ok()) return cleanup_and(RemoteError(fetched, "clone", url));
  repo.reset();
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    return cleanup_and(absl::InternalError(
        absl::StrCat("cannot move mirror of '", url, "' to ", path, ": ", strerror(err))));
  }
  return absl::OkStatus();
}

}  // namespace

void GitLibrary::Ensure() {
  static const int initialized = git_libgit2_init();
  (void)initialized;
}

absl::Status GitError(int rc, std::string_view what) {
  if (rc >= 0) return absl::OkStatus();
  const git_error* err = git_error_last();
  std::string message = (err != nullptr && err->message != nullptr)
                            ? std::string(err->message)
                            : absl::StrCat("libgit2 error ", rc);
  while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
  const int klass = err != nullptr ? err->klass : GIT_ERROR_NONE;
  absl::StatusCode code;
  switch (rc) {
    case GIT_ENOTFOUND:
      code = absl::StatusCode::kNotFound;
      break;
    case GIT_EEXISTS:
      code = absl::StatusCode::kAlreadyExists;
      break;
    case GIT_EINVALIDSPEC:
    case GIT_EAMBIGUOUS:
    case GIT_EINVALID:
      code = absl::StatusCode::kInvalidArgument;
      break;
    case GIT_EAUTH:
    case GIT_ECERTIFICATE:
      code = absl::StatusCode::kPermissionDenied;
      break;
    case GIT_ELOCKED:
      code = absl::StatusCode::kUnavailable;
      break;
    case GIT_EUSER:
      code = absl::StatusCode::kCancelled;
      break;
    case GIT_ECONFLICT:
    case GIT_EBAREREPO:
    case GIT_EUNBORNBRANCH:
    case GIT_EOWNER:
      code = absl::StatusCode::kFailedPrecondition;
      break;
    default:
      code = (klass == GIT_ERROR_NET || klass == GIT_ERROR_SSL || klass == GIT_ERROR_HTTP ||
              klass == GIT_ERROR_SSH)
                 ? absl::StatusCode::kUnavailable
                 : absl::StatusCode::kInternal;
  }
  return absl::Status(code, absl::StrCat(AsAbsl(what), ": ", message));
}

absl::StatusOr<GitRepository> OpenRepository(const std::string& path) {
  GitLibrary::Ensure();
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    return absl::NotFoundError(absl::StrCat("repository path '", path, "' does not exist"));
  }
  git_repository* repo = nullptr;
  int rc = git_repository_open_ext(&repo, path.c_str(), GIT_REPOSITORY_OPEN_NO_SEARCH, nullptr);
  if (rc == GIT_ENOTFOUND) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", path, "' is not a git repository (no .git directory, not bare)"));
  }
  if (rc < 0) return GitError(rc, absl::StrCat("cannot open repository '", path, "'"));
  return GitRepository(repo);
}

absl::StatusOr<git_oid> ResolveCommit(git_repository* repo, const std::string& rev) {
  GitLibrary::Ensure();
  git_object* raw = nullptr;
  int rc = git_revparse_single(&raw, repo, rev.c_str());
  if (rc == GIT_ENOTFOUND || rc == GIT_EINVALIDSPEC) {
    return absl::NotFoundError(
        absl::StrCat("unknown revision '", rev, "': not a commit in ", RepoDisplayPath(repo)));
  }
  if (rc == GIT_EAMBIGUOUS) {
    return absl::InvalidArgumentError(absl::StrCat(
        "revision '", rev, "' is ambiguous in ", RepoDisplayPath(repo), ": give more hex digits"));
  }
  const git_error* err = git_error_last();
  if (rc == GIT_ERROR && err != nullptr && err->klass == GIT_ERROR_INVALID) {
    // Syntax git has and libgit2 1.5 lacks (":<path>" lookups answer "unimplemented"): the user's
    // input, not a failure of the repository.
    std::string why = err->message != nullptr ? err->message : "not supported";
    git_error_clear();
    return absl::InvalidArgumentError(
        absl::StrCat("revision '", rev, "' uses syntax the farm cannot resolve (", why,
                     "): give a commit id, a branch or a tag, or resolve it first with "
                     "`git rev-parse`"));
  }
  if (rc < 0) return GitError(rc, absl::StrCat("cannot resolve revision '", rev, "'"));
  GitObject object(raw);
  git_object* peeled = nullptr;
  rc = git_object_peel(&peeled, object.get(), GIT_OBJECT_COMMIT);
  if (rc < 0) {
    git_error_clear();
    return absl::InvalidArgumentError(absl::StrCat("revision '", rev, "' names a ",
                                                   git_object_type2string(git_object_type(raw)),
                                                   ", not a commit, in ", RepoDisplayPath(repo)));
  }
  git_oid oid = *git_object_id(peeled);
  git_object_free(peeled);
  return oid;
}

absl::StatusOr<bool> IsAncestor(git_repository* repo, const git_oid& ancestor,
                                const git_oid& descendant) {
  GitLibrary::Ensure();
  FARM_ASSIGN_OR_RETURN(GitCommit a, LookupCommit(repo, ancestor));
  FARM_ASSIGN_OR_RETURN(GitCommit d, LookupCommit(repo, descendant));
  if (git_oid_equal(&ancestor, &descendant)) return true;
  int rc = git_graph_descendant_of(repo, &descendant, &ancestor);
  if (rc < 0) {
    return GitError(rc, absl::StrCat("cannot tell whether ", OidToHex(ancestor),
                                     " is an ancestor of ", OidToHex(descendant)));
  }
  return rc == 1;
}

absl::StatusOr<CommitInfo> GetCommitInfo(git_repository* repo, const git_oid& oid) {
  GitLibrary::Ensure();
  FARM_ASSIGN_OR_RETURN(GitCommit commit, LookupCommit(repo, oid));
  CommitInfo info;
  info.sha = OidToHex(oid);
  const char* summary = git_commit_summary(commit.get());
  info.subject = summary != nullptr ? summary : "";
  const char* message = git_commit_message(commit.get());
  info.message = message != nullptr ? message : "";
  const git_signature* author = git_commit_author(commit.get());
  info.author_name = author->name != nullptr ? author->name : "";
  info.author_email = author->email != nullptr ? author->email : "";
  info.time = author->when.time;
  info.offset_minutes = author->when.offset;
  return info;
}

std::string FormatGitDate(int64_t time, int offset_minutes) {
  static constexpr const char* kDays[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  absl::CivilSecond cs =
      absl::ToCivilSecond(absl::FromUnixSeconds(time), absl::FixedTimeZone(offset_minutes * 60));
  int weekday = static_cast<int>(absl::GetWeekday(cs));  // absl: Monday == 0.
  int magnitude = offset_minutes < 0 ? -offset_minutes : offset_minutes;
  return absl::StrFormat("%s %s %d %02d:%02d:%02d %d %c%02d%02d", kDays[weekday],
                         kMonths[cs.month() - 1], cs.day(), cs.hour(), cs.minute(), cs.second(),
                         cs.year(), offset_minutes < 0 ? '-' : '+', magnitude / 60, magnitude % 60);
}

absl::StatusOr<std::string> ShowCommit(git_repository* repo, const git_oid& oid) {
  GitLibrary::Ensure();
  FARM_ASSIGN_OR_RETURN(GitCommit commit, LookupCommit(repo, oid));
  FARM_ASSIGN_OR_RETURN(CommitInfo info, GetCommitInfo(repo, oid));
  std::string out = absl::StrCat("commit ", info.sha, "\n");
  const unsigned parents = git_commit_parentcount(commit.get());
  if (parents > 1) {
    out.append("Merge:");
    for (unsigned i = 0; i < parents; ++i) {
      git_buf abbrev = GIT_BUF_INIT;
      git_commit* parent = nullptr;
      if (git_commit_parent(&parent, commit.get(), i) == 0 &&
          git_object_short_id(&abbrev, reinterpret_cast<git_object*>(parent)) == 0) {
        absl::StrAppend(&out, " ", abbrev.ptr);
      } else {
        absl::StrAppend(&out, " ", OidToHex(*git_commit_parent_id(commit.get(), i)).substr(0, 7));
      }
      git_commit_free(parent);
      git_buf_dispose(&abbrev);
    }
    out.append("\n");
  }
  absl::StrAppend(&out, "Author: ", info.author_name, " <", info.author_email, ">\n");
  absl::StrAppend(&out, "Date:   ", FormatGitDate(info.time, info.offset_minutes), "\n\n");
  out.append(IndentMessage(info.message));

  git_tree* raw_tree = nullptr;
  int rc = git_commit_tree(&raw_tree, commit.get());
  if (rc < 0) return GitError(rc, absl::StrCat("cannot read the tree of ", info.sha));
  GitTree tree(raw_tree);
  GitTree parent_tree;
  if (parents > 0) {
    git_commit* raw_parent = nullptr;
    rc = git_commit_parent(&raw_parent, commit.get(), 0);
    if (rc < 0) return GitError(rc, absl::StrCat("cannot read the parent of ", info.sha));
    GitCommit parent(raw_parent);
    rc = git_commit_tree(&raw_tree, parent.get());
    if (rc < 0) return GitError(rc, absl::StrCat("cannot read the parent tree of ", info.sha));
    parent_tree.reset(raw_tree);
  }
  git_diff* raw_diff = nullptr;
  rc = git_diff_tree_to_tree(&raw_diff, repo, parent_tree.get(), tree.get(), nullptr);
  if (rc < 0) return GitError(rc, absl::StrCat("cannot diff ", info.sha, " against its parent"));
  GitDiff diff(raw_diff);
  git_diff_find_options find;
  git_diff_find_options_init(&find, GIT_DIFF_FIND_OPTIONS_VERSION);
  find.flags = GIT_DIFF_FIND_RENAMES;
  rc = git_diff_find_similar(diff.get(), &find);
  if (rc < 0) return GitError(rc, absl::StrCat("cannot detect renames in ", info.sha));
  FARM_ASSIGN_OR_RETURN(std::string stat, FormatDiffStat(diff.get(), 80));
  if (!stat.empty()) absl::StrAppend(&out, "\n", stat);
  return out;
}

RepoCache::RepoCache(std::string cache_dir)
    : cache_dir_(StripTrailingSlash(std::move(cache_dir))) {}

std::string RepoCache::MirrorPath(const std::string& url) const {
  GitLibrary::Ensure();
  git_oid digest;
  git_odb_hash(&digest, url.data(), url.size(), GIT_OBJECT_BLOB);
  return absl::StrCat(cache_dir_, "/", OidToHex(digest), ".git");
}

absl::Mutex* RepoCache::UrlMutex(const std::string& url) {
  absl::MutexLock lock(&mu_);
  std::unique_ptr<absl::Mutex>& m = url_mutexes_[url];
  if (m == nullptr) m = std::make_unique<absl::Mutex>();
  return m.get();
}

absl::Status RepoCache::Reclone(const std::string& url, ino_t damaged_inode) {
  GitLibrary::Ensure();
  if (IsDirectory(url)) {
    return absl::InvalidArgumentError(
        absl::StrCat("repository '", url, "' is a local directory, not a mirror: repair it there"));
  }
  static std::atomic<int> counter{0};
  absl::MutexLock lock(UrlMutex(url));
  const std::string mirror = MirrorPath(url);
  struct stat st;
  if (stat(mirror.c_str(), &st) == 0 && st.st_ino != damaged_inode) return absl::OkStatus();
  const std::string aside = absl::StrCat(mirror, ".damaged-", getpid(), "-", counter++);
  if (IsDirectory(mirror) && rename(mirror.c_str(), aside.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("cannot move the damaged mirror '", mirror,
                                            "' aside: ", std::strerror(errno)));
  }
  absl::Status cloned = MkdirAll(cache_dir_);
  if (cloned.ok()) cloned = CreateMirror(url, mirror);
  std::error_code ec;
  std::filesystem::remove_all(aside, ec);
  return cloned;
}

absl::StatusOr<std::string> RepoCache::Prepare(const std::string& url,
                                               const std::string& want_sha) {
  GitLibrary::Ensure();
  if (IsDirectory(url)) {
    git_repository* raw = nullptr;
    int rc = git_repository_open_ext(&raw, url.c_str(), GIT_REPOSITORY_OPEN_NO_SEARCH, nullptr);
    if (rc == GIT_ENOTFOUND) {
      git_error_clear();
      return absl::InvalidArgumentError(
          absl::StrCat("repository '", url, "' is a local directory but not a git repository"));
    }
    if (rc < 0) return GitError(rc, absl::StrCat("cannot open repository '", url, "'"));
    GitRepository repo(raw);
    return StripTrailingSlash(git_repository_commondir(repo.get()));
  }
  // An absolute path (or file:// URL) with no directory there is a missing local repository, not
  // a URL to clone: say so (NOT_FOUND, as farm.proto lists) instead of libgit2's "unsupported URL
  // protocol".
  if (!url.empty() && url[0] == '/') {
    return absl::NotFoundError(absl::StrCat("repository '", url,
                                            "' does not exist: no directory at that path (give "
                                            "the path of a git repository on the coordinator's "
                                            "host, or a URL)"));
  }

  absl::MutexLock lock(UrlMutex(url));
  const std::string mirror = MirrorPath(url);
  bool fresh = false;
  if (!IsDirectory(mirror)) {
    FARM_RETURN_IF_ERROR(MkdirAll(cache_dir_));
    FARM_RETURN_IF_ERROR(CreateMirror(url, mirror));
    fresh = true;
  }
  if (want_sha.empty()) return mirror;

  // Returns OK if want_sha is there, NOT_FOUND if not, other errors as they are.
  auto check = [&]() -> absl::Status {
    git_repository* raw = nullptr;
    int rc = git_repository_open_ext(&raw, mirror.c_str(), GIT_REPOSITORY_OPEN_NO_SEARCH, nullptr);
    if (rc < 0) return GitError(rc, absl::StrCat("cannot open the mirror of '", url, "'"));
    GitRepository repo(raw);
    return ResolveCommit(repo.get(), want_sha).status();
  };
  absl::Status found = check();
  if (found.ok()) return mirror;
  if (!absl::IsNotFound(found)) return found;
  if (!fresh) {
    git_repository* raw = nullptr;
    int rc = git_repository_open_ext(&raw, mirror.c_str(), GIT_REPOSITORY_OPEN_NO_SEARCH, nullptr);
    if (rc < 0) return GitError(rc, absl::StrCat("cannot open the mirror of '", url, "'"));
    GitRepository repo(raw);
    if (absl::Status fetched = FetchMirror(repo.get(), url); !fetched.ok()) {
      return RemoteError(fetched, "fetch", url);
    }
    found = check();
    if (found.ok()) return mirror;
    if (!absl::IsNotFound(found)) return found;
  }
  return absl::NotFoundError(absl::StrCat("commit '", want_sha, "' is not in repository '", url,
                                          "' (fetched all its branches and tags)"));
}

absl::StatusOr<git_oid> MakeRevertCommit(git_repository* repo, const git_oid& culprit,
                                         const git_oid& head) {
  GitLibrary::Ensure();
  FARM_ASSIGN_OR_RETURN(GitCommit commit, LookupCommit(repo, culprit));
  FARM_ASSIGN_OR_RETURN(GitCommit top, LookupCommit(repo, head));
  const unsigned parents = git_commit_parentcount(commit.get());
  if (parents != 1) {
    return absl::FailedPreconditionError(parents == 0 ? "the culprit is a root commit"
                                                      : "the culprit is a merge");
  }
  git_index* raw_index = nullptr;
  int rc = git_revert_commit(&raw_index, repo, commit.get(), top.get(), 0, nullptr);
  if (rc != 0) return GitError(rc, "reverting the culprit");
  GitIndex index(raw_index);
  if (git_index_has_conflicts(index.get())) {
    return absl::FailedPreconditionError("the revert does not apply cleanly (it conflicts)");
  }
  git_oid tree_oid;
  rc = git_index_write_tree_to(&tree_oid, index.get(), repo);
  if (rc != 0) return GitError(rc, "writing the reverted tree");
  git_tree* raw_tree = nullptr;
  rc = git_tree_lookup(&raw_tree, repo, &tree_oid);
  if (rc != 0) return GitError(rc, "reading the reverted tree");
  GitTree tree(raw_tree);
  // The head's time and a fixed name: the same revert is the same commit after a restart.
  git_signature* raw_sig = nullptr;
  rc = git_signature_new(&raw_sig, "farm", "farm@localhost", git_commit_time(top.get()),
                         git_commit_time_offset(top.get()));
  if (rc != 0) return GitError(rc, "making the revert's signature");
  std::unique_ptr<git_signature, git_internal::Deleter<git_signature, git_signature_free>> sig(
      raw_sig);
  const char* summary = git_commit_summary(commit.get());
  const std::string message = absl::StrCat("Revert \"", summary ? summary : "", "\"\n\n",
                                           "This reverts commit ", OidToHex(culprit), ".\n");
  const git_commit* parent = top.get();
  git_oid out;
  rc = git_commit_create(&out, repo, nullptr, sig.get(), sig.get(), nullptr, message.c_str(),
                         tree.get(), 1, &parent);
  if (rc != 0) return GitError(rc, "writing the revert commit");
  return out;
}

}  // namespace farm

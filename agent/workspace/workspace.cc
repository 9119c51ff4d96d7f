#include "agent/workspace/workspace.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"

namespace farm {
namespace {

namespace fs = std::filesystem;

// Records which url a slot's worktree holds, in the worktree's own .git/config.
constexpr char kUrlConfigKey[] = "farm.url";

absl::Status DiskError(const std::string& what, const std::error_code& ec) {
  if (ec == std::errc::permission_denied) {
    return absl::PermissionDeniedError(absl::StrCat(what, ": ", ec.message()));
  }
  return absl::InternalError(absl::StrCat(what, ": ", ec.message()));
}

absl::Status MakeDirs(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return DiskError(absl::StrCat("cannot create directory '", dir, "'"), ec);
  return absl::OkStatus();
}

// Removes everything inside `dir`, keeping `dir` itself (a shell may sit in it).
absl::Status EmptyDirectory(const std::string& dir) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) return MakeDirs(dir);
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code rm;
    fs::remove_all(it->path(), rm);
    if (rm) return DiskError(absl::StrCat("cannot remove '", it->path().string(), "'"), rm);
  }
  if (ec) return DiskError(absl::StrCat("cannot list '", dir, "'"), ec);
  return absl::OkStatus();
}

// Number of files (non-directories) under `path`, or 1 if it is not a directory.
size_t CountFiles(const fs::path& path) {
  std::error_code ec;
  if (!fs::is_directory(fs::symlink_status(path, ec))) return 1;
  size_t n = 0;
  for (fs::recursive_directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec)) {
    if (!it->is_directory(ec)) ++n;
  }
  return n;
}

std::string ReadSmallFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

absl::StatusOr<GitRepository> OpenWorktree(const std::string& path) {
  git_repository* raw = nullptr;
  int rc = git_repository_open_ext(&raw, path.c_str(), GIT_REPOSITORY_OPEN_NO_SEARCH, nullptr);
  if (rc < 0) return GitError(rc, absl::StrCat("cannot open worktree '", path, "'"));
  GitRepository repo(raw);
  if (git_repository_is_bare(repo.get())) {
    return absl::InternalError(absl::StrCat("worktree '", path, "' is a bare repository"));
  }
  return repo;
}

std::string ConfiguredUrl(git_repository* repo) {
  git_config* config = nullptr;
  if (git_repository_config(&config, repo) < 0) {
    git_error_clear();
    return "";
  }
  git_buf buf = GIT_BUF_INIT;
  std::string url;
  if (git_config_get_string_buf(&buf, config, kUrlConfigKey) == 0) url.assign(buf.ptr, buf.size);
  git_error_clear();
  git_buf_dispose(&buf);
  git_config_free(config);
  return url;
}

// Deletes `src` and creates an empty non-bare repository there that borrows objects from
// `objects_dir` and remembers `url`.
absl::Status CreateWorktree(const std::string& src, const std::string& url) {
  std::error_code ec;
  fs::remove_all(src, ec);
  if (ec) return DiskError(absl::StrCat("cannot remove old worktree '", src, "'"), ec);
  git_repository_init_options opts;
  git_repository_init_options_init(&opts, GIT_REPOSITORY_INIT_OPTIONS_VERSION);
  opts.flags = GIT_REPOSITORY_INIT_MKPATH | GIT_REPOSITORY_INIT_NO_REINIT;
  git_repository* raw = nullptr;
  int rc = git_repository_init_ext(&raw, src.c_str(), &opts);
  if (rc < 0) return GitError(rc, absl::StrCat("cannot create worktree '", src, "'"));
  GitRepository repo(raw);
  git_config* config = nullptr;
  rc = git_repository_config(&config, repo.get());
  if (rc == 0) {
    rc = git_config_set_string(config, kUrlConfigKey, url.c_str());
    git_config_free(config);
  }
  if (rc < 0) return GitError(rc, absl::StrCat("cannot configure worktree '", src, "'"));
  return absl::OkStatus();
}

// Points the worktree's object database at `objects_dir` (rewriting it only if it differs).
absl::Status SetAlternates(const std::string& src, const std::string& objects_dir) {
  const std::string info = src + "/.git/objects/info";
  FARM_RETURN_IF_ERROR(MakeDirs(info));
  const std::string file = info + "/alternates";
  const std::string want = objects_dir + "\n";
  if (ReadSmallFile(file) == want) return absl::OkStatus();
  const std::string tmp = file + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << want;
    out.close();
    if (!out) return absl::InternalError(absl::StrCat("cannot write '", tmp, "'"));
  }
  std::error_code ec;
  fs::rename(tmp, file, ec);
  if (ec) return DiskError(absl::StrCat("cannot write '", file, "'"), ec);
  return absl::OkStatus();
}

// An index entry's stat data, as git records it.
void FillStat(git_index_entry& entry, const struct stat& st) {
  entry.ctime.seconds = static_cast<int32_t>(st.st_ctim.tv_sec);
  entry.ctime.nanoseconds = static_cast<uint32_t>(st.st_ctim.tv_nsec);
  entry.mtime.seconds = static_cast<int32_t>(st.st_mtim.tv_sec);
  entry.mtime.nanoseconds = static_cast<uint32_t>(st.st_mtim.tv_nsec);
  entry.dev = static_cast<uint32_t>(st.st_dev);
  entry.ino = static_cast<uint32_t>(st.st_ino);
  entry.uid = st.st_uid;
  entry.gid = st.st_gid;
  entry.file_size = static_cast<uint32_t>(st.st_size);
}

struct CheckoutCounts {
  std::string src;
  size_t written = 0;
  size_t removed = 0;
  // Untracked/ignored paths (directories without the trailing '/') already counted as removed.
  absl::flat_hash_set<std::string> counted;
  // Paths libgit2 writes.
  absl::flat_hash_set<std::string> updated;
};

std::string WithoutTrailingSlash(const char* path) {
  std::string rel = path;
  while (!rel.empty() && rel.back() == '/') rel.pop_back();
  return rel;
}

// libgit2 1.5 notifies files it writes (UPDATED; a file modified in the worktree also gets DIRTY
// first), but not tracked files it deletes; those only show up in the progress callback, which
// reports every path it removes and then every path it writes.

int CountingNotify(git_checkout_notify_t why, const char* path, const git_diff_file* baseline,
                   const git_diff_file* target, const git_diff_file* workdir, void* payload) {
  auto* counts = static_cast<CheckoutCounts*>(payload);
  switch (why) {
    case GIT_CHECKOUT_NOTIFY_UPDATED:
      if (counts->updated.insert(path).second) ++counts->written;
      break;
    case GIT_CHECKOUT_NOTIFY_UNTRACKED:
    case GIT_CHECKOUT_NOTIFY_IGNORED: {
      // Only asked for when removing them (pristine). libgit2 names whole directories ("out/");
      // count their files now, before they go.
      std::string rel = WithoutTrailingSlash(path);
      counts->removed += CountFiles(counts->src + "/" + rel);
      counts->counted.insert(std::move(rel));
      break;
    }
    default:
      break;
  }
  return 0;
}

void CountingProgress(const char* path, size_t completed, size_t total, void* payload) {
  if (path == nullptr) return;
  auto* counts = static_cast<CheckoutCounts*>(payload);
  std::string rel = WithoutTrailingSlash(path);
  if (counts->updated.contains(rel) || counts->counted.contains(rel)) return;
  // Removed; remember it so that a path reported twice is counted once.
  counts->counted.insert(std::move(rel));
  ++counts->removed;
}

// Removes from `src` whatever the index does not track (like `git clean -ffdx`), including ignored
// directories and nested repositories. Returns the number of files removed, not counting those
// under paths in `counted`.
absl::StatusOr<size_t> RemoveUntracked(git_repository* repo, const std::string& src,
                                       const absl::flat_hash_set<std::string>& counted) {
  git_index* raw = nullptr;
  int rc = git_repository_index(&raw, repo);
  if (rc < 0) return GitError(rc, absl::StrCat("cannot read the index of '", src, "'"));
  GitIndex index(raw);
  absl::flat_hash_set<std::string> tracked;  // Files, symlinks and submodules.
  absl::flat_hash_set<std::string> dirs;     // Directories containing tracked paths.
  const size_t n = git_index_entrycount(index.get());
  for (size_t i = 0; i < n; ++i) {
    std::string path = git_index_get_byindex(index.get(), i)->path;
    for (size_t slash = path.find('/'); slash != std::string::npos;
         slash = path.find('/', slash + 1)) {
      dirs.insert(path.substr(0, slash));
    }
    tracked.insert(std::move(path));
  }
  size_t removed = 0;
  std::vector<std::string> pending = {""};  // Directories to scan, relative to src.
  while (!pending.empty()) {
    const std::string rel_dir = std::move(pending.back());
    pending.pop_back();
    const std::string abs_dir = rel_dir.empty() ? src : src + "/" + rel_dir;
    std::error_code ec;
    std::vector<fs::path> entries;
    for (fs::directory_iterator it(abs_dir, ec), end; !ec && it != end; it.increment(ec)) {
      entries.push_back(it->path());
    }
    if (ec) return DiskError(absl::StrCat("cannot list '", abs_dir, "'"), ec);
    for (const fs::path& entry : entries) {
      const std::string name = entry.filename().string();
      if (rel_dir.empty() && name == ".git") continue;
      const std::string rel = rel_dir.empty() ? name : rel_dir + "/" + name;
      if (tracked.contains(rel)) continue;
      std::error_code type_ec;
      if (dirs.contains(rel) && fs::is_directory(fs::symlink_status(entry, type_ec))) {
        pending.push_back(rel);
        continue;
      }
      if (!counted.contains(rel)) removed += CountFiles(entry);
      fs::remove_all(entry, ec);
      if (ec) return DiskError(absl::StrCat("cannot remove '", entry.string(), "'"), ec);
    }
  }
  return removed;
}

// Replaces an unreadable index with one listing HEAD's tree (`git read-tree HEAD`). Without stat
// data libgit2 compares contents, so unchanged files still keep their mtimes; without any index it
// would take HEAD's files for untracked ones and leave those the next commit deletes.
absl::Status RebuildIndex(const std::string& src) {
  std::error_code ec;
  fs::remove(src + "/.git/index", ec);
  if (ec) return DiskError(absl::StrCat("cannot remove the index of '", src, "'"), ec);
  FARM_ASSIGN_OR_RETURN(GitRepository repo, OpenWorktree(src));
  git_object* head_tree = nullptr;
  if (git_revparse_single(&head_tree, repo.get(), "HEAD^{tree}") < 0) {
    git_error_clear();  // Unborn HEAD: an empty index is right.
    return absl::OkStatus();
  }
  GitObject tree(head_tree);
  git_index* raw = nullptr;
  int rc = git_repository_index(&raw, repo.get());
  if (rc < 0) return GitError(rc, absl::StrCat("cannot create an index in '", src, "'"));
  GitIndex index(raw);
  rc = git_index_read_tree(index.get(), reinterpret_cast<git_tree*>(tree.get()));
  if (rc == 0) rc = git_index_write(index.get());
  if (rc < 0) return GitError(rc, absl::StrCat("cannot rebuild the index of '", src, "'"));
  return absl::OkStatus();
}

// Where a worktree keeps the files its checkouts deleted, for later ones to reuse (see
// MoveToTree), and how many it keeps at most.
constexpr char kSpareDir[] = "/.git/farm-spare";
constexpr size_t kMaxSpareFiles = 50000;

bool IsPlainFile(uint32_t mode) {
  return mode == GIT_FILEMODE_BLOB || mode == GIT_FILEMODE_BLOB_EXECUTABLE;
}

// Writes blob `id` into `path` (0666 or 0777 before the umask), over `fd` if it is open (a spare
// file renamed there: its inode is reused), else into a new file.
absl::Status WriteBlobInto(git_repository* repo, const git_oid& id, uint32_t mode,
                           const std::string& path, int fd) {
  git_blob* raw = nullptr;
  int rc = git_blob_lookup(&raw, repo, &id);
  if (rc < 0) return GitError(rc, absl::StrCat("cannot read the blob of '", path, "'"));
  std::unique_ptr<git_blob, decltype(&git_blob_free)> blob(raw, git_blob_free);
  const mode_t perm = mode == GIT_FILEMODE_BLOB_EXECUTABLE ? 0777 : 0666;
  // Written over, then cut to size, never truncated to 0 first: ext4 (auto_da_alloc) writes a
  // file truncated to 0 back to disk as soon as it is closed, and waited for that on every file.
  const bool reused = fd >= 0;
  if (!reused) fd = open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, perm);
  auto failed = [&path] {
    return DiskError(absl::StrCat("cannot write '", path, "'"),
                     std::error_code(errno, std::generic_category()));
  };
  if (fd < 0) return failed();
  const char* data = static_cast<const char*>(git_blob_rawcontent(blob.get()));
  const size_t size = static_cast<size_t>(git_blob_rawsize(blob.get()));
  const mode_t umask_now = umask(0);  // (this process never changes it)
  umask(umask_now);
  bool ok = fchmod(fd, perm & ~umask_now) == 0;
  for (size_t done = 0; ok && done < size;) {
    const ssize_t n = pwrite(fd, data + done, size - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0;
    if (ok) done += static_cast<size_t>(n);
  }
  struct stat st;
  if (ok && fstat(fd, &st) == 0 && static_cast<size_t>(st.st_size) != size) {
    ok = ftruncate(fd, static_cast<off_t>(size)) == 0;
  }
  if (!ok) {
    absl::Status error = failed();
    close(fd);
    return error;
  }
  if (close(fd) != 0) return failed();
  return absl::OkStatus();
}

// Moves the worktree at `src` from the tree of its HEAD to `target`'s, when every change is
// between plain files (otherwise returns false without touching anything, and libgit2 does it
// all). Unlike libgit2, which unlinks the files a commit drops and creates the ones it adds, it
// keeps the dropped files (in kSpareDir) and renames them onto the added paths: on ext4 without a
// journal (this machine's /tmp) every inode freed in the last 30 s is skipped, one inode-table
// read each, by every new file's allocation, so a few bisects in a row slowed each other down.
// Updates the index (with the written files' stat data) and HEAD; libgit2's checkout after it
// then only restores files a build changed.
absl::StatusOr<bool> MoveToTree(git_repository* repo, const std::string& src,
                                const git_commit* target, CheckoutCounts& counts) {
  git_object* raw_head = nullptr;
  if (git_revparse_single(&raw_head, repo, "HEAD^{tree}") < 0) {
    git_error_clear();
    return false;
  }
  GitObject head(raw_head);
  git_tree* raw_target = nullptr;
  int rc = git_commit_tree(&raw_target, target);
  if (rc < 0) return GitError(rc, "cannot read the target tree");
  GitTree target_tree(raw_target);
  git_diff* raw_diff = nullptr;
  rc = git_diff_tree_to_tree(&raw_diff, repo, reinterpret_cast<git_tree*>(head.get()),
                             target_tree.get(), nullptr);
  if (rc < 0) return GitError(rc, absl::StrCat("cannot compare trees in '", src, "'"));
  std::unique_ptr<git_diff, decltype(&git_diff_free)> diff(raw_diff, git_diff_free);
  const size_t n = git_diff_num_deltas(diff.get());
  for (size_t i = 0; i < n; ++i) {
    const git_diff_delta* d = git_diff_get_delta(diff.get(), i);
    if (d->status == GIT_DELTA_ADDED ? !IsPlainFile(d->new_file.mode)
        : d->status == GIT_DELTA_DELETED
            ? !IsPlainFile(d->old_file.mode)
            : !IsPlainFile(d->old_file.mode) || !IsPlainFile(d->new_file.mode)) {
      return false;
    }
  }
  git_index* raw_index = nullptr;
  rc = git_repository_index(&raw_index, repo);
  if (rc < 0) return GitError(rc, absl::StrCat("cannot read the index of '", src, "'"));
  GitIndex index(raw_index);
  const std::string spare_dir = src + kSpareDir;
  FARM_RETURN_IF_ERROR(MakeDirs(spare_dir));
  std::vector<std::string> spare;
  std::error_code ec;
  for (fs::directory_iterator it(spare_dir, ec), end; !ec && it != end; it.increment(ec)) {
    spare.push_back(it->path().string());
  }
  const std::string prefix = absl::StrCat(spare_dir, "/", absl::ToUnixNanos(absl::Now()), "-");
  std::vector<std::string> emptied;  // directories that lost a file
  for (size_t i = 0; i < n; ++i) {   // deletions first: their files are the spares of additions
    const git_diff_delta* d = git_diff_get_delta(diff.get(), i);
    if (d->status != GIT_DELTA_DELETED) continue;
    const std::string path = absl::StrCat(src, "/", d->old_file.path);
    if (spare.size() < kMaxSpareFiles) {
      std::string kept = absl::StrCat(prefix, i);
      if (rename(path.c_str(), kept.c_str()) == 0) spare.push_back(std::move(kept));
    } else {
      unlink(path.c_str());
    }
    git_index_remove(index.get(), d->old_file.path, 0);
    emptied.push_back(fs::path(d->old_file.path).parent_path().string());
    ++counts.removed;
  }
  for (size_t i = 0; i < n; ++i) {
    const git_diff_delta* d = git_diff_get_delta(diff.get(), i);
    if (d->status == GIT_DELTA_DELETED) continue;
    const std::string rel = d->new_file.path;
    const std::string path = absl::StrCat(src, "/", rel);
    int fd = -1;
    if (d->status == GIT_DELTA_ADDED) {
      FARM_RETURN_IF_ERROR(MakeDirs(fs::path(path).parent_path().string()));
      while (fd < 0 && !spare.empty()) {
        const std::string kept = std::move(spare.back());
        spare.pop_back();
        if (rename(kept.c_str(), path.c_str()) != 0) continue;
        fd = open(path.c_str(), O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
        struct stat st;
        if (fd >= 0 && (fstat(fd, &st) != 0 || st.st_nlink != 1)) {
          close(fd);  // linked from elsewhere (a build's hard link): not ours to rewrite
          fd = -1;
          unlink(path.c_str());
        }
      }
    }
    FARM_RETURN_IF_ERROR(WriteBlobInto(repo, d->new_file.id, d->new_file.mode, path, fd));
    struct stat st;
    if (lstat(path.c_str(), &st) != 0) {
      return DiskError(absl::StrCat("cannot stat '", path, "'"),
                       std::error_code(errno, std::generic_category()));
    }
    git_index_entry entry = {};
    FillStat(entry, st);
    entry.mode = d->new_file.mode;
    entry.id = d->new_file.id;
    entry.path = rel.c_str();
    rc = git_index_add(index.get(), &entry);
    if (rc < 0) return GitError(rc, absl::StrCat("cannot index '", rel, "' in '", src, "'"));
    counts.updated.insert(rel);
    ++counts.written;
  }
  // Directories the commit no longer has, deepest first (as git removes them).
  std::sort(emptied.begin(), emptied.end(), std::greater<>());
  for (const std::string& dir : emptied) {
    for (fs::path p = dir; !p.empty(); p = p.parent_path()) {
      if (rmdir(absl::StrCat(src, "/", p.string()).c_str()) != 0) break;
    }
  }
  rc = git_index_write(index.get());
  if (rc < 0) return GitError(rc, absl::StrCat("cannot write the index of '", src, "'"));
  rc = git_repository_set_head_detached(repo, git_commit_id(target));
  if (rc < 0) return GitError(rc, absl::StrCat("cannot set HEAD of '", src, "'"));
  return true;
}

// Checks out commit `oid` (`sha` in messages) in the worktree at `src`, detaching HEAD there;
// `pristine` removes untracked and ignored files. Counts what it writes and removes.
absl::Status CheckOutCommit(CheckoutFilters& filters, const std::string& src, const git_oid& oid,
                            const std::string& sha, bool pristine, CheckoutCounts& counts) {
  counts = CheckoutCounts();
  counts.src = src;
  FARM_ASSIGN_OR_RETURN(GitRepository repo, OpenWorktree(src));
  git_index* raw_index = nullptr;
  if (git_repository_index(&raw_index, repo.get()) < 0) {
    // (Letting git_checkout_tree fail on it leaks in libgit2 1.5.)
    git_error_clear();
    FARM_RETURN_IF_ERROR(RebuildIndex(src));
    FARM_ASSIGN_OR_RETURN(repo, OpenWorktree(src));
  }
  git_index_free(raw_index);
  git_commit* raw_commit = nullptr;
  int rc = git_commit_lookup(&raw_commit, repo.get(), &oid);
  if (rc < 0) {
    return GitError(
        rc, absl::StrCat("cannot read commit ", sha, " through the alternates of '", src, "'"));
  }
  GitCommit commit(raw_commit);
  git_checkout_options opts;
  git_checkout_options_init(&opts, GIT_CHECKOUT_OPTIONS_VERSION);
  opts.checkout_strategy = GIT_CHECKOUT_FORCE;
  // Without line-ending or ident conversion to do, the same files are written without looking
  // up every file's attributes (agent/workspace/checkout_filters.h).
  opts.disable_filters = !filters.MayNeed(repo.get(), *git_commit_tree_id(commit.get()));
  if (opts.disable_filters) {
    FARM_ASSIGN_OR_RETURN(bool moved, MoveToTree(repo.get(), src, commit.get(), counts));
    (void)moved;  // either way, libgit2 below finishes the job (restores what a build changed)
  }
  opts.notify_flags = GIT_CHECKOUT_NOTIFY_UPDATED;
  if (pristine) {
    opts.checkout_strategy |= GIT_CHECKOUT_REMOVE_UNTRACKED | GIT_CHECKOUT_REMOVE_IGNORED;
    opts.notify_flags |= GIT_CHECKOUT_NOTIFY_UNTRACKED | GIT_CHECKOUT_NOTIFY_IGNORED;
  }
  opts.notify_cb = CountingNotify;
  opts.notify_payload = &counts;
  opts.progress_cb = CountingProgress;
  opts.progress_payload = &counts;
  rc = git_checkout_tree(repo.get(), reinterpret_cast<const git_object*>(commit.get()), &opts);
  if (rc < 0) return GitError(rc, absl::StrCat("cannot check out ", sha, " in '", src, "'"));
  if (pristine) {
    // libgit2 1.5's REMOVE_UNTRACKED/REMOVE_IGNORED leave some untracked directories that hold
    // a nested repository behind; remove whatever is left.
    FARM_ASSIGN_OR_RETURN(size_t removed, RemoveUntracked(repo.get(), src, counts.counted));
    counts.removed += removed;
  }
  rc = git_repository_set_head_detached(repo.get(), &oid);
  if (rc < 0) return GitError(rc, absl::StrCat("cannot set HEAD of '", src, "' to ", sha));
  return absl::OkStatus();
}

// A submodule as .gitmodules describes it.
struct Submodule {
  std::string name;
  std::string path;
  std::string url;
};

// The submodules .gitmodules (a file in a worktree) lists. Errors: libgit2's, naming the file.
absl::StatusOr<std::vector<Submodule>> ReadGitmodules(const std::string& file) {
  git_config* raw = nullptr;
  int rc = git_config_open_ondisk(&raw, file.c_str());
  if (rc < 0) return GitError(rc, absl::StrCat("cannot read '", file, "'"));
  std::unique_ptr<git_config, decltype(&git_config_free)> config(raw, git_config_free);
  std::vector<Submodule> modules;
  rc = git_config_foreach_match(
      config.get(), "^submodule\\..*\\.path$",
      [](const git_config_entry* e, void* payload) {
        absl::string_view name = e->name;
        absl::ConsumePrefix(&name, "submodule.");
        absl::ConsumeSuffix(&name, ".path");
        static_cast<std::vector<Submodule>*>(payload)->push_back({std::string(name), e->value, ""});
        return 0;
      },
      &modules);
  if (rc < 0) return GitError(rc, absl::StrCat("cannot read '", file, "'"));
  for (Submodule& m : modules) {
    git_buf buf = GIT_BUF_INIT;
    if (git_config_get_string_buf(&buf, config.get(),
                                  absl::StrCat("submodule.", m.name, ".url").c_str()) == 0) {
      m.url.assign(buf.ptr, buf.size);
    }
    git_error_clear();
    git_buf_dispose(&buf);
  }
  return modules;
}

// Whether the worktree's HEAD names a commit: a worktree whose first checkout never finished
// (interrupted, or a seed cancelled half-way) has none, and whatever files it has are untracked.
bool HoldsCommit(git_repository* repo) {
  git_object* head = nullptr;
  if (git_revparse_single(&head, repo, "HEAD^{commit}") < 0) {
    git_error_clear();
    return false;
  }
  git_object_free(head);
  return true;
}

// Writes every entry of `tree` into the empty worktree `root`, as a checkout without filters
// would (blobs, executables, symlinks, empty directories for gitlinks), asking `cancelled`
// between entries.
struct TreeWriter {
  git_repository* repo;
  std::string root;
  const std::function<bool()>* cancelled;
  absl::Status status;
  // Resuming a cancelled seed of the same commit: a regular file of the blob's size is the one
  // written then (the seed writes files whole between two questions to `cancelled`).
  bool resume = false;
};

absl::Status WriteBlob(git_repository* repo, const git_oid& id, git_filemode_t mode,
                       const std::string& path) {
  if (mode != GIT_FILEMODE_LINK) return WriteBlobInto(repo, id, mode, path, /*fd=*/-1);
  git_blob* raw = nullptr;
  int rc = git_blob_lookup(&raw, repo, &id);
  if (rc < 0) return GitError(rc, absl::StrCat("cannot read the blob of '", path, "'"));
  std::unique_ptr<git_blob, decltype(&git_blob_free)> blob(raw, git_blob_free);
  const std::string target(static_cast<const char*>(git_blob_rawcontent(blob.get())),
                           static_cast<size_t>(git_blob_rawsize(blob.get())));
  if (symlink(target.c_str(), path.c_str()) != 0) {
    return DiskError(absl::StrCat("cannot create '", path, "'"),
                     std::error_code(errno, std::generic_category()));
  }
  return absl::OkStatus();
}

// A seed of commit `seeding` was cut short in the worktree at `src` (its files are whole, each
// `seeding`'s blob): removes every file `seeding` and `target` do not share (changed, added or
// deleted between them), and the directories that leaves empty, so that resuming the seed for
// `target` may keep every file it finds of the right size.
absl::Status ForgetSeedChanges(git_repository* repo, const std::string& src,
                               const std::string& seeding, const git_oid& target) {
  git_oid from_oid;
  if (git_oid_fromstr(&from_oid, seeding.c_str()) < 0) {
    git_error_clear();
    return absl::InvalidArgumentError("bad seed marker");
  }
  git_commit* raw = nullptr;
  int rc = git_commit_lookup(&raw, repo, &from_oid);
  if (rc < 0) return GitError(rc, "cannot read the commit a seed was writing");
  GitCommit from(raw);
  rc = git_commit_lookup(&raw, repo, &target);
  if (rc < 0) return GitError(rc, "cannot read the commit to seed");
  GitCommit to(raw);
  git_tree* raw_tree = nullptr;
  rc = git_commit_tree(&raw_tree, from.get());
  if (rc < 0) return GitError(rc, "cannot read a tree");
  GitTree from_tree(raw_tree);
  rc = git_commit_tree(&raw_tree, to.get());
  if (rc < 0) return GitError(rc, "cannot read a tree");
  GitTree to_tree(raw_tree);
  git_diff* raw_diff = nullptr;
  rc = git_diff_tree_to_tree(&raw_diff, repo, from_tree.get(), to_tree.get(), nullptr);
  if (rc < 0) return GitError(rc, "cannot compare trees");
  std::unique_ptr<git_diff, decltype(&git_diff_free)> diff(raw_diff, git_diff_free);
  std::vector<std::string> dirs;
  for (size_t i = 0; i < git_diff_num_deltas(diff.get()); ++i) {
    const git_diff_delta* d = git_diff_get_delta(diff.get(), i);
    for (const char* rel : {d->old_file.path, d->new_file.path}) {
      const std::string path = absl::StrCat(src, "/", rel);
      if (unlink(path.c_str()) != 0 && errno != ENOENT && errno != EISDIR) {
        return DiskError(absl::StrCat("cannot remove '", path, "'"),
                         std::error_code(errno, std::generic_category()));
      }
      dirs.push_back(fs::path(rel).parent_path().string());
    }
  }
  std::sort(dirs.begin(), dirs.end(), std::greater<>());
  for (const std::string& dir : dirs) {
    for (fs::path p = dir; !p.empty(); p = p.parent_path()) {
      if (rmdir(absl::StrCat(src, "/", p.string()).c_str()) != 0) break;
    }
  }
  return absl::OkStatus();
}

int WriteTreeEntry(const char* dir, const git_tree_entry* entry, void* payload) {
  auto* w = static_cast<TreeWriter*>(payload);
  if ((*w->cancelled)()) {
    w->status = absl::CancelledError("cancelled");
    return -1;
  }
  const std::string path = absl::StrCat(w->root, "/", dir, git_tree_entry_name(entry));
  const git_filemode_t mode = git_tree_entry_filemode(entry);
  if (mode == GIT_FILEMODE_TREE || mode == GIT_FILEMODE_COMMIT) {
    if (mkdir(path.c_str(), 0777) != 0 && errno != EEXIST) {
      w->status = DiskError(absl::StrCat("cannot create directory '", path, "'"),
                            std::error_code(errno, std::generic_category()));
      return -1;
    }
    return 0;
  }
  if (w->resume && mode != GIT_FILEMODE_LINK) {
    struct stat st;
    size_t size = 0;
    git_object_t type;
    git_odb* odb = nullptr;
    if (lstat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        git_repository_odb(&odb, w->repo) == 0) {
      const bool same = git_odb_read_header(&size, &type, odb, git_tree_entry_id(entry)) == 0 &&
                        static_cast<size_t>(st.st_size) == size;
      git_odb_free(odb);
      git_error_clear();
      if (same) return 0;
    }
    git_error_clear();
  }
  w->status = WriteBlob(w->repo, *git_tree_entry_id(entry), mode, path);
  return w->status.ok() ? 0 : -1;
}

// Fills the index of the worktree at `root` with `tree`'s entries and the stat data of the files
// just written, so that the next checkout sees them unchanged without reading them.
absl::Status IndexWrittenTree(git_repository* repo, const std::string& root, git_tree* tree) {
  git_index* raw = nullptr;
  int rc = git_repository_index(&raw, repo);
  if (rc < 0) return GitError(rc, absl::StrCat("cannot create an index in '", root, "'"));
  GitIndex index(raw);
  rc = git_index_read_tree(index.get(), tree);
  if (rc < 0) return GitError(rc, absl::StrCat("cannot fill the index of '", root, "'"));
  const size_t n = git_index_entrycount(index.get());
  for (size_t i = 0; i < n; ++i) {
    git_index_entry entry = *git_index_get_byindex(index.get(), i);
    if (entry.mode == GIT_FILEMODE_COMMIT) continue;  // gitlinks carry no stat data
    const std::string path = entry.path;  // adding frees the entry `entry.path` points into
    entry.path = path.c_str();
    struct stat st;
    if (lstat(absl::StrCat(root, "/", path).c_str(), &st) != 0) {
      return DiskError(absl::StrCat("cannot stat '", root, "/", path, "'"),
                       std::error_code(errno, std::generic_category()));
    }
    FillStat(entry, st);
    rc = git_index_add(index.get(), &entry);
    if (rc < 0) return GitError(rc, absl::StrCat("cannot index '", path, "' in '", root, "'"));
  }
  rc = git_index_write(index.get());
  if (rc < 0) return GitError(rc, absl::StrCat("cannot write the index of '", root, "'"));
  return absl::OkStatus();
}

constexpr int kMaxSubmoduleDepth = 8;

}  // namespace

std::string ResolveSubmoduleUrl(const std::string& super_url, const std::string& url) {
  if (!absl::StartsWith(url, "./") && !absl::StartsWith(url, "../")) return url;
  std::string base = super_url;
  while (base.size() > 1 && base.back() == '/') base.pop_back();
  absl::string_view rel = url;
  while (true) {
    if (absl::ConsumePrefix(&rel, "./")) continue;
    if (!absl::ConsumePrefix(&rel, "../")) break;
    size_t cut = base.find_last_of("/:");
    if (cut == std::string::npos) {
      base = ".";
    } else {
      base.resize(base[cut] == ':' ? cut + 1 : cut);  // "host:repo" keeps "host:"
    }
  }
  if (!base.empty() && base.back() == ':') return absl::StrCat(base, rel);
  return absl::StrCat(base.empty() ? "/" : base + "/", rel);
}

absl::Status Workspace::CheckoutSubmodules(const std::string& src, const std::string& url,
                                           const git_oid& oid, bool pristine, int depth,
                                           CheckoutResult& result) {
  const std::string gitmodules = src + "/.gitmodules";
  std::error_code ec;
  if (!fs::exists(gitmodules, ec)) return absl::OkStatus();
  FARM_ASSIGN_OR_RETURN(std::vector<Submodule> modules, ReadGitmodules(gitmodules));
  if (modules.empty()) return absl::OkStatus();
  if (depth >= kMaxSubmoduleDepth) {
    return absl::FailedPreconditionError(
        absl::StrCat("submodules nested more than ", kMaxSubmoduleDepth, " deep, in '", src, "'"));
  }
  FARM_ASSIGN_OR_RETURN(GitRepository repo, OpenWorktree(src));
  git_commit* raw_commit = nullptr;
  int rc = git_commit_lookup(&raw_commit, repo.get(), &oid);
  if (rc < 0)
    return GitError(rc, absl::StrCat("cannot read the commit checked out in '", src, "'"));
  GitCommit commit(raw_commit);
  git_tree* raw_tree = nullptr;
  rc = git_commit_tree(&raw_tree, commit.get());
  if (rc < 0) return GitError(rc, absl::StrCat("cannot read the tree checked out in '", src, "'"));
  GitTree tree(raw_tree);
  for (const Submodule& m : modules) {
    git_tree_entry* raw_entry = nullptr;
    if (git_tree_entry_bypath(&raw_entry, tree.get(), m.path.c_str()) < 0) {
      git_error_clear();  // listed in .gitmodules but not in this commit's tree
      continue;
    }
    std::unique_ptr<git_tree_entry, decltype(&git_tree_entry_free)> entry(raw_entry,
                                                                          git_tree_entry_free);
    if (git_tree_entry_filemode(entry.get()) != GIT_FILEMODE_COMMIT) continue;
    const git_oid sub_oid = *git_tree_entry_id(entry.get());
    char hex[GIT_OID_HEXSZ + 1];
    git_oid_tostr(hex, sizeof(hex), &sub_oid);
    const std::string where = absl::StrCat("submodule '", m.path, "' at ", hex);
    if (m.url.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat(where, ": .gitmodules gives no url for '", m.name, "'"));
    }
    const std::string sub_url = ResolveSubmoduleUrl(url, m.url);
    absl::StatusOr<std::string> source = cache_.Prepare(sub_url, hex);
    if (!source.ok()) {
      return absl::Status(source.status().code(),
                          absl::StrCat(where, " (", sub_url, "): ", source.status().message()));
    }
    const std::string sub_src = src + "/" + m.path;
    bool sound = false;
    if (absl::StatusOr<GitRepository> existing = OpenWorktree(sub_src); existing.ok()) {
      sound = ConfiguredUrl(existing->get()) == sub_url;
    } else {
      git_error_clear();
    }
    absl::Status status;
    for (int attempt = 0; attempt < 2; ++attempt) {
      // A damaged (or another repository's) submodule worktree is made afresh, once.
      if (!sound || attempt > 0) FARM_RETURN_IF_ERROR(CreateWorktree(sub_src, sub_url));
      FARM_RETURN_IF_ERROR(SetAlternates(sub_src, *source + "/objects"));
      CheckoutCounts counts;
      status = CheckOutCommit(filters_, sub_src, sub_oid, hex, pristine, counts);
      result.files_written += counts.written;
      result.files_removed += counts.removed;
      if (status.ok() || !sound) break;
    }
    if (!status.ok()) {
      return absl::Status(status.code(), absl::StrCat(where, ": ", status.message()));
    }
    FARM_RETURN_IF_ERROR(
        CheckoutSubmodules(sub_src, sub_url, sub_oid, pristine, depth + 1, result));
  }
  return absl::OkStatus();
}

Workspace::Workspace(std::string root) : root_(std::move(root)), cache_(root_ + "/mirrors") {}

absl::StatusOr<std::unique_ptr<Workspace>> Workspace::Open(const std::string& root) {
  if (root.empty()) return absl::InvalidArgumentError("workspace root is empty");
  GitLibrary::Ensure();
  std::error_code ec;
  fs::path abs = fs::absolute(root, ec);
  if (ec) return DiskError(absl::StrCat("bad workspace root '", root, "'"), ec);
  std::string normal = abs.lexically_normal().string();
  while (normal.size() > 1 && normal.back() == '/') normal.pop_back();
  FARM_RETURN_IF_ERROR(MakeDirs(normal + "/mirrors"));
  FARM_RETURN_IF_ERROR(MakeDirs(normal + "/slots"));
  return std::unique_ptr<Workspace>(new Workspace(normal));
}

std::string Workspace::worktree_path(int slot) const {
  return absl::StrCat(root_, "/slots/", slot, "/src");
}

std::string Workspace::build_path(int slot) const {
  return absl::StrCat(root_, "/slots/", slot, "/build");
}

absl::Status Workspace::EmptyBuildDirectory(int slot) {
  if (slot < 0) return absl::InvalidArgumentError(absl::StrCat("slot ", slot, " is negative"));
  return EmptyDirectory(build_path(slot));
}

absl::StatusOr<Workspace::ResolvedCommit> Workspace::Resolve(const std::string& url,
                                                             const std::string& sha) {
  ResolvedCommit resolved;
  FARM_ASSIGN_OR_RETURN(resolved.source_path, cache_.Prepare(url, sha));
  FARM_ASSIGN_OR_RETURN(GitRepository source, OpenRepository(resolved.source_path));
  absl::StatusOr<git_oid> oid = ResolveCommit(source.get(), sha);
  if (absl::IsNotFound(oid.status())) {
    return absl::NotFoundError(absl::StrCat("commit '", sha, "' is not in repository '", url, "'"));
  }
  if (!oid.ok()) return oid.status();
  resolved.oid = *oid;
  return resolved;
}

absl::Status Workspace::MakeRevert(const std::string& url, const std::string& sha,
                                   const std::string& culprit, const std::string& head) {
  // The head (and with it the culprit, its ancestor) fetched; then the revert, if missing.
  FARM_ASSIGN_OR_RETURN(const ResolvedCommit top, Resolve(url, head));
  FARM_ASSIGN_OR_RETURN(GitRepository repo, OpenRepository(top.source_path));
  absl::StatusOr<git_oid> have = ResolveCommit(repo.get(), sha);
  if (have.ok()) return absl::OkStatus();
  if (!absl::IsNotFound(have.status())) return have.status();
  FARM_ASSIGN_OR_RETURN(const git_oid culprit_oid, ResolveCommit(repo.get(), culprit));
  FARM_ASSIGN_OR_RETURN(const git_oid made, MakeRevertCommit(repo.get(), culprit_oid, top.oid));
  char hex[GIT_OID_HEXSZ + 1];
  git_oid_tostr(hex, sizeof(hex), &made);
  if (sha != hex) {
    return absl::FailedPreconditionError(absl::StrCat("the revert of ", culprit, " on ", head,
                                                      " made here is ", hex, ", not the commit ",
                                                      sha, " the coordinator asked for"));
  }
  return absl::OkStatus();
}

bool Workspace::HasWorktree(int slot, const std::string& url) {
  if (slot < 0) return false;
  absl::StatusOr<GitRepository> existing = OpenWorktree(worktree_path(slot));
  if (!existing.ok()) {
    git_error_clear();
    return false;
  }
  return ConfiguredUrl(existing->get()) == url && HoldsCommit(existing->get());
}

absl::StatusOr<bool> Workspace::SeedWorktree(int slot, const std::string& url,
                                             const std::string& sha,
                                             const std::function<bool()>& cancelled) {
  if (slot < 0) return absl::InvalidArgumentError(absl::StrCat("bad workspace slot ", slot));
  if (HasWorktree(slot, url)) return false;
  FARM_ASSIGN_OR_RETURN(const ResolvedCommit resolved, Resolve(url, sha));
  const std::string src = worktree_path(slot);
  // Which commit a seed is writing, so that a seed cancelled half-way (the bisect ended first)
  // is resumed by the next one instead of written again from the start.
  const std::string marker = src + "/.git/farm-seed";
  char hex[GIT_OID_HEXSZ + 1];
  git_oid_tostr(hex, sizeof(hex), &resolved.oid);
  bool resume = false;
  if (absl::StatusOr<GitRepository> existing = OpenWorktree(src); existing.ok()) {
    const std::string seeding = ConfiguredUrl(existing->get()) == url ? ReadSmallFile(marker) : "";
    resume = seeding == hex;
    if (!resume && !seeding.empty() && SetAlternates(src, resolved.source_path + "/objects").ok() &&
        ForgetSeedChanges(existing->get(), src, seeding, resolved.oid).ok()) {
      // Another commit's seed, cut short: what it wrote that this commit has unchanged stays.
      std::ofstream out(marker, std::ios::trunc);
      out << hex;
      resume = static_cast<bool>(out.flush());
    }
  } else {
    git_error_clear();
  }
  if (!resume) {
    FARM_RETURN_IF_ERROR(CreateWorktree(src, url));
    std::ofstream out(marker, std::ios::trunc);
    out << hex;
    if (!out.flush()) return absl::InternalError(absl::StrCat("cannot write '", marker, "'"));
  }
  FARM_RETURN_IF_ERROR(SetAlternates(src, resolved.source_path + "/objects"));
  FARM_RETURN_IF_ERROR(MakeDirs(build_path(slot)));
  FARM_ASSIGN_OR_RETURN(GitRepository repo, OpenWorktree(src));
  git_commit* raw_commit = nullptr;
  int rc = git_commit_lookup(&raw_commit, repo.get(), &resolved.oid);
  if (rc < 0) {
    return GitError(
        rc, absl::StrCat("cannot read commit ", sha, " through the alternates of '", src, "'"));
  }
  GitCommit commit(raw_commit);
  if (filters_.MayNeed(repo.get(), *git_commit_tree_id(commit.get()))) {
    CheckoutCounts counts;  // conversions to apply: libgit2 writes the files
    FARM_RETURN_IF_ERROR(CheckOutCommit(filters_, src, resolved.oid, sha, false, counts));
    return true;
  }
  git_tree* raw_tree = nullptr;
  rc = git_commit_tree(&raw_tree, commit.get());
  if (rc < 0) return GitError(rc, absl::StrCat("cannot read the tree of ", sha));
  GitTree tree(raw_tree);
  TreeWriter writer{repo.get(), src, &cancelled, absl::OkStatus(), resume};
  rc = git_tree_walk(tree.get(), GIT_TREEWALK_PRE, WriteTreeEntry, &writer);
  FARM_RETURN_IF_ERROR(writer.status);
  if (rc < 0)
    return GitError(rc, absl::StrCat("cannot write the tree of ", sha, " in '", src, "'"));
  FARM_RETURN_IF_ERROR(IndexWrittenTree(repo.get(), src, tree.get()));
  // Last: a worktree whose HEAD names a commit is complete (HoldsCommit).
  rc = git_repository_set_head_detached(repo.get(), &resolved.oid);
  if (rc < 0) return GitError(rc, absl::StrCat("cannot set HEAD of '", src, "' to ", sha));
  return true;
}

absl::StatusOr<CheckoutResult> Workspace::Checkout(int slot, const std::string& url,
                                                   const std::string& sha, bool pristine,
                                                   const std::function<bool()>& cancelled) {
  const absl::Time start = absl::Now();
  if (slot < 0) return absl::InvalidArgumentError(absl::StrCat("bad workspace slot ", slot));
  const std::string src = worktree_path(slot);
  const std::string build = build_path(slot);

  FARM_ASSIGN_OR_RETURN(const ResolvedCommit resolved, Resolve(url, sha));
  const std::string& source_path = resolved.source_path;
  const git_oid oid = resolved.oid;
  const std::string objects_dir = source_path + "/objects";
  struct stat source_st;
  const ino_t mirror_inode = stat(source_path.c_str(), &source_st) == 0 ? source_st.st_ino : 0;

  // Reuse the slot's worktree if it is sound and holds the same repository.
  bool sound = false;
  bool other_url = false;
  {
    absl::StatusOr<GitRepository> existing = OpenWorktree(src);
    if (existing.ok()) {
      other_url = ConfiguredUrl(existing->get()) != url;
      sound = !other_url && HoldsCommit(existing->get());
    } else {
      git_error_clear();
    }
  }
  const bool recreated = !sound;
  // Build outputs of another project would only confuse the next build.
  if (recreated && other_url) FARM_RETURN_IF_ERROR(EmptyDirectory(build));
  // A whole tree to write: the seed's writer stops between files when the task is cancelled.
  // Should it fail otherwise (a damaged mirror, ...), libgit2's checkout below starts afresh and
  // says what is wrong, or repairs the mirror.
  absl::Status seeded = recreated && cancelled ? SeedWorktree(slot, url, sha, cancelled).status()
                                               : absl::UnknownError("not seeded");
  if (absl::IsCancelled(seeded)) return seeded;
  if (recreated && !seeded.ok()) FARM_RETURN_IF_ERROR(CreateWorktree(src, url));
  FARM_RETURN_IF_ERROR(SetAlternates(src, objects_dir));
  // A checkout that died (agent killed) may have left the index locked; the slot is ours.
  std::error_code ec;
  fs::remove(src + "/.git/index.lock", ec);

  if (pristine) FARM_RETURN_IF_ERROR(EmptyDirectory(build));
  FARM_RETURN_IF_ERROR(MakeDirs(build));

  CheckoutCounts counts;
  auto checkout = [&] { return CheckOutCommit(filters_, src, oid, sha, pristine, counts); };
  absl::Status status = checkout();
  if (!status.ok() && !recreated) {
    // A damaged worktree (bad index, unreadable HEAD, ...) is rebuilt once from scratch.
    FARM_RETURN_IF_ERROR(CreateWorktree(src, url));
    FARM_RETURN_IF_ERROR(SetAlternates(src, objects_dir));
    status = checkout();
  }
  // The commit resolved, so NOT_FOUND means an object it needs is missing from the repository's
  // object store. A mirror is ours: clone it again (same path, so the worktree's alternates stay
  // right) and check out once more. A local repository is the user's to repair.
  const bool mirror = source_path == cache_.MirrorPath(url);
  std::string repaired;
  if (absl::IsNotFound(status) && mirror) {
    repaired = std::string(status.message());
    if (absl::Status recloned = cache_.Reclone(url, mirror_inode); !recloned.ok()) {
      return absl::Status(
          recloned.code(),
          absl::StrCat(status.message(), ": the mirror '", source_path,
                       "' is incomplete, and cloning it again failed: ", recloned.message()));
    }
    status = checkout();
  }
  if (absl::IsNotFound(status)) {
    return absl::NotFoundError(absl::StrCat(
        status.message(), ": the objects of '", source_path,
        "' are incomplete (a damaged disk or an interrupted copy?): ",
        mirror ? "cloned again, the mirror still lacks it: the repository at the url lacks it too"
               : "run `git fsck` there and repair the repository"));
  }
  FARM_RETURN_IF_ERROR(status);

  CheckoutResult result;
  result.mirror_repaired = std::move(repaired);
  result.worktree = src;
  result.build_dir = build;
  result.files_written = counts.written;
  result.files_removed = counts.removed;
  FARM_RETURN_IF_ERROR(CheckoutSubmodules(src, url, oid, pristine, /*depth=*/0, result));
  result.elapsed = absl::Now() - start;
  return result;
}

}  // namespace farm

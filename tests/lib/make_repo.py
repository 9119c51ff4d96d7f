#!/usr/bin/env python3
"""Generates a git repository for bisect tests and benchmarks, fast (git fast-import).

Every commit adds its own file f/<n>, so merges never conflict. One commit, the culprit, also adds
the file `bug`; every commit that contains it is bad. Chosen commits add `skipme` (the test says
125) or `broken` (the build fails) in their own tree only (the next commit on the same line
removes it again).

Shapes:
  linear   one line of N commits
  merges   a first-parent main line with topic branches (1-6 commits) forked off and merged back,
           about a third of all commits sit on topics, like the kernel's history
  stale    linear; every commit changes config.version, and build.sh regenerates the untracked
           config.stamp only when it is missing and then requires it to match: an incremental
           build across commits fails on the stale stamp, a pristine one passes

Prints JSON: {"path", "commits": [sha in creation order], "root", "bad", "culprit",
"skipped": [...], "broken": [...], "tips": {...}} with labels as shas.
"""

import argparse
import json
import os
import random
import subprocess
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("path")
    ap.add_argument("--shape", choices=["linear", "merges", "stale"], default="linear")
    ap.add_argument("--commits", type=int, default=64)
    ap.add_argument("--culprit", type=float, default=0.6,
                    help="where the culprit sits, as a fraction of the commits")
    ap.add_argument("--skip", type=int, default=0, help="how many commits say 125")
    ap.add_argument("--skip-near-culprit", action="store_true",
                    help="put the skipped commits right before the culprit")
    ap.add_argument("--broken", type=int, default=0, help="how many commits fail to build")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rnd = random.Random(args.seed)

    os.makedirs(args.path, exist_ok=True)
    subprocess.run(["git", "init", "-q", "-b", "main", args.path], check=True)

    n = args.commits
    culprit_index = max(1, min(n - 1, int(n * args.culprit)))
    out = []
    ts = 1700000000

    def blob(data):
        data = data.encode()
        out.append(b"data %d\n" % len(data) + data + b"\n")

    # Plan the DAG: a list of commits, each (index, parents, branch).
    # branch 0 = main; topics get fresh ids.
    commits = []  # dicts: parents (list of commit indexes), files added
    main_tip = None
    topics = []   # open topics: [tip_index, remaining_length, base_len]
    next_topic = 1
    while len(commits) < n:
        i = len(commits)
        if args.shape == "merges" and main_tip is not None:
            r = rnd.random()
            if topics and (r < 0.25 or len(commits) >= n - 2):
                # Merge the oldest finished topic into main, if any is done.
                t = topics[0]
                if t[1] <= 0 or len(commits) >= n - 2:
                    topics.pop(0)
                    commits.append({"parents": [main_tip, t[0]], "merge": True})
                    main_tip = i
                    continue
            if r < 0.45:
                # Work on a topic (start one if needed).
                if not topics or (rnd.random() < 0.3 and len(topics) < 4):
                    topics.append([main_tip, rnd.randint(1, 6), 0])
                t = rnd.choice(topics)
                commits.append({"parents": [t[0]], "merge": False})
                t[0] = i
                t[1] -= 1
                continue
        commits.append({"parents": [main_tip] if main_tip is not None else [], "merge": False})
        main_tip = i
    # Make sure the last commit is the main tip (merge every open topic).
    bad_index = main_tip

    # Files per commit: each commit's tree = parents' trees + its own file.
    # The culprit is a non-merge commit that is an ancestor of bad.
    ancestors_of_bad = set()
    stack = [bad_index]
    while stack:
        c = stack.pop()
        if c in ancestors_of_bad:
            continue
        ancestors_of_bad.add(c)
        stack.extend(commits[c]["parents"])
    eligible = [i for i in sorted(ancestors_of_bad) if not commits[i]["merge"] and i > 0]
    culprit = min(eligible, key=lambda i: abs(i - culprit_index))

    others = [i for i in eligible if i != culprit and i != bad_index]
    if args.skip_near_culprit:
        before = [i for i in others if i < culprit][-args.skip:] if args.skip else []
        skipped = set(before)
    else:
        skipped = set(rnd.sample(others, min(args.skip, len(others))))
    broken = set(rnd.sample([i for i in others if i not in skipped],
                            min(args.broken, len(others) - len(skipped))))

    # Emit with fast-import. Track each commit's full "bug" presence and its extra files to merge.
    has_bug = {}
    files_since = {}  # commit -> set of files that the commit's tree has beyond the root's
    for i, c in enumerate(commits):
        ts += 60
        out.append(b"commit refs/heads/main\n" if i == bad_index else
                   b"commit refs/heads/work\n")
        out.append(b"mark :%d\n" % (i + 1))
        who = b"Dev %d <dev%d@example.com> %d +0000\n" % (i % 7, i % 7, ts)
        out.append(b"author " + who)
        out.append(b"committer " + who)
        subject = ("Merge topic into main (%d)" % i) if c["merge"] else ("Change %d" % i)
        if i == culprit:
            subject = "Change %d: the regression" % i
        blob(subject)
        parents = c["parents"]
        if parents:
            out.append(b"from :%d\n" % (parents[0] + 1))
        for p in parents[1:]:
            out.append(b"merge :%d\n" % (p + 1))
        mine = set()
        for p in parents:
            mine |= files_since[p]
        bug = any(has_bug[p] for p in parents) or i == culprit
        has_bug[i] = bug
        # A merge re-adds what the second parent brings (fast-import starts from the first).
        for p in parents[1:]:
            for f in sorted(files_since[p] - files_since[parents[0]]):
                out.append(b"M 644 inline %s\n" % f.encode())
                blob(f)
        if not c["merge"]:
            f = "f/%d" % i
            mine.add(f)
            out.append(b"M 644 inline %s\n" % f.encode())
            blob(str(i))
        if bug:
            mine.add("bug")
            out.append(b"M 644 inline bug\n")
            blob("bug")
        # skipme / broken live only in the commit that has them.
        for name, where in (("skipme", skipped), ("broken", broken)):
            if i in where:
                out.append(b"M 644 inline %s\n" % name.encode())
                blob(name)
            elif parents:
                out.append(b"D %s\n" % name.encode())
        if args.shape == "stale":
            out.append(b"M 644 inline config.version\n")
            blob("version %d" % i)
            if i == 0:
                out.append(b"M 644 inline .gitignore\n")
                blob("config.stamp")
                out.append(b"M 755 inline build.sh\n")
                blob("#!/bin/sh\n# Regenerates config.stamp only when it is missing (a stale stamp"
                     " from another commit breaks the build, as real generated headers do).\n"
                     "[ -f config.stamp ] || cp config.version config.stamp\n"
                     "cmp -s config.stamp config.version || "
                     "{ echo 'config.stamp is out of date' >&2; exit 2; }\n")
        files_since[i] = mine
        out.append(b"\n")
    marks = os.path.join(os.path.abspath(args.path), ".git", "farm-test-marks")
    subprocess.run(["git", "-C", args.path, "fast-import", "--quiet", "--export-marks=" + marks],
                   input=b"".join(out), check=True)
    sha = {}
    with open(marks) as f:
        for line in f:
            m, s = line.split()
            sha[int(m[1:]) - 1] = s
    os.remove(marks)
    subprocess.run(["git", "-C", args.path, "branch", "-D", "-q", "work"],
                   check=False, stderr=subprocess.DEVNULL)
    subprocess.run(["git", "-C", args.path, "reset", "-q", "--hard", "main"], check=True)
    json.dump({
        "path": os.path.abspath(args.path),
        "commits": [sha[i] for i in range(len(commits))],
        "root": sha[0],
        "bad": sha[bad_index],
        "culprit": sha[culprit],
        "skipped": [sha[i] for i in sorted(skipped)],
        "broken": [sha[i] for i in sorted(broken)],
        "merges": sum(1 for c in commits if c["merge"]),
    }, sys.stdout)
    print()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Where a local `farm bisect` spends its time, from its debug log (issue 14).

    t0=$(date +%s.%N)
    FARM_LOG_LEVEL=debug farm bisect ... 2> LOG; t1=$(date +%s.%N)
    python3 bench/bisect_timeline.py LOG [--start $t0 --end $t1]

Reads the debug points of the CLI (bisect: ...), the coordinator (assign, result, planned) and
the agents (assign received, checkout took, test starts/ended, result sent) and prints the
start-up, the per-task means (assign on the wire, checkout, test, result on the wire, result to
the next assign) and the end. Times are seconds from --start (the command's start), else from the
first line.
"""
import argparse
import datetime
import re
import statistics
import sys


def parse(path):
    events = []
    for line in open(path, errors="replace"):
        m = re.match(r"(\d{4}-\d\d-\d\dT[\d:.]+) \S+ debug \S+\] (.*)", line)
        if m:
            ts = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f").timestamp()
            events.append((ts, m.group(2)))
    return events


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("log")
    ap.add_argument("--start", type=float)
    ap.add_argument("--end", type=float)
    args = ap.parse_args()
    events = parse(args.log)
    if not events:
        sys.exit(f"{args.log}: no debug lines (run farm with FARM_LOG_LEVEL=debug)")
    t0 = args.start if args.start is not None else events[0][0]
    cli, sent, received, checkout, test_start, test_end, result_sent, result_got = (
        {}, {}, {}, {}, {}, {}, {}, {})
    cancelled = set()
    for ts, text in events:
        t = ts - t0
        if m := re.match(r"bisect: (.*)", text):
            cli.setdefault(m.group(1), t)
        elif m := re.match(r"assign (\S+) \(", text):
            sent[m.group(1)] = t
        elif m := re.match(r"\S+: assign (\S+) received", text):
            received[m.group(1)] = t
        elif m := re.match(r"task (\S+): checkout took ([\d.]+)(ms|s|us)", text):
            scale = {"ms": 1e-3, "s": 1.0, "us": 1e-6}[m.group(3)]
            checkout[m.group(1)] = float(m.group(2)) * scale
        elif m := re.match(r"task (\S+): test starts", text):
            test_start[m.group(1)] = t
        elif m := re.match(r"task (\S+): test ended", text):
            test_end[m.group(1)] = t
        elif m := re.match(r"\S+: result of (\S+) sent", text):
            result_sent[m.group(1)] = t
        elif m := re.match(r"result of (\S+) from \S+( \(cancelled\))?", text):
            result_got[m.group(1)] = t
            if m.group(2):
                cancelled.add(m.group(1))

    def mean_ms(values):
        values = list(values)
        return f"{1000 * statistics.mean(values):.1f} ms (n={len(values)})" if values else "-"

    print("command (seconds from its start)")
    points = dict(cli)
    if sent:
        points["first assign sent"] = min(sent.values())
    if test_start:
        points["first test started"] = min(test_start.values())
    for what, t in sorted(points.items(), key=lambda kv: kv[1]):
        print(f"  {t:7.3f}  {what}")
    print("per task")
    print("  assign on the wire   ", mean_ms(received[k] - sent[k] for k in sent if k in received))
    print("  checkout             ", mean_ms(checkout.values()))
    print("  checkout, cancelled  ", mean_ms(v for k, v in checkout.items() if k in cancelled))
    print("  test (wall)          ", mean_ms(test_end[k] - test_start[k] for k in test_end
                                               if k in test_start and k not in cancelled))
    print("  result on the wire   ", mean_ms(result_got[k] - result_sent[k] for k in result_got
                                               if k in result_sent))
    verdicts = sorted(t for k, t in result_got.items() if k not in cancelled)
    next_assign = []
    for t in verdicts:
        later = [s for s in sent.values() if s >= t]
        if later and min(later) - t < 1.0:
            next_assign.append(min(later) - t)
    print("  verdict to next assign", mean_ms(next_assign))
    print(f"  tests run {len(test_start)}, cancelled {len(cancelled)}, verdicts {len(verdicts)}")
    if verdicts:
        print(f"  {verdicts[-1]:7.3f}  last verdict received")
    if args.end is not None:
        print(f"  {args.end - t0:7.3f}  exit")


if __name__ == "__main__":
    main()

"""Paired timing of two commands for `make bench`: runs alternate (A B, B A, …) so that
whatever else the machine does hits both alike, and the ratio reported is the median of
the per-pair ratios. Writes hyperfine's JSON layout (results[].command/median/min/max/
mean/times) plus `paired_ratio`: median of A/B.

    python3 bench/paired.py --runs N --warmup W --export-json FILE NAME_A CMD_A NAME_B CMD_B
"""

import argparse
import json
import shlex
import statistics
import subprocess
import time

parser = argparse.ArgumentParser()
parser.add_argument("--runs", type=int, required=True)
parser.add_argument("--warmup", type=int, default=3)
parser.add_argument("--export-json", required=True)
parser.add_argument("name_a")
parser.add_argument("command_a")
parser.add_argument("name_b")
parser.add_argument("command_b")
args = parser.parse_args()
commands = [shlex.split(args.command_a), shlex.split(args.command_b)]


def timed(argv):
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


for _ in range(args.warmup):
    for argv in commands:
        timed(argv)
times = ([], [])
for run in range(args.runs):
    order = (0, 1) if run % 2 == 0 else (1, 0)
    for which in order:
        times[which].append(timed(commands[which]))

ratio = statistics.median(a / b for a, b in zip(*times))
results = [
    {"command": name, "median": statistics.median(t), "mean": statistics.mean(t), "min": min(t), "max": max(t), "times": t}
    for name, t in zip([args.name_a, args.name_b], times)
]
with open(args.export_json, "w") as out:
    json.dump({"results": results, "paired_ratio": ratio}, out, indent=1)
for r in results:
    print(f"{r['command']:>10}: median {r['median'] * 1000:.1f} ms (min {r['min'] * 1000:.1f}, max {r['max'] * 1000:.1f})")
print(f"{args.name_a} / {args.name_b}: {ratio:.3f} (median of {args.runs} paired ratios)")

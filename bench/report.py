"""Render bench/results.md from what bench/run.sh left in RESULTS_DIR: hyperfine JSON
exports (NAME.json), facts.tsv, `--timings` outputs, -X importtime outputs and the dlsym
hosts' own timings. Every ratio compares numbers measured in the same run.

    python3 bench/report.py RESULTS_DIR > bench/results.md
"""

import datetime
import json
import re
import sys
from pathlib import Path

results = Path(sys.argv[1])
facts = dict(line.rstrip("\n").split("\t", 1) for line in (results / "facts.tsv").read_text().splitlines())


def export(name):
    """The JSON a hyperfine (or bench/paired.py) run exported, or {} when it was skipped."""
    path = results / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else {}


def runs(name):
    """command name -> its result."""
    return {r["command"]: r for r in export(name).get("results", [])}


def seconds(value):
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"


def spread(r):
    return f"{seconds(r['min'])} – {seconds(r['max'])}"


def verdict(ok):
    return "met" if ok else "**missed**"


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def timings(name):
    """stage -> seconds from a `build --timings` output."""
    path = results / name
    if not path.exists():
        return {}
    found = re.findall(r"^  (.+?)\s+([0-9.]+)s$", path.read_text(), re.M)
    return {stage: float(value) for stage, value in found}


def importtime(name):
    """module -> self microseconds from a -X importtime output."""
    found = re.findall(r"^import time:\s+(\d+) \|\s+\d+ \|\s*(\S+)", (results / name).read_text(), re.M)
    return {module: int(us) for us, module in found}


out = []
say = out.append
headline = []
say("# dlstatic benchmarks\n")
say(f"Written by `make bench` on {datetime.date.today()}. Machine: {facts['machine']}.  ")
say(f"Versions: {facts['versions']}.  ")
runs_per = next(iter(runs("rename-stdlib").values()))["times"]
say(f"Each number is the median of {len(runs_per)} or more hyperfine runs after warm-up, with min – max; "
    "ratios compare medians measured in this same run.\n")

say("## 1. Rename + archive of the same captured objects\n")
say("dlstatic (`bench/rename_archive.rs`: the library's analyze, rename and archive stages, parallel) against "
    "`bench/objcopy_ar.sh` (one `objcopy --redefine-syms` process per object, then `ar rcsD`, one job per "
    "core, given the symbol maps for free) and `cp -r` of the same object bytes (the I/O floor).\n")
for dataset in ["stdlib", "numpy"]:
    r = runs(f"rename-{dataset}")
    if not r:
        continue
    d, o, c = r["dlstatic"], r["objcopy + ar"], r["cp"]
    say(f"**{dataset}**: {facts[dataset + '-objects']} objects, {int(facts[dataset + '-bytes']) / 1e6:.1f} MB\n")
    say(table(["", "median", "min – max", "vs dlstatic"],
              [[name, seconds(x["median"]), spread(x), f"{x['median'] / d['median']:.2f}×"] for name, x in r.items()]))
    speedup, floor = o["median"] / d["median"], d["median"] / c["median"]
    say(f"\nobjcopy + ar / dlstatic = **{speedup:.1f}×** (target ≥ 10×: {verdict(speedup >= 10)}); "
        f"dlstatic / cp = **{floor:.2f}×** (target ≤ 1.5×: {verdict(floor <= 1.5)}).\n")
    headline.append([f"rename + archive, {dataset} ({facts[dataset + '-objects']} objects)",
                     f"{seconds(d['median'])} vs {seconds(o['median'])} objcopy + ar, {seconds(c['median'])} cp",
                     f"{speedup:.1f}× faster than objcopy + ar; {floor:.2f}× cp"])

say("## 2. Start-up and import\n")
say("The static payload against the dynamic interpreter built from the same CPython source (the build "
    "dlstatic cached), with the same third-party modules (the `.so` files pip installed, on PYTHONPATH). "
    "Both read precompiled `.pyc`; PYTHONDONTWRITEBYTECODE=1. Runs alternate between the two "
    "(`bench/paired.py`) and the ratio is the median of the per-pair ratios, so that load from "
    "elsewhere on the machine hits both alike.\n")
say(f"Stdlib set: `{facts['stdlib-set']}`.\n")
rows = []
for name, label in [("startup-pass", "`-c pass`"), ("startup-stdlib", "14 stdlib extension imports"), ("startup-numpy", "`import numpy`")]:
    r = runs(name)
    if not r:
        continue
    s, d = r["static"], r["dynamic"]
    ratio = export(name)["paired_ratio"]
    rows.append([label, seconds(s["median"]), spread(s), seconds(d["median"]), spread(d), f"{ratio:.2f}×", verdict(ratio <= 1.02)])
    headline.append([f"start-up, {label}", f"{seconds(s['median'])} static vs {seconds(d['median'])} dynamic", f"{ratio:.2f}×"])
say(table(["", "static", "min – max", "dynamic", "min – max", "static / dynamic (paired)", "not slower (±2%)"], rows))
number = lambda name: int(float((results / name).read_text().strip()))
instructions = {kind: number(f"instructions-pass-{kind}.txt") for kind in ["static", "dynamic"]}
faults = {kind: number(f"page-faults-pass-{kind}.txt") for kind in ["static", "dynamic"]}
say(f"\n`-c pass` under callgrind: {instructions['static']:,} instructions static, {instructions['dynamic']:,} dynamic "
    f"({instructions['static'] / instructions['dynamic']:.3f}×: the static interpreter executes less, having no "
    f"dynamic loader to run and no PLT to go through); page faults (perf stat): {faults['static']} static, "
    f"{faults['dynamic']} dynamic. What remains of a difference in `-c pass` is the kernel's, not the program's: "
    "exec and page-ins of one larger file instead of a small one plus shared libraries already in the page cache.")
static_it, dynamic_it = importtime("importtime-static.txt"), importtime("importtime-dynamic.txt")
say(f"\n`-X importtime` of the stdlib set: Σ self time {sum(static_it.values()) / 1000:.1f} ms static, "
    f"{sum(dynamic_it.values()) / 1000:.1f} ms dynamic (one run each, so indicative only). "
    "Largest differences (dynamic − static):\n")
diffs = sorted(((dynamic_it.get(m, 0) - static_it.get(m, 0), m) for m in set(static_it) | set(dynamic_it)), reverse=True)
say(table(["module", "static µs", "dynamic µs"], [[m, static_it.get(m, "–"), dynamic_it.get(m, "–")] for _, m in diffs[:6]]))
say("\nThe extension modules themselves are where the static interpreter saves: no file is mapped, no "
    "relocation is processed and no symbol is looked up through the dynamic loader at import; "
    "the pure-Python parts of each import cost the same in both.\n")

say("## 3. `dlstatic build` wall time\n")
noop, changed = runs("build-noop").get("warm no-op"), runs("build-one-changed").get("one module changed")
t = timings("timings-one-changed.txt")
link_time = t.get("link: pass 1", 0) + t.get("link: pass 2", 0)
rows = [["warm no-op", seconds(noop["median"]), spread(noop), "≤ 1 s", verdict(noop["median"] <= 1)],
        ["one module changed", seconds(changed["median"]), spread(changed), f"link ({link_time:.2f} s) + 2 s",
         verdict(changed["median"] <= link_time + 2)]]
if "cold-seconds" in facts:
    rows.append(["cold (empty cache: CPython and every package built)", seconds(float(facts["cold-seconds"])), "one run", "", ""])
say(table(["", "median", "min – max", "target", ""], rows))
headline.append(["`dlstatic build`, warm no-op / one module changed", f"{seconds(noop['median'])} / {seconds(changed['median'])}",
                 f"targets ≤ 1 s / link + 2 s = {link_time + 2:.1f} s"])
say("\n\"One module changed\" removes `_json`'s converted work files and OUT's build key, as after its capture "
    "changed: dlstatic re-analyzes, renames, archives and registers that one module, reuses the other 77, "
    "relinks, assembles the payload and verifies it.\n")
for name, label in [("timings-one-changed.txt", "one module changed"), ("timings-cold.txt", "cold")]:
    t = timings(name)
    if t:
        say(f"Stages, {label} (`build --timings`):\n")
        say(table(["stage", "seconds"], [[k, f"{v:.3f}"] for k, v in t.items()]))
        say("")
rows = []
for linker in ["bfd", "gold", "lld", "mold"]:
    r = runs(f"linker-{linker}")
    if r:
        x = next(iter(r.values()))
        rows.append([f"`--linker {linker}`", seconds(x["median"]), spread(x)])
if rows:
    say("One module changed, by linker:\n")
    say(table(["", "median", "min – max"], rows))
    say("")

say("## 4. `dlsym`: 10⁶ lookups\n")
say("`bench/dlsym/host.c` dlopens a plugin exporting 1000 functions and looks names up round-robin; the same "
    "source linked dynamically (glibc's `dlsym`) and with `dlstatic link` (the shim's hash table).\n")
r = runs("dlsym")
per_lookup = {name: re.search(r"([0-9.]+) ns each", (results / f"dlsym-{name}.txt").read_text()).group(1) for name in ["static", "dynamic"]}
s, g = r["dlstatic shim"], r["glibc dlsym"]
say(table(["", "process median", "min – max", "ns per lookup (host's own clock)"],
          [["dlstatic shim", seconds(s["median"]), spread(s), per_lookup["static"]],
           ["glibc dlsym", seconds(g["median"]), spread(g), per_lookup["dynamic"]]]))
ratio = s["median"] / g["median"]
say(f"\nshim / glibc = **{ratio:.2f}×** (target: not slower: {verdict(ratio <= 1.0)}).\n")
headline.append(["10⁶ `dlsym` lookups", f"{seconds(s['median'])} shim vs {seconds(g['median'])} glibc", f"{ratio:.2f}×"])

say("## 5. Sizes\n")
mb = lambda key: f"{int(facts[key]) / 1e6:.1f} MB"
say(table(["", "as built", "stripped"], [
    ["static `python3.11` (stdlib + default modules)", mb("size-static"), mb("size-static-stripped")],
    ["static, linked with `--link-arg=-Wl,--gc-sections`", mb("size-static-gc"), mb("size-static-gc-stripped")],
    [f"dynamic `python3.11` + Σ {int(facts['size-dynamic-files']) - 1} `.so`", mb("size-dynamic"), mb("size-dynamic-stripped")],
    [f"… + the {facts['system-libs-count']} system shared libraries they load (ldd), as shipped by Debian",
     mb("size-system-libs"), mb("size-system-libs")],
]))
say("\nThe static binary holds what the dynamic build takes from the system's shared libraries "
    "(OpenSSL, SQLite, ncurses, readline, libffi, glibc, …), but only the members it uses.")
dynamic_total = (int(facts["size-dynamic-stripped"]) + int(facts["size-system-libs"])) / 1e6
headline.append(["size, stripped", f"{mb('size-static-stripped')} static vs {dynamic_total:.1f} MB dynamic + its .so + system libs",
                 f"{int(facts['size-static-stripped']) / 1e6 / dynamic_total:.2f}×"])

say("\n## Headline\n")
say(table(["", "measured", "ratio"], headline))
print("\n".join(out))

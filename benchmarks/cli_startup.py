"""CLI start-up benchmark: how long ``neuromap --help`` and each ``neuromap CMD --help`` take in a fresh process.

Each is run ``--repeats`` times as the ``neuromap`` console script runs it (``neuromap.cli:main``; a new
interpreter every time, so nothing is cached in memory; the OS file cache is warm after the first run) and
reported as the median wall time, with whether the command's module pulled in torch. Goal: every median
<= 0.5 s (issue 13: --help answers without importing torch, Lava or hwsim). Wall time on a machine whose
cores other jobs share is noisy; the median of several runs is what is compared with the goal, the median
CPU time (user + system, what the process itself spent, which waiting for a busy core does not inflate) is
reported beside it, and so is a bare interpreter's start-up (``python -c pass``), the floor of both.

Last stdout line: one JSON object.

Usage: python benchmarks/cli_startup.py [--repeats 7] [--quick]   (--quick: 3 repeats)
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

from neuromap.cli import COMMANDS

GOAL_S = 0.5
# Runs the group as the console script does, then says whether torch was imported (the cost --help must avoid).
PROBE = ("import sys\nfrom neuromap.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
         "print('torch' in sys.modules, file=sys.stderr)")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _time(args: list[str], script: str = PROBE) -> tuple[float, float, bool]:
    """Wall time, CPU time (user + system) and whether torch was imported, of one fresh process."""
    start, cpu = time.perf_counter(), _children_cpu()
    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - start
    return seconds, _children_cpu() - cpu, done.stderr.strip().splitlines()[-1:] == ["True"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="3 repeats")
    args = parser.parse_args()
    repeats = 3 if args.quick else args.repeats
    floor = statistics.median(_time([], "pass")[0] for _ in range(repeats))
    print(f"{'python -c pass':<36} median {floor:.3f} s wall over {repeats} runs (the floor)")
    results = {}
    for name in ("", *COMMANDS):
        argv = [name, "--help"] if name else ["--help"]
        runs = [_time(argv) for _ in range(repeats)]
        median = statistics.median(wall for wall, _, _ in runs)
        cpu = statistics.median(c for _, c, _ in runs)
        label = f"neuromap {name} --help" if name else "neuromap --help"
        results[label] = {"median_s": round(median, 3), "median_cpu_s": round(cpu, 3),
                          "imports_torch": any(t for _, _, t in runs)}
        print(f"{label:<36} median {median:.3f} s wall, {cpu:.3f} s CPU over {repeats} runs"
              + ("  (imports torch)" if results[label]["imports_torch"] else ""))
    slowest = max(r["median_s"] for r in results.values())
    print(json.dumps({"benchmark": "cli_startup", "repeats": repeats, "goal_s": GOAL_S, "slowest_median_s": slowest,
                      "python_startup_median_s": round(floor, 3),
                      "meets_goal": slowest <= GOAL_S, "commands": results}, sort_keys=True))


if __name__ == "__main__":
    main()

"""How long the package's face takes: `import retriever`, `retriever --help` and a refusal of bad input, each
a whole fresh process, run in turn and reported as medians; with --before DIR, the same commands against
another checkout of the package (a `git worktree` of an older commit), importing it through PYTHONPATH.

    python scripts/bench_face.py [--runs 7] [--before /tmp/before]

Prints one Markdown row per command: median wall seconds now, before, and their ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT  # isort: skip (first: the offline environment)

COMMANDS = {
    "import retriever": ["-c", "import retriever"],
    "retriever --help": ["-m", "retriever.cli", "--help"],
    "retriever index missing.jsonl (a refusal)": ["-m", "retriever.cli", "index", "missing.jsonl", "--index",
                                                 "nowhere"],
}


def wall(args: list[str], pythonpath: Path | None, cwd: str) -> float:
    env = {**os.environ, **({"PYTHONPATH": str(pythonpath)} if pythonpath else {})}
    started = time.perf_counter()
    subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, check=False)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--before", type=Path, help="a checkout of the package to compare against")
    args = parser.parse_args()
    sides = {"now": ROOT, **({"before": args.before} if args.before else {})}
    print("| command | now s | before s | now / before |\n|---|---|---|---|")
    with tempfile.TemporaryDirectory() as cwd:  # no index home, no corpus: the refusal is the same for both
        for name, command in COMMANDS.items():
            times: dict[str, list[float]] = {side: [] for side in sides}
            for _ in range(args.runs + 1):  # the first round warms the file cache and is dropped
                for side, path in sides.items():
                    times[side].append(wall(command, path, cwd))
            now = statistics.median(times["now"][1:])
            before = statistics.median(times["before"][1:]) if args.before else None
            ratio = f"{now / before:.3f}x" if before else "-"
            print(f"| `{name}` | {now:.3f} | {f'{before:.3f}' if before else '-'} | {ratio} |", flush=True)


if __name__ == "__main__":
    main()

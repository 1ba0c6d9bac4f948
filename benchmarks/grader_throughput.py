"""How long the instructor's grader takes for a class: 20 (or N) submissions, ``--jobs 2``.

    .venv/bin/python benchmarks/grader_throughput.py [--submissions 20] [--jobs 2] [--unsafe-no-sandbox]

The submissions are copies of the course's solution and exercise notebooks (solved and untouched
alternately, cycling through the exercise sets), written to a temporary folder; the whole
``python -m utils.grade`` command is timed, start-up included.  Target: under 3 s per submission
(60 s for 20) on 2 idle cores.  ``--unsafe-no-sandbox`` measures the grader without its bubblewrap
sandbox (the cost of the sandbox is the difference).
"""
from __future__ import annotations

import argparse
import csv
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tools.make_exercises import generate   # noqa: E402  (the exercises, fresh from the solutions)


def make_class(folder: Path, count: int, solutions: Path) -> None:
    """``count`` submissions in ``folder``: solved and untouched notebooks alternately."""
    solved = sorted(solutions.glob("ex[0-9][0-9]_*.ipynb"))
    untouched = generate(solutions)
    for index in range(count):
        source = solved[(index // 2) % len(solved)]
        text = source.read_text() if index % 2 == 0 else untouched[source.name]
        (folder / f"student{index:02d}.ipynb").write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--solutions", type=Path, default=ROOT / "solutions")
    parser.add_argument("--execute", default="always", choices=["always", "when-needed"])
    parser.add_argument("--unsafe-no-sandbox", action="store_true", help="grade without the sandbox (to compare)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder, out = Path(tmp) / "class", Path(tmp) / "out"
        folder.mkdir()
        make_class(folder, args.submissions, args.solutions)
        cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "utils.grade", str(folder), "--out", str(out),
                                 "--jobs", str(args.jobs), "--solutions", str(args.solutions),
                                 "--execute", args.execute] + (["--unsafe-no-sandbox"] if args.unsafe_no_sandbox else []),
                                cwd=ROOT, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (cpu_after.ru_utime + cpu_after.ru_stime) - (cpu_before.ru_utime + cpu_before.ru_stime)
        rows = list(csv.DictReader((out / "grades.csv").open())) if result.returncode == 0 else []
    if result.returncode != 0:
        print(result.stdout, result.stderr, file=sys.stderr)
        return 1
    mode = "without sandbox" if args.unsafe_no_sandbox else "sandboxed"
    print(f"{args.submissions} submissions ({mode}), --jobs {args.jobs} --execute {args.execute}: {seconds:.1f} s "
          f"({seconds / args.submissions:.2f} s per submission, {len(rows)} graded rows); target < 3 s per submission")
    # The machine may be shared: CPU seconds of the whole process tree / cores is what an idle one needs.
    # (Sandboxed, the learner's processes are reaped inside their PID namespace: not counted here.)
    print(f"CPU time of the grader and everything it started: {cpu:.1f} s "
          f"(= {cpu / args.jobs:.1f} s of wall time on {args.jobs} idle cores); load average now "
          f"{os.getloadavg()[0]:.1f}")
    return 0 if seconds < 3 * args.submissions else 1


if __name__ == "__main__":
    sys.exit(main())

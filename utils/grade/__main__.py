"""``python -m utils.grade SUBMISSION_OR_DIR... --out DIR`` (see ``utils.grade``)."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import __doc__ as DOC
from . import sandbox
from .exercise_sets import add_extra_tests, load_exercise_sets
from .grader import grade_all
from .kernel import KernelLimits
from .gradebook import write_gradebook
from .report import summary_line, write_outputs

ROOT = Path(__file__).resolve().parents[2]
SOLUTIONS_VARIABLE = "CONVCOURSE_SOLUTIONS"
NO_SOLUTIONS = ("the solution notebooks (solutions/exNN_*.ipynb) are not part of the installed package: "
                "learners install it too, so they are never shipped. Pass --solutions DIR (your copy of the "
                "course repository's solutions/ folder) or set {variable}=DIR")


def default_solutions() -> Path | None:
    """The instructor's solutions when ``--solutions`` is not given: ``$CONVCOURSE_SOLUTIONS``, else the
    ``solutions/`` folder of the course checkout this package runs from (an editable install or the
    repository itself), else None: an installed wheel holds no solutions.  Course infrastructure."""
    configured = os.environ.get(SOLUTIONS_VARIABLE)
    if configured:
        return Path(configured)
    checkout = ROOT / "solutions"
    return checkout if checkout.is_dir() else None


def parse_args(argv: list[str] | None):
    """The command line of ``python -m utils.grade`` (``--help`` lists it).  Course infrastructure."""
    parser = argparse.ArgumentParser(prog="python -m utils.grade", description=DOC.splitlines()[0],
                                     epilog="exit status: 0 graded (whatever the grades), 1 grader fault, 2 usage error")
    parser.add_argument("paths", nargs="+", help="submitted notebooks or folders of them (searched recursively)")
    parser.add_argument("--out", required=True, type=Path, help="folder for grades.csv and feedback/")
    parser.add_argument("--jobs", type=int, default=1, help="submissions graded at the same time")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per cell and per test (default 30)")
    parser.add_argument("--total-timeout", type=float, default=300.0, help="seconds for a whole notebook (default 300)")
    parser.add_argument("--memory", type=float, default=4.0, help="GB of memory for the student's code (default 4)")
    parser.add_argument("--max-output", type=int, default=2**20, help="bytes of output kept per notebook")
    parser.add_argument("--execute", choices=["always", "when-needed"], default="always",
                        help="run each notebook in its kernel always (default; feedback lists cell errors) or only "
                             "when a test needs a value it computes (faster: functions are tested apart anyway)")
    parser.add_argument("--extra-tests", type=Path, help="folder of instructor-only tests exNN.py / exNN.ipynb")
    parser.add_argument("--solutions", type=Path, default=None,
                        help=f"the instructor's solution notebooks (default: ${SOLUTIONS_VARIABLE}, else solutions/ "
                             f"of the course checkout; an installed package ships none)")
    parser.add_argument("--gradebook", type=Path, help="also write this wide CSV: one row per learner, one column "
                        "per exercise set and a total (for a learning-management system; docs/teaching.md)")
    parser.add_argument("--unsafe-no-sandbox", action="store_true",
                        help="grade without the bubblewrap sandbox (learner code can then read solutions/, "
                             "other submissions and the grader's files): only for trusted notebooks")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Grade, write the outputs, print a summary line per submission; returns the exit status (0 graded,
    1 grader fault, 2 usage error).  Course infrastructure."""
    args = parse_args(argv)
    if args.jobs < 1 or args.timeout <= 0 or args.total_timeout <= 0 or args.memory <= 0:
        print("error: --jobs, --timeout, --total-timeout and --memory must be positive", file=sys.stderr)
        return 2
    if not args.unsafe_no_sandbox:
        reason = sandbox.check_bwrap()
        if reason:
            print(f"error: refusing to grade: learner code must run in a sandbox, and {reason}.\n"
                  "Install bubblewrap on this Linux machine, or pass --unsafe-no-sandbox to grade "
                  "trusted notebooks without it.", file=sys.stderr)
            return 2
    solutions = args.solutions if args.solutions is not None else default_solutions()
    if solutions is None:
        print("error: no --solutions given and " + NO_SOLUTIONS.format(variable=SOLUTIONS_VARIABLE), file=sys.stderr)
        return 2
    try:
        sets = load_exercise_sets(solutions)
        if not sets:
            raise ValueError(f"no exercise set (exNN_*.ipynb) in {solutions}")
        if args.extra_tests:
            add_extra_tests(sets, args.extra_tests)
    except (OSError, ValueError, SyntaxError) as exc:
        print(f"error: cannot load the exercise sets: {exc}", file=sys.stderr)
        return 2
    limits = KernelLimits(cell_seconds=args.timeout, total_seconds=args.total_timeout,
                          memory_bytes=int(args.memory * 2**30), max_output=args.max_output,
                          always_execute=args.execute == "always")
    try:
        submissions = grade_all(args.paths, sets, limits, args.jobs, sandboxed=not args.unsafe_no_sandbox)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:          # a learner process could not be ended: no grades
        print(f"GRADER FAULT: {exc}; grades.csv was not written", file=sys.stderr)
        return 1
    write_outputs(submissions, args.out)
    if args.gradebook:
        for note in write_gradebook(submissions, args.gradebook):
            print(f"gradebook: {note}", file=sys.stderr)
    for submission in submissions:
        print(summary_line(submission))
    faults = [s.path for s in submissions if s.grader_fault]
    for submission in submissions:
        for fault in submission.faults:
            print(f"{submission.path}: GRADER FAULT: {fault}", file=sys.stderr)
    return 1 if faults else 0


if __name__ == "__main__":
    sys.exit(main())

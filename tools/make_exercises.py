"""Regenerate the learner's exercise notebooks ``exercises/`` from the instructor's ``solutions/``.

    python -m tools.make_exercises            # write exercises/exNN_*.ipynb
    python -m tools.make_exercises --check    # exit 1 (and list files) when exercises/ is out of date

For every ``solutions/exNN_*.ipynb``: each ``### BEGIN SOLUTION`` ... ``### END SOLUTION`` region
becomes ``# YOUR CODE HERE`` + ``raise NotImplementedError()`` at the region's indentation (a
region inside a function body keeps its ``def`` line), hidden-test regions are removed, outputs
and execution counts are cleared, nbgrader metadata is kept, and every cell that will raise when
run as given (test cells, stubs at top level) is tagged ``raises-exception`` so that the exercise
notebook still executes top to bottom.  Same rules as nbgrader's ``generate_assignment``
(tests/test_exercises.py compares the two).
"""
from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import nbformat

from utils.grade.regions import (CODE_STUB, TEXT_STUB, is_solution_cell, is_test_cell,
                                 remove_hidden_tests, replace_solution_regions)

ROOT = Path(__file__).resolve().parent.parent
RAISES = "raises-exception"


def _tag(cell, tag: str) -> None:
    tags = cell.metadata.setdefault("tags", [])
    if tag not in tags:
        tags.append(tag)


def exercise_cell(cell):
    """The learner's version of one solution-notebook cell (a new cell; ``cell`` is not changed)."""
    cell = copy.deepcopy(cell)
    if cell.cell_type not in ("code", "markdown"):
        return cell
    stub = CODE_STUB if cell.cell_type == "code" else TEXT_STUB
    cell.source, indents = replace_solution_regions(cell.source, stub)
    if is_solution_cell(cell) and not indents:
        # like nbgrader: a solution cell without regions is replaced entirely
        cell.source, indents = "\n".join(stub), [""]
    if cell.cell_type == "markdown":
        return cell
    cell.source = remove_hidden_tests(cell.source)
    cell.outputs, cell.execution_count = [], None
    cell.metadata.pop("execution", None)
    # A stub at top level raises as soon as the cell runs; a test cell raises until solved.
    if is_test_cell(cell) or "" in indents:
        _tag(cell, RAISES)
    return cell


def exercise_notebook(solution):
    """The exercise notebook made from a solution notebook (both ``nbformat`` v4 nodes)."""
    exercise = copy.deepcopy(solution)
    exercise.cells = [exercise_cell(cell) for cell in solution.cells]
    exercise.metadata.pop("widgets", None)
    return exercise


def generate(solutions_dir: Path) -> dict[str, str]:
    """``{exercise file name: notebook text}`` for every ``exNN_*.ipynb`` in ``solutions_dir``."""
    generated = {}
    for path in sorted(solutions_dir.glob("ex[0-9][0-9]_*.ipynb")):
        solution = nbformat.read(path, as_version=4)
        exercise = exercise_notebook(solution)
        nbformat.validate(exercise)
        generated[path.name] = nbformat.writes(exercise) + "\n"
    return generated


def out_of_date(generated: dict[str, str], exercises_dir: Path) -> list[str]:
    """Names of exercise files that differ from ``generated``, are missing, or have no solution."""
    stale = [name for name, text in generated.items()
             if not (exercises_dir / name).exists() or (exercises_dir / name).read_text() != text]
    orphans = [p.name for p in sorted(exercises_dir.glob("ex[0-9][0-9]_*.ipynb")) if p.name not in generated]
    return stale + orphans


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report whether exercises/ is up to date")
    parser.add_argument("--solutions", type=Path, default=ROOT / "solutions")
    parser.add_argument("--exercises", type=Path, default=ROOT / "exercises")
    args = parser.parse_args(argv)
    generated = generate(args.solutions)
    stale = out_of_date(generated, args.exercises)
    if args.check:
        for name in stale:
            print(f"out of date: {args.exercises / name} (run python -m tools.make_exercises)")
        return 1 if stale else 0
    args.exercises.mkdir(exist_ok=True)
    for name, text in generated.items():
        (args.exercises / name).write_text(text)
    for name in stale:
        if name not in generated:
            (args.exercises / name).unlink()
            print(f"removed {name} (no solution notebook)")
    print(f"wrote {len(generated)} exercise notebook(s) to {args.exercises}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

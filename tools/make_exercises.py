"""Regenerate the learner's exercise notebooks ``exercises/`` from the instructor's ``solutions/``.

    python -m tools.make_exercises            # write exercises/exNN_*.ipynb
    python -m tools.make_exercises --check    # exit 1 (and list files) when exercises/ is out of date

For every ``solutions/exNN_*.ipynb``: each ``### BEGIN SOLUTION`` ... ``### END SOLUTION`` region
becomes ``# YOUR CODE HERE`` + ``raise NotImplementedError()`` at the region's indentation (a
region inside a function body keeps its ``def`` line), hidden-test regions are removed, outputs
and execution counts are cleared, nbgrader metadata is kept, and every cell that will raise when
run as given (test cells, stubs at top level) is tagged ``raises-exception`` so that the exercise
notebook still executes top to bottom.  Same rules as nbgrader's ``generate_assignment``
(tests/test_exercises.py compares the two), including its ``enforce_metadata``: a solution region in a
cell that is not a solution cell is an error (:class:`SolutionOutsideSolutionCell`, naming the notebook
and the cell) and nothing is written, since that cell would otherwise reach learners unmarked.
"""
from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import nbformat

from utils.grade.regions import (BEGIN_SOLUTION, CODE_STUB, TEXT_STUB, is_solution_cell, is_test_cell,
                                 nbgrader_meta, remove_hidden_tests, replace_solution_regions)

ROOT = Path(__file__).resolve().parent.parent
RAISES = "raises-exception"


def _tag(cell, tag: str) -> None:
    tags = cell.metadata.setdefault("tags", [])
    if tag not in tags:
        tags.append(tag)


class SolutionOutsideSolutionCell(ValueError):
    """A ``### BEGIN SOLUTION`` region in a cell without ``nbgrader.solution: true`` (nbgrader's
    ``ClearSolutions(enforce_metadata=True)`` refuses it too).  Course infrastructure."""


def describe_cell(cell, index: int) -> str:
    """``cell 7 (code, grade_id 'conv2d')`` for messages; ``index`` counts from 1.  Course infrastructure."""
    grade_id = nbgrader_meta(cell).get("grade_id")
    return f"cell {index} ({cell.cell_type}" + (f", grade_id {grade_id!r})" if grade_id else ")")


def exercise_cell(cell, where: str = "a cell"):
    """The learner's version of one solution-notebook cell (a new cell; ``cell`` is not changed).

    Raises :class:`SolutionOutsideSolutionCell` (its message starts with ``where``) when a solution
    region stands in a cell that is not a solution cell.  Course infrastructure."""
    if BEGIN_SOLUTION in cell.source and not is_solution_cell(cell):
        raise SolutionOutsideSolutionCell(
            f"{where}: a '### {BEGIN_SOLUTION}' region in a cell that is not a solution cell; mark the cell "
            f"as a solution (nbgrader metadata \"solution\": true) or remove the markers. Nothing was written.")
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


def exercise_notebook(solution, name: str = "notebook"):
    """The exercise notebook made from a solution notebook (both ``nbformat`` v4 nodes); ``name``
    (the file name) is used in error messages.  Course infrastructure."""
    exercise = copy.deepcopy(solution)
    exercise.cells = [exercise_cell(cell, f"{name}, {describe_cell(cell, i + 1)}")
                      for i, cell in enumerate(solution.cells)]
    exercise.metadata.pop("widgets", None)
    return exercise


def generate(solutions_dir: Path) -> dict[str, str]:
    """``{exercise file name: notebook text}`` for every ``exNN_*.ipynb`` in ``solutions_dir`` (all are
    made before anything is written).  Course infrastructure."""
    generated = {}
    for path in sorted(solutions_dir.glob("ex[0-9][0-9]_*.ipynb")):
        solution = nbformat.read(path, as_version=4)
        exercise = exercise_notebook(solution, path.name)
        nbformat.validate(exercise)
        generated[path.name] = nbformat.writes(exercise) + "\n"
    return generated


def out_of_date(generated: dict[str, str], exercises_dir: Path) -> list[str]:
    """Names of exercise files that differ from ``generated``, are missing, or have no solution."""
    stale = [name for name, text in generated.items()
             if not (exercises_dir / name).exists() or (exercises_dir / name).read_text() != text]
    orphans = [p.name for p in sorted(exercises_dir.glob("ex[0-9][0-9]_*.ipynb")) if p.name not in generated]
    return stale + orphans


def not_in_manifest(names) -> list[str]:
    """The solution files among ``names`` that the course manifest (``utils/course.py``) does not
    list as an exercise set.  Course infrastructure."""
    from utils import course
    return sorted(set(names) - {s.file for s in course.EXERCISE_SETS})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report whether exercises/ is up to date")
    parser.add_argument("--solutions", type=Path, default=ROOT / "solutions")
    parser.add_argument("--exercises", type=Path, default=ROOT / "exercises")
    args = parser.parse_args(argv)
    try:
        generated = generate(args.solutions)
    except SolutionOutsideSolutionCell as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    unlisted = not_in_manifest(generated) if args.solutions.resolve() == ROOT / "solutions" else []
    if unlisted:
        print(f"error: {unlisted} not in utils/course.py EXERCISE_SETS: add the set there first", file=sys.stderr)
        return 2
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

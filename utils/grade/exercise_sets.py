"""The instructor's side of an exercise set: test cells (with hidden tests), bound names, quizzes.

Everything here is read from the instructor's ``solutions/exNN_*.ipynb`` (and ``--extra-tests``),
never from a submission.
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from .regions import is_solution_cell, is_test_cell, nbgrader_meta, quiz_ids
from .student_code import parse_cells, strip_magics


@dataclass(frozen=True)
class TestCell:
    """One autograded test: ``source`` runs in the grader with the student's names bound. Course infrastructure."""
    grade_id: str
    points: float
    source: str
    hidden: bool = False          # instructor-only (--extra-tests): feedback shows pass/fail only


@dataclass
class ExerciseSet:
    """An exercise set as the grader needs it. Course infrastructure."""
    set_id: str
    title: str
    tests: list[TestCell]
    solution_names: set[str]      # names defined at top level by the solution cells
    quizzes: list[str]
    manual: list[TestCell] = field(default_factory=list)   # answers graded by hand (solution + grade)
    extra_tests: list[TestCell] = field(default_factory=list)
    solution_functions: set[str] = field(default_factory=set)   # of solution_names, those the solution defs

    def all_tests(self) -> list[TestCell]:
        return self.tests + self.extra_tests


def defined_names(source: str) -> set[str]:
    """Names bound at top level by ``source`` (defs, classes, assignments, loops, with), imports
    excepted: a test cell imports what it needs itself, a module is never the student's answer.
    Course infrastructure."""
    names: set[str] = set()
    for node in ast.parse(strip_magics(source)).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif not isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update(n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store))
    return names


def used_names(source: str) -> set[str]:
    """Names a test cell reads without binding them itself (by import or assignment). Course infrastructure."""
    tree = ast.parse(source)
    bound = {(a.asname or a.name).split(".")[0] for node in ast.walk(tree)
             if isinstance(node, (ast.Import, ast.ImportFrom)) for a in node.names}
    bound |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)} - bound


def _test_cell(cell, hidden: bool = False) -> TestCell:
    meta = nbgrader_meta(cell)
    return TestCell(str(meta["grade_id"]), float(meta.get("points", 0)), cell.source, hidden)


def load_exercise_set(path: Path) -> ExerciseSet:
    """Read an instructor solution notebook (metadata ``convcourse.exercise_set``). Course infrastructure."""
    nb = nbformat.read(path, as_version=4)
    info = nb.metadata.get("convcourse", {})
    if "exercise_set" not in info:
        raise ValueError(f"{path}: metadata convcourse.exercise_set is missing")
    names: set[str] = set()
    functions: set[str] = set()
    for cell in nb.cells:
        if cell.cell_type == "code" and is_solution_cell(cell):
            names |= defined_names(cell.source)
            functions |= parse_cells([(0, cell.source)]).function_names()
    return ExerciseSet(
        set_id=str(info["exercise_set"]), title=str(info.get("title", path.stem)),
        tests=[_test_cell(c) for c in nb.cells if is_test_cell(c)],
        solution_names=names,
        quizzes=[q for cell in nb.cells for q in quiz_ids(cell)],
        manual=[_test_cell(c) for c in nb.cells if is_solution_cell(c) and nbgrader_meta(c).get("grade")],
        solution_functions=functions)


def load_exercise_sets(solutions_dir: Path) -> dict[str, ExerciseSet]:
    """``{set id: ExerciseSet}`` for every ``exNN_*.ipynb`` in ``solutions_dir``. Course infrastructure."""
    sets = {}
    for path in sorted(Path(solutions_dir).glob("ex[0-9][0-9]_*.ipynb")):
        exercise_set = load_exercise_set(path)
        if exercise_set.set_id in sets:
            raise ValueError(f"{path}: exercise set {exercise_set.set_id} is defined twice")
        sets[exercise_set.set_id] = exercise_set
    return sets


# A test in an extra-tests .py file starts with a header line:   # %% grade_id=conv_hidden points=2
EXTRA_HEADER = re.compile(r"^# %%\s+grade_id=(?P<id>[\w.-]+)\s+points=(?P<points>[\d.]+)\s*$", re.M)


def _extra_tests_from_py(path: Path) -> list[TestCell]:
    text = path.read_text()
    headers = list(EXTRA_HEADER.finditer(text))
    if not headers:
        raise ValueError(f"{path}: no '# %% grade_id=NAME points=N' header found")
    ends = [h.start() for h in headers[1:]] + [len(text)]
    return [TestCell(h["id"], float(h["points"]), text[h.end():end].strip("\n"), hidden=True)
            for h, end in zip(headers, ends)]


def _extra_tests_from_ipynb(path: Path) -> list[TestCell]:
    nb = nbformat.read(path, as_version=4)
    return [_test_cell(c, hidden=True) for c in nb.cells if is_test_cell(c)]


def add_extra_tests(sets: dict[str, ExerciseSet], extra_dir: Path) -> None:
    """Attach instructor-only tests from ``extra_dir/exNN.py`` or ``extra_dir/exNN.ipynb`` to their sets.
    Course infrastructure."""
    for path in sorted(Path(extra_dir).glob("ex[0-9][0-9].*")):
        loader = {".py": _extra_tests_from_py, ".ipynb": _extra_tests_from_ipynb}.get(path.suffix)
        if loader is None:
            continue
        if path.stem not in sets:
            raise ValueError(f"{path}: there is no exercise set {path.stem} in the solutions")
        tests = loader(path)
        for test in tests:
            ast.parse(test.source)   # a syntax error is the instructor's: fail before grading anyone
        sets[path.stem].extra_tests.extend(tests)

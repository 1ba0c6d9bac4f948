"""What the grader takes from a submitted notebook: which cells are the student's code, and the
top-level imports and definitions of that code (for the runner)."""
from __future__ import annotations

import ast
import re

from .exercise_sets import ExerciseSet, strip_magics
from .regions import nbgrader_meta

# A cell that only shows a quiz: not run in the kernel (its answers are read from the saved file).
QUIZ_ONLY = re.compile(r"^\s*(from\s+utils\.quiz\s+import\s+show_quiz\s*)?(show_quiz\([^()]*\)\s*;?\s*)+$")


def student_code_cells(nb, exercise_set: ExerciseSet) -> list[int]:
    """Indices of the code cells that are the student's: all code cells except the set's test
    cells (matched by grade_id: the instructor's copies are used instead) and quiz-only cells."""
    test_ids = {test.grade_id for test in exercise_set.tests}
    return [i for i, cell in enumerate(nb.cells)
            if cell.get("cell_type") == "code"
            and nbgrader_meta(cell).get("grade_id") not in test_ids
            and not QUIZ_ONLY.match(cell.get("source", ""))]


KEPT = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def definitions(cells: list[tuple[int, str]]) -> tuple[list[str], set[str], list[str]]:
    """Top-level imports, defs and classes of the code cells ``(cell number, source)``, in order.

    Returns:
        (source snippets to execute in the runner, names of top-level functions,
         problems: cells that do not parse, named by position).
    """
    units, functions, problems = [], set(), []
    for number, source in cells:
        try:
            tree = ast.parse(strip_magics(source))
        except SyntaxError as exc:
            problems.append(f"cell {number} has a syntax error (line {exc.lineno}): {exc.msg}")
            continue
        for node in tree.body:
            if isinstance(node, KEPT):
                units.append(ast.unparse(node))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                functions.add(node.name)
            elif isinstance(node, (ast.Import, ast.ImportFrom, ast.ClassDef)):
                functions.difference_update(defined_by(node))
    return units, functions, problems


def defined_by(node: ast.stmt) -> set[str]:
    """Names an import or class statement binds (a later rebinding hides an earlier def)."""
    if isinstance(node, ast.ClassDef):
        return {node.name}
    return {(alias.asname or alias.name).split(".")[0] for alias in node.names}

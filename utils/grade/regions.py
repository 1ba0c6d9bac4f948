"""The nbgrader markup of an exercise set: solution regions, hidden-test regions, cell roles.

Shared by ``tools.make_exercises`` (which turns solutions into exercises) and the grader
(which reads the instructor's test cells).  The rules follow nbgrader's own preprocessors
(``ClearSolutions``, ``ClearHiddenTests``) so that both tools agree line for line.
"""
from __future__ import annotations

import re

BEGIN_SOLUTION, END_SOLUTION = "BEGIN SOLUTION", "END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"
CODE_STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")
TEXT_STUB = ("YOUR ANSWER HERE",)


def _indent_of(line: str) -> str:
    return re.match(r"\s*", line).group(0)


def _check_closed(inside: bool, begin: str, source: str) -> None:
    if inside:
        raise ValueError(f"a '### {begin}' region is never closed in cell:\n{source[:300]}")


def replace_solution_regions(source: str, stub: tuple[str, ...] = CODE_STUB) -> tuple[str, list[str]]:
    """Replace each solution region by ``stub``, indented like its ``BEGIN SOLUTION`` line.

    Args:
        source: a cell's source.
        stub: the lines put in place of each region.
    Returns:
        (new source, the indentation of each replaced region, in order).
    Course infrastructure.
    """
    kept, indents, inside = [], [], False
    for line in source.split("\n"):
        if BEGIN_SOLUTION in line:
            if inside:
                raise ValueError(f"nested '### {BEGIN_SOLUTION}' in cell:\n{source[:300]}")
            inside = True
            indents.append(_indent_of(line))
            kept.extend(indents[-1] + stub_line for stub_line in stub)
        elif END_SOLUTION in line:
            inside = False
        elif not inside:
            kept.append(line)
    _check_closed(inside, BEGIN_SOLUTION, source)
    return "\n".join(kept), indents


def remove_hidden_tests(source: str) -> str:
    """``source`` without its hidden-test regions (the marker lines included). Course infrastructure."""
    kept, inside = [], False
    for line in source.split("\n"):
        if BEGIN_HIDDEN in line:
            if inside:
                raise ValueError(f"nested '### {BEGIN_HIDDEN}' in cell:\n{source[:300]}")
            inside = True
        elif END_HIDDEN in line:
            inside = False
        elif not inside:
            kept.append(line)
    _check_closed(inside, BEGIN_HIDDEN, source)
    return "\n".join(kept)


def nbgrader_meta(cell) -> dict:
    """The cell's nbgrader metadata ({} when it has none). Course infrastructure."""
    return dict(cell.get("metadata", {}).get("nbgrader", {}) or {})


def is_test_cell(cell) -> bool:
    """An autograded test cell: a code cell with ``grade: true`` that is not a solution. Course infrastructure."""
    meta = nbgrader_meta(cell)
    return cell.get("cell_type") == "code" and bool(meta.get("grade")) and not meta.get("solution")


def is_solution_cell(cell) -> bool:
    """A cell marked ``nbgrader.solution: true`` (its solution regions become stubs).  Course infrastructure."""
    return bool(nbgrader_meta(cell).get("solution"))


QUIZ_CALL = re.compile(r"""show_quiz\(\s*["']([^"']+)["']\s*\)""")


def quiz_ids(cell) -> list[str]:
    """The quiz ids a code cell shows with ``show_quiz("id")``. Course infrastructure."""
    if cell.get("cell_type") != "code":
        return []
    return QUIZ_CALL.findall(cell.get("source", ""))

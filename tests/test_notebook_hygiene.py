"""Stored notebooks are lessons that were executed cleanly: checked on the files, without running them.

(nbval re-runs chapters/ and solutions/ and compares outputs; this file checks what nbval cannot:
tags, machine paths, warnings, lesson shape, and that every notebook, title, time, quiz and link
agrees with the course manifest ``utils/course.py``.)
"""
import ast
import re
from pathlib import Path

import nbformat
import pytest

from tools.execute_notebooks import machine_paths_in
from tools.nbval_platform import TAG as PLATFORM_TAG, stored_fingerprint
from utils import course

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = [ROOT / c.path for c in course.CHAPTERS]
SOLUTIONS = [ROOT / s.solution_path for s in course.EXERCISE_SETS]
STORED = CHAPTERS + SOLUTIONS
ALLOWED_TAGS = {"nbval-ignore-output", "raises-exception", PLATFORM_TAG}
LINK = re.compile(r"\]\(([^)#\s]+\.ipynb)(#[^)]*)?\)")
# A row of a chapter table: | 01 | [Images and local patterns](…/01_….ipynb) | what you do | 30 min |
TABLE_ROW = re.compile(r"^\| (\d\d) \| \[([^\]]+)\]\(([^)]+)\) \|.*\| (\d+) min \|$", re.MULTILINE)


def ids(paths):
    return [p.relative_to(ROOT).as_posix() for p in paths]


def read(path):
    return nbformat.read(path, as_version=4)


def code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def markdown_cells(nb):
    return [c for c in nb.cells if c.cell_type == "markdown"]


def quizzes_shown(nb):
    """The ids of ``show_quiz("id")`` calls in the code cells, in order."""
    shown = []
    for cell in code_cells(nb):
        source = "\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!")))
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) == "show_quiz":
                shown.append(node.args[0].value)
    return shown


# --- the manifest and the files -------------------------------------------------------------

def test_the_manifest_lists_exactly_the_stored_notebooks():
    on_disk = sorted(p.name for p in (ROOT / "chapters").glob("*.ipynb"))
    assert on_disk == sorted(c.file for c in course.CHAPTERS), "chapters/ and utils/course.py CHAPTERS differ"
    for folder in ("solutions", "exercises"):
        on_disk = sorted(p.name for p in (ROOT / folder).glob("*.ipynb"))
        assert on_disk == sorted(s.file for s in course.EXERCISE_SETS), \
            f"{folder}/ and utils/course.py EXERCISE_SETS differ"


def test_the_manifest_is_in_order_and_consistent():
    numbers = [c.number for c in course.CHAPTERS]
    assert numbers == [f"{i:02d}" for i in range(len(numbers))], "chapters are numbered 00, 01, … without gaps"
    for c in course.CHAPTERS:
        assert re.fullmatch(rf"{c.number}_[a-z0-9_]+\.ipynb", c.file), c.file
        assert c.quizzes and c.quizzes[0] == c.number, f"chapter {c.number}'s own quiz is {c.number!r}"
        assert c.exercise_set is None or course.exercise_set(c.exercise_set), c.number
    assert [s.id for s in course.EXERCISE_SETS] == sorted(s.id for s in course.EXERCISE_SETS)
    for s in course.EXERCISE_SETS:
        assert re.fullmatch(rf"{s.id}_[a-z0-9_]+\.ipynb", s.file) and re.fullmatch(r"ex\d\d", s.id), s.file
        assert course.chapter(s.chapter).exercise_set == s.id, f"chapter {s.chapter} does not link to {s.id}"
        assert s.quizzes and s.quizzes[0] == s.id, f"{s.id}'s own quiz is {s.id!r}"
    ids_ = course.quiz_ids()
    assert len(ids_) == len(set(ids_)), "a quiz id is used twice"


def test_every_quiz_of_the_manifest_has_a_source_and_is_compiled():
    sources = sorted(p.stem for p in (ROOT / "tools" / "quiz_sources").glob("*.json"))
    assert sources == sorted(course.quiz_ids()), "tools/quiz_sources/ and the manifest's quizzes differ"
    for quiz_id in course.quiz_ids():
        assert (ROOT / "utils" / "quizzes" / f"{quiz_id}.json").exists(), \
            f"quiz {quiz_id} is not compiled: run python -m tools.build_quizzes {quiz_id}"


@pytest.mark.parametrize("table, prefix", [("README.md", "chapters/"), ("chapters/00_start_here.ipynb", "")])
def test_chapter_tables_agree_with_the_manifest(table, prefix):
    text = (ROOT / table).read_text() if table.endswith(".md") else \
        "\n".join(c.source for c in markdown_cells(read(ROOT / table)))
    rows = [(n, title, link, int(minutes)) for n, title, link, minutes in TABLE_ROW.findall(text)]
    expected = [(c.number, c.title, prefix + c.file, c.minutes) for c in course.CHAPTERS]
    assert rows == expected, f"{table}'s chapter table (number, title, link, minutes) is not utils/course.py's"


@pytest.mark.parametrize("path", CHAPTERS, ids=ids(CHAPTERS))
def test_chapter_title_navigation_and_quizzes_follow_the_manifest(path):
    entry = course.chapter(path.stem[:2])
    nb = read(path)
    heading = f"# {int(entry.number)} · {entry.title}"
    assert nb.cells[0].source.startswith(heading), f"the notebook should start with {heading!r}"
    nav = course.navigation(entry.number)
    top = [line for cell in nb.cells[:2] if cell.cell_type == "markdown" for line in cell.source.splitlines()]
    assert nav in top, f"the navigation line {nav!r} is not at the top (first two cells)"
    assert nb.cells[-1].cell_type == "markdown" and nb.cells[-1].source.strip().splitlines()[-1] == nav, \
        f"the last cell does not end with the navigation line {nav!r}"
    assert quizzes_shown(nb) == list(entry.quizzes), "the quizzes shown are not the manifest's"


@pytest.mark.parametrize("path", SOLUTIONS, ids=ids(SOLUTIONS))
def test_exercise_set_title_links_and_quizzes_follow_the_manifest(path):
    entry = course.exercise_set(path.stem[:4])
    practised = course.chapter(entry.chapter)
    nb = read(path)
    assert nb.metadata["convcourse"] == {"exercise_set": entry.id, "title": practised.title}
    heading = f"# Exercise set {entry.id[2:]} — {practised.title}"
    assert nb.cells[0].source.startswith(heading), f"the notebook should start with {heading!r}"
    top, bottom = course.exercise_links(entry.id)
    assert top in nb.cells[0].source, f"the first cell does not link to the chapter: {top!r}"
    ends = [line for cell in markdown_cells(nb)[-2:] for line in cell.source.splitlines()]
    assert bottom in ends, f"the last two text cells do not end with {bottom!r}"
    assert quizzes_shown(nb) == list(entry.quizzes), "the quizzes shown are not the manifest's"


# --- how the notebooks were executed, and lesson shape ----------------------------------------

@pytest.mark.parametrize("path", STORED, ids=ids(STORED))
def test_stored_executed_in_order_with_the_python3_kernel(path):
    nb = read(path)
    assert nb.metadata.kernelspec.name == "python3"
    counts = [c.execution_count for c in code_cells(nb) if c.source.strip()]
    assert None not in counts, "some code cells were never executed: run tools.execute_notebooks"
    assert counts == sorted(counts), "cells were executed out of order"


@pytest.mark.parametrize("path", STORED, ids=ids(STORED))
def test_no_machine_paths_warnings_or_unexpected_errors(path):
    nb = read(path)
    assert machine_paths_in(nb) == []
    for cell in code_cells(nb):
        tags = set(cell.metadata.get("tags", []))
        for out in cell.outputs:
            if out.output_type == "error":
                assert "raises-exception" in tags, f"unexpected error in cell:\n{cell.source[:200]}"
            if out.output_type == "stream" and out.name == "stderr":
                assert "Warning" not in out.text, f"a warning is stored in the outputs:\n{out.text[:300]}"


@pytest.mark.parametrize("path", STORED, ids=ids(STORED))
def test_only_known_tags_and_ignored_outputs_still_assert(path):
    for cell in code_cells(read(path)):
        tags = set(cell.metadata.get("tags", []))
        assert tags <= ALLOWED_TAGS, f"unknown tags {tags - ALLOWED_TAGS}"
        if tags & {"nbval-ignore-output", PLATFORM_TAG}:
            # An output that is not always compared must still be checked by the cell itself.
            assert "assert" in cell.source, f"{tags} cell without an assert:\n{cell.source[:300]}"
        assert not tags >= {"nbval-ignore-output", PLATFORM_TAG}, "a cell is either ignored or platform-dependent"


@pytest.mark.parametrize("path", STORED, ids=ids(STORED))
def test_platform_dependent_cells_name_the_machine_that_stored_them(path):
    nb = read(path)
    tagged = any(PLATFORM_TAG in c.metadata.get("tags", []) for c in code_cells(nb))
    # Without it nbval would compare them nowhere strictly; tools.execute_notebooks stores it.
    assert (stored_fingerprint(nb) is not None) == tagged, "run tools.execute_notebooks on this notebook"


@pytest.mark.parametrize("path", CHAPTERS, ids=ids(CHAPTERS))
def test_chapter_is_a_lesson(path):
    nb = read(path)
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# "), "a chapter starts with its title"
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown").lower()
    if path.stem != "00_start_here":
        assert "objective" in markdown or "you will" in markdown, "objectives at the top"
        assert "summary" in markdown, "a summary at the end"
        assert "00_start_here.ipynb" in markdown, "a link back to the course map"
    assert any("show_quiz(" in c.source for c in code_cells(nb)), "a quiz at the end"


@pytest.mark.parametrize("path", STORED, ids=ids(STORED))
def test_links_resolve(path):
    markdown = "\n".join(c.source for c in markdown_cells(read(path)))
    for target in {m.group(1) for m in LINK.finditer(markdown)}:
        assert (path.parent / target).resolve().exists(), f"broken link to {target}"


WITH_SETS = [ROOT / c.path for c in course.CHAPTERS if c.exercise_set]


@pytest.mark.parametrize("path", WITH_SETS, ids=ids(WITH_SETS))
def test_chapter_links_to_its_exercise_set(path):
    entry = course.chapter(path.stem[:2])
    markdown = "\n".join(c.source for c in markdown_cells(read(path)))
    exercise = f"../{course.exercise_set(entry.exercise_set).exercise_path}"
    assert f"]({exercise})" in markdown, f"chapter does not link to {exercise}"


# --- the tools refuse notebooks the manifest does not list ------------------------------------

def test_execute_notebooks_refuses_a_chapter_the_manifest_does_not_list(tmp_path, monkeypatch):
    from tools import execute_notebooks
    monkeypatch.setattr(execute_notebooks, "ROOT", tmp_path)
    (tmp_path / "chapters").mkdir()
    listed, unlisted = tmp_path / course.CHAPTERS[1].path, tmp_path / "chapters" / "11_not_listed.ipynb"
    for path in (listed, unlisted):
        nbformat.write(nbformat.v4.new_notebook(), path)
    assert execute_notebooks.notebook_paths([str(listed)]) == [listed]
    with pytest.raises(SystemExit, match="11_not_listed.ipynb"):
        execute_notebooks.notebook_paths([str(tmp_path / "chapters")])


def test_make_exercises_refuses_a_solution_the_manifest_does_not_list(tmp_path, monkeypatch, capsys):
    from tools import make_exercises
    monkeypatch.setattr(make_exercises, "ROOT", tmp_path)
    (tmp_path / "solutions").mkdir()
    nbformat.write(nbformat.v4.new_notebook(), tmp_path / "solutions" / "ex99_not_listed.ipynb")
    args = ["--solutions", str(tmp_path / "solutions"), "--exercises", str(tmp_path / "exercises")]
    assert make_exercises.main(args) == 2
    assert "ex99_not_listed.ipynb" in capsys.readouterr().err and not (tmp_path / "exercises").exists()

"""Stored notebooks are lessons that were executed cleanly: checked on the files, without running them.

(nbval re-runs chapters/ and solutions/ and compares outputs; this file checks what nbval cannot:
tags, machine paths, warnings, links, lesson shape.)
"""
import re
from pathlib import Path

import nbformat
import pytest

from tools.execute_notebooks import machine_paths_in

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
STORED = CHAPTERS + SOLUTIONS
ALLOWED_TAGS = {"nbval-ignore-output", "raises-exception"}
LINK = re.compile(r"\]\(([^)#\s]+\.ipynb)(#[^)]*)?\)")


def ids(paths):
    return [p.relative_to(ROOT).as_posix() for p in paths]


def read(path):
    return nbformat.read(path, as_version=4)


def code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def test_all_eleven_chapters_exist():
    names = [p.stem for p in CHAPTERS]
    assert [n[:2] for n in names] == [f"{i:02d}" for i in range(11)], names


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
        if "nbval-ignore-output" in tags:
            # An ignored output must still be checked by the cell itself.
            assert "assert" in cell.source, f"ignored cell without an assert:\n{cell.source[:300]}"


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


@pytest.mark.parametrize("path", CHAPTERS, ids=ids(CHAPTERS))
def test_links_to_neighbouring_chapters_exist(path):
    nb = read(path)
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    targets = {m.group(1) for m in LINK.finditer(markdown)}
    for target in targets:
        assert (path.parent / target).resolve().exists(), f"broken link to {target}"
    index = CHAPTERS.index(path)
    if index + 1 < len(CHAPTERS):
        assert CHAPTERS[index + 1].name in targets, "no link to the next chapter"
    if index > 0:
        assert CHAPTERS[index - 1].name in targets, "no link to the previous chapter"


# Chapter 10 (the finale) has no exercise set of its own: its task is the last one of ex07.
EXERCISE_OF = {"10": "ex07_building_a_cnn"}


@pytest.mark.parametrize("path", CHAPTERS[1:], ids=ids(CHAPTERS[1:]))
def test_chapter_links_to_its_exercise_set(path):
    markdown = "\n".join(c.source for c in read(path).cells if c.cell_type == "markdown")
    number = path.stem[:2]
    exercise = f"../exercises/{EXERCISE_OF.get(number, f'ex{number}_{path.stem[3:]}')}.ipynb"
    assert exercise in markdown, f"chapter does not link to {exercise}"
    assert (path.parent / exercise).resolve().exists()


def test_the_last_chapter_links_back_to_the_map_instead_of_a_next_chapter():
    markdown = "\n".join(c.source for c in read(CHAPTERS[-1]).cells if c.cell_type == "markdown")
    assert "next →" not in markdown and "00_start_here.ipynb" in markdown

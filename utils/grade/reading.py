"""Reading one submitted file: every way it can be broken is that file's problem, named by field.

:func:`read_notebook` never raises for a bad file: it returns the notebook (nbformat v4 node), the
exercise set id its metadata names, and a problem (text naming the field, or None).  Quiz answer
records are read one by one (:func:`quiz_answers`): a malformed record makes only its own quiz's
rows invalid.  :func:`duplicate_notes` flags two hand-ins of one learner for one set (the instructor
chooses one; the gradebook leaves that cell empty).
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

MAX_NOTEBOOK_BYTES = 100 * 2**20
ANSWERS_MIME = "application/vnd.convcourse.quiz-answers+json"
CELL_TYPES = ("code", "markdown", "raw")


def _kind(value) -> str:
    names = {dict: "an object", list: "a list", str: "a string", int: "an integer", float: "a number",
             bool: "a boolean", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _shown(value) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def exercise_set_problem(raw: dict, known: list[str]) -> tuple[str | None, str | None]:
    """(set id, problem) from ``metadata.convcourse.exercise_set`` of the raw notebook JSON. Course infrastructure."""
    metadata = raw.get("metadata", {})
    if not isinstance(metadata, dict):
        return None, f"field metadata is {_kind(metadata)}, not an object"
    if "convcourse" not in metadata:
        return None, "not an exercise notebook of this course (metadata convcourse.exercise_set missing)"
    info = metadata["convcourse"]
    if not isinstance(info, dict):
        return None, f"metadata convcourse is {_kind(info)} ({_shown(info)}), not an object"
    if "exercise_set" not in info:
        return None, "not an exercise notebook of this course (metadata convcourse.exercise_set missing)"
    set_id = info["exercise_set"]
    if not isinstance(set_id, str):
        return None, (f"metadata convcourse.exercise_set is {_kind(set_id)} ({_shown(set_id)}); expected the "
                      f"name of one exercise set ({', '.join(known)})")
    if set_id not in known:
        return None, f"unknown exercise set {set_id!r} in metadata convcourse.exercise_set (known: {', '.join(known)})"
    return set_id, None


def structure_problem(raw: dict) -> str | None:
    """What makes ``raw`` (parsed JSON) not a Jupyter notebook of format 4, naming the field; None if fine.
    Course infrastructure."""
    version = raw.get("nbformat")
    if "nbformat" not in raw:
        return "field nbformat is missing: not a Jupyter notebook"
    if not isinstance(version, int) or isinstance(version, bool) or version not in (3, 4):
        return f"field nbformat is {_shown(version)}; this grader reads Jupyter notebooks of format 4"
    if version == 3:
        return None                 # converted by nbformat, then checked again
    if "cells" not in raw:
        return "field cells is missing"
    cells = raw["cells"]
    if not isinstance(cells, list):
        return f"field cells is {_kind(cells)}, not a list"
    for number, cell in enumerate(cells, start=1):
        where = f"cell {number}"
        if not isinstance(cell, dict):
            return f"{where} is {_kind(cell)}, not an object"
        if cell.get("cell_type") not in CELL_TYPES:
            return f"{where}: field cell_type is {_shown(cell.get('cell_type'))}; expected code, markdown or raw"
        source = cell.get("source", "")
        if isinstance(source, list):
            bad = next((line for line in source if not isinstance(line, str)), None)
            if bad is not None or any(not isinstance(line, str) for line in source):
                return f"{where}: field source is a list holding {_kind(bad)} ({_shown(bad)}); expected lines of text"
        elif not isinstance(source, str):
            return f"{where}: field source is {_kind(source)} ({_shown(source)}); expected text"
        metadata = cell.get("metadata", {})
        if not isinstance(metadata, dict):
            return f"{where}: field metadata is {_kind(metadata)}, not an object"
        nbgrader = metadata.get("nbgrader", {})
        if not isinstance(nbgrader, dict):
            return f"{where}: metadata nbgrader is {_kind(nbgrader)} ({_shown(nbgrader)}), not an object"
        if "grade_id" in nbgrader and not isinstance(nbgrader["grade_id"], str):
            return f"{where}: metadata nbgrader.grade_id is {_kind(nbgrader['grade_id'])}, not a string"
        if cell["cell_type"] == "code" and not isinstance(cell.get("outputs", []), list):
            return f"{where}: field outputs is {_kind(cell.get('outputs'))}, not a list"
    return None


def read_notebook(path: str, known: list[str]):
    """(notebook node or None, exercise set id or None, problem or None) for the file ``path``.

    The set id is returned even when the rest of the file is broken, so that the file's rows can
    be the set's questions (each ``invalid``) rather than one anonymous row. Course infrastructure."""
    import nbformat
    file = Path(path)
    if file.stat().st_size > MAX_NOTEBOOK_BYTES:
        return None, None, f"file is larger than {MAX_NOTEBOOK_BYTES} bytes"
    try:
        text = file.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, None, f"not a readable Jupyter notebook: not UTF-8 text (byte {exc.start})"
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, None, f"not a readable Jupyter notebook: not JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"
    except RecursionError:
        return None, None, "not a readable Jupyter notebook: JSON nested too deeply"
    if not isinstance(raw, dict):
        return None, None, f"not a readable Jupyter notebook: the file holds {_kind(raw)}, not a notebook object"
    set_id, problem = exercise_set_problem(raw, known)
    problem = structure_problem(raw) or problem
    if problem:
        return None, set_id, problem
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            nb = nbformat.reads(text, as_version=4)
    except Exception as exc:                                     # noqa: BLE001 - any other malformation
        return None, set_id, f"not a readable Jupyter notebook ({str(exc).splitlines()[0][:200] if str(exc) else 'unreadable'})"
    problem = structure_problem(json.loads(nbformat.writes(nb))) if raw.get("nbformat") == 3 else None
    return (None if problem else nb), set_id, problem


def quiz_answers(nb) -> tuple[dict[str, dict], dict[str, str]]:
    """(``{quiz id: {question id: answer}}``, ``{quiz id: problem}``) from the notebook's answer records.

    Each record is read on its own: a malformed one makes only its quiz invalid (``problems``), and a
    malformed answer inside a record is left for the question's grading to refuse. Course infrastructure."""
    answers: dict[str, dict] = {}
    problems: dict[str, str] = {}
    for number, cell in enumerate(nb.get("cells", []), start=1):
        outputs = cell.get("outputs", []) if isinstance(cell, dict) else []
        for output in outputs if isinstance(outputs, list) else []:
            data = output.get("data", {}) if isinstance(output, dict) else {}
            record = data.get(ANSWERS_MIME) if isinstance(data, dict) else None
            if record is None:
                continue
            if isinstance(record, str):          # some writers store JSON mime data as text
                try:
                    record = json.loads(record)
                except json.JSONDecodeError:
                    problems.setdefault("?", f"cell {number}: a quiz answer record is not JSON")
                    continue
            if not isinstance(record, dict) or "quiz" not in record:
                problems.setdefault("?", f"cell {number}: a quiz answer record has no field quiz")
                continue
            quiz_id = str(record["quiz"])
            given = record.get("answers", {})
            if not isinstance(given, dict):
                problems[quiz_id] = (f"cell {number}: field answers of the quiz {quiz_id} record is "
                                     f"{_kind(given)}, not an object")
                answers.pop(quiz_id, None)
                continue
            answers[quiz_id] = {str(k): v for k, v in given.items()}
            problems.pop(quiz_id, None)
    return answers, problems


def duplicate_notes(entries: list[tuple[str, str, str]]) -> dict[str, str]:
    """``{path: note}`` for every hand-in whose (learner, set) appears more than once.

    Args:
        entries: (path, learner, set id) of each readable submission.
    Course infrastructure.
    """
    groups: dict[tuple[str, str], list[str]] = {}
    for path, learner, set_id in entries:
        groups.setdefault((learner, set_id), []).append(path)
    notes = {}
    for (learner, set_id), paths in groups.items():
        if len(paths) > 1:
            for path in paths:
                others = ", ".join(p for p in paths if p != path)
                notes[path] = (f"{len(paths)} hand-ins for one learner ({learner}, {set_id}): choose one "
                               f"(also {others}); each is graded here, and the gradebook leaves {learner}'s "
                               f"{set_id} cell empty until one is kept")
    return notes

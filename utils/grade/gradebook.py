"""The wide gradebook (``python -m utils.grade ... --gradebook FILE``; docs/teaching.md): one row per
learner, one column per exercise set and a ``total``, the CSV shape learning-management systems
import.  ``grades.csv`` (:mod:`.report`) keeps every question; this file keeps one number per set."""
from __future__ import annotations

import csv
import os
import tempfile
from pathlib import Path

from .grader import Submission
from .report import totals


def gradebook_rows(submissions: list[Submission]) -> tuple[list[str], dict[str, dict[str, float | None]], list[str]]:
    """(set ids in order, ``{learner: {set id: automatic points, or None}}``, notes).

    The learner of a submission is ``Submission.learner`` (:func:`utils.grade.layout.learner_of`).
    A learner with several hand-ins of one set gets ``None`` there (the cell is left empty) and a note
    naming every copy with its points: the instructor chooses one, as with nbgrader or otter, where
    one learner has one submission.  No automatic best-of: K copies with different quiz answers
    would otherwise find the graded answers by trying.  Invalid notebooks have no set, hence no
    column (they have their row in grades.csv).
    Course infrastructure.
    """
    copies: dict[tuple[str, str], list[tuple[str, float]]] = {}
    for s in submissions:
        if s.exercise_set is None:
            continue
        copies.setdefault((s.learner or s.path, s.exercise_set.set_id), []).append((s.path, totals(s)[0]))
    book: dict[str, dict[str, float | None]] = {}
    notes = [f"{s.learner}: {s.path}: {row.feedback}" for s in submissions for row in s.rows
             if row.question == "learner" and row.status == "needs-review"]    # layout.identity_notes
    for (learner, set_id), handed in sorted(copies.items()):
        if len(handed) == 1:
            book.setdefault(learner, {})[set_id] = handed[0][1]
            continue
        book.setdefault(learner, {})[set_id] = None
        listed = ", ".join(f"{path} ({points:g} points)" for path, points in sorted(handed))
        notes.append(f"{learner}: {len(handed)} hand-ins for one learner of {set_id}: choose one ({listed}); "
                     f"the gradebook leaves {learner}'s {set_id} cell and total empty until you keep one")
    return sorted({set_id for row in book.values() for set_id in row}), book, notes


def write_gradebook(submissions: list[Submission], path: Path) -> list[str]:
    """Write the gradebook CSV to ``path`` (temporary file, then renamed); returns the notes.

    Columns ``learner, <set id>..., total``; a cell is the set's automatic points (``:g``), empty
    when the learner handed that set in not at all or more than once (then a note names the copies,
    and ``total`` is empty too: it would leave the set out); ``total`` adds the learner's sets.
    Course infrastructure.
    """
    set_ids, book, notes = gradebook_rows(submissions)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".gradebook-", suffix=".csv")
    try:
        with os.fdopen(handle, "w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            writer.writerow(["learner", *set_ids, "total"])
            for learner in sorted(book):
                row = book[learner]
                undecided = any(v is None for v in row.values())
                writer.writerow([learner, *(f"{row[i]:g}" if row.get(i) is not None else "" for i in set_ids),
                                 "" if undecided else f"{sum(row.values()):g}"])
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
    return notes

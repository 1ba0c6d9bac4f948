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


def gradebook_rows(submissions: list[Submission]) -> tuple[list[str], dict[str, dict[str, float]], list[str]]:
    """(set ids in order, ``{learner: {set id: automatic points}}``, notes).

    The learner of a submission is ``Submission.learner`` (:func:`utils.grade.layout.learner_of`).
    A learner with two hand-ins of one set keeps the higher score, and a note says so.  Invalid
    notebooks have no set, hence no column (they have their row in grades.csv).
    Course infrastructure.
    """
    best: dict[str, dict[str, float]] = {}
    notes = []
    for s in submissions:
        if s.exercise_set is None:
            continue
        learner, set_id = s.learner or s.path, s.exercise_set.set_id
        points, row = totals(s)[0], best.setdefault(learner, {})
        if set_id in row:
            notes.append(f"{learner} handed in {set_id} more than once: the gradebook keeps the higher score")
        row[set_id] = max(points, row.get(set_id, points))
    return sorted({set_id for row in best.values() for set_id in row}), best, notes


def write_gradebook(submissions: list[Submission], path: Path) -> list[str]:
    """Write the gradebook CSV to ``path`` (temporary file, then renamed); returns the notes.

    Columns ``learner, <set id>..., total``; a cell is the set's automatic points (``:g``), empty
    when the learner handed that set in not at all; ``total`` adds the learner's sets.
    Course infrastructure.
    """
    set_ids, best, notes = gradebook_rows(submissions)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".gradebook-", suffix=".csv")
    try:
        with os.fdopen(handle, "w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            writer.writerow(["learner", *set_ids, "total"])
            for learner in sorted(best):
                row = best[learner]
                writer.writerow([learner, *(f"{row[i]:g}" if i in row else "" for i in set_ids),
                                 f"{sum(row.values()):g}"])
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
    return notes

"""The grader's outputs: ``grades.csv`` (atomic write), one feedback file per submission, and
one summary line per submission."""
from __future__ import annotations

import csv
import os
import re
import tempfile
from pathlib import Path

from .grader import Submission

COLUMNS = ["submission", "learner", "exercise_set", "question", "points", "max_points", "status"]
ANSI = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)?|[@-Z\\-_])")
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def plain(text: str) -> str:
    """``text`` (which may come from learner code) without ANSI sequences, with every other
    control character (carriage return, backspace, bidi overrides, ...) shown as an escape, so
    that it cannot redraw or imitate the grader's own lines.  Newlines are kept. Course infrastructure."""
    text = ANSI.sub("", str(text))
    return CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 256 else f"\\u{ord(m.group()):04x}", text)


def write_csv(submissions: list[Submission], path: Path) -> None:
    """All rows of all submissions to ``path``, written to a temporary file first then renamed.
    Course infrastructure."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".grades-", suffix=".csv")
    try:
        with os.fdopen(handle, "w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            writer.writerow(COLUMNS)
            for s in submissions:
                set_id = s.exercise_set.set_id if s.exercise_set else ""
                for row in s.rows:
                    writer.writerow([s.path, s.learner, set_id, row.question, f"{row.points:g}", f"{row.max_points:g}", row.status])
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def totals(submission: Submission) -> tuple[float, float, int]:
    """(automatic points, maximum points, number of questions needing review). Course infrastructure."""
    return (sum(r.points for r in submission.rows), sum(r.max_points for r in submission.rows),
            sum(r.status == "needs-review" for r in submission.rows))


def summary_line(submission: Submission) -> str:
    """``points/max  path  [set, N to review]`` (``[GRADER FAULT]`` appended on a fault).  Course infrastructure."""
    if submission.exercise_set is None:
        return plain(f"INVALID  {submission.path}: {submission.rows[0].feedback}").replace("\n", " ")
    points, maximum, review = totals(submission)
    extra = f", {review} to review by hand" if review else ""
    fault = "  [GRADER FAULT]" if submission.grader_fault else ""
    return plain(f"{points:g}/{maximum:g}  {submission.path}  [{submission.exercise_set.set_id}{extra}]{fault}").replace("\n", " ")


def feedback_text(submission: Submission) -> str:
    """What the student may read: statuses, points, check messages (never hidden-test source).
    Course infrastructure."""
    lines = [plain(f"Feedback for {submission.path}").replace("\n", " ")]
    if submission.exercise_set is None:
        return "\n".join(lines + [f"Not graded: {submission.rows[0].feedback}", ""])
    points, maximum, _ = totals(submission)
    review = sum(r.status == "needs-review" and r.max_points > 0 for r in submission.rows)   # answers, not flags
    lines += [f"Exercise set {submission.exercise_set.set_id}: {submission.exercise_set.title}",
              f"Automatic points: {points:g} of {maximum:g}" + (f" ({review} answer(s) to be graded by hand)" if review else ""), ""]
    for row in submission.rows:
        label = "instructor test" if row.question.startswith("extra:") else row.question
        lines.append(f"[{row.status}] {label}: {row.points:g}/{row.max_points:g}")
        # Every line of a message is indented: only the grader writes at the margin.
        lines += ["    " + line for line in plain(row.feedback).splitlines() if line.strip()]
    notes = submission.notes                  # the grader's own faults (submission.faults) are not the learner's
    if notes:
        lines += ["", "While running your notebook:"]
        for note in notes:
            first, *rest = plain(note).splitlines() or [""]
            lines += [f"  - {first}"] + [f"    | {line}" for line in rest]
    return "\n".join(lines) + "\n"


def feedback_name(path: str, taken: set[str]) -> str:
    """A unique, flat file name for the feedback of ``path``. Course infrastructure."""
    stem = re.sub(r"[^\w.-]+", "_", path.strip("./")).strip("_") or "submission"
    name, number = f"{stem}.txt", 1
    while name in taken:
        number += 1
        name = f"{stem}-{number}.txt"
    taken.add(name)
    return name


def write_outputs(submissions: list[Submission], out_dir: Path) -> None:
    """``out_dir/feedback/<submission>.txt`` for each submission, then ``out_dir/grades.csv``.
    Course infrastructure."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "feedback").mkdir(exist_ok=True)
    taken: set[str] = set()
    for submission in submissions:
        (out_dir / "feedback" / feedback_name(submission.path, taken)).write_text(feedback_text(submission), encoding="utf-8")
    write_csv(submissions, out_dir / "grades.csv")

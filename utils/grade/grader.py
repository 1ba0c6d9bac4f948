"""Grade many submissions: find them, read them, fork one worker per submission (at most
``jobs`` at a time, each with a hard deadline), add the quiz rows, collect the results."""
from __future__ import annotations

import copy
import importlib
import json
import multiprocessing
import os
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from pathlib import Path

import nbformat

from .exercise_sets import ExerciseSet
from .kernel import KernelLimits
from .limits import kill_tree
from .worker import Row, grade_notebook, question_name

MAX_NOTEBOOK_BYTES = 100 * 2**20
# Imported once here, before forking, so that every worker starts warm.
WARM_MODULES = ("numpy", "torch", "utils.functional", "utils.checks", "utils.quiz",
                "nbclient", "jupyter_client.manager")


@dataclass
class Submission:
    """One submitted notebook and, once graded, its rows."""
    path: str
    nb: object = None
    exercise_set: ExerciseSet | None = None
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    grader_fault: bool = False


def find_notebooks(paths: list[str]) -> list[str]:
    """Notebook paths as given, folders searched recursively (``.ipynb_checkpoints`` skipped)."""
    found = []
    for arg in paths:
        path = Path(arg)
        if path.is_dir():
            found += [str(p) for p in sorted(path.rglob("*.ipynb")) if ".ipynb_checkpoints" not in p.parts]
        elif path.is_file():
            found.append(arg)
        else:
            raise FileNotFoundError(f"no such file or folder: {arg}")
    return found


def warm_up() -> None:
    """Import what workers need once, single-threaded: OpenMP thread pools do not survive fork,
    and the runner of a student's code is forked from the worker."""
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[variable] = "1"
    for name in WARM_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


def invalid(submission: Submission, reason: str) -> Submission:
    submission.rows = [Row("notebook", 0.0, 0.0, "invalid", reason)]
    return submission


def read_submission(path: str, sets: dict[str, ExerciseSet]) -> Submission:
    """Parse ``path`` and find its exercise set from its metadata (not its file name)."""
    submission = Submission(path)
    if Path(path).stat().st_size > MAX_NOTEBOOK_BYTES:
        return invalid(submission, f"file is larger than {MAX_NOTEBOOK_BYTES} bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            submission.nb = nbformat.reads(Path(path).read_text(encoding="utf-8"), as_version=4)
    except Exception as exc:                                     # noqa: BLE001 - any unreadable file
        return invalid(submission, f"not a readable Jupyter notebook ({type(exc).__name__}: {str(exc)[:200]})")
    info = submission.nb.get("metadata", {}).get("convcourse", {})
    set_id = info.get("exercise_set") if isinstance(info, dict) else None
    if set_id is None:
        return invalid(submission, "not an exercise notebook of this course (metadata convcourse.exercise_set missing)")
    if set_id not in sets:
        return invalid(submission, f"unknown exercise set {set_id!r} (known: {', '.join(sorted(sets))})")
    submission.exercise_set = sets[set_id]
    return submission


def quiz_rows(nb, quiz_ids: list[str]) -> list[Row]:
    """One row per quiz question, graded from the answers saved in the submitted file."""
    from utils.quiz import grade_quiz, load_quiz, read_quiz_answers
    try:
        saved = read_quiz_answers(nb)
    except Exception:                                            # noqa: BLE001 - a mangled record
        saved = {}
    rows = []
    for quiz_id in quiz_ids:
        answers = saved.get(quiz_id, {})
        try:
            results = grade_quiz(quiz_id, answers if isinstance(answers, dict) else {})
        except (TypeError, ValueError, AttributeError):
            results = grade_quiz(quiz_id, {})
        rows += [Row(f"quiz{quiz_id}:{r.question}", float(r.points), float(r.max_points), r.status,
                     "" if r.status != "needs-review" else "free response: graded by hand")
                 for r in results]
    return rows


def _placeholder_rows(exercise_set: ExerciseSet, status: str, message: str) -> list[Row]:
    return [Row(question_name(t), 0.0, t.points, status, "" if t.hidden else message)
            for t in exercise_set.all_tests()]


def _worker_main(connection, submission: Submission, limits: KernelLimits) -> None:
    try:
        rows, notes = grade_notebook(copy.deepcopy(submission.nb), submission.exercise_set, limits)
        payload = {"rows": [r.as_dict() for r in rows], "notes": notes}
    except Exception:                                            # noqa: BLE001 - a grader fault
        payload = {"fault": traceback.format_exc()}
    connection.send_bytes(json.dumps(payload).encode())


class Pool:
    """At most ``jobs`` workers; each killed with its whole process tree at its deadline."""

    def __init__(self, jobs: int, limits: KernelLimits):
        self.jobs, self.limits = jobs, limits
        self.context = multiprocessing.get_context("fork")

    def deadline_seconds(self, submission: Submission) -> float:
        tests = len(submission.exercise_set.all_tests())
        return self.limits.total_seconds + self.limits.cell_seconds * (tests + 1) + 120

    def _start(self, submission: Submission):
        receive, send = self.context.Pipe(duplex=False)
        process = self.context.Process(target=_worker_main, args=(send, submission, self.limits), daemon=True)
        process.start()
        send.close()
        return process, receive, time.monotonic() + self.deadline_seconds(submission)

    def _finish(self, submission: Submission, process, receive) -> None:
        try:
            payload = json.loads(receive.recv_bytes())
        except (EOFError, OSError, ValueError):
            payload = {"fault": f"grader worker died (exit code {process.exitcode})"}
        kill_tree(process.pid)
        process.join()
        receive.close()
        if "fault" in payload:
            submission.grader_fault = True
            submission.notes.append("GRADER FAULT: " + payload["fault"])
            submission.rows += _placeholder_rows(submission.exercise_set, "error", "grader fault: ask your instructor")
        else:
            submission.rows += [Row(**row) for row in payload["rows"]]
            submission.notes += payload["notes"]

    def _expire(self, submission: Submission, process, receive) -> None:
        kill_tree(process.pid)
        process.join()
        receive.close()
        submission.notes.append(f"grading took longer than {self.deadline_seconds(submission):g} s and was stopped")
        submission.rows += _placeholder_rows(submission.exercise_set, "timeout", "time limit exceeded")

    def run(self, submissions: list[Submission]) -> None:
        pending, running = list(submissions), {}
        while pending or running:
            while pending and len(running) < self.jobs:
                submission = pending.pop(0)
                running[id(submission)] = (submission, *self._start(submission))
            timeout = max(0.0, min(item[3] for item in running.values()) - time.monotonic())
            ready = set(wait([item[2] for item in running.values()], timeout=timeout))
            for key, (submission, process, receive, deadline) in list(running.items()):
                if receive in ready:
                    self._finish(submission, process, receive)
                elif time.monotonic() >= deadline:
                    self._expire(submission, process, receive)
                else:
                    continue
                del running[key]


def grade_all(paths: list[str], sets: dict[str, ExerciseSet], limits: KernelLimits, jobs: int) -> list[Submission]:
    """Grade every notebook in ``paths``; returns the submissions in order, each with its rows."""
    submissions = [read_submission(path, sets) for path in find_notebooks(paths)]
    gradable = [s for s in submissions if s.exercise_set is not None]
    warm_up()
    # Workers put their scratch folders (and kernel connection files) here; it goes away even
    # when a worker had to be killed.
    with tempfile.TemporaryDirectory(prefix="convcourse-grading-") as scratch:
        tempfile.tempdir = scratch
        try:
            Pool(jobs, limits).run(gradable)
        finally:
            tempfile.tempdir = None
    for submission in gradable:
        submission.rows += [Row(m.grade_id, 0.0, m.points, "needs-review", "graded by hand")
                            for m in submission.exercise_set.manual]
        try:
            submission.rows += quiz_rows(submission.nb, submission.exercise_set.quizzes)
        except Exception:                                        # noqa: BLE001 - e.g. a quiz file missing
            submission.grader_fault = True
            submission.notes.append("GRADER FAULT (quiz): " + traceback.format_exc(limit=3))
    return submissions

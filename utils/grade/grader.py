"""Grade many submissions: find them, read them, fork one worker per submission (at most
``jobs`` at a time, each with a hard deadline), add the quiz rows, collect the results.

Each worker grades in its own sandbox group (:mod:`.sandbox`); once every worker has ended, the
grader checks that no learner process of the run is left (killing any) before the caller writes
``grades.csv``."""
from __future__ import annotations

import copy
import dataclasses
import importlib
import json
import multiprocessing
import os
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from pathlib import Path

from . import sandbox
from .exercise_sets import ExerciseSet
from .kernel import KernelLimits
from .layout import folder_learner, identity_notes, learner_of
from .limits import kill_tree, remove_tree
from .reading import duplicate_notes, quiz_answers, read_notebook
from .result import QuestionResult
from .worker import grade_notebook, question_name

# Imported once here, before forking, so that every worker starts warm.
WARM_MODULES = ("numpy", "torch", "utils.functional", "utils.checks", "utils.quiz",
                "nbclient", "jupyter_client.manager")


@dataclass
class Submission:
    """One submitted notebook and, once graded, its rows. Course infrastructure."""
    path: str
    nb: object = None
    exercise_set: ExerciseSet | None = None
    rows: list[QuestionResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)        # for the learner's feedback
    faults: list[str] = field(default_factory=list)       # the grader's own failures: for the instructor only
    learner: str = ""             # who handed it in (utils.grade.layout.learner_of)

    @property
    def grader_fault(self) -> bool:
        """Whether the grader itself failed on this submission (exit status 1, never the learner's fault)."""
        return bool(self.faults)


def find_notebooks_in(paths: list[str]) -> list[tuple[str, str | None]]:
    """(notebook path, the folder given that holds it or None for a file given directly), folders
    searched recursively (``.ipynb_checkpoints`` skipped), each file once. Course infrastructure."""
    found, seen = [], set()
    for arg in paths:
        path = Path(arg)
        if path.is_dir():
            entries = [(str(p), arg) for p in sorted(path.rglob("*.ipynb")) if ".ipynb_checkpoints" not in p.parts]
        elif path.is_file():
            entries = [(arg, None)]
        else:
            raise FileNotFoundError(f"no such file or folder: {arg}")
        for entry in entries:
            # A link inside a graded folder is its own (refused) submission: deduplicating it by its
            # target would drop the notebook it points to, i.e. someone else's hand-in.
            linked = entry[1] is not None and os.path.islink(entry[0])
            key = os.path.abspath(entry[0]) if linked else os.path.realpath(entry[0])
            if key not in seen:
                seen.add(key)
                found.append(entry)
    return found


def find_notebooks(paths: list[str]) -> list[str]:
    """Notebook paths as given, folders searched recursively (``.ipynb_checkpoints`` skipped).
    Course infrastructure."""
    return [path for path, _ in find_notebooks_in(paths)]


def warm_up() -> None:
    """Import what workers need once, single-threaded: OpenMP thread pools do not survive fork,
    and the runner of a student's code is forked from the worker. Course infrastructure."""
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
    """``submission`` with one ``invalid`` row named ``notebook`` (its exercise set is unknown).
    Course infrastructure."""
    submission.rows = [QuestionResult("notebook", 0.0, 0.0, "invalid", reason)]
    return submission


def invalid_rows(exercise_set: ExerciseSet, reason: str) -> list[QuestionResult]:
    """Every question of ``exercise_set`` as ``invalid`` (0 points) with ``reason``. Course infrastructure."""
    from utils.quiz import load_quiz
    rows = [QuestionResult(question_name(t), 0.0, t.points, "invalid", "" if t.hidden else reason) for t in exercise_set.all_tests()]
    rows += [QuestionResult(m.grade_id, 0.0, m.points, "invalid", reason) for m in exercise_set.manual]
    for quiz_id in exercise_set.quizzes:
        rows += [QuestionResult(f"quiz{quiz_id}:{q['id']}", 0.0, float(q.get("points", 1)), "invalid", reason)
                 for q in load_quiz(quiz_id)["questions"]]
    return rows


LINKED = ("this file is a symbolic link, not a notebook: hand in the notebook itself (the grader does not "
          "follow links found in the folders it grades, which could point to someone else's work)")


def read_submission(path: str, sets: dict[str, ExerciseSet], root: str | None = None) -> Submission:
    """Parse ``path`` and find its exercise set from its metadata (not its file name).

    A broken file gets rows, never an exception: one ``notebook`` row when its set is unknown,
    else every question of its set ``invalid``, with a message naming the broken field.  A symbolic
    link found in a graded folder ``root`` is not followed: one ``invalid`` row. Course infrastructure."""
    submission = Submission(path)
    if root is not None and os.path.islink(path):
        return invalid(submission, LINKED)
    nb, set_id, problem = read_notebook(path, sorted(sets))
    if problem is None:
        submission.nb, submission.exercise_set = nb, sets[set_id]
    elif set_id is None:
        invalid(submission, problem)
    else:
        submission.exercise_set = sets[set_id]
        submission.rows = invalid_rows(submission.exercise_set, problem)
        submission.notes.append(f"not graded: {problem}")
    return submission


def _unreadable_answer(question: dict, answer) -> str | None:
    """Why a saved answer cannot be an answer to ``question`` at all (None when it can)."""
    from utils import quiz
    normalise = getattr(quiz, "normalise_answer", None)
    if normalise is None or question.get("kind") == "free":
        return None
    try:
        normalise(question, answer)
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        return f"the saved answer cannot be read ({str(exc)[:150]})"
    return None


def quiz_rows(nb, quiz_ids: list[str]) -> list[QuestionResult]:
    """One row per quiz question, graded from the answers saved in the submitted file.

    A malformed record makes its own quiz's rows invalid; a malformed answer its own question's.
    Course infrastructure."""
    from utils.quiz import MissingQuizKeys, grade_quiz, load_quiz
    saved, problems = quiz_answers(nb)
    rows = []
    for quiz_id in quiz_ids:
        questions = load_quiz(quiz_id)["questions"]
        if quiz_id in problems:
            rows += [QuestionResult(f"quiz{quiz_id}:{q['id']}", 0.0, float(q.get("points", 1)), "invalid", problems[quiz_id])
                     for q in questions]
            continue
        answers = saved.get(quiz_id, {})
        for question in questions:
            qid, name = question["id"], f"quiz{quiz_id}:{question['id']}"
            one = {qid: answers[qid]} if qid in answers else {}
            unreadable = _unreadable_answer(question, answers[qid]) if qid in answers else None
            if unreadable:
                rows.append(QuestionResult(name, 0.0, float(question.get("points", 1)), "invalid", unreadable))
                continue
            try:
                result = next(r for r in grade_quiz(quiz_id, one) if r.question == qid)
            except MissingQuizKeys:                              # the instructor's set-up, not the learner's answer
                raise
            except Exception:                                    # noqa: BLE001 - an answer of the wrong type
                shown = repr(answers.get(qid))[:60]
                rows.append(QuestionResult(name, 0.0, float(question.get("points", 1)), "invalid",
                                f"the saved answer {shown} is not an answer to this question"))
                continue
            rows.append(dataclasses.replace(result, question=name))
    return rows


def _placeholder_rows(exercise_set: ExerciseSet, status: str, message: str) -> list[QuestionResult]:
    return [QuestionResult(question_name(t), 0.0, t.points, status, "" if t.hidden else message)
            for t in exercise_set.all_tests()]


def _worker_main(connection, submission: Submission, limits: KernelLimits) -> None:
    try:
        sandbox.begin_submission(limits.memory_bytes, limits.file_bytes)
        try:
            rows, notes = grade_notebook(copy.deepcopy(submission.nb), submission.exercise_set, limits)
        finally:
            limit_notes = sandbox.end_submission()      # every learner process of it has ended
        payload = {"rows": [r.as_dict() for r in rows], "notes": notes + limit_notes}
    except Exception:                                            # noqa: BLE001 - a grader fault
        payload = {"fault": traceback.format_exc()}
    connection.send_bytes(json.dumps(payload).encode())


class Pool:
    """At most ``jobs`` workers; each killed with its whole process tree at its deadline. Course infrastructure."""

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
        sandbox.remove_groups_of(process.pid)
        receive.close()
        if "fault" in payload:
            submission.faults.append(payload["fault"])
            submission.rows += _placeholder_rows(submission.exercise_set, "error", "grader fault: ask your instructor")
        else:
            submission.rows += [QuestionResult(**row) for row in payload["rows"]]
            submission.notes += payload["notes"]

    def _expire(self, submission: Submission, process, receive) -> None:
        kill_tree(process.pid)
        process.join()
        sandbox.remove_groups_of(process.pid)
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


def grade_all(paths: list[str], sets: dict[str, ExerciseSet], limits: KernelLimits, jobs: int,
              sandboxed: bool = False) -> list[Submission]:
    """Grade every notebook in ``paths``; returns the submissions in order, each with its rows.

    Args:
        sandboxed: run learner code in bubblewrap sandboxes (:mod:`.sandbox`; the command line
            checks that bubblewrap works and refuses to grade otherwise unless told not to).
    Raises:
        RuntimeError: a learner process could not be ended (then no grades should be written).
    Course infrastructure.
    """
    submissions = []
    found = find_notebooks_in(paths)
    folders = frozenset(filter(None, (folder_learner(path, root) for path, root in found)))
    roots = {}
    for path, root in found:
        submission = read_submission(path, sets, root)
        submission.learner = learner_of(path, submission.nb, root, folders)
        submissions.append(submission)
        roots[path] = root
    gradable = [s for s in submissions if s.nb is not None]
    flagged = duplicate_notes([(s.path, s.learner, s.exercise_set.set_id) for s in gradable])
    claims = identity_notes([(s.path, roots[s.path], s.nb, s.learner) for s in gradable])
    for submission in gradable:
        if submission.path in flagged:
            submission.notes.append(flagged[submission.path])
    warm_up()
    # Workers put their scratch folders (and kernel connection files) here; it goes away even
    # when a worker had to be killed.  The registry (not visible in any sandbox) records every
    # sandbox's PID namespace, to check at the end that none of their processes is left.
    scratch = tempfile.mkdtemp(prefix="convcourse-grading-")
    registry = os.path.join(scratch, "sandboxes")
    os.mkdir(registry)
    sandbox.enabled, sandbox.registry = sandboxed, registry
    tempfile.tempdir = scratch
    try:
        Pool(jobs, limits).run(gradable)
        sandbox.end_all(registry)
    finally:
        tempfile.tempdir = None
        sandbox.enabled, sandbox.registry = False, None
        remove_tree(scratch)
    for submission in gradable:
        submission.rows += [QuestionResult(m.grade_id, 0.0, m.points, "needs-review", "graded by hand")
                            for m in submission.exercise_set.manual]
        try:
            submission.rows += quiz_rows(submission.nb, submission.exercise_set.quizzes)
        except Exception:                                        # noqa: BLE001 - e.g. a quiz file missing
            submission.faults.append("quiz: " + traceback.format_exc(limit=3))
        for row_id, notes in (("duplicate", flagged), ("learner", claims)):
            if submission.path in notes:
                submission.rows.append(QuestionResult(row_id, 0.0, 0.0, "needs-review", notes[submission.path]))
    return submissions

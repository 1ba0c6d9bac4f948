"""One grading run over a small class (tests/grade_class.py): the grades a fair instructor gives.

The class has correct answers in several styles (a module-level constant, a lambda, a cached
global, a help line ``np.convolve?``, a torch-returning function), partial, wrong and untouched
work, a function that never returns, cheats that only work if the grader differs from the
notebook (in-place change of the input, an array that equals anything, returning the input),
two learners who handed in twice, broken quiz records and broken files of every kind.  The run
must grade everyone (exit 0), give exactly the expected status for every row, modify no
submission and leave no process behind.
"""
from __future__ import annotations

import csv
import hashlib
import importlib.util
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("grade_class", ROOT / "tests" / "grade_class.py")
grade_class = importlib.util.module_from_spec(spec)
spec.loader.exec_module(grade_class)


def digests(folder: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def marked_processes(marker: str) -> list[psutil.Process]:
    """Processes carrying the run's marker in their environment: the grader, its workers and the
    sandbox launchers inherit it.  (Learner processes inside a sandbox get a rebuilt environment;
    they live in the sandbox's own PID namespace, which ends with its launcher.)"""
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get("CONVCOURSE_CLASS_TEST") == marker:
                found.append(process)
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return found


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("class")
    submissions, out = folder / "submissions", folder / "out"
    expected = grade_class.build(submissions)
    before = digests(submissions)
    marker = uuid.uuid4().hex
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "utils.grade", str(submissions), "--out", str(out), "--jobs", "2",
                             "--timeout", "20", "--execute", "when-needed"],
                            cwd=ROOT, capture_output=True, text=True, timeout=900,
                            env={**os.environ, "CONVCOURSE_CLASS_TEST": marker})
    seconds = time.monotonic() - started
    left = marked_processes(marker)
    assert (out / "grades.csv").exists(), result.stderr[-3000:]
    rows = {}
    for row in csv.DictReader((out / "grades.csv").open(encoding="utf-8")):
        rows.setdefault(str(Path(row["submission"]).relative_to(submissions)), {})[row["question"]] = row
    feedback = {p.name: p.read_text(encoding="utf-8") for p in (out / "feedback").iterdir()}
    print(f"class of {len(expected)} graded in {seconds:.0f} s")
    return dict(result=result, rows=rows, expected=expected, feedback=feedback, before=before,
                after=digests(submissions), left=left, seconds=seconds)


def feedback_of(graded, name: str) -> str:
    flat = "_" + name.replace("/", "_") + ".txt"
    return next(text for file, text in graded["feedback"].items() if file.endswith(flat))


def notebook_verdict(source: str, check: str) -> tuple[str, str]:
    """What the visible check says in a learner's notebook about the function ``relu`` of ``source``
    (registered in linecache as IPython does, so that the check can read its source): (status, message)."""
    import linecache

    import numpy as np
    import utils.checks as checks
    filename = "<learner cell>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace = {"np": np}
    exec(compile(source, filename, "exec"), namespace)
    try:
        getattr(checks, check)(namespace["relu"], hidden=True)
    except AssertionError as failure:
        return "failed", str(failure).splitlines()[0]
    return "passed", ""


def expected_rows(expected: dict, rows: dict) -> dict[str, tuple[str, str]]:
    """``{question: (status, words the feedback must contain)}`` for every row of one submission."""
    auto, free = grade_class.quiz_questions()
    wanted = {}
    for key, want in expected.items():
        status, _, words = want.partition(":")
        if key == "all":
            questions = list(rows)
        elif key == "quiz":
            questions = [f"quiz{grade_class.QUIZ}:{q}" for q in auto if f"quiz:{q}" not in expected]
        elif key == "free":
            questions = [f"quiz{grade_class.QUIZ}:{q}" for q in free]
        elif key.startswith("quiz:"):
            questions = [f"quiz{grade_class.QUIZ}:{key[5:]}"]
        else:
            questions = [key]
        for question in questions:
            wanted[question] = (status, words)
    return wanted


@pytest.mark.parametrize("name", list(grade_class.submissions()))
def test_each_submission_gets_the_fair_grade(graded, name):
    rows = graded["rows"][name]
    wanted = expected_rows(graded["expected"][name], rows)
    text = feedback_of(graded, name)
    if "explain" in rows:                       # a question graded by hand: never scored automatically
        wanted.setdefault("explain", ("needs-review", ""))
    assert set(rows) == set(wanted), (name, sorted(set(rows) ^ set(wanted)))
    for question, (status, words) in wanted.items():
        row = rows[question]
        if status == "same-as-notebook":        # torch tensors: the notebook's check decides, the grader agrees
            status, words = notebook_verdict(grade_class.TORCH_RELU, "check_relu")
        assert row["status"] == status, (name, question, row["status"], text[-2000:])
        points = float(row["max_points"]) if status == "passed" else 0.0
        assert float(row["points"]) == points, (name, question, row)
        assert words in text, (name, question, words, text[-2000:])


def test_feedback_names_the_rule_and_hides_the_grader(graded):
    mallory = feedback_of(graded, "mallory/ex05.ipynb")
    assert "changed its argument `x` in place" in mallory
    grace = feedback_of(graded, "grace/ex05.ipynb")
    assert "time limit" in grace
    for text in graded["feedback"].values():
        for internal in ("StudentTimeout", "StudentCrashed", "StudentStopped", "NotSerializable", "Traceback",
                         "raised ValueError: relu raised", "syntax error"):
            assert internal not in text, internal

"""The instructor's grader (python -m utils.grade) on honest and adversarial submissions.

One grading run (module fixture) covers every submission kind at once, with short limits;
the tests then read its grades.csv, feedback files and stdout.  Submissions are built from
the fixture exercise set (tests/fixtures) so that they do not depend on the course content;
the real solutions/ and exercises/ are graded too when they exist.
"""
from __future__ import annotations

import csv
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from utils.grade.exercise_sets import ExerciseSet, TestCell as GradedCell
from utils.grade.kernel import KernelReport

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
SOLVED = FIXTURES / "solutions" / "ex01_fixture.ipynb"
UNSOLVED = FIXTURES / "exercises" / "ex01_fixture.ipynb"
STATUSES = {"passed", "failed", "error", "timeout", "invalid", "needs-review"}
ANSWERS_MIME = "application/vnd.convcourse.quiz-answers+json"
SECRET = "SECRET-INSTRUCTOR-MESSAGE"


def cell_with_id(nb, grade_id: str):
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def solved(add_one_body: str | None = None, kernel_sum: str | None = None, extra_cell: str | None = None):
    """The fixture solution, optionally with add_one's body / the kernel_sum cell replaced and a
    cell inserted after the imports."""
    nb = nbformat.read(SOLVED, as_version=4)
    if add_one_body is not None:
        cell_with_id(nb, "add_one").source = "def add_one(x):\n" + "\n".join("    " + l for l in add_one_body.split("\n"))
    if kernel_sum is not None:
        cell_with_id(nb, "kernel_sum").source = kernel_sum
    if extra_cell is not None:
        nb.cells.insert(2, nbformat.v4.new_code_cell(extra_cell))
    return nb


def with_quiz_answers(nb, answers: dict):
    quiz_cell = next(c for c in nb.cells if "show_quiz" in c.source)
    quiz_cell.outputs = [nbformat.v4.new_output("display_data", data={
        ANSWERS_MIME: {"quiz": "00", "answers": answers}, "text/plain": "quiz answers"})]
    return nb


def edited_tests():
    nb = solved(add_one_body="return x * 2", kernel_sum="kernel_sum = 0.0")
    cell_with_id(nb, "add_one_test").source = 'print("✓ add_one adds one")'
    cell_with_id(nb, "kernel_sum_test").source = "kernel_sum = 9.0"
    return nb


PATCHING = ("import numpy, builtins, utils.checks\n"
            "numpy.array_equal = lambda *a, **k: True\n"
            "numpy.allclose = lambda *a, **k: True\n"
            "utils.checks.CheckFailed = Exception\n"
            "builtins.AssertionError = Exception")
PATCHING_FUNCTION = ("import numpy, torch, utils.checks\n"
                     "numpy.array_equal = lambda *a, **k: True\n"
                     "torch.equal = torch.allclose = lambda *a, **k: True\n"
                     "utils.checks.check_conv2d = lambda *a, **k: print('✓')\n"
                     "return x")

SUBMISSIONS = {     # file name -> notebook (or raw text)
    "class/alice.ipynb": with_quiz_answers(solved(), {"q1": 1, "q2": [0, 1, 3]}),
    "class/.ipynb_checkpoints/alice-checkpoint.ipynb": "not even JSON, and never read",
    "untouched.ipynb": nbformat.read(UNSOLVED, as_version=4),
    "renamed_file_xyz.ipynb": with_quiz_answers(solved(), {"q1": 0, "q2": [0, 1, 3]}),
    "broken.ipynb": "{ this is not JSON",
    "other_course.ipynb": nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(1)")]),
    "unknown_set.ipynb": nbformat.v4.new_notebook(metadata={"convcourse": {"exercise_set": "ex99"}}),
    "loop.ipynb": solved(add_one_body="while True:\n    pass",
                         kernel_sum="kernel = np.ones((3, 3))\nwhile True:\n    pass"),
    "exit_top_level.ipynb": solved(extra_cell="import os\nos._exit(3)"),
    "exit_in_function.ipynb": solved(add_one_body="import os\nos._exit(0)"),
    "memory_hog.ipynb": solved(add_one_body="return np.ones(2**33) + x",
                               extra_cell="hog = bytearray(8 * 2**30)"),
    "flood.ipynb": solved(extra_cell='for i in range(200000):\n    print("spam " * 40)'),
    "patching.ipynb": solved(add_one_body=PATCHING_FUNCTION, kernel_sum="kernel_sum = 0.0",
                             extra_cell=PATCHING),
    "edited_tests.ipynb": edited_tests(),
}
EXTRA_TESTS = f'# %% grade_id=secret points=3\nimport numpy as np\nassert add_one(np.array([41]))[0] == 42, "{SECRET}"\n'


def write_submissions(folder: Path) -> None:
    for name, nb in SUBMISSIONS.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(nb if isinstance(nb, str) else nbformat.writes(nb))


def digests(folder: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def grade(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "utils.grade", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("grading")
    submissions, out, extra = folder / "submissions", folder / "out", folder / "extra"
    write_submissions(submissions)
    extra.mkdir()
    (extra / "ex01.py").write_text(EXTRA_TESTS)
    before = digests(submissions)
    result = grade([str(submissions), "--out", str(out), "--jobs", "2", "--timeout", "4", "--memory", "2",
                    "--max-output", "100000", "--solutions", str(FIXTURES / "solutions"), "--extra-tests", str(extra)])
    rows = list(csv.DictReader((out / "grades.csv").open()))
    by_file = {}
    for row in rows:
        name = str(Path(row["submission"]).relative_to(submissions))
        by_file.setdefault(name, {})[row["question"]] = row
    feedback = {p.name: p.read_text() for p in (out / "feedback").iterdir()}
    return dict(result=result, rows=rows, by_file=by_file, feedback=feedback, before=before,
                after=digests(submissions), out=out)


def status(run, name: str, question: str) -> str:
    return run["by_file"][name][question]["status"]


def feedback_of(run, name: str) -> str:
    return next(text for file, text in run["feedback"].items() if file.endswith(Path(name).name + ".txt"))


def test_exit_status_zero_and_one_summary_line_per_submission(run):
    assert run["result"].returncode == 0, run["result"].stderr
    lines = run["result"].stdout.strip().splitlines()
    assert len(lines) == len(SUBMISSIONS) - 1       # the checkpoint copy is skipped
    assert any(line.startswith("8/9 ") and "alice.ipynb" in line for line in lines), lines


def test_csv_columns_and_statuses(run):
    assert list(run["rows"][0]) == ["submission", "learner", "exercise_set", "question", "points", "max_points",
                                    "status"]
    assert {row["status"] for row in run["rows"]} <= STATUSES
    assert set(run["by_file"]) == set(SUBMISSIONS) - {"class/.ipynb_checkpoints/alice-checkpoint.ipynb"}
    assert not list(run["out"].glob(".grades-*"))      # the temporary file was renamed


def test_submissions_are_never_modified(run):
    assert run["before"] == run["after"]


def test_solution_gets_full_automatic_points_and_quiz_graded(run):
    alice = run["by_file"]["class/alice.ipynb"]
    assert {q: r["status"] for q, r in alice.items()} == {
        "add_one_test": "passed", "kernel_sum_test": "passed", "extra:secret": "passed",
        "explain": "needs-review", "quiz00:q1": "passed", "quiz00:q2": "passed"}
    assert sum(float(r["points"]) for r in alice.values()) == 8
    assert status(run, "renamed_file_xyz.ipynb", "quiz00:q1") == "failed"   # set found from metadata


def test_untouched_exercise_gets_zero(run):
    untouched = run["by_file"]["untouched.ipynb"]
    assert sum(float(r["points"]) for r in untouched.values()) == 0
    assert untouched["add_one_test"]["status"] == "error"
    assert "NotImplementedError" in feedback_of(run, "untouched.ipynb")


@pytest.mark.parametrize("name", ["broken.ipynb", "other_course.ipynb", "unknown_set.ipynb"])
def test_unusable_notebooks_get_one_invalid_row(run, name):
    rows = run["by_file"][name]
    assert list(rows) == ["notebook"] and rows["notebook"]["status"] == "invalid"


def test_infinite_loops_time_out(run):
    assert status(run, "loop.ipynb", "add_one_test") == "timeout"
    assert status(run, "loop.ipynb", "kernel_sum_test") == "timeout"


def test_os_exit_costs_only_what_it_breaks(run):
    assert status(run, "exit_top_level.ipynb", "add_one_test") == "passed"     # functions run apart
    assert status(run, "exit_top_level.ipynb", "kernel_sum_test") == "error"
    assert "kernel died" in feedback_of(run, "exit_top_level.ipynb")
    assert status(run, "exit_in_function.ipynb", "add_one_test") == "error"
    assert status(run, "exit_in_function.ipynb", "kernel_sum_test") == "passed"


def test_memory_hog_is_capped(run):
    assert status(run, "memory_hog.ipynb", "kernel_sum_test") == "passed"
    assert status(run, "memory_hog.ipynb", "add_one_test") == "error"
    assert "MemoryError" in feedback_of(run, "memory_hog.ipynb")


def test_gigantic_output_is_cut(run):
    assert status(run, "flood.ipynb", "add_one_test") == "passed"
    assert status(run, "flood.ipynb", "kernel_sum_test") == "error"
    assert "bytes of output" in feedback_of(run, "flood.ipynb")
    assert len(feedback_of(run, "flood.ipynb")) < 20_000


def test_monkeypatching_numpy_torch_or_checks_cannot_force_a_pass(run):
    assert status(run, "patching.ipynb", "add_one_test") == "failed"
    assert status(run, "patching.ipynb", "kernel_sum_test") == "failed"
    assert status(run, "patching.ipynb", "extra:secret") == "failed"


def test_edited_test_cells_are_ignored(run):
    assert status(run, "edited_tests.ipynb", "add_one_test") == "failed"
    assert status(run, "edited_tests.ipynb", "kernel_sum_test") == "failed"


def test_feedback_shows_check_messages_but_no_hidden_tests(run):
    text = feedback_of(run, "edited_tests.ipynb")
    assert "add_one(x) should add 1 to every element" in text
    for shown in run["feedback"].values():
        assert "HIDDEN" not in shown and "np.zeros((1, 1, 2))" not in shown
        assert SECRET not in shown and "np.array([41])" not in shown


def test_hidden_assertion_failure_shows_no_source(tmp_path):
    nb = solved(add_one_body="return x + 1 if x.ndim == 2 else (x + 1).ravel()")   # fails the hidden test only
    (tmp_path / "flat.ipynb").write_text(nbformat.writes(nb))
    result = grade([str(tmp_path / "flat.ipynb"), "--out", str(tmp_path / "out"), "--solutions", str(FIXTURES / "solutions")])
    assert result.returncode == 0
    text = (tmp_path / "out" / "feedback").glob("*.txt").__next__().read_text()
    assert "[failed] add_one_test" in text and "add_one must keep the shape" in text
    assert "np.zeros" not in text


def test_usage_errors_exit_2(tmp_path):
    assert grade([str(tmp_path / "missing.ipynb"), "--out", str(tmp_path)]).returncode == 2
    assert grade([str(tmp_path), "--out", str(tmp_path), "--jobs", "0"]).returncode == 2


def test_grader_fault_exits_1_but_writes_rows(tmp_path, monkeypatch, capsys):
    from utils.grade import __main__ as cli, grader

    def broken(*args):
        raise RuntimeError("bug in the grader")
    monkeypatch.setattr(grader, "grade_notebook", broken)
    monkeypatch.setattr(grader, "WARM_MODULES", ())
    (tmp_path / "a.ipynb").write_text(nbformat.writes(solved()))
    code = cli.main([str(tmp_path / "a.ipynb"), "--out", str(tmp_path / "out"), "--solutions", str(FIXTURES / "solutions")])
    assert code == 1
    rows = list(csv.DictReader((tmp_path / "out" / "grades.csv").open()))
    assert {r["question"]: r["status"] for r in rows}["add_one_test"] == "error"
    out, err = capsys.readouterr()
    assert "[GRADER FAULT]" in out and "GRADER FAULT: " in err and "bug in the grader" in err
    feedback = next((tmp_path / "out" / "feedback").glob("*.txt")).read_text()
    assert "bug in the grader" not in feedback and "grader fault: ask your instructor" in feedback


def test_installed_without_solutions_the_grader_says_how_to_pass_them(tmp_path, monkeypatch, capsys):
    """An installed package (no checkout around it) holds no solutions, which must never reach learners:
    the default then comes from $CONVCOURSE_SOLUTIONS, or the grader stops saying how to give them."""
    from utils.grade import __main__ as cli
    monkeypatch.setattr(cli, "ROOT", tmp_path / "site-packages")          # what a wheel install looks like
    monkeypatch.delenv("CONVCOURSE_SOLUTIONS", raising=False)
    (tmp_path / "a.ipynb").write_text(nbformat.writes(solved()))
    args = [str(tmp_path / "a.ipynb"), "--out", str(tmp_path / "out"), "--unsafe-no-sandbox"]
    assert cli.default_solutions() is None
    assert cli.main(args) == 2 and not (tmp_path / "out").exists()
    err = capsys.readouterr().err
    assert "--solutions DIR" in err and "CONVCOURSE_SOLUTIONS" in err and "never shipped" in err
    monkeypatch.setenv("CONVCOURSE_SOLUTIONS", str(FIXTURES / "solutions"))
    assert cli.default_solutions() == FIXTURES / "solutions"
    monkeypatch.setenv("CONVCOURSE_SOLUTIONS", str(tmp_path / "empty"))
    assert cli.main(args) == 2 and "no exercise set" in capsys.readouterr().err


def test_in_a_checkout_the_default_solutions_are_the_checkouts(monkeypatch):
    from utils.grade import __main__ as cli
    monkeypatch.delenv("CONVCOURSE_SOLUTIONS", raising=False)
    assert cli.default_solutions() == ROOT / "solutions"


def test_a_grader_fault_is_a_field_not_a_prefix_of_a_note():
    """Only ``Submission.faults`` marks a fault: a note that merely starts like one (learner text can)
    stays in the learner's feedback and does not make the run fail."""
    from utils.grade.grader import Submission
    from utils.grade.report import feedback_text, summary_line
    exercise_set = ExerciseSet("ex01", "Fixture", [], set(), [])
    learner = Submission("a.ipynb", exercise_set=exercise_set, notes=["GRADER FAULT: printed by the learner"])
    assert not learner.grader_fault and "printed by the learner" in feedback_text(learner)
    assert "[GRADER FAULT]" not in summary_line(learner)
    faulty = Submission("b.ipynb", exercise_set=exercise_set, faults=["Traceback: KeyError in the grader"])
    assert faulty.grader_fault and "KeyError" not in feedback_text(faulty)
    assert summary_line(faulty).endswith("[GRADER FAULT]")


def test_the_grader_and_the_quiz_write_one_record_type(tmp_path):
    """A test row and a quiz row are the same dataclass with the same fields (grades.csv's columns)."""
    from utils.grade import result, worker
    from utils.quiz import QuestionResult, grade_question
    quiz_row = grade_question("t", {"id": "q1", "kind": "free", "prompt": "?"}, "an essay")
    exercise_set = ExerciseSet("ex01", "Fixture", [], set(), [])
    test_row = worker.run_test(GradedCell("sum_test", 2.0, "assert 1 + 1 == 2"), exercise_set,
                               worker.Bindings(set(), None, KernelReport()), 5.0)
    assert QuestionResult is result.QuestionResult
    assert type(quiz_row) is type(test_row) is result.QuestionResult
    assert test_row.as_dict() == {"question": "sum_test", "points": 2.0, "max_points": 2.0, "status": "passed",
                                  "feedback": ""}
    assert quiz_row.status == "needs-review" and quiz_row.feedback == "free response: graded by hand"
    with pytest.raises(ValueError, match="status must be one of"):
        result.QuestionResult("q", 0.0, 1.0, "wrong-ish")
    assert set(result.STATUSES) == STATUSES


REAL_SOLUTIONS = sorted((ROOT / "solutions").glob("ex[0-9][0-9]_*.ipynb"))


def answered_like_a_perfect_learner(solution: Path, folder: Path) -> Path:
    """A copy of a solution notebook whose quiz answer records hold the answer keys (from the
    maintainers' quiz sources; free responses get the model answer)."""
    from utils.quiz import ANSWERS_MIME
    nb = nbformat.read(solution, as_version=4)
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            record = output.get("data", {}).get(ANSWERS_MIME)
            if record:
                source = json.loads((ROOT / "tools" / "quiz_sources" / f"{record['quiz']}.json").read_text())
                record["answers"] = {q["id"]: q.get("answer", q.get("model_answer")) for q in source["questions"]}
    path = folder / solution.name
    nbformat.write(nb, path)
    return path


@pytest.mark.skipif(not REAL_SOLUTIONS, reason="no exercise sets in solutions/ yet")
def test_course_solutions_get_full_automatic_points_and_exercises_get_zero(tmp_path):
    from tools.make_exercises import generate
    (tmp_path / "exercises").mkdir()
    (tmp_path / "answered").mkdir()
    for name, text in generate(ROOT / "solutions").items():       # fresh, whatever the state of exercises/
        (tmp_path / "exercises" / name).write_text(text)
    answered = [answered_like_a_perfect_learner(p, tmp_path / "answered") for p in REAL_SOLUTIONS]
    result = grade([*map(str, answered), str(tmp_path / "exercises"), "--out", str(tmp_path / "out"), "--jobs", "2",
                    "--execute", "when-needed"])   # kernels are exercised above; keep this quick
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader((tmp_path / "out" / "grades.csv").open()))
    automatic = [r for r in rows if r["status"] != "needs-review"]
    assert any(r["question"].startswith("quiz") for r in automatic) and automatic
    for row in automatic:
        solution = "/answered/" in row["submission"]
        assert (row["status"] == "passed") == solution, row
        assert float(row["points"]) == (float(row["max_points"]) if solution else 0.0), row
    # Free responses are never auto-scored, answered or not.
    assert {r["points"] for r in rows if r["status"] == "needs-review"} <= {"0", "0.0"}


# ---------------------------------------------------------------- the pieces, without kernels

@pytest.mark.parametrize("value", [None, True, 3, -2.5, float("inf"), "text", (1, (2, 3)), [1, [2]],
                                   {"a": 1, (1, 2): [3]}, __import__("numpy").arange(6, dtype="float32").reshape(2, 3),
                                   __import__("numpy").float32(1.5), __import__("numpy").int64(7)])
def test_serialize_round_trips_plain_data(value):
    import numpy as np
    from utils.grade import serialize
    back = serialize.loads(serialize.dumps(value))
    assert type(back) is type(value)
    if isinstance(value, np.ndarray):
        assert back.dtype == value.dtype and np.array_equal(back, value)
    else:
        assert back == value


def test_serialize_refuses_code_objects_and_pickles():
    import base64
    import io

    import numpy as np
    from utils.grade import serialize
    for value in (lambda: 1, np.array([object()]), {1, 2}):
        with pytest.raises(serialize.NotSerializable):
            serialize.dumps(value)
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"x": 1}], dtype=object), allow_pickle=True)     # a pickle inside .npy
    crafted = json.dumps({"__ndarray__": base64.b64encode(buffer.getvalue()).decode()}).encode()
    with pytest.raises(ValueError, match="pickle"):
        serialize.loads(crafted)


def test_runner_keeps_student_patches_in_its_own_process(tmp_path):
    import numpy as np
    from utils.grade.runner import Runner, StudentCodeError, StudentFunction
    source = "import numpy as np\ndef f(x):\n    np.array_equal = lambda *a, **k: True\n    raise ValueError('bad x')"
    runner = Runner([source], str(tmp_path), 2**32)
    try:
        with pytest.raises(ValueError, match="bad x") as raised:
            StudentFunction(runner, "f")(np.zeros(2))
        assert isinstance(raised.value, StudentCodeError)
        assert not np.array_equal(np.zeros(2), np.ones(2))     # the grader's numpy is untouched
    finally:
        runner.stop()


def test_a_runner_that_ended_between_calls_is_reported_as_a_crash(tmp_path):
    """A learner's thread may end the runner after its function has returned: the next call finds
    the pipe closed (EPIPE).  That is the learner's crash, said as one, not a grader BrokenPipeError."""
    import numpy as np
    from utils.grade.runner import Runner, StudentCrashed, StudentFunction
    source = ("import os, threading, time\ndef f(x):\n"
              "    threading.Thread(target=lambda: (time.sleep(0.2), os._exit(0))).start()\n    return x")
    runner = Runner([source], str(tmp_path), 2**32)
    try:
        assert StudentFunction(runner, "f")(np.zeros(2)).tolist() == [0, 0]
        time.sleep(1.0)
        with pytest.raises(StudentCrashed, match="had ended"):
            StudentFunction(runner, "f")(np.zeros(2))
        assert StudentFunction(runner, "f")(np.ones(1)).tolist() == [1]     # started again for the next call
    finally:
        runner.stop()


def test_grading_runs_at_once_leave_each_other_alone(tmp_path):
    """Instructors (or CI's two workers) grading on one machine at the same time: each run's
    final sweep of its sandboxes must not kill the other's (it once did: PID-namespace inodes are
    reused at once, and a namespace was recognised by its inode alone; one honest row in six runs
    became a BrokenPipeError).  Each run starts while the previous one's sandboxes are running and
    ending; with the inode-only check this failed in 3 of 4 tries (two runs: 1 of 4, so three).
    One kernel per run, to keep the load on CI's other worker small."""
    runs = []
    for name in ("a", "b", "c"):
        folder = tmp_path / name
        folder.mkdir()
        for k in range(4):
            (folder / f"learner{k}.ipynb").write_bytes(SOLVED.read_bytes())
        out = tmp_path / f"out-{name}"
        runs.append((out, subprocess.Popen(
            [sys.executable, "-m", "utils.grade", str(folder), "--out", str(out), "--jobs", "1",
             "--solutions", str(FIXTURES / "solutions")], cwd=ROOT, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)))
        time.sleep(1.5)
    for out, process in runs:
        stdout, stderr = process.communicate(timeout=600)
        assert process.returncode == 0, stderr
        rows = list(csv.DictReader((out / "grades.csv").open()))
        automatic = [r for r in rows if r["question"] in ("add_one_test", "kernel_sum_test")]
        assert len(automatic) == 8
        assert all(r["status"] == "passed" for r in automatic), [(r["submission"], r["question"], r["status"])
                                                                 for r in automatic if r["status"] != "passed"]


def test_extra_tests_from_a_notebook(tmp_path):
    from utils.grade.exercise_sets import add_extra_tests, load_exercise_sets
    cell = nbformat.v4.new_code_cell("assert add_one(1) == 2", metadata={"nbgrader": {
        "grade": True, "solution": False, "locked": True, "points": 5, "grade_id": "more", "schema_version": 3}})
    (tmp_path / "ex01.ipynb").write_text(nbformat.writes(nbformat.v4.new_notebook(cells=[cell])))
    sets = load_exercise_sets(FIXTURES / "solutions")
    add_extra_tests(sets, tmp_path)
    assert [(t.grade_id, t.points, t.hidden) for t in sets["ex01"].extra_tests] == [("more", 5.0, True)]


def test_names_a_test_cell_needs_from_the_student():
    from utils.grade.exercise_sets import defined_names, used_names
    solution = "import numpy as np\nfrom utils.data import load_image\ndef f(x):\n    return x\nimage = np.zeros(2)\nfor k in range(2):\n    pass"
    assert defined_names(solution) == {"f", "image", "k"}
    test = "import numpy as np\nx = np.ones(3)\nassert np.array_equal(f(x), x) and image.shape == (2,)"
    assert used_names(test) == {"f", "image"}


# ---------------------------------------------------------------- one rule for what of the learner's code runs

LEARNER_CELLS = [
    (1, "import numpy as np\nnp.einsum?\n%matplotlib inline\n!echo hello"),
    (2, "SLOPE = 0.0\nrelu = lambda x: np.maximum(x, SLOPE)\n_cache = {}\n"
        "def cached_relu(x):\n    key = x.tobytes()\n    if key not in _cache:\n        _cache[key] = relu(x)\n    return _cache[key]"),
    (3, "@staticmethod\ndef decorated(x):\n    return x\nalias = cached_relu\nhistory = 1 / 0   # a training run no function reads\nprint(relu(np.ones(2)))"),
    (4, "%%bash\necho not python"),
]


def test_ipython_syntax_is_not_a_syntax_error():
    from utils.grade.student_code import parse_cells
    code = parse_cells(LEARNER_CELLS + [(5, "def broken(:\n    pass")])
    assert code.problems == ["cell 5 has a syntax error (line 1): invalid syntax"]


def test_the_runner_runs_what_the_tested_functions_read_and_nothing_else():
    from utils.grade.student_code import parse_cells
    code = parse_cells(LEARNER_CELLS)
    chosen = [code.statements[i].source for i in code.needed({"alias"})]
    assert "SLOPE = 0.0" in chosen and "_cache = {}" in chosen and "relu = lambda x: np.maximum(x, SLOPE)" in chosen
    assert not any("1 / 0" in s or "print(" in s or "get_ipython" in s for s in chosen)
    assert code.function_names() >= {"relu", "cached_relu", "alias", "decorated"}
    assert "SLOPE" not in code.function_names() and "_cache" not in code.function_names()


def test_student_function_exposes_the_learners_source(tmp_path):
    from utils.grade.runner import StudentFunction
    from utils.grade.student_code import parse_cells
    code = parse_cells(LEARNER_CELLS)
    assert code.source_of("relu") == "relu = lambda x: np.maximum(x, SLOPE)"
    assert code.source_of("alias") == code.source_of("cached_relu") == LEARNER_CELLS[1][1].split("\n", 3)[3]
    assert code.source_of("decorated").startswith("@staticmethod\ndef decorated(x):")
    proxy = StudentFunction(None, "relu", code.source_of("relu"))
    assert proxy.__name__ == "relu" and proxy.__source__ == "relu = lambda x: np.maximum(x, SLOPE)"


def _runner_for(cells, names, tmp_path, seconds=30.0):
    from utils.grade.runner import Runner, StudentFunction
    from utils.grade.student_code import parse_cells
    code = parse_cells(cells)
    chosen = [code.statements[i] for i in code.needed(set(names))]
    runner = Runner([s.source for s in chosen], str(tmp_path), 2**32, start_seconds=seconds,
                    labels=[s.where() for s in chosen])
    runner.start()
    return runner, {n: StudentFunction(runner, n, code.source_of(n)) for n in names}


def test_module_level_constants_lambdas_and_caches_work_in_the_runner(tmp_path):
    import numpy as np
    from utils.checks import check_relu
    runner, fns = _runner_for(LEARNER_CELLS, ["relu", "alias"], tmp_path)
    try:
        assert runner.load_problems == []
        assert runner.callables(["relu", "alias", "SLOPE"]) == {"relu", "alias"}
        check_relu(fns["relu"], hidden=True)
        check_relu(fns["alias"], hidden=True)
        assert np.array_equal(fns["alias"](np.array([-1.0, 2.0])), [0.0, 2.0])
    finally:
        runner.stop()


IN_PLACE = [(1, "import numpy as np\ndef relu(x):\n    x[x < 0] = 0\n    return x")]


def test_an_in_place_change_of_an_argument_fails_the_same_way_in_the_notebook_and_the_grader(tmp_path):
    from utils.checks import CheckFailed, check_relu
    namespace = {}
    exec(IN_PLACE[0][1], namespace)
    with pytest.raises(CheckFailed) as in_notebook:
        check_relu(namespace["relu"])
    runner, fns = _runner_for(IN_PLACE, ["relu"], tmp_path)
    try:
        with pytest.raises(CheckFailed) as in_grader:
            check_relu(fns["relu"])
    finally:
        runner.stop()
    assert "changed its argument `x` in place" in str(in_grader.value)
    assert str(in_grader.value) == str(in_notebook.value)


def test_a_returned_torch_tensor_arrives_as_a_torch_tensor(tmp_path):
    import numpy as np
    import torch
    cells = [(1, "import torch\nimport numpy as np\ndef relu(x):\n    return torch.relu(torch.from_numpy(x))\n"
                 "def grad(x):\n    return torch.from_numpy(x).requires_grad_()")]
    runner, fns = _runner_for(cells, ["relu", "grad"], tmp_path)
    try:
        out = fns["relu"](np.array([-1.0, 2.0]))
        assert isinstance(out, torch.Tensor) and out.tolist() == [0.0, 2.0] and out.dtype == torch.float64
        assert fns["grad"](np.ones(2)).requires_grad        # np.asarray refuses it here as in the notebook
    finally:
        runner.stop()


def test_a_timeout_inside_a_check_is_a_timeout_not_a_wrong_answer(tmp_path):
    import time

    import numpy as np
    from utils.grade.runner import StudentTimeout
    cells = [(1, "def relu(x):\n    while True:\n        pass")]
    runner, fns = _runner_for(cells, ["relu"], tmp_path)
    runner.deadline = time.monotonic() + 1
    try:
        with pytest.raises(StudentTimeout):
            try:                           # what a check does with the learner's exceptions
                fns["relu"](np.ones(2))
            except Exception:              # noqa: BLE001
                pytest.fail("a timeout must not look like an exception of the learner's function")
    finally:
        runner.stop()


def test_exceptions_keep_the_learners_message_and_builtin_class(tmp_path):
    import numpy as np
    cells = [(1, "import numpy as np\ndef f(x):\n    return np.sum(x, axis=5)\ndef g(x):\n    raise ValueError('bad x')")]
    runner, fns = _runner_for(cells, ["f", "g"], tmp_path)
    try:
        with pytest.raises(ValueError) as raised:        # numpy's AxisError is a ValueError, here too
            fns["f"](np.ones(2))
        assert type(raised.value).__name__ == "AxisError" and "axis 5" in str(raised.value)
        with pytest.raises(ValueError) as raised:
            fns["g"](1)
        assert str(raised.value) == "bad x" and raised.value.feedback() == "g raised ValueError: bad x"
    finally:
        runner.stop()


def test_a_statement_that_hangs_or_exits_while_loading_is_skipped_and_named(tmp_path):
    cells = [(1, "import os, time\nLIMIT = 2\nWAIT = time.sleep(60)\nGONE = os._exit(3)\n"
                 "def f(x):\n    return x + LIMIT + (WAIT is None) + (GONE is None)")]
    runner, fns = _runner_for(cells, ["f"], tmp_path, seconds=2)
    try:
        assert [p.split(" ", 4)[:4] for p in runner.load_problems] == [["cell", "1,", "line", "3"],
                                                                        ["cell", "1,", "line", "4"]]
        assert "took longer than 2 s" in runner.load_problems[0] and "ended the process" in runner.load_problems[1]
        with pytest.raises(NameError, match="WAIT"):
            fns["f"](1)
    finally:
        runner.stop()


# ---------------------------------------------------------------- one file, one problem (no kernels)

def _raw_solved() -> dict:
    return json.loads(nbformat.writes(solved()))


def _edit(edit):
    raw = _raw_solved()
    edit(raw)
    return json.dumps(raw)


def _answer_cell(raw):
    return next(c for c in raw["cells"] if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "add_one")


BROKEN = {    # file text -> (exercise set found, words the problem must contain)
    "not json": ("{ nope", None, "not JSON (Expecting property name"),
    "a list": ("[1, 2]", None, "the file holds a list"),
    "nbformat 99": (_edit(lambda r: r.update(nbformat=99)), "ex01", "field nbformat is 99"),
    "nbformat text": (_edit(lambda r: r.update(nbformat="4")), "ex01", "field nbformat is '4'"),
    "set a list": (_edit(lambda r: r["metadata"]["convcourse"].update(exercise_set=["ex01"])), None,
                   'metadata convcourse.exercise_set is a list (["ex01"])'),
    "set a dict": (_edit(lambda r: r["metadata"]["convcourse"].update(exercise_set={"a": 1})), None,
                   "metadata convcourse.exercise_set is an object"),
    "set an int": (_edit(lambda r: r["metadata"]["convcourse"].update(exercise_set=1)), None,
                   "metadata convcourse.exercise_set is an integer (1)"),
    "set unknown": (_edit(lambda r: r["metadata"]["convcourse"].update(exercise_set="ex77")), None,
                    "unknown exercise set 'ex77'"),
    "convcourse a list": (_edit(lambda r: r["metadata"].update(convcourse=["ex01"])), None,
                          "metadata convcourse is a list"),
    "source an int": (_edit(lambda r: _answer_cell(r).update(source=3)), "ex01",
                      "cell 3: field source is an integer (3); expected text"),
    "source of non-strings": (_edit(lambda r: _answer_cell(r).update(source=["x = 1\n", None])), "ex01",
                              "field source is a list holding null"),
    "nbgrader a string": (_edit(lambda r: _answer_cell(r)["metadata"].update(nbgrader="add_one")), "ex01",
                          "metadata nbgrader is a string ('add_one')"),
    "cells missing": (_edit(lambda r: r.pop("cells")), "ex01", "field cells is missing"),
    "cells an object": (_edit(lambda r: r.update(cells={})), "ex01", "field cells is an object, not a list"),
}


@pytest.mark.parametrize("kind", list(BROKEN))
def test_a_broken_file_is_its_own_problem_named_by_field(tmp_path, kind):
    from utils.grade.grader import read_submission
    from utils.grade.exercise_sets import load_exercise_sets
    text, set_id, words = BROKEN[kind]
    (tmp_path / "x.ipynb").write_text(text)
    submission = read_submission(str(tmp_path / "x.ipynb"), load_exercise_sets(FIXTURES / "solutions"))
    assert submission.nb is None
    assert (submission.exercise_set.set_id if submission.exercise_set else None) == set_id
    assert {r.status for r in submission.rows} == {"invalid"}
    messages = {r.feedback for r in submission.rows if r.feedback}
    assert len(messages) == 1 and words in messages.pop(), [r.feedback for r in submission.rows]
    for row in submission.rows:
        assert "Error" not in row.feedback and "Traceback" not in row.feedback


def test_one_malformed_quiz_record_invalidates_only_its_own_quiz():
    from utils.grade.reading import quiz_answers
    nb = solved()
    quiz_cell = next(c for c in nb.cells if "show_quiz" in c.source)
    quiz_cell.outputs = [
        nbformat.v4.new_output("display_data", data={ANSWERS_MIME: {"quiz": "00", "answers": [1, 2]}}),
        nbformat.v4.new_output("display_data", data={ANSWERS_MIME: {"quiz": "07", "answers": {"q1": 2}}}),
        nbformat.v4.new_output("display_data", data={ANSWERS_MIME: "not json"})]
    answers, problems = quiz_answers(nb)
    assert answers == {"07": {"q1": 2}}
    assert "field answers of the quiz 00 record is a list" in problems["00"]


def test_two_hand_ins_of_one_learner_are_flagged():
    from utils.grade.layout import learner_of
    from utils.grade.reading import duplicate_notes
    meta = {"metadata": {"convcourse": {"learner": "heidi"}}}
    entries = [("c/alice/ex01.ipynb", learner_of("c/alice/ex01.ipynb", None, "c"), "ex01"),
               ("c/alice/ex01 (1).ipynb", learner_of("c/alice/ex01 (1).ipynb", None, "c"), "ex01"),
               ("c/alice/ex02.ipynb", learner_of("c/alice/ex02.ipynb", None, "c"), "ex02"),
               ("c/u1.ipynb", learner_of("c/u1.ipynb", meta, "c"), "ex01"),
               ("c/u2.ipynb", learner_of("c/u2.ipynb", meta, "c"), "ex01"),
               ("c/bob.ipynb", learner_of("c/bob.ipynb", None, "c"), "ex01"),
               ("x/submitted/carl/ex01/ex01.ipynb", learner_of("x/submitted/carl/ex01/ex01.ipynb"), "ex01")]
    notes = duplicate_notes(entries)
    assert set(notes) == {"c/alice/ex01.ipynb", "c/alice/ex01 (1).ipynb", "c/u1.ipynb", "c/u2.ipynb"}
    assert notes["c/u1.ipynb"].startswith("2 hand-ins for one learner (heidi, ex01): choose one (also c/u2.ipynb)")
    assert learner_of("x/submitted/carl/ex01/ex01.ipynb") == "carl"


MODEL_CELLS = [(1, "import torch\nfrom torch import nn\n\n"
                   "class Tiny(nn.Module):              # the learner's own Module subclass\n"
                   "    def __init__(self, n):\n        super().__init__()\n        self.fc = nn.Linear(4, n)\n"
                   "    def forward(self, x):\n        return self.fc(x.flatten(1))\n\n"
                   "def build(num_classes):\n"
                   "    import utils.checks.models as m           # tries to fake what the check sees\n"
                   "    m.describe_model = lambda model, *a, **k: {'layers': ['Fake']}\n"
                   "    return Tiny(num_classes)")]


def test_instructor_code_describes_a_learner_model_inside_the_runner(tmp_path):
    from utils.checks.models import describe_model
    runner, fns = _runner_for(MODEL_CELLS, ["build"], tmp_path)
    try:
        described = fns["build"](3)                  # a model cannot cross: its trusted description does
        assert described["layers"] == ["Linear"] and described["parameters"]["fc.weight"].shape == (3, 4)
        described = fns["build"].__call_described__(describe_model, 3)
        assert described["layers"] == ["Linear"]     # the trusted copy, not the learner's patched one
        assert sorted(described["parameters"]) == ["fc.bias", "fc.weight"]
        assert described["parameters"]["fc.weight"].shape == (3, 4)
        with pytest.raises(ValueError, match="not a function of utils.checks"):
            fns["build"].__call_described__(len, 3)
    finally:
        runner.stop()


HIDDEN_LIBRARY = [(1, "import numpy as np\nfrom utils.functional import relu as helper\n"),
                  (2, "def relu(x):\n    return helper(x)")]


def test_a_library_behind_an_alias_breaks_from_scratch_in_the_notebook_and_the_grader_alike(tmp_path):
    import linecache

    from utils.checks import CheckFailed, check_relu
    namespace, source = {}, "\n".join(s for _, s in HIDDEN_LIBRARY)
    linecache.cache["<cells>"] = (len(source), None, source.splitlines(True), "<cells>")
    exec(compile(source, "<cells>", "exec"), namespace)           # as IPython runs the cells
    with pytest.raises(CheckFailed) as in_notebook:
        check_relu(namespace["relu"])
    runner, fns = _runner_for(HIDDEN_LIBRARY, ["relu"], tmp_path)
    try:
        fns["relu"].__globals_origin__ = runner.origins(["relu"])["relu"]
        with pytest.raises(CheckFailed) as in_grader:
            check_relu(fns["relu"])
    finally:
        runner.stop()
    assert "from scratch" in str(in_grader.value) and "utils.functional" in str(in_grader.value)
    assert str(in_grader.value) == str(in_notebook.value)


RELU_VARIANTS = {   # how learners write relu -> its cells; the notebook's check and the grader must agree
    "def": "import numpy as np\ndef relu(x):\n    return np.maximum(x, 0).astype(x.dtype, copy=False)",
    "lambda and constant": "import numpy as np\nZERO = 0\nrelu = lambda x: np.maximum(x, ZERO).astype(x.dtype)",
    "cached global": ("import numpy as np\n_seen = {}\ndef relu(x):\n    key = (x.shape, x.dtype.str, x.tobytes())\n"
                      "    if key not in _seen:\n        _seen[key] = np.where(x > 0, x, 0).astype(x.dtype)\n"
                      "    return _seen[key].copy()"),
    "in place": "import numpy as np\ndef relu(x):\n    np.maximum(x, 0, out=x)\n    return x",
    "torch": "import torch\ndef relu(x):\n    return torch.relu(torch.from_numpy(x))",
    "library alias": "import numpy as np\nfrom utils.functional import relu as helper\ndef relu(x):\n    return helper(x)",
    "wrong": "import numpy as np\ndef relu(x):\n    return np.abs(x)",
    "stub": "def relu(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()",
    "raises": "def relu(x):\n    raise ValueError(f'cannot handle {x.ndim} dimensions')",
    "no return": "import numpy as np\ndef relu(x):\n    y = np.maximum(x, 0)",
    "a list": "def relu(x):\n    return [max(v, 0) for v in x.ravel()]",
}


@pytest.mark.parametrize("variant", list(RELU_VARIANTS))
def test_the_notebook_and_the_grader_give_the_same_verdict(tmp_path, variant):
    import linecache

    from utils.checks import check_relu
    source = RELU_VARIANTS[variant]

    def verdict(fn):
        try:
            check_relu(fn, hidden=True)
        except AssertionError as failure:
            return "failed", str(failure)
        except Exception as exc:                  # noqa: BLE001 - the grader reports these as errors
            return "error", f"{type(exc).__name__}: {exc}"
        return "passed", ""
    namespace, filename = {}, f"<cell {variant}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), namespace)           # as IPython runs a cell
    in_notebook = verdict(namespace["relu"])
    runner, fns = _runner_for([(1, source)], ["relu"], tmp_path)
    try:
        fns["relu"].__globals_origin__ = runner.origins(["relu"]).get("relu", {})
        in_grader = verdict(fns["relu"])
    finally:
        runner.stop()
    assert in_grader == in_notebook
    assert in_notebook[0] == ("passed" if variant in ("def", "lambda and constant", "cached global") else "failed")


def test_a_definition_typed_into_a_copy_of_a_test_cell_still_counts(tmp_path):
    nb = solved(add_one_body="return x + 1")
    answer = cell_with_id(nb, "add_one")
    test = cell_with_id(nb, "add_one_test")
    test.source = answer.source + "\n\n" + test.source     # pasted into the check cell (metadata copied)
    answer.source = "# moved below"
    (tmp_path / "pasted.ipynb").write_text(nbformat.writes(nb))
    result = grade([str(tmp_path / "pasted.ipynb"), "--out", str(tmp_path / "out"), "--solutions",
                    str(FIXTURES / "solutions"), "--execute", "when-needed", "--unsafe-no-sandbox"])
    assert result.returncode == 0, result.stderr
    rows = {r["question"]: r["status"] for r in csv.DictReader((tmp_path / "out" / "grades.csv").open())}
    assert rows["add_one_test"] == "passed"


CNN = ("import torch\nfrom torch import nn\n\n"
       "def build_cnn(num_classes):\n"
       "    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),\n"
       "                         nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),\n"
       "                         nn.Flatten(), nn.Linear(256, {classes}))")
CNN_VARIANTS = {
    "right": CNN.format(classes="num_classes"),
    "ten classes hard-coded": CNN.format(classes="10"),
    "own Module subclass": ("import torch\nfrom torch import nn\n\nclass Net(nn.Module):\n"
                            "    def __init__(self, k):\n        super().__init__()\n"
                            "        self.body = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),\n"
                            "            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(256, k))\n"
                            "    def forward(self, x):\n        return self.body(x)\n\n"
                            "def build_cnn(num_classes):\n    return Net(num_classes)"),
}


@pytest.mark.parametrize("variant", list(CNN_VARIANTS))
def test_a_learners_model_gets_the_same_verdict_in_the_notebook_and_the_grader(tmp_path, variant):
    from utils.checks import check_build_cnn
    source = CNN_VARIANTS[variant]

    def verdict(fn, hidden):
        try:
            check_build_cnn(fn, hidden=hidden)
        except AssertionError as failure:
            return "failed", str(failure)
        return "passed", ""
    namespace = {}
    exec(source, namespace)
    runner, fns = _runner_for([(1, source)], ["build_cnn"], tmp_path)
    try:
        for hidden in (False, True):
            assert verdict(fns["build_cnn"], hidden) == verdict(namespace["build_cnn"], hidden)
    finally:
        runner.stop()
    assert verdict(namespace["build_cnn"], True)[0] == ("failed" if "hard-coded" in variant else "passed")

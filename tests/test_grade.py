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
from pathlib import Path

import nbformat
import pytest

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
    "class/untouched.ipynb": nbformat.read(UNSOLVED, as_version=4),
    "class/renamed_file_xyz.ipynb": with_quiz_answers(solved(), {"q1": 0, "q2": [0, 1, 3]}),
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
    assert list(run["rows"][0]) == ["submission", "exercise_set", "question", "points", "max_points", "status"]
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
    assert status(run, "class/renamed_file_xyz.ipynb", "quiz00:q1") == "failed"   # set found from metadata


def test_untouched_exercise_gets_zero(run):
    untouched = run["by_file"]["class/untouched.ipynb"]
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


def test_grader_fault_exits_1_but_writes_rows(tmp_path, monkeypatch):
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


REAL_SOLUTIONS = sorted((ROOT / "solutions").glob("ex[0-9][0-9]_*.ipynb"))


@pytest.mark.skipif(not REAL_SOLUTIONS, reason="no exercise sets in solutions/ yet")
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

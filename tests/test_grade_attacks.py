"""The grader against a cheating learner, beyond tests/test_sandbox.py and tests/test_grade*.py.

One grading run (module fixture) over a small class: learners of the real ex05 (ReLU; the exercise
as generated from ``solutions/``, answers typed into its cells) and of the fixture set ex01
(tests/fixtures, whose hidden test calls ``add_one`` directly, not through a check).  Each cheat is
one submission; each test says how that cheat must end: no hidden input in the feedback, no full
marks for code that reaches into the runner's own frames, a clear message for the learner.  The
honest submissions in the same run must still get every point, so the tests can fail.
"""
from __future__ import annotations

import csv
import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from utils.grade import sandbox

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
spec = importlib.util.spec_from_file_location("grade_class", ROOT / "tests" / "grade_class.py")
grade_class = importlib.util.module_from_spec(spec)
spec.loader.exec_module(grade_class)
RIGHT = grade_class.RIGHT
MARK = "LEAKED"          # what every leaking cheat puts in front of the hidden values it sends out

pytestmark = pytest.mark.skipif(sandbox.check_bwrap() is not None, reason=f"no sandbox: {sandbox.check_bwrap()}")


def relu_leaking(how: str) -> str:
    """A relu that is right on the visible inputs and, on a larger (hidden) input, sends its first
    values out through ``how``: "message", "type" (an exception class named after them) or "unsupported"
    (a returned object of a class named after them)."""
    values = "'_'.join(str(int(abs(v) * 1e5)) for v in x.ravel()[:6])"
    leak = {"message": f"raise ValueError('{MARK} ' + {values})",
            "type": f"raise type('{MARK}_' + {values}, (ValueError,), {{}})('x')",
            "unsupported": f"return type('{MARK}_' + {values}, (), {{}})()"}[how]
    return (f"def relu(x):\n    if x.size > 30:\n        {leak}\n"
            "    return np.maximum(x, 0).astype(x.dtype, copy=False)")


# Top-level code (a class body runs while the runner loads the notebook) that walks up to the
# runner's serving loop and replaces its "trusted" copy of the from-scratch rule's origin finder.
FORGE_ORIGINS = ("class _Forge:\n    import sys as _s\n    _f = _s._getframe(1)\n"
                 "    while _f is not None and 'describers' not in _f.f_locals:\n        _f = _f.f_back\n"
                 "    if _f is not None:\n        _f.f_locals['describers']['utils.checks.rules:global_origins'] = "
                 "lambda fn: {}\n")
# ... and then swaps the tested function for the library's, leaving an honest-looking def in the notebook.
SWAP = FORGE_ORIGINS + ("    if _f is not None:\n        import utils.functional as _u\n"
                        "        _f.f_locals['namespace']['relu'] = _u.relu\n")
SWAP_BY_GC = ("class _Walk:\n    import gc as _gc\n    for _d in _gc.get_objects():\n"
              "        if type(_d) is dict and 'utils.checks.rules:global_origins' in _d:\n"
              "            _d['utils.checks.rules:global_origins'] = lambda fn: {}\n")

EX05 = {
    "honest": RIGHT,
    # compose_kernels is the check's own reference: the from-scratch rule does not know utils.checks
    "reference_of_the_check": {**RIGHT, "compose_kernels": "from utils.checks.ex05 import _composed as helper\n\n"
                                                           "def compose_kernels(w1, b1, w2, b2):\n"
                                                           "    return helper(w1, b1, w2, b2)"},
    "leak_message": {**RIGHT, "relu": relu_leaking("message")},
    "leak_type_name": {**RIGHT, "relu": relu_leaking("type")},
    "leak_unsupported_type": {**RIGHT, "relu": relu_leaking("unsupported")},
    "visible_message": {**RIGHT, "relu": "def relu(x):\n    raise ValueError('my own words')"},
    "alias_with_forged_origins": {**RIGHT, "relu": "from utils.functional import relu as helper\n\n"
                                                   "def relu(x):\n    return helper(x)\n\n" + FORGE_ORIGINS},
    "swapped_function": {**RIGHT, "relu": "def relu(x):\n    return x\n\n" + SWAP},
    "alias_with_origins_forged_by_gc": {**RIGHT, "relu": "from utils.functional import relu as helper\n\n"
                                                         "def relu(x):\n    return helper(x)\n\n" + SWAP_BY_GC},
    "unprintable_exception": {**RIGHT, "relu": "class Odd(Exception):\n    def __str__(self):\n"
                                               "        raise RuntimeError('no')\n\n"
                                               "def relu(x):\n    raise Odd()"},
}


BUILD_CNN_RIGHT = ("def build_cnn(num_classes):\n    return nn.Sequential(\n"
                   "        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),\n"
                   "        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),\n"
                   "        nn.Flatten(), nn.Linear(16 * 4 * 4, num_classes))")
# No model at all: the dict a model check reads, written by hand (the check accepts "a model or its
# description", and a plain dict crosses from the runner as data).
BUILD_CNN_FORGED = (
    "def build_cnn(num_classes):\n"
    "    shapes = [(8, 1, 3, 3), (8,), (16, 8, 3, 3), (16,), (num_classes, 256), (num_classes,)]\n"
    "    return {'layers': ['Conv2d', 'ReLU', 'MaxPool2d', 'Conv2d', 'ReLU', 'MaxPool2d', 'Flatten', 'Linear'],\n"
    "            'parameters': {f'p{i}': np.zeros(s) for i, s in enumerate(shapes)}, 'trainable': [],\n"
    "            'output_shape': (2, num_classes), 'forward_error': None}")
EX07 = {"ex07_honest": {"build_cnn": BUILD_CNN_RIGHT}, "ex07_forged_description": {"build_cnn": BUILD_CNN_FORGED}}


def ex07_learner(answers: dict[str, str]):
    """The ex07 exercise as generated from solutions/, with ``answers`` typed into its cells."""
    sys.path.insert(0, str(ROOT))
    from tools.make_exercises import generate
    generated = generate(ROOT / "solutions")
    nb = nbformat.reads(generated[next(n for n in generated if n.startswith("ex07"))], as_version=4)
    for cell in nb.cells:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") in answers:
            cell.source = answers[cell.metadata.nbgrader.grade_id]
    return nb


# Cells nested deeper than CPython's parser goes (the kernel refuses them too), beside honest answers.
EXTRA_CELL = {"deep_sum": "total = " + "1+" * 200000 + "1", "deep_unary": "value = " + "-" * 100000 + "1",
              "deep_but_parsed": "total = " + "1+" * 2000 + "1"}     # parses, too deep for a recursive walk
EX05.update({name: RIGHT for name in EXTRA_CELL})


def fixture_solved(add_one_body: str):
    nb = nbformat.read(FIXTURES / "solutions" / "ex01_fixture.ipynb", as_version=4)
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "add_one")
    cell.source = "def add_one(x):\n" + "\n".join("    " + line for line in add_one_body.split("\n"))
    return nb


EX01 = {   # the fixture's hidden test calls add_one directly (an assert, no check of utils.checks)
    "fixture_honest": fixture_solved("return x + 1"),
    "fixture_leak_message": fixture_solved(f"if x.ndim == 3:\n    raise ValueError('{MARK} ' + repr(x.tolist()))\n"
                                           "return x + 1"),
}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    base = tmp_path_factory.mktemp("attacks")
    solutions, submissions, out = base / "solutions", base / "class", base / "out"
    solutions.mkdir()
    submissions.mkdir()
    shutil.copy(next((ROOT / "solutions").glob("ex05_*.ipynb")), solutions)
    shutil.copy(FIXTURES / "solutions" / "ex01_fixture.ipynb", solutions)
    shutil.copy(next((ROOT / "solutions").glob("ex07_*.ipynb")), solutions)
    for name, answers in EX07.items():
        (submissions / f"{name}.ipynb").write_text(nbformat.writes(ex07_learner(answers)))
    for name, answers in EX05.items():
        nb = grade_class.learner(answers, grade_class._quiz_key(), extra=EXTRA_CELL.get(name))
        (submissions / f"{name}.ipynb").write_text(nbformat.writes(nb))
    for name, nb in EX01.items():
        (submissions / f"{name}.ipynb").write_text(nbformat.writes(nb))
    # Links the collection copied as links (rsync -a does): to a classmate's notebook, to the solution.
    (submissions / "zed").mkdir()
    (submissions / "zed" / "ex01.ipynb").write_text(nbformat.writes(EX01["fixture_honest"]))
    (submissions / "aaa_mallory").mkdir()
    (submissions / "aaa_mallory" / "ex01.ipynb").symlink_to(Path("..") / "zed" / "ex01.ipynb")
    (submissions / "solution_link.ipynb").symlink_to(solutions / "ex01_fixture.ipynb")
    result = subprocess.run([sys.executable, "-m", "utils.grade", str(submissions), "--out", str(out), "--jobs", "2",
                             "--timeout", "20", "--execute", "when-needed", "--solutions", str(solutions)],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert (out / "grades.csv").exists(), result.stderr[-3000:]
    rows: dict[str, dict[str, dict]] = {}
    for row in csv.DictReader((out / "grades.csv").open(encoding="utf-8")):
        rows.setdefault(str(Path(row["submission"]).relative_to(submissions).with_suffix("")), {})[row["question"]] = row
    feedback = {p.name.split(".ipynb")[0].split("class_")[-1].replace("_ex01", "/ex01"): p.read_text(encoding="utf-8")
                for p in (out / "feedback").iterdir()}
    return dict(result=result, rows=rows, feedback=feedback)


def test_the_run_grades_everyone(graded):
    assert graded["result"].returncode == 0, graded["result"].stderr[-3000:]
    assert set(graded["rows"]) == set(EX05) | set(EX01) | set(EX07) | {"zed/ex01", "aaa_mallory/ex01", "solution_link"}


def test_a_linked_notebook_is_refused_and_its_target_still_graded_for_its_owner(graded):
    """A learner who links a classmate's notebook (or the instructor's solution) into their own folder
    gets an ``invalid`` row saying so; the classmate's own notebook is still graded, as theirs."""
    for name in ("aaa_mallory/ex01", "solution_link"):
        rows = graded["rows"][name]
        assert {r["status"] for r in rows.values()} == {"invalid"}, rows
        assert sum(float(r["points"]) for r in rows.values()) == 0
        assert "symbolic link" in graded["feedback"][name], graded["feedback"][name]
    assert graded["rows"]["zed/ex01"]["add_one_test"]["status"] == "passed"


def test_honest_submissions_get_every_automatic_point(graded):
    for name, test in (("honest", "test_relu"), ("fixture_honest", "add_one_test")):
        rows = graded["rows"][name]
        assert rows[test]["status"] == "passed", graded["feedback"][name]
    assert all(r["status"] == "passed" for q, r in graded["rows"]["honest"].items() if q.startswith("test_"))


@pytest.mark.parametrize("name", ["leak_message", "leak_type_name", "leak_unsupported_type", "fixture_leak_message"])
def test_hidden_inputs_never_reach_the_feedback_through_the_learners_own_text(graded, name):
    """A learner's exception message, exception class name or returned class name is text the
    learner's code chose: on a hidden test's input it would carry the input out."""
    text = graded["feedback"][name]
    assert MARK not in text, text
    test = "add_one_test" if name.startswith("fixture") else "test_relu"
    row = graded["rows"][name][test]
    assert row["status"] in {"failed", "error"} and float(row["points"]) == 0, row
    # the feedback still names what happened
    assert re.search(r"(raised ValueError|cannot be graded)", text), text


def test_a_message_raised_on_a_visible_input_is_shown(graded):
    text = graded["feedback"]["visible_message"]
    assert "relu raised ValueError: my own words" in text, text


@pytest.mark.parametrize("name", ["alias_with_forged_origins", "swapped_function", "alias_with_origins_forged_by_gc"])
def test_code_that_reaches_into_the_runner_does_not_get_the_points(graded, name):
    row = graded["rows"][name]["test_relu"]
    assert float(row["points"]) == 0 and row["status"] in {"failed", "needs-review"}, (row, graded["feedback"][name])


def test_a_hand_written_model_description_is_not_a_model(graded):
    assert graded["rows"]["ex07_honest"]["test_build_cnn"]["status"] == "passed", graded["feedback"]["ex07_honest"]
    row = graded["rows"]["ex07_forged_description"]["test_build_cnn"]
    assert row["status"] in {"failed", "error"} and float(row["points"]) == 0, graded["feedback"]["ex07_forged_description"]
    assert "torch.nn.Module" in graded["feedback"]["ex07_forged_description"]


def test_the_checks_own_reference_is_not_an_answer(graded):
    row = graded["rows"]["reference_of_the_check"]["test_compose_kernels"]
    assert float(row["points"]) == 0 and row["status"] == "needs-review", row
    assert "check code" in graded["feedback"]["reference_of_the_check"]


@pytest.mark.parametrize("name", list(EXTRA_CELL))
def test_a_cell_too_deep_to_parse_is_named_and_the_rest_graded(graded, name):
    """Not a grader fault (exit 1, "ask your instructor"): the cell is named, the functions are graded."""
    text = graded["feedback"][name]
    assert "GRADER FAULT" not in graded["result"].stderr and "grader fault" not in text, text
    assert all(r["status"] == "passed" for q, r in graded["rows"][name].items() if q.startswith("test_")), text
    assert "cell 3" in text and "nests too deeply" in text, text


def test_an_exception_that_cannot_be_printed_is_named_not_called_a_crash(graded):
    text = graded["feedback"]["unprintable_exception"]
    row = graded["rows"]["unprintable_exception"]["test_relu"]
    assert float(row["points"]) == 0 and "Odd" in text and "ended the process" not in text, text


# ---------------------------------------------------------------- the pieces

def test_a_reply_of_millions_of_items_is_refused_before_it_is_parsed(monkeypatch):
    """A runner (or a kernel's value file) can send up to MAX_MESSAGE_BYTES of ``[0,0,0,...]`` or
    ``{"k1":0,"k2":0,...}``: parsed, that is about 7 bytes of the grader's memory per byte sent (GBs for
    one reply), before the item count is looked at.  Too many separators: refused unparsed."""
    from utils.grade import serialize

    def parsed(*args, **kwargs):
        raise AssertionError("json.loads was called")
    monkeypatch.setattr(serialize.json, "loads", parsed)
    many = b"[" + b"0," * (2 * serialize.MAX_ITEMS + 1) + b"0]"
    with pytest.raises(ValueError, match="items"):
        serialize.loads(many)
    keys = b"{" + b",".join(b'"k%d":0' % i for i in range(2 * serialize.MAX_ITEMS + 1)) + b"}"
    with pytest.raises(ValueError, match="items"):
        serialize.loads(keys)


def test_plain_data_with_commas_in_its_text_still_crosses():
    from utils.grade import serialize
    value = {"message": "a, b, c: d" * 1000, "array": __import__("numpy").arange(10.0)}
    back = serialize.loads(serialize.dumps(value))
    assert back["message"] == value["message"] and (back["array"] == value["array"]).all()


def test_hidden_segments_keep_line_numbers_and_fall_back_to_hidden():
    from utils.grade.worker import hidden_segments
    source = "a = 1\n### BEGIN HIDDEN TESTS\nb = 2\n### END HIDDEN TESTS\nc = 3"
    pieces = hidden_segments(source)
    assert [(code.count("\n"), code.strip(), hidden) for code, hidden in pieces] == [
        (0, "a = 1", False), (2, "b = 2", True), (4, "c = 3", False)]
    nested = "for i in range(2):\n    ### BEGIN HIDDEN TESTS\n    b = i\n    ### END HIDDEN TESTS\n    c = i"
    assert hidden_segments(nested) == [(nested, True)]
    assert hidden_segments("x = 1") == [("x = 1", False)]


@pytest.mark.parametrize("source, found", [
    ("import sys\nf = sys._getframe(1)", "`sys._getframe`"),
    ("class A:\n    import gc", "the module `gc`"),
    ("def f(x):\n    return globals()['relu'](x)", "`globals`"),
    ("from inspect import currentframe", "`currentframe`"),
    ("import inspect\ndef f():\n    return inspect.stack()", "`inspect.stack`"),
    ("import numpy as np\nlib = np.ctypeslib", "`np.ctypeslib`"),
    ("def f(fr):\n    return getattr(fr, 'f_locals')", "the name 'f_locals'"),
    ("def f(x):\n    return open('/proc/self/mem')", "the name '/proc/self/mem'"),
    # raw descriptors: the runner's reply pipe is one, a hand-made frame on it is any reply at all
    ("import os\ndef f(x):\n    os.write(4, b'x')", "`os.write`"),
    ("def f(x):\n    return open(3, 'rb').read()", "`open` of a file descriptor"),
    ("import os as o\ndef f(x):\n    return o.fdopen(5, 'wb')", "`o.fdopen`"),
    ("def f(x):\n    return open('/proc/self/fd/4', 'wb')", "the name '/proc/self/fd/4'"),
    # the instructor's check code (its reference computations live there, in the sandbox too)
    ("from utils.checks.ex07 import _top_class_maps as top_class_maps", "`utils.checks.ex07` (the course's check code)"),
    ("from utils.checks import describe_model", "`describe_model` of `utils.checks` (the course's check code)"),
    ("import utils.checks.ex05 as c", "`utils.checks.ex05` (the course's check code)"),
    ("from utils import checks\ndef f(x):\n    return checks.ex05._composed(*x)", "`checks.ex05._composed` (the course's check code)"),
    ("import utils.checks as k\ndef f(x):\n    return k._numpy_cnn(*x)", "`k._numpy_cnn` (the course's check code)"),
])
def test_the_tripwire_names_what_reaches_into_the_runner(source, found):
    from utils.grade.integrity import reaching_construct
    assert reaching_construct(source) == found


def test_the_tripwire_leaves_every_solution_and_chapter_alone():
    """No statement of the course's own solutions and chapters trips it (an honest learner's code
    would not either): the tripwire must not take points from honest work."""
    from utils.grade.integrity import reaching_construct
    from utils.grade.student_code import cell_source, parse_cells
    flagged = []
    for path in sorted((ROOT / "solutions").glob("ex*.ipynb")) + sorted((ROOT / "chapters").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        code = parse_cells([(i + 1, cell_source(c)) for i, c in enumerate(nb.cells) if c.cell_type == "code"])
        flagged += [(path.name, s.where(), reaching_construct(s.source)) for s in code.statements
                    if reaching_construct(s.source)]
    assert flagged == []


@pytest.mark.parametrize("raised", [["Bad\x00Name", "m" * 10**6, "ValueError"], ["x" * 500, "m", "ValueError"],
                                    "not a list", [None, None, None]])
def test_a_forged_raised_reply_is_still_a_learner_error(raised):
    """What a tampered runner may send as "the learner's exception": an impossible class name, a
    message of a megabyte, not a list.  The grader raises a learner error, never its own."""
    from utils.grade.runner import Runner, StudentCodeError
    runner = Runner([], "/nonexistent", 2**30)
    runner._request = lambda request, doing: {"raised": raised}
    with pytest.raises(StudentCodeError) as caught:
        runner.call("relu", (), {})
    assert len(str(caught.value)) <= 1000 and type(caught.value).__name__.isidentifier()
    assert len(type(caught.value).__name__) <= 100


def test_each_submission_gets_one_cpu_share_however_many_processes_it_runs():
    """CPU fairness between submissions graded at once (--jobs 2): a submission running its 64 allowed
    busy processes must not starve a classmate's kernel into timeouts.  Every learner process of a
    submission is in one cgroup of the ``cpu`` controller with the default weight, so the scheduler
    shares the CPU between submissions, not between processes.  (Checked by the group's membership,
    not by timing.)"""
    import time
    if sandbox._own_cgroup("cpu") is None:
        pytest.skip("no writable cgroup v1 cpu controller here")
    group = sandbox.Group(2**30, 2**30, None)
    cpu = [f for f in group.cgroups if sandbox.Group._controller_of(f) == "cpu"]
    try:
        assert len(cpu) == 1 and (cpu[0] / "cpu.shares").read_text().strip() == "1024"
        child = subprocess.Popen(group.launcher(sandbox.bwrap_command(["sleep", "30"])))
        try:
            deadline = time.monotonic() + 20
            while str(child.pid) not in (cpu[0] / "cgroup.procs").read_text().split():
                assert time.monotonic() < deadline, "the sandbox never joined the submission's cpu group"
                time.sleep(0.05)
        finally:
            child.kill()
            child.wait()
    finally:
        group.close()
    assert not any(f.exists() for f in cpu)

"""A small class of ex05 (ReLU) submissions and the grades a fair instructor gives them.

``build(folder)`` writes the class (learner notebooks are the exercise generated from
``solutions/ex05_*`` with the learner's answers typed into its cells; broken files are edits of
such a notebook), and returns ``{relative path: {question: expected status}}``.  Used by
tests/test_grade_class.py; ``python tests/grade_class.py OUT`` writes the class for a manual
``python -m utils.grade OUT --out grades/``.  See tests/fixtures/class/README.md.

Functions are written from the task text (docstrings in the exercise), in several styles.
"""
from __future__ import annotations

import copy
import functools
import json
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
SET = "ex05"
QUIZ = "ex05"          # the graded quiz at the end of the set (its keys stay with the instructor)
ANSWERS_MIME = "application/vnd.convcourse.quiz-answers+json"
FUNCTIONS = ("relu", "relu_backward", "compose_kernels")
TESTS = {"relu": "test_relu", "relu_backward": "test_relu_backward", "compose_kernels": "test_compose_kernels"}

RIGHT = {
    "relu": "def relu(x):\n    return np.maximum(x, 0).astype(x.dtype, copy=False)",
    "relu_backward": "def relu_backward(grad_output, x):\n    return np.where(x > 0, grad_output, 0).astype(x.dtype)",
    "compose_kernels": (
        "def compose_kernels(w1, b1, w2, b2):\n    c_mid, c_in, a, b = w1.shape\n    c_out, _, c, d = w2.shape\n"
        "    weight = np.zeros((c_out, c_in, a + c - 1, b + d - 1))\n"
        "    for o in range(c_out):\n        for m in range(c_mid):\n            for u in range(c):\n"
        "                for v in range(d):\n                    weight[o, :, u:u + a, v:v + b] += w2[o, m, u, v] * w1[m]\n"
        "    bias = b2 + np.array([sum(w2[o, m].sum() * b1[m] for m in range(c_mid)) for o in range(c_out)])\n"
        "    return weight, bias"),
}
# The same answers in other styles: a module-level constant, a lambda, a cached global, helpers.
STYLES = {
    "relu": "FLOOR = 0          # module-level constant\nrelu = lambda x: np.maximum(x, FLOOR).astype(x.dtype)",
    "relu_backward": ("_masks = {}        # a cache kept between calls\n"
                      "def _mask(x):\n    key = (x.shape, x.dtype.str, x.tobytes())\n"
                      "    if key not in _masks:\n        _masks[key] = x > 0\n    return _masks[key]\n\n"
                      "def relu_backward(grad_output, x):\n    return (grad_output * _mask(x)).astype(x.dtype)"),
    "compose_kernels": ("np.convolve?\n"
                        "def compose_kernels(w1, b1, w2, b2):\n"
                        "    _, _, a, b = w1.shape\n    c_out, _, c, d = w2.shape\n"
                        "    out = np.zeros((c_out, w1.shape[1], a + c - 1, b + d - 1))\n"
                        "    for (o, m, u, v), w in np.ndenumerate(w2):\n        out[o, :, u:u + a, v:v + b] += w * w1[m]\n"
                        "    return out, b2 + w2.sum(axis=(2, 3)) @ b1"),
}
WRONG = {
    "relu": "def relu(x):\n    return np.abs(x)",
    "relu_backward": "def relu_backward(grad_output, x):\n    return (x > 0).astype(x.dtype)",
    "compose_kernels": "def compose_kernels(w1, b1, w2, b2):      # b1 forgotten\n    return w1 * w2.sum(), b2",
}
TORCH_RELU = "import torch\n\ndef relu(x):\n    return torch.relu(torch.as_tensor(x))"
# Cheats that only work if the grader's semantics differ from the notebook's.
CHEATS = {
    "relu": "def relu(x):          # in place: the caller's array is changed\n    x[x < 0] = 0\n    return x",
    "relu_backward": ("class Anything(np.ndarray):\n    def __eq__(self, other):\n        return True\n"
                      "    __array_priority__ = 1000\n\n"
                      "def relu_backward(grad_output, x):\n    return np.zeros(1).view(Anything)"),
    "compose_kernels": "def compose_kernels(w1, b1, w2, b2):      # returns its input\n    return w1, b1",
}
LOOP = {"relu": "def relu(x):\n    while True:\n        pass"}
# The course's answer imported under another name in another cell: breaks the task's from-scratch rule.
ALIASED_LIBRARY = {"relu": "from utils.functional import relu as helper\n\ndef relu(x):\n    return helper(x)"}


@functools.lru_cache(maxsize=1)
def _exercise_text() -> str:
    sys.path.insert(0, str(ROOT))
    from tools.make_exercises import generate
    generated = generate(ROOT / "solutions")
    return generated[next(n for n in generated if n.startswith(SET))]


def _exercise() -> nbformat.NotebookNode:
    """The exercise notebook as handed out (generated from the solution, whatever the state of exercises/)."""
    return nbformat.reads(_exercise_text(), as_version=4)


def _quiz_source() -> list[dict]:
    return json.loads((ROOT / "tools" / "quiz_sources" / f"{QUIZ}.json").read_text())["questions"]


def _quiz_key() -> dict:
    return {q["id"]: q.get("answer", q.get("model_answer", "")) for q in _quiz_source()}


def _wrong_quiz() -> dict:
    """A wrong (but well-formed) answer to every question."""
    wrong = {}
    for q in _quiz_source():
        key = q.get("answer")
        wrong[q["id"]] = {"single": lambda: 1 if key == 0 else 0,
                          "multiple": lambda: [i for i in range(len(q["options"])) if i not in key][:1] or [],
                          "numeric": lambda: (key or 0) * 10 + 7,
                          "free": lambda: "no idea"}[q["kind"]]()
    return wrong


def quiz_questions() -> tuple[list[str], list[str]]:
    """(auto-graded question ids, free-response question ids) of the quiz."""
    return ([q["id"] for q in _quiz_source() if q["kind"] != "free"],
            [q["id"] for q in _quiz_source() if q["kind"] == "free"])


def learner(answers: dict[str, str], quiz: dict | None = None, extra: str | None = None, learner_id: str | None = None):
    """The exercise with ``answers`` ({solution grade_id: cell source}) typed in and a quiz record."""
    nb = _exercise()
    for cell in nb.cells:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if grade_id in answers:
            cell.source = answers[grade_id]
        if "show_quiz(" in cell.source and quiz is not None:
            cell.outputs = [nbformat.v4.new_output("display_data", data={
                ANSWERS_MIME: {"quiz": QUIZ, "answers": quiz}, "text/plain": "quiz answers"})]
    if extra:
        nb.cells.insert(2, nbformat.v4.new_code_cell(extra))
    if learner_id:
        nb.metadata.setdefault("convcourse", {})["learner"] = learner_id
    return nb


def _raw(nb) -> dict:
    return json.loads(nbformat.writes(nb))


def _broken(edit) -> str:
    raw = _raw(learner(RIGHT, _quiz_key()))
    edit(raw)
    return json.dumps(raw)


def _code_cell(raw: dict, grade_id: str) -> dict:
    return next(c for c in raw["cells"] if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id)


def _set(raw: dict, value) -> None:
    raw["metadata"]["convcourse"]["exercise_set"] = value


FULL, QUIZ_FULL = "full", "quiz-full"


@functools.lru_cache(maxsize=1)
def submissions() -> dict[str, tuple[object, dict]]:
    """``{relative path: (notebook or raw text, {question: expected status})}``.

    Question keys are the test grade ids; ``quiz`` stands for every auto-graded quiz question (but
    those named ``quiz:qN``), ``free`` for the free-response ones, ``notebook`` for the single row of
    a file of no known set, ``all`` for every row of the file, ``duplicate`` for the duplicate flag.
    A status may be followed by ``:words`` that the file's feedback must contain; ``same-as-notebook``
    means "whatever the visible check says in the notebook"."""
    key = _quiz_key()
    wrong_quiz = _wrong_quiz()
    passed_all = {t: "passed" for t in TESTS.values()}
    good = {**passed_all, "quiz": "passed", "free": "needs-review"}
    mixed = {**STYLES}
    quiz_bad_record = _raw(learner(RIGHT))
    quiz_cell = next(c for c in quiz_bad_record["cells"] if "show_quiz(" in "".join(c["source"]))
    quiz_cell["outputs"] = [{"output_type": "display_data", "metadata": {}, "data": {
        ANSWERS_MIME: {"quiz": QUIZ, "answers": [1, 21]}, "text/plain": "quiz answers"}}]
    bad_answer = {**key, "q1": {"option": 1}}
    return {
        # honest learners, one folder each (the folder names the learner)
        "alice/ex05.ipynb": (learner(RIGHT, key), {**good, "duplicate": "needs-review:2 hand-ins for one learner (alice, ex05): choose one"}),
        "alice/ex05_resubmitted.ipynb": (learner(RIGHT, key),
                                         {**good, "duplicate": "needs-review:2 hand-ins for one learner (alice, ex05): choose one"}),
        "bob/ex05_styles.ipynb": (learner(mixed, key), good),
        "carol/ex05.ipynb": (learner({**RIGHT, "relu": TORCH_RELU}, key),
                             {**good, "test_relu": "same-as-notebook"}),
        "dave/ex05.ipynb": (learner({"relu": RIGHT["relu"], "relu_backward": WRONG["relu_backward"]}, wrong_quiz),
                            {"test_relu": "passed", "test_relu_backward": "failed",
                             "test_compose_kernels": "failed:not written yet", "quiz": "failed", "free": "needs-review"}),
        "erin/ex05.ipynb": (learner(WRONG, wrong_quiz),
                            {**{t: "failed" for t in TESTS.values()}, "quiz": "failed", "free": "needs-review"}),
        "frank/ex05.ipynb": (_exercise(), {**{t: "failed:not written yet" for t in TESTS.values()},
                                           "quiz": "failed", "free": "needs-review"}),
        "grace/ex05.ipynb": (learner({**RIGHT, **LOOP}, key), {**good, "test_relu": "timeout:time limit"}),
        "oscar/ex05.ipynb": (learner({**RIGHT, **ALIASED_LIBRARY}, key), {**good, "test_relu": "failed:from scratch"}),
        "mallory/ex05.ipynb": (learner(CHEATS, key), {"test_relu": "failed:changed its argument `x` in place",
                                                      "test_relu_backward": "failed", "test_compose_kernels": "failed",
                                                      "quiz": "passed", "free": "needs-review"}),
        # a learner named by the notebook's metadata, handing in twice from two folders
        "hub/u1/ex05.ipynb": (learner(RIGHT, key, learner_id="heidi"),
                              {**good, "duplicate": "needs-review:2 hand-ins for one learner (heidi, ex05): choose one"}),
        "hub/u2/ex05.ipynb": (learner(WRONG, key, learner_id="heidi"),
                              {**{t: "failed" for t in TESTS.values()}, "quiz": "passed", "free": "needs-review",
                               "duplicate": "needs-review"}),
        # one broken record: only its own quiz rows are invalid; one broken answer: only its question
        "ivan/ex05.ipynb": (json.dumps(quiz_bad_record),
                            {**passed_all, "quiz": f"invalid:field answers of the quiz {QUIZ} record is a list",
                             "free": "invalid"}),
        "judy/ex05.ipynb": (learner(RIGHT, bad_answer), {**good, "quiz:q1": "invalid:the saved answer cannot be read"}),
        # broken files (flat: each its own learner)
        "not_json.ipynb": ("{ this is not JSON", {"notebook": "invalid:not JSON"}),
        "nbformat_99.ipynb": (_broken(lambda r: r.update(nbformat=99)), {"all": "invalid:field nbformat is 99"}),
        "set_list.ipynb": (_broken(lambda r: _set(r, ["ex05"])), {"notebook": "invalid:convcourse.exercise_set is a list"}),
        "set_dict.ipynb": (_broken(lambda r: _set(r, {"id": "ex05"})), {"notebook": "invalid:exercise_set is an object"}),
        "set_int.ipynb": (_broken(lambda r: _set(r, 5)), {"notebook": "invalid:exercise_set is an integer"}),
        "set_unknown.ipynb": (_broken(lambda r: _set(r, "ex77")), {"notebook": "invalid:unknown exercise set 'ex77'"}),
        "source_int.ipynb": (_broken(lambda r: _code_cell(r, "relu").update(source=7)),
                             {"all": "invalid:field source is an integer"}),
        "source_list.ipynb": (_broken(lambda r: _code_cell(r, "relu").update(source=["def relu(x):\n", 3])),
                              {"all": "invalid:field source is a list holding an integer"}),
        "nbgrader_string.ipynb": (_broken(lambda r: _code_cell(r, "relu")["metadata"].update(nbgrader="relu")),
                                  {"all": "invalid:metadata nbgrader is a string"}),
        "no_cells.ipynb": (_broken(lambda r: r.pop("cells")), {"all": "invalid:field cells is missing"}),
    }


def build(folder: Path) -> dict[str, dict]:
    """Write the class into ``folder``; returns ``{relative path: expected statuses}``."""
    expected = {}
    for name, (content, statuses) in submissions().items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content if isinstance(content, str) else nbformat.writes(content), encoding="utf-8")
        expected[name] = copy.deepcopy(statuses)
    return expected


if __name__ == "__main__":
    out = Path(sys.argv[1])
    for name in build(out):
        print(out / name)

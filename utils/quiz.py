"""Chapter quizzes: ``show_quiz("02")`` in a notebook; ``read_quiz_answers`` / ``grade_quiz`` for grading.

A quiz is compiled by ``python -m tools.build_quizzes`` from ``tools/quiz_sources/<id>.json`` into
``utils/quizzes/<id>.json``.  The compiled file keeps prompts and options but never a plain answer:
each answer key is a salted PBKDF2 hash of the *canonical* answer (see :func:`canonical_answer`),
and the explanations are stored encoded so that they cannot be read by opening the file.  A
learner's answer is checked by hashing it the same way.  This hides the key from a casual look;
it is not a secret from someone willing to hash every option (the graded exercises are the
tamper-proof part of the course).

Numeric answers with a tolerance ``t`` are hashed on a grid of step ``t / NUMERIC_GRID``: the key is
the hash of the grid cell ``floor(answer / step)``, and a learner's value ``x`` is accepted when one
of the ``2 * NUMERIC_GRID + 1`` cells around ``floor(x / step)`` matches.  So every ``x`` with
``|x - answer| <= t`` is accepted, and nothing farther than ``t * (1 + 1 / NUMERIC_GRID)``.

Answers survive re-running the notebook: :func:`show_quiz` restores the answers checked earlier in
the same kernel, or else those stored in the saved notebook file (JupyterLab tells the kernel its
notebook's path in ``JPY_SESSION_NAME``); a kernel started by nbclient/nbval has neither, so
stored outputs stay deterministic.

Answers persist in the saved notebook: the quiz cell shows, under the widgets, an *answer record*
display whose data has the MIME type :data:`ANSWERS_MIME` (``{"quiz": id, "answers": {...}}``) and a
``text/html`` summary that still renders when the notebook is opened without a kernel.  The record
is updated in place (a display handle) each time the learner presses *Check*.
"""
from __future__ import annotations

import base64
import hashlib
import html
import json
import math
import os
import re
import zlib
from dataclasses import dataclass
from importlib import resources
from typing import Any, Callable

import ipywidgets as widgets

ANSWERS_MIME = "application/vnd.convcourse.quiz-answers+json"
KINDS = ("single", "multiple", "numeric", "free")
HASH_ITERATIONS = 20_000   # slows down hashing every candidate answer; one check still takes ~10 ms
NUMERIC_GRID = 4           # grid cells per tolerance: accepted error is at most 1.25 x tolerance

Answer = Any  # int (single), list[int] (multiple), float (numeric), str (free)


# ---------------------------------------------------------------- answer keys (shared with the builder)

def canonical_answer(kind: str, answer: Answer) -> str:
    """The string that is hashed for a normalised answer of a single/multiple/exact-numeric question."""
    if kind == "single":
        return str(int(answer))
    if kind == "multiple":
        return ",".join(str(i) for i in sorted(set(answer)))
    if kind == "numeric":
        # 12 significant digits: 30 and 30.0 agree, and so do 0.1 + 0.2 and 0.3.
        return format(float(answer) + 0.0, ".12g")
    raise ValueError(f"answers of kind {kind!r} have no canonical form")


def answer_hash(salt: str, quiz_id: str, question_id: str, canonical: str) -> str:
    """Hex PBKDF2-SHA256 of ``quiz_id/question_id/canonical`` with the question's salt."""
    message = f"{quiz_id}/{question_id}/{canonical}".encode()
    return hashlib.pbkdf2_hmac("sha256", message, salt.encode(), HASH_ITERATIONS).hex()


def numeric_cell(value: float, step: float) -> int:
    """Index of the tolerance-grid cell ``[k * step, (k + 1) * step)`` holding ``value``."""
    return math.floor(value / step)


def answer_key(quiz_id: str, question_id: str, kind: str, answer: Answer, salt: str,
               tolerance: float = 0.0) -> dict:
    """The compiled key of one question: ``{"hash": ...}`` plus ``"step"`` for tolerant numerics."""
    if kind == "numeric" and tolerance > 0:
        step = tolerance / NUMERIC_GRID
        cell = str(numeric_cell(float(answer), step))
        return {"step": step, "hash": answer_hash(salt, quiz_id, question_id, cell)}
    return {"hash": answer_hash(salt, quiz_id, question_id, canonical_answer(kind, answer))}


def encode_feedback(feedback: dict) -> str:
    """Explanations/model answers as base64(zlib(json)): unreadable at a glance, restored by
    :func:`decode_feedback` after an attempt."""
    return base64.b64encode(zlib.compress(json.dumps(feedback, sort_keys=True).encode())).decode()


def decode_feedback(blob: str) -> dict:
    return json.loads(zlib.decompress(base64.b64decode(blob)))


# ---------------------------------------------------------------- loading and checking

def load_quiz(quiz_id: str) -> dict:
    """The compiled quiz ``utils/quizzes/<quiz_id>.json`` as a dict (ValueError if it is missing)."""
    path = resources.files("utils") / "quizzes" / f"{quiz_id}.json"
    if not path.is_file():
        raise ValueError(f"no compiled quiz {quiz_id!r} (utils/quizzes/{quiz_id}.json); "
                         f"write tools/quiz_sources/{quiz_id}.json and run python -m tools.build_quizzes")
    return json.loads(path.read_text(encoding="utf-8"))


def normalise_answer(question: dict, answer: Answer) -> Answer:
    """A learner's raw answer in its canonical Python type; ValueError saying what is wrong."""
    kind, qid = question["kind"], question["id"]
    if kind == "single":
        n = len(question["options"])
        if isinstance(answer, bool) or not isinstance(answer, int) or not 0 <= answer < n:
            raise ValueError(f"{qid}: a single-choice answer is an option index 0..{n - 1}, got {answer!r}")
        return answer
    if kind == "multiple":
        n = len(question["options"])
        if not isinstance(answer, (list, tuple)) or not all(
                isinstance(i, int) and not isinstance(i, bool) and 0 <= i < n for i in answer):
            raise ValueError(f"{qid}: a multiple-choice answer is a list of option indices 0..{n - 1}, "
                             f"got {answer!r}")
        return sorted(set(answer))
    if kind == "numeric":
        try:
            value = float(answer.replace(",", ".")) if isinstance(answer, str) else float(answer)
        except (TypeError, ValueError):
            raise ValueError(f"{qid}: a numeric answer must be a number, got {answer!r}") from None
        if not math.isfinite(value):
            raise ValueError(f"{qid}: a numeric answer must be finite, got {answer!r}")
        return value
    if not isinstance(answer, str):
        raise ValueError(f"{qid}: a free-response answer is text, got {answer!r}")
    return answer


def is_correct(quiz_id: str, question: dict, answer: Answer) -> bool:
    """Whether a normalised answer of an auto-graded question matches the hashed key."""
    key, salt, qid = question["key"], question["salt"], question["id"]
    if "step" in key:
        centre = numeric_cell(answer, key["step"])
        cells = range(centre - NUMERIC_GRID, centre + NUMERIC_GRID + 1)
        return any(answer_hash(salt, quiz_id, qid, str(c)) == key["hash"] for c in cells)
    return answer_hash(salt, quiz_id, qid, canonical_answer(question["kind"], answer)) == key["hash"]


@dataclass(frozen=True)
class QuestionResult:
    """The grade of one question: ``status`` is ``passed``, ``failed`` or ``needs-review``."""
    question: str
    points: float
    max_points: float
    status: str


def grade_question(quiz_id: str, question: dict, answer: Answer | None) -> QuestionResult:
    """Grade one answer (``None`` = not answered, which fails); free response needs review."""
    max_points = float(question.get("points", 1))
    if question["kind"] == "free":
        return QuestionResult(question["id"], 0.0, max_points, "needs-review")
    try:
        ok = answer is not None and is_correct(quiz_id, question, normalise_answer(question, answer))
    except ValueError:
        ok = False
    return QuestionResult(question["id"], max_points if ok else 0.0, max_points, "passed" if ok else "failed")


def grade_quiz(quiz_id: str, answers: dict[str, Answer]) -> list[QuestionResult]:
    """Grade a learner's ``{question id: answer}`` (as stored by the answer record), one result per question."""
    quiz = load_quiz(quiz_id)
    return [grade_question(quiz_id, q, answers.get(q["id"])) for q in quiz["questions"]]


def read_quiz_answers(nb) -> dict[str, dict[str, Answer]]:
    """``{quiz id: {question id: answer}}`` from the answer records in a notebook's outputs.

    Args:
        nb: an ``nbformat.NotebookNode`` (version 4).  When a quiz appears twice, the last record wins.
    """
    found: dict[str, dict[str, Answer]] = {}
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            record = output.get("data", {}).get(ANSWERS_MIME)
            if isinstance(record, str):          # some writers store JSON mime data as text
                record = json.loads(record)
            if isinstance(record, dict) and "quiz" in record:
                found[str(record["quiz"])] = dict(record.get("answers", {}))
    return found


# ---------------------------------------------------------------- the answer record (saved in the notebook)

def _show_answer(question: dict, answer: Answer) -> str:
    if question["kind"] == "single":
        return plain_text(question["options"][answer])
    if question["kind"] == "multiple":
        return "; ".join(plain_text(question["options"][i]) for i in answer) or "(none)"
    if question["kind"] == "numeric":
        return format(answer, ".6g")
    return answer if len(answer) <= 80 else answer[:77] + "..."


def record_summary_text(quiz: dict, answers: dict[str, Answer]) -> str:
    """One deterministic line, e.g. ``Quiz 02 (Convolution): 1 of 4 questions answered.``"""
    return (f"Quiz {quiz['id']} ({quiz['title']}): {len(answers)} of {len(quiz['questions'])} "
            f"questions answered.")


def record_summary_html(quiz: dict, answers: dict[str, Answer], verdicts: dict[str, str]) -> str:
    """A table of the learner's checked answers that renders without a kernel.

    nbval compares this HTML in every stored chapter: changing it means re-executing them all.
    """
    rows = []
    for i, q in enumerate(quiz["questions"], 1):
        given = html.escape(_show_answer(q, answers[q["id"]])) if q["id"] in answers else "<i>not answered</i>"
        rows.append(f"<tr><td>{i}</td><td>{given}</td><td>{verdicts.get(q['id'], '')}</td></tr>")
    return (f"<div class='convcourse-quiz-record'><b>{html.escape(record_summary_text(quiz, answers))}</b>"
            f"<table><tr><th>#</th><th>your answer</th><th>result</th></tr>{''.join(rows)}</table>"
            f"<small>Saved with the notebook when you save it.</small></div>")


def answer_record(quiz: dict, answers: dict[str, Answer], verdicts: dict[str, str]) -> dict:
    """The mime bundle of the answer-record display output."""
    return {ANSWERS_MIME: {"quiz": quiz["id"], "answers": answers},
            "text/html": record_summary_html(quiz, answers, verdicts),
            "text/plain": record_summary_text(quiz, answers)}


# ---------------------------------------------------------------- the widget

def markdown_to_html(text: str) -> str:
    """The little markdown quiz prompts use: `code`, **bold**, *italic*, paragraphs; $math$ is kept
    for MathJax (the prompt widget is an ``HTMLMath``)."""
    out = html.escape(text, quote=False)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    out = re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", out)
    out = re.sub(r"(?<![*\w])\*([^*\s][^*]*)\*(?!\w)", r"<i>\1</i>", out)
    return "".join(f"<p>{p}</p>" for p in out.split("\n\n"))


def plain_text(text: str) -> str:
    """Markdown markers dropped, for labels that cannot hold HTML (radio buttons, check boxes)."""
    return re.sub(r"\*\*([^*]+)\*\*", r"\1", text.replace("`", ""))


VERDICT_TEXT = {"passed": "✓ correct", "failed": "✗ not yet", "needs-review": "✎ recorded, needs review"}
VERDICT_COLOUR = {"passed": "#1a7f37", "failed": "#b42318", "needs-review": "#7a5b00"}


class QuizSession:
    """The state of one quiz being answered, without any widget: checked answers and verdicts.

    ``on_change(bundle)`` is called with the new answer-record mime bundle after every check.
    """

    def __init__(self, quiz: dict, on_change: Callable[[dict], None] | None = None):
        self.quiz = quiz
        self.answers: dict[str, Answer] = {}
        self.verdicts: dict[str, str] = {}
        self.on_change = on_change

    def question(self, question_id: str) -> dict:
        for q in self.quiz["questions"]:
            if q["id"] == question_id:
                return q
        raise ValueError(f"quiz {self.quiz['id']} has no question {question_id!r}")

    def check(self, question_id: str, raw_answer: Answer) -> tuple[str, str]:
        """Record an attempt; returns ``(status, feedback html)`` (ValueError for malformed input)."""
        q = self.question(question_id)
        answer = normalise_answer(q, raw_answer)
        status = grade_question(self.quiz["id"], q, answer).status
        self.answers[question_id] = answer
        self.verdicts[question_id] = VERDICT_TEXT[status]
        if self.on_change is not None:
            self.on_change(self.record())
        return status, self.feedback_html(q, status)

    def record(self) -> dict:
        ordered = {q["id"]: self.answers[q["id"]] for q in self.quiz["questions"] if q["id"] in self.answers}
        return answer_record(self.quiz, ordered, self.verdicts)

    @staticmethod
    def feedback_html(question: dict, status: str) -> str:
        revealed = decode_feedback(question["feedback"])
        parts = [f"<b style='color:{VERDICT_COLOUR[status]}'>{VERDICT_TEXT[status]}</b>"]
        if revealed.get("explanation"):
            parts.append(markdown_to_html(revealed["explanation"]))
        if question["kind"] == "free":
            parts.append("<b>Model answer</b>" + markdown_to_html(revealed["model_answer"]))
            items = "".join(f"<li>{markdown_to_html(r)}</li>" for r in revealed["rubric"])
            parts.append(f"<b>Compare yours against this rubric</b><ul>{items}</ul>")
        return "".join(parts)


def _answer_control(question: dict):
    """(input widget(s), reader of the raw answer, writer restoring a stored answer) for one question."""
    full = widgets.Layout(width="95%")
    kind = question["kind"]
    if kind == "single":
        radio = widgets.RadioButtons(options=[plain_text(o) for o in question["options"]], index=None, layout=full)
        return radio, lambda: radio.index, lambda a: setattr(radio, "index", a)
    if kind == "multiple":
        boxes = [widgets.Checkbox(value=False, description=plain_text(o), indent=False, layout=full)
                 for o in question["options"]]
        def tick(answer):
            for i, b in enumerate(boxes):
                b.value = i in answer
        return widgets.VBox(boxes), lambda: [i for i, b in enumerate(boxes) if b.value], tick
    if kind == "numeric":
        box = widgets.Text(placeholder="a number", layout=widgets.Layout(width="12em"))
        return box, lambda: box.value, lambda a: setattr(box, "value", format(a, ".12g"))
    area = widgets.Textarea(placeholder="your answer in a few sentences", layout=widgets.Layout(width="95%",
                                                                                                height="6em"))
    return area, lambda: area.value, lambda a: setattr(area, "value", a)


class QuizView:
    """The ipywidgets of one quiz: per question a prompt, an input, a *Check* button and feedback."""

    def __init__(self, quiz: dict, on_change: Callable[[dict], None] | None = None):
        self.session = QuizSession(quiz, on_change)
        self.controls: dict[str, Any] = {}
        self.readers: dict[str, Callable[[], Answer]] = {}
        self.writers: dict[str, Callable[[Answer], None]] = {}
        self.buttons: dict[str, Any] = {}
        self.feedback: dict[str, Any] = {}
        blocks = [widgets.HTML(f"<h3>Quiz {quiz['id']}: {html.escape(quiz['title'])}</h3>")]
        for i, q in enumerate(quiz["questions"], 1):
            control, reader, writer = _answer_control(q)
            self.writers[q["id"]] = writer
            button = widgets.Button(description="Check", button_style="primary")
            feedback = widgets.HTMLMath("")
            button.on_click(lambda _b, qid=q["id"]: self.check(qid))
            self.controls[q["id"]], self.readers[q["id"]] = control, reader
            self.buttons[q["id"]], self.feedback[q["id"]] = button, feedback
            prompt = widgets.HTMLMath(f"<b>{i}.</b> " + markdown_to_html(q["prompt"]))
            blocks.append(widgets.VBox([prompt, control, button, feedback],
                                       layout=widgets.Layout(margin="0 0 1em 0")))
        self.widget = QuizBox(blocks, quiz_title=f"Quiz {quiz['id']}: {quiz['title']}")

    def check(self, question_id: str) -> str:
        """Check the current input of one question and show the feedback; returns the status."""
        try:
            status, text = self.session.check(question_id, self.readers[question_id]())
        except ValueError as exc:
            self.feedback[question_id].value = f"<span style='color:#b42318'>{html.escape(str(exc))}</span>"
            return "invalid"
        self.feedback[question_id].value = text
        return status


    def restore(self, answers: dict[str, Answer]) -> None:
        """Put earlier answers back into the controls and check them again (unknown or malformed
        entries are skipped: a restored quiz never fails to display)."""
        for qid, answer in answers.items():
            if qid in self.writers:
                try:
                    self.writers[qid](normalise_answer(self.session.question(qid), answer))
                except (ValueError, IndexError, TypeError):
                    continue
                self.check(qid)


class QuizBox(widgets.VBox):
    """A VBox whose text form is one stable line (nbval compares the text/plain of outputs)."""

    def __init__(self, children, quiz_title: str):
        super().__init__(children)
        self._quiz_title = quiz_title

    def __repr__(self) -> str:
        return f"<{self._quiz_title} (interactive: run the notebook to answer)>"


def display_quiz(quiz: dict) -> QuizView:
    """Display a loaded quiz and its answer record (kept current by a display handle)."""
    from IPython.display import display
    view = QuizView(quiz)
    display(view.widget)
    handle = display(view.session.record(), raw=True, display_id=True)

    def on_change(bundle):
        if handle is not None:   # None outside IPython (plain python, tests)
            handle.update(bundle, raw=True)
        _KERNEL_ANSWERS[quiz["id"]] = dict(view.session.answers)
    view.session.on_change = on_change
    return view


# Answers checked in this kernel, by quiz id: re-running a quiz cell keeps them.
_KERNEL_ANSWERS: dict[str, dict[str, Answer]] = {}


def saved_answers(quiz_id: str) -> dict[str, Answer]:
    """Answers to restore: those checked in this kernel, else those in the saved notebook file."""
    if quiz_id in _KERNEL_ANSWERS:
        return dict(_KERNEL_ANSWERS[quiz_id])
    path = os.environ.get("JPY_SESSION_NAME", "")
    if not (path.endswith(".ipynb") and os.path.isfile(path)):
        return {}
    try:
        import nbformat
        return read_quiz_answers(nbformat.read(path, as_version=4)).get(quiz_id, {})
    except Exception:  # an unreadable file must not stop the quiz from showing
        return {}


def show_quiz(quiz_id: str) -> None:
    """Display the quiz ``quiz_id`` ("00".."09" or "review") with its answer record below it,
    restoring the answers given earlier (see :func:`saved_answers`)."""
    view = display_quiz(load_quiz(quiz_id))
    view.restore(saved_answers(quiz_id))

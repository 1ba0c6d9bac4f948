"""The quiz widget (ipywidgets): ``show_quiz("02")`` shows a quiz and its answer record below it.

Answers survive re-running the notebook: :func:`show_quiz` restores the record kept in the same
kernel, or else the one stored in the saved notebook file (JupyterLab tells the kernel its notebook's
path in ``JPY_SESSION_NAME``); a kernel started by nbclient/nbval has neither, so stored outputs stay
deterministic.  The record is updated in place (a display handle) each time the learner presses
*Check* (self-study) or *Submit* (graded).

After the kernel has gone (restarted, shut down when idle, the server stopped), a notebook saved with a
live quiz reopens with JupyterLab's "Error displaying widget: model not found" in place of the widget:
ipywidgets keeps the widget's state in the kernel only (JupyterLab's ``saveState`` setting would restore
an inert copy whose buttons do nothing).  The answer record below it is plain HTML and stays readable;
``make lab``'s CSS (``tools/lab/custom.css``) replaces the error with "run this cell again", and
re-running the cell restores the answers from the saved file.
"""
from __future__ import annotations

import html
import os
from typing import Any, Callable

import ipywidgets as widgets

from .grading import ANSWERS_MIME, load_quiz
from .keys import Answer
from .record import QuizSession, markdown_to_html, plain_text


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
        box = widgets.Text(placeholder="a number, e.g. 4,640 or 0.42", layout=widgets.Layout(width="14em"))
        return box, lambda: box.value, lambda a: setattr(box, "value", format(a, ".12g"))
    area = widgets.Textarea(placeholder="your answer in a few sentences", layout=widgets.Layout(width="95%",
                                                                                                height="6em"))
    return area, lambda: area.value, lambda a: setattr(area, "value", a)


class QuizView:
    """The ipywidgets of one quiz: per question a prompt, an input, a button and feedback.
    Course infrastructure."""

    def __init__(self, quiz: dict, on_change: Callable[[dict], None] | None = None):
        self.session = QuizSession(quiz, on_change)
        self.controls: dict[str, Any] = {}
        self.readers: dict[str, Callable[[], Answer]] = {}
        self.writers: dict[str, Callable[[Answer], None]] = {}
        self.buttons: dict[str, Any] = {}
        self.feedback: dict[str, Any] = {}
        graded = self.session.graded
        blocks = [widgets.HTML(f"<h3>Quiz {quiz['id']}: {html.escape(quiz['title'])}</h3>")]
        if graded:
            blocks.append(widgets.HTML("<p><i>Graded quiz: your first answer to each question is recorded and "
                                       "scored by your instructor; no verdict is shown here.</i></p>"))
        for i, q in enumerate(quiz["questions"], 1):
            control, reader, writer = _answer_control(q)
            self.writers[q["id"]] = writer
            button = widgets.Button(description="Submit" if graded else "Check", button_style="primary")
            feedback = widgets.HTMLMath("")
            button.on_click(lambda _b, qid=q["id"]: self.check(qid))
            self.controls[q["id"]], self.readers[q["id"]] = control, reader
            self.buttons[q["id"]], self.feedback[q["id"]] = button, feedback
            prompt = widgets.HTMLMath(f"<b>{i}.</b> " + markdown_to_html(q["prompt"]))
            blocks.append(widgets.VBox([prompt, control, button, feedback],
                                       layout=widgets.Layout(margin="0 0 1em 0")))
        self.widget = QuizBox(blocks, quiz_title=f"Quiz {quiz['id']}: {quiz['title']}")

    def check(self, question_id: str) -> str:
        """Check (or submit) the current input of one question and show the feedback; returns the status."""
        try:
            status, text = self.session.check(question_id, self.readers[question_id]())
        except ValueError as exc:
            self.feedback[question_id].value = f"<span style='color:#b42318'>{html.escape(str(exc))}</span>"
            return "invalid"
        self.feedback[question_id].value = text
        if self.session.graded:
            self.buttons[question_id].disabled = True
        return status

    def restore(self, record: dict) -> None:
        """Put a saved record's first answers back into the controls, with their tries (unknown or
        malformed entries are skipped: a restored quiz never fails to display).  Nothing is re-checked,
        so restoring adds no try."""
        if "answers" not in record:                # a plain {question id: answer} dict
            record = {"answers": record}
        self.session.restore(record)
        for qid, answer in self.session.answers.items():
            try:
                self.writers[qid](answer)
            except (ValueError, IndexError, TypeError, KeyError):
                continue
            q = self.session.question(qid)
            if self.session.graded:
                self.feedback[qid].value = self.session._graded_html(already=True)
                self.buttons[qid].disabled = True
            else:
                status = "passed" if qid in self.session.solved else (
                    "needs-review" if q["kind"] == "free" else "failed")
                self.feedback[qid].value = self.session.feedback_html(q, status)
        self.session._changed()


class QuizBox(widgets.VBox):
    """A VBox whose text form is one stable line (nbval compares the text/plain of outputs); that line is
    also what JupyterLab shows for the quiz in a notebook it does not trust.  Course infrastructure."""

    def __init__(self, children, quiz_title: str):
        super().__init__(children)
        self._quiz_title = quiz_title

    def __repr__(self) -> str:
        return f"<{self._quiz_title} (interactive: run the notebook to answer)>"


# Records of the quizzes answered in this kernel, by quiz id: re-running a quiz cell keeps them.
_KERNEL_RECORDS: dict[str, dict] = {}


def display_quiz(quiz: dict) -> QuizView:
    """Display a loaded quiz and its answer record (kept current by a display handle).
    Course infrastructure."""
    from IPython.display import display
    view = QuizView(quiz)
    display(view.widget)
    handle = display(view.session.record(), raw=True, display_id=True)

    def on_change(bundle):
        if handle is not None:   # None outside IPython (plain python, tests)
            handle.update(bundle, raw=True)
        _KERNEL_RECORDS[quiz["id"]] = dict(bundle[ANSWERS_MIME])
    view.session.on_change = on_change
    return view


def saved_record(quiz_id: str) -> dict:
    """The record to restore: the one of this kernel, else the one in the saved notebook file.
    Course infrastructure."""
    if quiz_id in _KERNEL_RECORDS:
        return dict(_KERNEL_RECORDS[quiz_id])
    path = os.environ.get("JPY_SESSION_NAME", "")
    if not (path.endswith(".ipynb") and os.path.isfile(path)):
        return {}
    try:
        import nbformat
        nb = nbformat.read(path, as_version=4)
    except Exception:  # an unreadable file must not stop the quiz from showing
        return {}
    found: dict = {}
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {}).get(ANSWERS_MIME)
            if isinstance(data, dict) and str(data.get("quiz")) == quiz_id and isinstance(data.get("answers"), dict):
                found = dict(data)
    return found


def saved_answers(quiz_id: str) -> dict[str, Answer]:
    """The first answers to restore (see :func:`saved_record`).  Course infrastructure."""
    return dict(saved_record(quiz_id).get("answers", {}))


def show_quiz(quiz_id: str) -> None:
    """Display the quiz ``quiz_id`` ("00".."09", "review", or a graded "exNN") with its answer record below
    it, restoring the answers given earlier (see :func:`saved_record`).  Used first in chapter 00."""
    view = display_quiz(load_quiz(quiz_id))
    record = saved_record(quiz_id)
    if record:
        view.restore(record)


__all__ = ["QuizBox", "QuizView", "display_quiz", "saved_answers", "saved_record", "show_quiz"]

"""One quiz being answered, without any widget: :class:`QuizSession` and the answer record it keeps.

The record is a display output saved in the notebook (MIME type :data:`ANSWERS_MIME`):
``{"quiz": id, "answers": {question id: FIRST answer}}`` plus, once there are any,
``"tries": {question id: number of checks}`` and ``"solved": [question ids answered right]``
(self-study), and ``"mode": "graded"`` for a graded quiz.  Its ``text/plain`` line and, while nothing
is answered, its HTML are the same as before these fields existed (nbval compares stored chapters).
"""
from __future__ import annotations

import html
import re
from typing import Callable

from .grading import ANSWERS_MIME, grade_question, normalise_answer, quiz_mode
from .keys import Answer, decode_feedback, show_number

MAX_TRIES = 3   # self-study: the explanation appears after a right answer or this many tries

VERDICT_TEXT = {"passed": "✓ correct", "failed": "✗ not yet", "needs-review": "✎ recorded, needs review",
                "recorded": "✎ recorded"}
VERDICT_COLOUR = {"passed": "#1a7f37", "failed": "#b42318", "needs-review": "#7a5b00", "recorded": "#7a5b00"}


def markdown_to_html(text: str) -> str:
    """The little markdown quiz prompts use: `code`, **bold**, *italic*, paragraphs; $math$ is kept
    for MathJax (the prompt widget is an ``HTMLMath``). Course infrastructure."""
    out = html.escape(text, quote=False)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    out = re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", out)
    out = re.sub(r"(?<![*\w])\*([^*\s][^*]*)\*(?!\w)", r"<i>\1</i>", out)
    return "".join(f"<p>{p}</p>" for p in out.split("\n\n"))


def plain_text(text: str) -> str:
    """Markdown markers dropped, for labels that cannot hold HTML (radio buttons, check boxes).
    Course infrastructure."""
    return re.sub(r"\*\*([^*]+)\*\*", r"\1", text.replace("`", ""))


def show_answer(question: dict, answer: Answer) -> str:
    """An answer as the record shows it (numbers exact: ``16,781,312``, not ``1.67813e+07``). Course infrastructure."""
    if question["kind"] == "single":
        return plain_text(question["options"][answer])
    if question["kind"] == "multiple":
        return "; ".join(plain_text(question["options"][i]) for i in answer) or "(none)"
    if question["kind"] == "numeric":
        return show_number(answer)
    return answer if len(answer) <= 80 else answer[:77] + "..."


def record_summary_text(quiz: dict, answers: dict[str, Answer]) -> str:
    """One deterministic line, e.g. ``Quiz 02 (Convolution): 1 of 4 questions answered.`` Course infrastructure."""
    return (f"Quiz {quiz['id']} ({quiz['title']}): {len(answers)} of {len(quiz['questions'])} "
            f"questions answered.")


# Once something is answered, the table is drawn left-aligned and without wrapping ("✓ correct" wrapped
# under JupyterLab's fixed, right-aligned table layout), inline so that every frontend shows it so
# (JupyterLab's sanitizer keeps these properties).  While nothing is answered the HTML stays as stored in
# the chapters (nbval compares it); `make lab`'s tools/lab/custom.css aligns that one the same way.
_ANSWERED_TABLE = " style='margin-left:0;table-layout:auto'"
_ANSWERED_CELL = " style='text-align:left;white-space:nowrap'"


def record_score_text(quiz: dict, answers: dict[str, Answer], first_right: int) -> str:
    """The score line of a self-study record, e.g. ``Score: 2 of 4 first answers right (1 free answer to
    compare with its model answer).``; empty for a graded quiz (its instructor scores it).
    Course infrastructure."""
    if quiz_mode(quiz) == "graded":
        return ""
    scored = [q for q in quiz["questions"] if q["kind"] != "free"]
    free = sum(1 for q in quiz["questions"] if q["kind"] == "free" and q["id"] in answers)
    text = f"Score: {first_right} of {len(scored)} first answers right" if scored else "Score: no scored questions"
    if free:
        text += (f" ({free} free answer{'s' if free > 1 else ''} to compare with "
                 f"{'their' if free > 1 else 'its'} model answer)")
    return text + "."


def record_summary_html(quiz: dict, answers: dict[str, Answer], verdicts: dict[str, str],
                        score: str = "") -> str:
    """A table of the learner's first answers that renders without a kernel, with ``score`` (see
    :func:`record_score_text`) below it once something is answered.

    nbval compares this HTML in every stored chapter, where nothing is answered: changing that form
    means re-executing them all.
    Course infrastructure.
    """
    rows = []
    cell = _ANSWERED_CELL if answers else ""
    for i, q in enumerate(quiz["questions"], 1):
        given = html.escape(show_answer(q, answers[q["id"]])) if q["id"] in answers else "<i>not answered</i>"
        rows.append(f"<tr><td{cell}>{i}</td><td{cell}>{given}</td><td{cell}>{verdicts.get(q['id'], '')}</td></tr>")
    note = ("Graded by your instructor: only your first answer to each question counts. "
            if quiz_mode(quiz) == "graded" else "")
    head = f"<tr><th{cell}>#</th><th{cell}>your answer</th><th{cell}>result</th></tr>"
    score_html = f"<p>{html.escape(score)}</p>" if answers and score else ""
    return (f"<div class='convcourse-quiz-record'><b>{html.escape(record_summary_text(quiz, answers))}</b>"
            f"<table{_ANSWERED_TABLE if answers else ''}>{head}{''.join(rows)}</table>{score_html}"
            f"<small>{note}Saved with the notebook when you save it.</small></div>")


def answer_record(quiz: dict, answers: dict[str, Answer], verdicts: dict[str, str],
                  tries: dict[str, int] | None = None, solved: list[str] | None = None, score: str = "") -> dict:
    """The mime bundle of the answer-record display output (``score``: its HTML's score line).
    Course infrastructure."""
    data: dict = {"quiz": quiz["id"], "answers": answers}
    if quiz_mode(quiz) == "graded":
        data["mode"] = "graded"
    if tries:
        data["tries"] = tries
    if solved:
        data["solved"] = solved
    return {ANSWERS_MIME: data, "text/html": record_summary_html(quiz, answers, verdicts, score),
            "text/plain": record_summary_text(quiz, answers)}


class QuizSession:
    """The state of one quiz being answered: first answers, tries, what is solved.

    ``on_change(bundle)`` is called with the new answer-record mime bundle after every check.
    Self-study: each check says right or wrong at once; the explanation comes with a right answer or
    after :data:`MAX_TRIES` tries.  Graded: the first answer is recorded, nothing is revealed, and
    later checks change nothing.
    Course infrastructure.
    """

    def __init__(self, quiz: dict, on_change: Callable[[dict], None] | None = None):
        self.quiz = quiz
        self.graded = quiz_mode(quiz) == "graded"
        self.answers: dict[str, Answer] = {}     # the FIRST answer to each question
        self.tries: dict[str, int] = {}
        self.solved: set[str] = set()
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
        if self.graded:
            if question_id in self.answers:
                return "recorded", self._graded_html(already=True)
            self.answers[question_id], self.tries[question_id] = answer, 1
            self._changed()
            return "recorded", self._graded_html(already=False)
        status = grade_question(self.quiz["id"], q, answer).status
        if question_id not in self.solved:
            self.answers.setdefault(question_id, answer)
            self.tries[question_id] = self.tries.get(question_id, 0) + 1
            if status == "passed":
                self.solved.add(question_id)
            self._changed()
        return status, self.feedback_html(q, status)

    def restore(self, record: dict) -> None:
        """Take over a saved record's first answers, tries and solved questions (malformed entries skipped)."""
        tries, solved = record.get("tries", {}), record.get("solved", [])
        for qid, answer in (record.get("answers") or {}).items():
            try:
                self.answers[qid] = normalise_answer(self.question(qid), answer)
            except (ValueError, IndexError, TypeError, KeyError):
                continue
            count = tries.get(qid, 1) if isinstance(tries, dict) else 1
            self.tries[qid] = count if isinstance(count, int) and not isinstance(count, bool) and count > 0 else 1
            if self.graded:
                continue
            first_right = grade_question(self.quiz["id"], self.question(qid), self.answers[qid]).status == "passed"
            if first_right or isinstance(solved, list) and qid in solved:
                self.solved.add(qid)

    def verdict(self, question_id: str) -> str:
        """The record's result column: how the first answer fared, and the tries."""
        if question_id not in self.answers:
            return ""
        if self.graded:
            return VERDICT_TEXT["recorded"]
        q = self.question(question_id)
        first = grade_question(self.quiz["id"], q, self.answers[question_id]).status
        n, text = self.tries[question_id], VERDICT_TEXT[first]
        if first == "failed" and question_id in self.solved:
            text += f" (right after {n} tries)"
        elif first == "failed" and n > 1:
            text += f" ({n} tries)"
        return text

    def revealed(self, question_id: str) -> bool:
        """Whether the explanation may be shown (self-study: solved or MAX_TRIES tries; free: once answered)."""
        if self.graded:
            return False
        if self.question(question_id)["kind"] == "free":
            return question_id in self.answers
        return question_id in self.solved or self.tries.get(question_id, 0) >= MAX_TRIES

    def record(self) -> dict:
        order = [q["id"] for q in self.quiz["questions"]]
        answers = {qid: self.answers[qid] for qid in order if qid in self.answers}
        verdicts = {qid: self.verdict(qid) for qid in answers}
        tries = {qid: self.tries[qid] for qid in answers}
        first_right = sum(v == VERDICT_TEXT["passed"] for v in verdicts.values())   # the first answer was right
        return answer_record(self.quiz, answers, verdicts, tries, [qid for qid in order if qid in self.solved],
                             record_score_text(self.quiz, answers, first_right))

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change(self.record())

    def _graded_html(self, already: bool) -> str:
        head = f"<p><b style='color:{VERDICT_COLOUR['recorded']}'>{VERDICT_TEXT['recorded']}</b></p>"
        text = ("Your first answer is already recorded; it is the one graded." if already else
                "Graded quiz: your instructor's grader scores this first answer (no verdict is shown here).")
        return head + f"<p>{text}</p>"

    def feedback_html(self, question: dict, status: str) -> str:
        """The verdict, and the explanation once :meth:`revealed`."""
        parts = [f"<p><b style='color:{VERDICT_COLOUR[status]}'>{VERDICT_TEXT[status]}</b></p>"]
        if not self.revealed(question["id"]):
            left = MAX_TRIES - self.tries.get(question["id"], 0)
            parts.append(f"<p>Try again: the explanation appears after a right answer or {left} more "
                         f"tr{'y' if left == 1 else 'ies'}. Only your first answer is recorded.</p>")
            return "".join(parts)
        revealed = decode_feedback(question["feedback"])
        if revealed.get("explanation"):
            parts.append(markdown_to_html(revealed["explanation"]))
        if question["kind"] == "free":
            parts.append("<p><b>Model answer</b></p>" + markdown_to_html(revealed["model_answer"]))
            items = "".join(f"<li>{markdown_to_html(r)}</li>" for r in revealed["rubric"])
            parts.append(f"<b>Compare yours against this rubric</b><ul>{items}</ul>")
        return "".join(parts)

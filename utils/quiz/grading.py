"""Loading compiled quizzes, normalising and grading answers, reading the answers saved in a notebook.

Two modes, set per quiz by its source (``"mode"``, default ``"self-study"``):

* **self-study** (the chapters' quizzes): the compiled quiz carries salted-hash keys so the widget can
  give instant feedback.  The keys are hidden from a casual look, not from someone who hashes every
  option: these quizzes are for learning, not for grades.
* **graded** (the exercise sets' quizzes): the compiled quiz that ships with ``utils`` carries *no*
  key, salt or explanation; the grader computes the keys from the instructor's source
  (``tools/quiz_sources/<id>.json`` by default, see :func:`instructor_quiz`).  Looping over
  :func:`is_correct` in a learner's notebook finds nothing: it has nothing to compare with.

In both modes an answer record keeps the learner's *first* answer to each question (and the number of
tries), and the grader scores that first answer.
"""
from __future__ import annotations

import json
import math
import os
from importlib import resources
from pathlib import Path

from utils.grade.result import QuestionResult
from .keys import NUMERIC_GRID, Answer, answer_hash, canonical_answer, numeric_cell, parse_number, source_key

ANSWERS_MIME = "application/vnd.convcourse.quiz-answers+json"


class MissingQuizKeys(LookupError):
    """A graded quiz's keys (the instructor's source) cannot be found: a set-up problem of the grader,
    not the learner's fault. Course infrastructure."""


def load_quiz(quiz_id: str) -> dict:
    """The compiled quiz ``utils/quizzes/<quiz_id>.json`` as a dict (ValueError if it is missing).
    Course infrastructure."""
    path = resources.files("utils") / "quizzes" / f"{quiz_id}.json"
    if not path.is_file():
        raise ValueError(f"no compiled quiz {quiz_id!r} (utils/quizzes/{quiz_id}.json); "
                         f"write tools/quiz_sources/{quiz_id}.json and run python -m tools.build_quizzes")
    return json.loads(path.read_text(encoding="utf-8"))


def quiz_mode(quiz: dict) -> str:
    """``"self-study"`` or ``"graded"``.  Course infrastructure."""
    return quiz.get("mode", "self-study")


def default_sources() -> Path:
    """Where the instructor's quiz sources are: ``$CONVCOURSE_QUIZ_SOURCES`` or the repository's
    ``tools/quiz_sources``. Course infrastructure."""
    configured = os.environ.get("CONVCOURSE_QUIZ_SOURCES")
    return Path(configured) if configured else Path(__file__).resolve().parents[2] / "tools" / "quiz_sources"


def instructor_quiz(quiz_id: str, sources: Path | None = None) -> dict:
    """The compiled quiz with keys: for a graded quiz computed from the instructor's source, for a
    self-study quiz the shipped file itself.  Raises :class:`MissingQuizKeys`. Course infrastructure."""
    quiz = load_quiz(quiz_id)
    if quiz_mode(quiz) != "graded":
        return quiz
    path = (sources or default_sources()) / f"{quiz_id}.json"
    try:
        source = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MissingQuizKeys(f"quiz {quiz_id} is graded: its answer keys are the instructor's source "
                              f"{path.name}, which cannot be read from {path.parent} ({type(exc).__name__}); "
                              f"set CONVCOURSE_QUIZ_SOURCES to the folder holding it") from None
    by_id = {q.get("id"): q for q in source.get("questions", [])}
    questions = []
    for question in quiz["questions"]:
        plain = by_id.get(question["id"])
        if plain is None or plain.get("kind") != question["kind"] or plain.get("prompt") != question["prompt"]:
            raise MissingQuizKeys(f"quiz {quiz_id} question {question['id']}: the instructor's source differs "
                                  f"from the compiled quiz; rebuild it (python -m tools.build_quizzes {quiz_id})")
        questions.append(question if question["kind"] == "free" else {**question, **source_key(quiz_id, plain)})
    return {**quiz, "questions": questions}


def normalise_answer(question: dict, answer: Answer) -> Answer:
    """A learner's raw answer in its canonical Python type; ValueError saying what is wrong. Course infrastructure."""
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
            if isinstance(answer, bool):
                raise TypeError
            value = parse_number(answer) if isinstance(answer, str) else float(answer)
        except (TypeError, ValueError):
            raise ValueError(f"{qid}: a numeric answer must be a number (e.g. 4640, 4,640 or 0.42), "
                             f"got {answer!r}") from None
        if not math.isfinite(value):
            raise ValueError(f"{qid}: a numeric answer must be finite, got {answer!r}")
        return int(value) if value.is_integer() and abs(value) < 2 ** 53 else value
    if not isinstance(answer, str):
        raise ValueError(f"{qid}: a free-response answer is text, got {answer!r}")
    return answer


def is_correct(quiz_id: str, question: dict, answer: Answer) -> bool:
    """Whether a normalised answer of an auto-graded question matches the hashed key.

    A question of a graded quiz, as shipped, has no key: ValueError (see :func:`instructor_quiz`).
    Course infrastructure."""
    if "key" not in question:
        raise ValueError(f"quiz {quiz_id} question {question['id']} is graded: its key is not in this file "
                         f"(only the instructor's grader has it)")
    key, salt, qid = question["key"], question["salt"], question["id"]
    if "step" in key:
        centre = numeric_cell(answer, key["step"])
        cells = range(centre - NUMERIC_GRID, centre + NUMERIC_GRID + 1)
        return any(answer_hash(salt, quiz_id, qid, str(c)) == key["hash"] for c in cells)
    return answer_hash(salt, quiz_id, qid, canonical_answer(question["kind"], answer)) == key["hash"]


FREE_RESPONSE_FEEDBACK = "free response: graded by hand"


def grade_question(quiz_id: str, question: dict, answer: Answer | None) -> QuestionResult:
    """Grade one answer (``None`` = not answered, which fails); free response needs review.

    The result (:class:`utils.grade.result.QuestionResult`, the record the grader writes too) has
    status ``passed``, ``failed`` or ``needs-review``. Course infrastructure."""
    max_points = float(question.get("points", 1))
    if question["kind"] == "free":
        return QuestionResult(question["id"], 0.0, max_points, "needs-review", FREE_RESPONSE_FEEDBACK)
    try:
        normalised = None if answer is None else normalise_answer(question, answer)
    except ValueError:
        normalised = None
    ok = normalised is not None and is_correct(quiz_id, question, normalised)
    return QuestionResult(question["id"], max_points if ok else 0.0, max_points, "passed" if ok else "failed")


def grade_quiz(quiz_id: str, answers: dict[str, Answer], sources: Path | None = None) -> list[QuestionResult]:
    """Grade a learner's ``{question id: first answer}`` (as stored by the answer record), one result per
    question.  Graded quizzes are scored with the instructor's keys (``sources``, see
    :func:`instructor_quiz`; :class:`MissingQuizKeys` if they cannot be found). Course infrastructure."""
    quiz = instructor_quiz(quiz_id, sources)
    return [grade_question(quiz_id, q, answers.get(q["id"])) for q in quiz["questions"]]


def read_quiz_answers(nb) -> dict[str, dict[str, Answer]]:
    """``{quiz id: {question id: first answer}}`` from the answer records in a notebook's outputs.

    Args:
        nb: an ``nbformat.NotebookNode`` (version 4).  When a quiz appears twice, the last record wins.
    Course infrastructure.
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

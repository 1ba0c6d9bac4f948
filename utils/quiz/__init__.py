"""Quizzes: ``show_quiz("02")`` in a notebook; ``grade_quiz`` / ``read_quiz_answers`` for grading.

A quiz is compiled by ``python -m tools.build_quizzes`` from ``tools/quiz_sources/<id>.json`` into
``utils/quizzes/<id>.json``.  Its source says its mode:

* **self-study** (default; the chapters' quizzes): each answer key is a salted PBKDF2 hash of the
  *canonical* answer (:func:`canonical_answer`) and the explanations are stored encoded, so the widget
  can say right or wrong at once.  The explanation appears after a right answer or three tries.  This
  hides the key from a casual look; it is not a secret from someone willing to hash every option.
* **graded** (the exercise sets' quizzes ``exNN``): the shipped file holds prompts and options only —
  no key, no salt, no explanation.  The widget records the first answer without a verdict; the
  instructor's grader computes the keys from the source (:func:`instructor_quiz`) and scores it.

Either way the answer record saved in the notebook keeps the *first* answer to each question and the
number of tries (:mod:`utils.quiz.record`).  Numbers may be typed as the course writes them
("16,781,312", "4 640", "0.42"); the record shows exact integers.

Numeric answers with a tolerance ``t`` are hashed on a grid of step ``t / NUMERIC_GRID``: the key is
the hash of the grid cell ``floor(answer / step)``, and a learner's value ``x`` is accepted when one
of the ``2 * NUMERIC_GRID + 1`` cells around ``floor(x / step)`` matches.  So every ``x`` with
``|x - answer| <= t`` is accepted, and nothing farther than ``t * (1 + 1 / NUMERIC_GRID)``.

Layout: :mod:`~utils.quiz.keys` (hashing, numbers), :mod:`~utils.quiz.grading` (loading, grading,
reading records), :mod:`~utils.quiz.record` (the session and its record) import no widget library;
:mod:`~utils.quiz.widget` (ipywidgets) is imported only when one of its names is used.
"""
from __future__ import annotations

from .grading import (ANSWERS_MIME, MissingQuizKeys, QuestionResult, default_sources, grade_question, grade_quiz,
                      instructor_quiz, is_correct, load_quiz, normalise_answer, quiz_mode, read_quiz_answers)
from .keys import (HASH_ITERATIONS, KINDS, MODES, NUMERIC_GRID, Answer, answer_hash, answer_key, canonical_answer,
                   decode_feedback, encode_feedback, numeric_cell, parse_number, question_salt, show_number,
                   source_key)
from .record import (MAX_TRIES, VERDICT_COLOUR, VERDICT_TEXT, QuizSession, answer_record, markdown_to_html,
                     plain_text, record_score_text, record_summary_html, record_summary_text, show_answer)

_WIDGET_NAMES = ("QuizBox", "QuizView", "display_quiz", "saved_answers", "saved_record", "show_quiz")


def __getattr__(name: str):
    """The widget's names (``show_quiz``, ``QuizView``, ...), imported on first use (ipywidgets)."""
    if name in _WIDGET_NAMES:
        from . import widget
        return getattr(widget, name)
    raise AttributeError(f"module 'utils.quiz' has no attribute {name!r}")


__all__ = ["ANSWERS_MIME", "Answer", "HASH_ITERATIONS", "KINDS", "MAX_TRIES", "MODES", "MissingQuizKeys",
           "NUMERIC_GRID", "QuestionResult", "QuizSession", "VERDICT_COLOUR", "VERDICT_TEXT", "answer_hash",
           "answer_key", "answer_record", "canonical_answer", "decode_feedback", "default_sources",
           "encode_feedback", "grade_question", "grade_quiz", "instructor_quiz", "is_correct", "load_quiz",
           "markdown_to_html", "normalise_answer", "numeric_cell", "parse_number", "plain_text", "question_salt",
           "quiz_mode", "read_quiz_answers", "record_score_text", "record_summary_html", "record_summary_text", "show_answer",
           "show_number", "source_key", *_WIDGET_NAMES]

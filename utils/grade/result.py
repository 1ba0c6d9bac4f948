"""The one record of a graded question, shared by the grader (:mod:`utils.grade.worker`,
:mod:`utils.grade.grader`) and the quiz grading (:func:`utils.quiz.grade_question`).

It imports nothing of the grader, so ``utils.quiz`` can use it without loading kernels or sandboxes.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

#: Every status a question can get, as written to ``grades.csv``.
STATUSES = ("passed", "failed", "error", "timeout", "invalid", "needs-review")


@dataclass(frozen=True)
class QuestionResult:
    """The grade of one question.  Course infrastructure.

    Attributes:
        question: its name (``add_one_test``, ``extra:NAME`` for an instructor-only test,
            ``quizNN:q1`` in the grader, the bare question id ``q1`` from :func:`utils.quiz.grade_quiz`).
        points, max_points: points earned and possible.
        status: one of :data:`STATUSES`.
        feedback: what the learner may read about it ("" for hidden tests).
    """
    question: str
    points: float
    max_points: float
    status: str
    feedback: str = ""

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"question {self.question!r}: status must be one of {STATUSES}, got {self.status!r}")

    def as_dict(self) -> dict:
        """The record as plain data (what a grading worker sends back)."""
        return asdict(self)

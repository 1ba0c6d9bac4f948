"""How a quiz looks (issue 11): the answer record's table, its score line, the feedback's spacing.

The record is HTML that renders without a kernel; once something is answered its cells carry inline
left-alignment and no-wrap (JupyterLab right-aligns table cells and wrapped "✓ correct"), while the
unanswered form stays exactly as the stored chapters hold it (nbval compares it there).  The browser side
(what JupyterLab really draws) is in tests/test_browser_lab.py.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest

from tools import build_quizzes
from utils.quiz import ANSWERS_MIME, QuizSession, load_quiz, record_score_text, record_summary_html

ROOT = Path(__file__).resolve().parent.parent

SOURCE = {"id": "t2", "title": "Display quiz", "questions": [
    {"id": "q1", "kind": "single", "prompt": "Pick **B**", "options": ["A", "B", "C"], "answer": 1,
     "explanation": "B is the one."},
    {"id": "q2", "kind": "numeric", "prompt": "Output width?", "answer": 30, "tolerance": 0,
     "explanation": "(32 - 3) / 1 + 1 = 30"},
    {"id": "q3", "kind": "free", "prompt": "Explain.", "model_answer": "Filters slide over the image.",
     "rubric": ["mentions sliding filters"]},
]}


@pytest.fixture
def quiz():
    return build_quizzes.compile_quiz(json.loads(json.dumps(SOURCE)), "t2")


def cells(html: str) -> list[str]:
    return re.findall(r"<t[dh][^>]*>", html)


def test_unanswered_record_is_the_stored_form():
    """Chapter 01's stored quiz output is what record_summary_html still gives for no answers."""
    nb = nbformat.read(ROOT / "chapters" / "01_images_and_local_patterns.ipynb", as_version=4)
    stored = [o["data"] for c in nb.cells for o in c.get("outputs", []) if ANSWERS_MIME in o.get("data", {})]
    assert len(stored) == 1
    quiz = load_quiz("01")
    assert stored[0]["text/html"] == record_summary_html(quiz, {}, {}) == QuizSession(quiz).record()["text/html"]
    assert "style=" not in stored[0]["text/html"] and "Score" not in stored[0]["text/html"]


def test_answered_record_is_left_aligned_unwrapped_and_scored(quiz):
    session = QuizSession(quiz)
    session.check("q1", 1)                       # right at once
    session.check("q2", "29")                    # wrong first, then right: not a first-answer point
    session.check("q2", "30")
    html = session.record()["text/html"]
    assert "class='convcourse-quiz-record'" in html and "2 of 3 questions answered." in html
    assert cells(html) and all("text-align:left;white-space:nowrap" in c for c in cells(html))
    assert "<table style='margin-left:0;table-layout:auto'>" in html
    assert "<p>Score: 1 of 2 first answers right.</p>" in html
    assert "✓ correct" in html and "✗ not yet (right after 2 tries)" in html


def test_score_counts_free_answers_apart(quiz):
    assert record_score_text(quiz, {}, 0) == "Score: 0 of 2 first answers right."
    assert record_score_text(quiz, {"q3": "x"}, 0) == (
        "Score: 0 of 2 first answers right (1 free answer to compare with its model answer).")
    session = QuizSession(quiz)
    session.check("q3", "They slide.")
    assert "1 free answer to compare with its model answer" in session.record()["text/html"]


def test_graded_record_has_no_score(quiz):
    graded = build_quizzes.compile_quiz(dict(json.loads(json.dumps(SOURCE)), mode="graded"), "t2")
    session = QuizSession(graded)
    session.check("q1", 0)
    html = session.record()["text/html"]
    assert "Score" not in html and "✎ recorded" in html
    assert all("text-align:left" in c for c in cells(html))


def test_free_answer_feedback_keeps_verdict_and_model_answer_apart(quiz):
    """The verdict and "Model answer" are separate blocks (they ran together: "needs reviewModel answer")."""
    status, text = QuizSession(quiz).check("q3", "They slide.")
    assert status == "needs-review"
    assert re.search(r"needs review</b></p>.*<p><b>Model answer</b></p>", text, re.S)
    blocks = re.sub(r"</?(p|ul|li)>", "\n", text)          # block elements end a line when drawn
    assert "needs review</b>\n" in blocks and "\n<b>Model answer</b>\n" in blocks

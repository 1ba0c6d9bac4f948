"""The quiz engine: compiling sources, grading, hiding the keys, and answers saved in notebooks."""
from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from hypothesis import given, settings, strategies as st
from nbclient import NotebookClient

import utils.quiz as quiz_mod
from tools import build_quizzes
from utils.quiz import (ANSWERS_MIME, NUMERIC_GRID, QuizSession, QuizView, grade_quiz, read_quiz_answers)

ROOT = Path(__file__).resolve().parent.parent

SOURCE = {"id": "t1", "title": "Test quiz", "questions": [
    {"id": "q1", "kind": "single", "prompt": "Pick **B**", "options": ["A", "B", "C"], "answer": 1,
     "explanation": "B is the one."},
    {"id": "q2", "kind": "multiple", "prompt": "Pick A and C", "options": ["A", "B", "C", "D"],
     "answer": [2, 0], "explanation": "A and C."},
    {"id": "q3", "kind": "numeric", "prompt": "Output width?", "answer": 30, "tolerance": 0,
     "explanation": "(32 - 3) / 1 + 1 = 30", "points": 2},
    {"id": "q4", "kind": "numeric", "prompt": "Fraction zeroed?", "answer": 0.42, "tolerance": 0.02,
     "explanation": "About 0.42."},
    {"id": "q5", "kind": "free", "prompt": "Explain.", "model_answer": "Filters slide over the image zebra.",
     "rubric": ["mentions sliding filters", "mentions local patterns"]},
]}


@pytest.fixture
def compiled(monkeypatch):
    """The test quiz compiled in memory and served by load_quiz("t1")."""
    quiz = build_quizzes.compile_quiz(json.loads(json.dumps(SOURCE)), "t1")
    real_load = quiz_mod.load_quiz
    monkeypatch.setattr(quiz_mod, "load_quiz", lambda qid: quiz if qid == "t1" else real_load(qid))
    return quiz


def statuses(results):
    return {r.question: r.status for r in results}


def test_compiled_quiz_contains_no_plain_answers(compiled):
    text = json.dumps(compiled)
    for field in ("answer", "explanation", "model_answer", "rubric", "tolerance"):
        assert f'"{field}"' not in text
    for secret in ("zebra", "B is the one", "mentions sliding filters", "0.42"):
        assert secret not in text


def test_shipped_quizzes_hide_answers_and_are_current():
    compiled_files = sorted((ROOT / "utils" / "quizzes").glob("*.json"))
    for path in compiled_files:
        text = path.read_text(encoding="utf-8")
        for field in ('"answer"', '"explanation"', '"model_answer"', '"rubric"'):
            assert field not in text, f"{path.name} leaks {field}"
    assert build_quizzes.main(["--check"]) == 0, "a compiled quiz is stale: run python -m tools.build_quizzes"


def test_correct_answers_pass_and_wrong_ones_fail(compiled):
    right = {"q1": 1, "q2": [0, 2], "q3": 30, "q4": 0.42, "q5": "text"}
    wrong = {"q1": 0, "q2": [0], "q3": 29, "q4": 0.5, "q5": ""}
    assert statuses(grade_quiz("t1", right)) == {
        "q1": "passed", "q2": "passed", "q3": "passed", "q4": "passed", "q5": "needs-review"}
    assert statuses(grade_quiz("t1", wrong)) == {
        "q1": "failed", "q2": "failed", "q3": "failed", "q4": "failed", "q5": "needs-review"}


def test_points_and_free_response_needs_review(compiled):
    results = {r.question: r for r in grade_quiz("t1", {"q3": 30.0, "q5": "a long essay"})}
    assert (results["q3"].points, results["q3"].max_points) == (2.0, 2.0)
    assert (results["q5"].points, results["q5"].max_points, results["q5"].status) == (0.0, 1.0, "needs-review")
    assert results["q1"].status == "failed"  # not answered


def test_equivalent_forms_of_an_answer_are_accepted(compiled):
    assert statuses(grade_quiz("t1", {"q2": [2, 0, 2], "q3": "30.0"}))["q2"] == "passed"
    assert statuses(grade_quiz("t1", {"q3": "30"}))["q3"] == "passed"
    assert statuses(grade_quiz("t1", {"q3": 30.000000000001}))["q3"] == "passed"


def test_malformed_answers_fail_instead_of_crashing(compiled):
    bad = {"q1": "B", "q2": [7], "q3": "thirty", "q4": None}
    assert set(statuses(grade_quiz("t1", bad)).values()) <= {"failed", "needs-review"}


@settings(max_examples=30, deadline=None)
@given(answer=st.floats(-1000, 1000), tolerance=st.floats(0.001, 10), offset=st.floats(-1, 1))
def test_numeric_tolerance_accepts_within_and_rejects_beyond(answer, tolerance, offset):
    question = build_quizzes.compile_question("p", {"id": "q", "kind": "numeric", "prompt": "x",
                                                    "answer": answer, "tolerance": tolerance})
    inside = answer + 0.999 * offset * tolerance
    assert quiz_mod.is_correct("p", question, inside)
    beyond = answer + (1 + 1 / NUMERIC_GRID) * tolerance * 1.001 * (1 if offset >= 0 else -1)
    assert not quiz_mod.is_correct("p", question, beyond)


@pytest.mark.parametrize("broken, message", [
    ({"kind": "single", "options": ["a", "b"], "answer": 2}, "answer index 2"),
    ({"kind": "multiple", "options": ["a", "b"], "answer": []}, "non-empty list"),
    ({"kind": "numeric", "answer": 3, "tolerance": -1}, "tolerance"),
    ({"kind": "free", "model_answer": "x", "rubric": []}, "rubric"),
    ({"kind": "essay"}, "kind must be one of"),
])
def test_malformed_sources_are_rejected_clearly(broken, message):
    source = {"id": "b", "title": "Broken", "questions": [{"id": "q1", "prompt": "?", **broken}]}
    with pytest.raises(ValueError, match=message):
        build_quizzes.compile_quiz(source, "b")


def test_unknown_quiz_is_a_clear_error():
    with pytest.raises(ValueError, match="no compiled quiz 'nope'.*tools/quiz_sources/nope.json"):
        quiz_mod.load_quiz("nope")


def test_source_id_must_match_file_name():
    with pytest.raises(ValueError, match="must agree"):
        build_quizzes.compile_quiz(dict(SOURCE), "t2")


def test_session_records_checked_answers_and_reveals_feedback(compiled):
    records = []
    session = QuizSession(compiled, on_change=records.append)
    status, feedback = session.check("q5", "Filters slide.")
    assert status == "needs-review" and "zebra" in feedback and "mentions local patterns" in feedback
    status, feedback = session.check("q1", 0)
    assert status == "failed" and "B is the one." in feedback
    assert records[-1][ANSWERS_MIME] == {"quiz": "t1", "answers": {"q1": 0, "q5": "Filters slide."}}
    assert records[-1]["text/plain"] == "Quiz t1 (Test quiz): 2 of 5 questions answered."
    with pytest.raises(ValueError, match="option index"):
        session.check("q1", 5)


def test_widget_check_buttons_give_feedback(compiled):
    view = QuizView(compiled)
    view.controls["q1"].index = 1
    view.buttons["q1"].click()
    assert "correct" in view.feedback["q1"].value and "B is the one." in view.feedback["q1"].value
    view.controls["q2"].children[0].value = True
    view.buttons["q2"].click()
    assert "not yet" in view.feedback["q2"].value
    view.controls["q3"].value = "not a number"
    assert view.check("q3") == "invalid" and "must be a number" in view.feedback["q3"].value
    assert repr(view.widget) == "<Quiz t1: Test quiz (interactive: run the notebook to answer)>"


def test_answers_persist_in_an_executed_and_saved_notebook(tmp_path):
    """show_quiz's record output is updated in place by a check and read back from the saved file."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("from utils.quiz import show_quiz\nshow_quiz('00')"),
                nbformat.v4.new_code_cell("from utils.quiz import display_quiz, load_quiz\n"
                                          "view = display_quiz(load_quiz('00'))\n"
                                          "view.controls['q1'].index = 2\n"
                                          "view.check('q1')")]
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    path = tmp_path / "quiz.ipynb"
    nbformat.write(nb, path)
    saved = nbformat.read(path, as_version=4)
    first = [o for o in saved.cells[0].outputs if ANSWERS_MIME in o.get("data", {})]
    assert len(first) == 1 and first[0]["data"]["text/plain"].startswith("Quiz 00 (")
    assert "0 of" in first[0]["data"]["text/plain"] and "<table>" in first[0]["data"]["text/html"]
    widget_text = [o["data"]["text/plain"] for o in saved.cells[0].outputs
                   if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(widget_text) == 1 and widget_text[0].startswith("<Quiz 00: ")
    assert widget_text[0].endswith("(interactive: run the notebook to answer)>")
    assert read_quiz_answers(saved) == {"00": {"q1": 2}}  # the later cell's record wins


def test_rerunning_a_quiz_cell_keeps_the_answers_checked_in_this_kernel(compiled, monkeypatch):
    monkeypatch.setattr(quiz_mod, "_KERNEL_ANSWERS", {})
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    first = quiz_mod.display_quiz(compiled)
    first.controls["q2"].children[0].value = first.controls["q2"].children[2].value = True
    first.check("q2")
    assert quiz_mod.saved_answers("t1") == {"q2": [0, 2]}
    again = quiz_mod.display_quiz(compiled)
    again.restore(quiz_mod.saved_answers("t1"))
    assert [b.value for b in again.controls["q2"].children] == [True, False, True, False]
    assert again.session.answers == {"q2": [0, 2]} and "correct" in again.feedback["q2"].value


def test_answers_saved_in_the_notebook_file_are_restored_in_a_new_kernel(tmp_path, monkeypatch):
    """JupyterLab sets JPY_SESSION_NAME to the notebook's path: a restarted kernel reads the saved record."""
    saved = nbformat.v4.new_notebook()
    saved.cells = [nbformat.v4.new_code_cell("show_quiz('00')", outputs=[nbformat.v4.new_output(
        "display_data", data={ANSWERS_MIME: {"quiz": "00", "answers": {"q1": 2}}, "text/plain": "x"})])]
    path = tmp_path / "mine.ipynb"
    nbformat.write(saved, path)
    monkeypatch.setattr(quiz_mod, "_KERNEL_ANSWERS", {})
    monkeypatch.setenv("JPY_SESSION_NAME", str(path))
    assert quiz_mod.saved_answers("00") == {"q1": 2}
    view = quiz_mod.display_quiz(quiz_mod.load_quiz("00"))
    view.restore({"q1": 2, "no-such-question": 1, "q2": "malformed"})
    assert view.controls["q1"].index == 2 and view.session.answers["q1"] == 2
    assert quiz_mod.saved_answers("00") == {"q1": 2}          # now also known to this kernel
    monkeypatch.setattr(quiz_mod, "_KERNEL_ANSWERS", {})
    monkeypatch.setenv("JPY_SESSION_NAME", str(tmp_path / "missing.ipynb"))
    assert quiz_mod.saved_answers("00") == {}

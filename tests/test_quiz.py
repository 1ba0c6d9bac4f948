"""The quiz engine: compiling sources, grading, hiding the keys, and answers saved in notebooks."""
from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from hypothesis import given, settings, strategies as st
from nbclient import NotebookClient

import utils.quiz as quiz_mod
import utils.quiz.grading as grading_mod
import utils.quiz.widget as widget_mod
from tools import build_quizzes
from utils.quiz import (ANSWERS_MIME, MAX_TRIES, NUMERIC_GRID, MissingQuizKeys, QuizSession, QuizView, grade_quiz,
                        read_quiz_answers)

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
    serve(monkeypatch, quiz)
    return quiz


def serve(monkeypatch, quiz):
    real_load = grading_mod.load_quiz
    fake = lambda qid: quiz if qid == quiz["id"] else real_load(qid)          # noqa: E731
    monkeypatch.setattr(grading_mod, "load_quiz", fake)
    monkeypatch.setattr(widget_mod, "load_quiz", fake)


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
    assert status == "failed" and "B is the one." not in feedback and "Try again" in feedback
    assert records[-1][ANSWERS_MIME] == {"quiz": "t1", "answers": {"q1": 0, "q5": "Filters slide."},
                                         "tries": {"q1": 1, "q5": 1}}
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
    monkeypatch.setattr(widget_mod, "_KERNEL_RECORDS", {})
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
    monkeypatch.setattr(widget_mod, "_KERNEL_RECORDS", {})
    monkeypatch.setenv("JPY_SESSION_NAME", str(path))
    assert quiz_mod.saved_answers("00") == {"q1": 2}
    view = quiz_mod.display_quiz(quiz_mod.load_quiz("00"))
    view.restore({"q1": 2, "no-such-question": 1, "q2": "malformed"})
    assert view.controls["q1"].index == 2 and view.session.answers["q1"] == 2
    assert quiz_mod.saved_answers("00") == {"q1": 2}          # now also known to this kernel
    monkeypatch.setattr(widget_mod, "_KERNEL_RECORDS", {})
    monkeypatch.setenv("JPY_SESSION_NAME", str(tmp_path / "missing.ipynb"))
    assert quiz_mod.saved_answers("00") == {}


# ---------------------------------------------------------------- two modes (issue 9)

GRADED = {**SOURCE, "id": "g1", "title": "Graded quiz", "mode": "graded"}


@pytest.fixture
def graded(monkeypatch, tmp_path):
    """The test quiz compiled in graded mode, with the instructor's source in ``tmp_path``."""
    source = json.loads(json.dumps(GRADED))
    (tmp_path / "g1.json").write_text(json.dumps(source))
    quiz = build_quizzes.compile_quiz(source, "g1")
    serve(monkeypatch, quiz)
    monkeypatch.setenv("CONVCOURSE_QUIZ_SOURCES", str(tmp_path))
    return quiz


def test_a_graded_quiz_ships_without_keys_salts_or_explanations(graded):
    text = json.dumps(graded)
    assert graded["mode"] == "graded"
    for field in ('"key"', '"salt"', '"feedback"', '"hash"', '"answer"', '"explanation"'):
        assert field not in text
    assert [q["id"] for q in graded["questions"]] == [q["id"] for q in SOURCE["questions"]]


def test_farming_is_correct_over_the_options_finds_nothing_in_graded_mode(graded):
    """A learner's loop over every option has no key to compare with: each call refuses."""
    question = graded["questions"][0]
    for option in range(len(question["options"])):
        with pytest.raises(ValueError, match="is graded: its key is not in this file"):
            quiz_mod.is_correct("g1", question, option)


def test_the_grader_scores_the_first_answer_with_the_instructors_keys(graded):
    right = {"q1": 1, "q2": [0, 2], "q3": "30", "q4": 0.42}
    assert statuses(grade_quiz("g1", right)) == {"q1": "passed", "q2": "passed", "q3": "passed",
                                                 "q4": "passed", "q5": "needs-review"}
    session = QuizSession(graded)
    assert session.check("q1", 0)[0] == "recorded"
    status, feedback = session.check("q1", 1)                 # a second try changes nothing
    assert status == "recorded" and "already recorded" in feedback and "correct" not in feedback
    record = session.record()[ANSWERS_MIME]
    assert record == {"quiz": "g1", "answers": {"q1": 0}, "mode": "graded", "tries": {"q1": 1}}
    assert statuses(grade_quiz("g1", record["answers"]))["q1"] == "failed"


def test_graded_widget_shows_no_verdict_and_locks_the_question(graded):
    view = QuizView(graded)
    view.controls["q1"].index = 1
    view.buttons["q1"].click()
    assert view.buttons["q1"].disabled and view.buttons["q1"].description == "Submit"
    assert "correct" not in view.feedback["q1"].value and "not yet" not in view.feedback["q1"].value


def test_a_graded_quiz_without_the_instructors_source_is_a_grader_problem(graded, monkeypatch, tmp_path):
    monkeypatch.setenv("CONVCOURSE_QUIZ_SOURCES", str(tmp_path / "elsewhere"))
    with pytest.raises(MissingQuizKeys, match="g1.json"):
        grade_quiz("g1", {"q1": 1})
    changed = {**GRADED, "questions": [{**SOURCE["questions"][0], "prompt": "Pick C"}]}
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "g1.json").write_text(json.dumps(changed))
    with pytest.raises(MissingQuizKeys, match="differs from the compiled quiz"):
        grade_quiz("g1", {"q1": 1})


def test_self_study_explains_only_after_a_right_answer_or_three_tries(compiled):
    session = QuizSession(compiled)
    for attempt in range(1, MAX_TRIES):
        status, feedback = session.check("q3", 29)
        assert status == "failed" and "(32 - 3)" not in feedback, attempt
    status, feedback = session.check("q3", 28)
    assert status == "failed" and "(32 - 3) / 1 + 1 = 30" in feedback    # third try: explained
    assert session.check("q1", 1)[1].count("B is the one.") == 1          # right at once: explained
    session.check("q3", 30)
    record = session.record()[ANSWERS_MIME]
    assert record["answers"] == {"q1": 1, "q3": 29}                        # the FIRST answers
    assert record["tries"] == {"q1": 1, "q3": 4} and record["solved"] == ["q1", "q3"]
    assert "right after 4 tries" in session.record()["text/html"]


@pytest.mark.parametrize("typed, value", [("16,781,312", 16781312), ("4,640", 4640), ("4 640", 4640),
                                          ("4\u202f640", 4640), ("1 000 000", 1000000), ("0.42", 0.42),
                                          ("0,42", 0.42), ("-3", -3), ("\u22121", -1), ("\u2212 4,640", -4640),
                                          ("1e6", 1000000), (" 30 ", 30)])
def test_numbers_are_read_as_the_course_writes_them(typed, value):
    assert quiz_mod.parse_number(typed) == value


@pytest.mark.parametrize("typed", ["1,2,3", "4_640", "thirty", "", "1.2.3", "4,64,0"])
def test_malformed_numbers_are_refused(typed):
    with pytest.raises(ValueError):
        quiz_mod.parse_number(typed)


def test_a_number_with_separators_passes_and_the_record_shows_it_exactly(monkeypatch):
    source = {"id": "n1", "title": "Numbers", "questions": [
        {"id": "q1", "kind": "numeric", "prompt": "Parameters?", "answer": 16781312, "tolerance": 0}]}
    quiz = build_quizzes.compile_quiz(source, "n1")
    serve(monkeypatch, quiz)
    session = QuizSession(quiz)
    assert session.check("q1", "16,781,312")[0] == "passed"
    bundle = session.record()
    assert bundle[ANSWERS_MIME]["answers"] == {"q1": 16781312}
    assert "16,781,312" in bundle["text/html"] and "e+07" not in bundle["text/html"]


def test_the_unanswered_record_is_what_the_stored_chapters_hold():
    """The new fields appear only once answered: stored chapter outputs need no re-execution."""
    chapter = nbformat.read(ROOT / "chapters" / "02_convolution_from_scratch.ipynb", as_version=4)
    stored = [o["data"] for c in chapter.cells for o in c.get("outputs", []) if ANSWERS_MIME in o.get("data", {})]
    fresh = QuizSession(quiz_mod.load_quiz("02")).record()
    assert len(stored) == 1 and stored[0] == fresh


def test_importing_the_grading_side_imports_no_widget_library():
    import subprocess
    import sys
    code = ("import sys, utils.quiz, utils.quiz.grading, utils.quiz.record; "
            "from utils.quiz import grade_quiz, read_quiz_answers, QuizSession; "
            "assert 'ipywidgets' not in sys.modules; from utils.quiz import show_quiz; "
            "assert 'ipywidgets' in sys.modules")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


def test_build_quizzes_documents_every_kind_and_field_it_enforces():
    """The source format is documented in tools/build_quizzes.py itself (no other page describes it):
    every kind and every required field it validates is named there, and every path it names exists."""
    import re
    doc = build_quizzes.__doc__
    for kind, fields in build_quizzes.REQUIRED.items():
        assert f'``"{kind}"``' in doc, kind
        for field in fields:
            assert f'``"{field}"``' in doc, (kind, field)
    for mode in quiz_mod.MODES:
        assert f'"{mode}"' in doc, mode
    for path in re.findall(r"``((?:tools|utils|docs)/[\w./]+?)``", doc):
        if "<" not in path:
            assert (ROOT / path).exists(), path

"""Grading a class as a hub hands it over: who each notebook belongs to in the layouts of
docs/teaching.md (utils.grade.layout.learner_of, as the grader applies it) and the wide gradebook
CSV (utils.grade.gradebook, ``python -m utils.grade --gradebook``)."""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest

from utils.grade.gradebook import write_gradebook
from utils.grade.grader import Submission, find_notebooks_in
from utils.grade.layout import learner_of
from utils.grade.result import QuestionResult

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"


def sub(path: str, learner: str, set_id: str | None = "ex01", points: tuple[float, ...] = ()) -> Submission:
    s = Submission(path, exercise_set=SimpleNamespace(set_id=set_id) if set_id else None)
    s.learner = learner
    s.rows = [QuestionResult(f"q{i}", p, 2.0, "passed" if p == 2 else "failed", "") for i, p in enumerate(points)]
    return s


@pytest.mark.parametrize("given, file, learner", [
    ("home", "home/alice/exercises/ex01.ipynb", "alice"),           # home folders copied from a hub
    ("home/", "home/alice/exercises/ex01.ipynb", "alice"),
    ("home", "home/bob/work/deep/ex02.ipynb", "bob"),
    ("course/submitted", "course/submitted/carol/ps1/ex01.ipynb", "carol"),   # nbgrader's exchange
    ("course", "course/submitted/carol/ps1/ex01.ipynb", "carol"),
    ("flat", "flat/dan_ex01.ipynb", "flat/dan_ex01"),                # a flat folder: one file, one learner
])
def test_learner_of_each_class_layout_as_the_grader_finds_it(tmp_path, given, file, learner):
    (tmp_path / file).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / file).write_text("{}")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        [(path, root)] = find_notebooks_in([given])
    finally:
        os.chdir(cwd)
    assert learner_of(path, None, root) == learner


def test_nbgraders_exchange_wins_over_the_notebooks_own_claim():
    """nbgrader put the file under the submitting user's name: a notebook saying it is bob's stays alice's
    (else bob's gradebook column would take the higher of alice's and his own work)."""
    nb = nbformat.v4.new_notebook(metadata={"convcourse": {"learner": "bob"}})
    assert learner_of("course/submitted/alice/ex01/ex01.ipynb", nb, "course/submitted") == "alice"


def test_metadata_learner_wins_over_the_folder():
    nb = nbformat.v4.new_notebook(metadata={"convcourse": {"learner": "erin"}})
    assert learner_of("home/alice/ex01.ipynb", nb, "home") == "erin"


def claiming(name: str):
    return nbformat.v4.new_notebook(metadata={"convcourse": {"learner": name}})


def test_a_classmates_name_does_not_take_a_notebook_out_of_its_learners_folder():
    """bob writes alice's name into his notebook: alice has a folder in this run (here, or in
    nbgrader's exchange; case aside), so bob's file stays bob's (else alice's gradebook cell would
    wait for the instructor to choose between two copies), and it is flagged for review."""
    from utils.grade.layout import folder_learner, identity_notes
    found = [("home/Alice/ex01.ipynb", "home"), ("home/bob/ex01.ipynb", "home"),
             ("x/submitted/carol/ps1/ex01.ipynb", "x")]
    folders = frozenset(folder_learner(path, root) for path, root in found)
    assert folders == {"Alice", "bob", "carol"}
    for classmate in ("alice", "carol"):
        nb = claiming(classmate)
        assert learner_of("home/bob/ex01.ipynb", nb, "home", folders) == "bob"
        notes = identity_notes([("home/bob/ex01.ipynb", "home", nb, "bob"),
                                ("home/Alice/ex01.ipynb", "home", None, "Alice"),
                                ("x/submitted/carol/ps1/ex01.ipynb", "x", None, "carol")])
        assert list(notes) == ["home/bob/ex01.ipynb"] and f"names {classmate!r}" in notes["home/bob/ex01.ipynb"]
    assert learner_of("home/Alice/ex01.ipynb", claiming("alice"), "home", folders) == "alice"   # her own


def test_names_no_folder_holds_are_a_hubs_unless_one_folder_spreads_over_several():
    """A hub whose home folders are uids and whose metadata holds real names: graded by the names,
    nothing flagged; one folder whose notebooks carry different made-up names (one learner handing
    a set in as several learners, to try several quiz answers) is flagged, every notebook of it."""
    from utils.grade.layout import identity_notes
    entries = [("home/u1/ex01.ipynb", "home", claiming("Ada Lovelace"), "Ada Lovelace"),
               ("home/u1/ex02.ipynb", "home", claiming("Ada Lovelace"), "Ada Lovelace"),
               ("home/u2/ex01.ipynb", "home", claiming("Alan Turing"), "Alan Turing"),
               ("flat/a.ipynb", "flat", claiming("Grace"), "Grace"),      # an LMS export: no folders
               ("flat/b.ipynb", "flat", claiming("Edsger"), "Edsger"),
               ("x/submitted/ada/ps1/ex01.ipynb", "x", claiming("Ada Lovelace"), "ada")]  # nbgrader: the exchange decides
    assert learner_of("home/u1/ex01.ipynb", claiming("Ada Lovelace"), "home") == "Ada Lovelace"
    assert identity_notes(entries) == {}
    entries += [("home/u2/ex01 (1).ipynb", "home", claiming("Alan T."), "Alan T.")]
    notes = identity_notes(entries)
    assert sorted(notes) == ["home/u2/ex01 (1).ipynb", "home/u2/ex01.ipynb"]
    assert "'u2' name 2 different learners" in notes["home/u2/ex01.ipynb"]


def test_a_submitted_folder_below_a_learners_folder_is_not_nbgraders_exchange():
    """bob makes home/bob/submitted/alice/...: still bob's; the exchange counts only at the top."""
    assert learner_of("collected/home/bob/submitted/alice/ps1/ex01.ipynb", None, "collected/home") == "bob"
    assert learner_of("course/submitted/alice/submitted/bob/ps1/ex01.ipynb", None, "course") == "alice"
    assert learner_of("course/submitted/carol/ps1/ex01.ipynb", None, "course/submitted") == "carol"


@pytest.mark.parametrize("claimed", ["=HYPERLINK(\"http://x\")", "+1+cmd|' /C calc'!A0", "-2", "@SUM(A1)",
                                     "alice\nx,ex01,q,9,9,passed"])
def test_a_learner_name_a_spreadsheet_would_run_or_that_fakes_rows_is_ignored(claimed):
    """The learner column of grades.csv and the gradebook is opened in spreadsheets and LMSs."""
    nb = nbformat.v4.new_notebook(metadata={"convcourse": {"learner": claimed}})
    assert learner_of("home/alice/ex01.ipynb", nb, "home") == "alice"


def read_csv(path: Path) -> list[list[str]]:
    with path.open(newline="") as file:
        return list(csv.reader(file))


def test_gradebook_one_row_per_learner_one_column_per_set(tmp_path):
    submissions = [sub("h/bob/ex02.ipynb", "bob", set_id="ex02", points=(2, 0)),
                   sub("h/alice/ex01.ipynb", "alice", points=(2, 2)),
                   sub("h/alice/ex02.ipynb", "alice", set_id="ex02", points=(2, 1.5)),
                   sub("h/alice/broken.ipynb", "alice", set_id=None)]
    notes = write_gradebook(submissions, tmp_path / "book" / "gradebook.csv")
    assert read_csv(tmp_path / "book" / "gradebook.csv") == [
        ["learner", "ex01", "ex02", "total"],
        ["alice", "4", "3.5", "7.5"],
        ["bob", "", "2", "2"]]
    assert notes == []


def test_gradebook_leaves_duplicate_hand_ins_to_the_instructor(tmp_path):
    """No automatic best-of (red team: K copies with different quiz answers brute-force the graded quiz
    when the higher score is kept): the cell and the total stay empty, and a note names every copy."""
    submissions = [sub("h/alice/a/ex01.ipynb", "alice", points=(2, 0)),
                   sub("h/alice/b/ex01.ipynb", "alice", points=(0, 0)),
                   sub("h/alice/ex02.ipynb", "alice", set_id="ex02", points=(1, 1)),
                   sub("h/bob/ex01.ipynb", "bob", points=(1, 0))]
    notes = write_gradebook(submissions, tmp_path / "g.csv")
    assert read_csv(tmp_path / "g.csv") == [["learner", "ex01", "ex02", "total"],
                                            ["alice", "", "2", ""], ["bob", "1", "", "1"]]
    assert notes == ["alice: 2 hand-ins for one learner of ex01: choose one (h/alice/a/ex01.ipynb (2 points), "
                     "h/alice/b/ex01.ipynb (0 points)); the gradebook leaves alice's ex01 cell and total empty "
                     "until you keep one"]


def test_cli_grades_home_folders_and_nbgrader_exchange_by_learner(tmp_path):
    """home/<user>/exercises/ (a hub's home folders) and submitted/<student>/<assignment>/ (nbgrader)."""
    solved = (FIXTURES / "solutions" / "ex01_fixture.ipynb").read_text()
    unsolved = (FIXTURES / "exercises" / "ex01_fixture.ipynb").read_text()
    claims_alice = nbformat.reads(unsolved, as_version=4)
    claims_alice.metadata["convcourse"]["learner"] = "alice"      # bob's notebook says it is alice's
    files = {"home/alice/exercises/ex01_fixture.ipynb": solved,
             "home/bob/exercises/ex01_fixture.ipynb": nbformat.writes(claims_alice),
             "submitted/carol/ps1/ex01_fixture.ipynb": solved}
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    result = subprocess.run([sys.executable, "-m", "utils.grade", "home", "submitted", "--out", "out",
                             "--gradebook", "out/gradebook.csv", "--jobs", "2", "--timeout", "60",
                             "--memory", "2", "--solutions", str(FIXTURES / "solutions")],
                            cwd=tmp_path, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr[-2000:]
    with (tmp_path / "out" / "grades.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert {r["learner"] for r in rows} == {"alice", "bob", "carol"}
    assert all(r["learner"] in r["submission"] for r in rows)
    assert [(r["learner"], r["status"]) for r in rows if r["question"] == "learner"] == [("bob", "needs-review")]
    book = read_csv(tmp_path / "out" / "gradebook.csv")
    assert book[0] == ["learner", "ex01", "total"]
    assert [r[0] for r in book[1:]] == ["alice", "bob", "carol"]
    scores = {r[0]: float(r[1]) for r in book[1:]}
    automatic = {learner: sum(float(r["points"]) for r in rows if r["learner"] == learner) for learner in scores}
    assert scores == automatic
    assert scores["alice"] == scores["carol"] > scores["bob"], [(r["learner"], r["question"], r["status"]) for r in rows]
    assert all(r[2] == r[1] for r in book[1:])


def test_a_learner_flag_is_shown_once_and_is_not_an_answer_to_grade_by_hand(tmp_path):
    """The learner reads the flag as one row; the instructor's gradebook notes name it too."""
    from utils.grade.report import feedback_text
    flagged = sub("h/bob/ex01.ipynb", "bob", points=(2, 2))
    flagged.exercise_set.title = "ex01"
    flagged.rows.append(QuestionResult("learner", 0.0, 0.0, "needs-review", "its metadata names 'alice'"))
    text = feedback_text(flagged)
    assert text.count("names 'alice'") == 1 and "graded by hand" not in text
    assert write_gradebook([flagged], tmp_path / "g.csv") == ["bob: h/bob/ex01.ipynb: its metadata names 'alice'"]

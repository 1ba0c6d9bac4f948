"""exercises/ is generated from solutions/ (tools.make_exercises): in sync, runnable, and the same
as what nbgrader itself makes of the solution notebooks.  The fixture set under tests/fixtures
is checked the same way, so these tests mean something before any real set exists."""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tools import make_exercises

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
PAIRS = [(ROOT / "solutions", ROOT / "exercises"), (FIXTURES / "solutions", FIXTURES / "exercises")]
SOLUTIONS = [p for solutions, _ in PAIRS for p in sorted(solutions.glob("ex[0-9][0-9]_*.ipynb"))]


def exercise_of(solution: Path) -> Path:
    return solution.parent.parent / "exercises" / solution.name


@pytest.mark.parametrize("solutions, exercises", PAIRS, ids=["course", "fixture"])
def test_exercises_are_in_sync_with_solutions(solutions, exercises):
    stale = make_exercises.out_of_date(make_exercises.generate(solutions), exercises)
    assert stale == [], f"run python -m tools.make_exercises: out of date {stale}"


def test_check_mode_fails_when_an_exercise_is_edited(tmp_path):
    exercises = tmp_path / "exercises"
    args = ["--solutions", str(FIXTURES / "solutions"), "--exercises", str(exercises)]
    assert make_exercises.main(args) == 0
    assert make_exercises.main(args + ["--check"]) == 0
    edited = next(exercises.glob("*.ipynb"))
    edited.write_text(edited.read_text().replace("YOUR CODE HERE", "my attempt"))
    assert make_exercises.main(args + ["--check"]) == 1


def test_stubs_keep_indentation_and_def_lines():
    cell = nbformat.v4.new_code_cell("def f(x):\n    y = 1\n    ### BEGIN SOLUTION\n    return x + y\n    ### END SOLUTION",
                                     metadata={"nbgrader": {"solution": True, "grade": False, "locked": False,
                                                            "grade_id": "f", "schema_version": 3}})
    stub = make_exercises.exercise_cell(cell)
    assert stub.source == "def f(x):\n    y = 1\n    # YOUR CODE HERE\n    raise NotImplementedError()"
    assert "raises-exception" not in stub.metadata.get("tags", [])     # defining f does not raise
    top = make_exercises.exercise_cell(nbformat.v4.new_code_cell("### BEGIN SOLUTION\nx = 1\n### END SOLUTION",
                                                                   metadata=cell.metadata))
    assert top.source == "# YOUR CODE HERE\nraise NotImplementedError()"
    assert top.metadata["tags"] == ["raises-exception"]


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.name)
def test_exercise_has_no_solution_hidden_test_or_output(solution):
    exercise = nbformat.read(exercise_of(solution), as_version=4)
    for cell in exercise.cells:
        assert "BEGIN SOLUTION" not in cell.source and "HIDDEN TESTS" not in cell.source
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
    assert exercise.metadata["convcourse"] == nbformat.read(solution, as_version=4).metadata["convcourse"]


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.name)
def test_exercise_notebook_executes_with_only_tagged_cells_raising(solution):
    path = exercise_of(solution)
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()   # raises on untagged errors
    for cell in nb.cells:
        if "raises-exception" in cell.metadata.get("tags", []):
            errors = [o for o in cell.outputs if o.output_type == "error"]
            assert errors, f"cell tagged raises-exception does not raise:\n{cell.source}"


def nbgrader_assignment(solution: Path):
    """What nbgrader's generate_assignment preprocessors make of a solution notebook."""
    from nbgrader import preprocessors as nbp
    from nbgrader.nbgraderformat import MetadataValidator
    nb = nbformat.read(solution, as_version=4)
    MetadataValidator().validate_nb(nb)     # schema 3, unique grade ids, points on graded cells
    resources = {}
    for step in (nbp.LockCells(), nbp.ClearSolutions(enforce_metadata=True), nbp.ClearOutput(),
                 nbp.CheckCellMetadata(), nbp.ClearHiddenTests(), nbp.CheckCellMetadata()):
        nb, resources = step.preprocess(nb, resources)
    return nb


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.name)
def test_nbgrader_accepts_solution_and_agrees_with_our_exercise(solution):
    theirs = nbgrader_assignment(solution)
    ours = nbformat.read(exercise_of(solution), as_version=4)
    assert [c.source for c in ours.cells] == [c.source for c in theirs.cells]
    assert [c.metadata.get("nbgrader", {}).get("grade_id") for c in ours.cells] == \
           [c.metadata.get("nbgrader", {}).get("grade_id") for c in theirs.cells]


def test_a_solution_region_outside_a_solution_cell_stops_generation_like_nbgrader(tmp_path):
    """nbgrader's ClearSolutions(enforce_metadata=True) refuses such a notebook; so do we, naming the
    notebook and the cell, before writing anything."""
    from nbgrader import preprocessors as nbp
    solutions, exercises = tmp_path / "solutions", tmp_path / "exercises"
    solutions.mkdir()
    nb = nbformat.read(FIXTURES / "solutions" / "ex01_fixture.ipynb", as_version=4)
    nb.cells.insert(2, nbformat.v4.new_code_cell("### BEGIN SOLUTION\nanswer = 42\n### END SOLUTION"))
    nbformat.write(nb, solutions / "ex01_fixture.ipynb")
    with pytest.raises(make_exercises.SolutionOutsideSolutionCell,
                       match=r"ex01_fixture.ipynb, cell 3 \(code\): a '### BEGIN SOLUTION' region in a cell that is not"):
        make_exercises.generate(solutions)
    assert make_exercises.main(["--solutions", str(solutions), "--exercises", str(exercises)]) == 2
    assert not exercises.exists()
    with pytest.raises(RuntimeError, match="Solution region detected in a non-solution cell"):
        nbp.ClearSolutions(enforce_metadata=True).preprocess(nb, {})

"""Grade one submission (runs in its own forked worker process, started by ``grader``).

The worker runs only grader code: the student's notebook runs in a limited kernel
(:mod:`.kernel`), the student's functions in a limited runner (:mod:`.runner`), and the
instructor's test cells here, with the names they use bound to plain values or proxies.
"""
from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
import time
from pathlib import Path

from .exercise_sets import ExerciseSet, TestCell, used_names
from .integrity import reaching_statement
from .kernel import KernelLimits, KernelReport, run_notebook
from .regions import BEGIN_HIDDEN, END_HIDDEN
from .result import QuestionResult
from .runner import Runner, StudentCodeError, StudentFunction, StudentStopped, StudentTimeout
from .student_code import StudentCode, cell_source, parse_cells, student_code_cells

MESSAGE_CHARS = 2000


def question_name(test: TestCell) -> str:
    """The row name of a test: its grade_id, ``extra:<grade_id>`` for an instructor-only test.
    Course infrastructure."""
    return f"extra:{test.grade_id}" if test.hidden else test.grade_id


class Bindings:
    """The student's names as the test cells see them: plain values or function proxies. Course infrastructure."""

    def __init__(self, functions: set[str], runner: Runner | None, report: KernelReport,
                 code: StudentCode | None = None, expected_functions: set[str] = frozenset(),
                 origins: dict | None = None, review: str | None = None):
        self.functions, self.runner, self.report = functions, runner, report
        self.review = review              # why the learner's functions were not run (integrity)
        self.origins = origins or {}
        self.code = code or StudentCode()
        self.expected_functions = expected_functions

    def bind(self, names: set[str]) -> tuple[dict, list[str], str]:
        """(namespace, problems, status if a name is unavailable)."""
        namespace, problems = {"__name__": "__grader__"}, []
        for name in sorted(names):
            if name in self.functions:
                namespace[name] = StudentFunction(self.runner, name, self.code.source_of(name),
                                                  self.origins.get(name, {}))
                continue
            if name in self.expected_functions:
                if self.review:
                    problems.append(self.review)
                elif self.runner is not None and self.runner.start_failure is not None:
                    problems.append(f"{name} is unavailable: {self.runner.start_failure}")
                elif name in self.code.bound():
                    problems.append(f"{name} is not a function in your notebook (the task asks for a function)")
                else:
                    problems.append(f"{name} is not defined by your notebook (renamed or deleted a cell?)")
                continue
            entry = self.report.values.get(name)
            if isinstance(entry, dict) and "value" in entry:
                namespace[name] = entry["value"]
            elif isinstance(entry, dict) and "unsupported" in entry:
                problems.append(f"{name}: {entry['unsupported']}")
            elif self.report.stopped:
                problems.append(f"{name} is unavailable: {self.report.stopped}")
            elif self.report.cell_errors:
                problems.append(f"{name} was not defined: a cell raised an error first (see below)")
            else:
                problems.append(f"{name} is not defined by your notebook (renamed or deleted a cell?)")
        timed_out = (self.report.stopped and self.report.stop_status == "timeout" or
                     self.runner is not None and isinstance(self.runner.start_failure, StudentTimeout))
        status = "timeout" if problems and timed_out else "error"
        if problems and self.review and self.review in problems:
            status = "needs-review"
        return namespace, problems, status


def hidden_segments(source: str) -> list[tuple[str, bool]]:
    """A test cell's source cut at its ``### BEGIN/END HIDDEN TESTS`` lines: ``(code, hidden)`` pieces
    in order, each padded with blank lines so that line numbers stay the cell's.  A cell whose pieces
    do not compile apart (a region inside a block) is one piece, hidden when it has a region at all.
    Course infrastructure."""
    lines, pieces, hidden, start = source.split("\n"), [], False, 0
    for number, line in enumerate(lines):
        if BEGIN_HIDDEN in line or END_HIDDEN in line:
            pieces.append(("\n" * start + "\n".join(lines[start:number]), hidden))
            hidden, start = BEGIN_HIDDEN in line, number + 1
    pieces.append(("\n" * start + "\n".join(lines[start:]), hidden))
    if len(pieces) == 1:
        return pieces
    try:
        for code, _ in pieces:
            compile(code, "<test>", "exec")
    except SyntaxError:
        return [(source, True)]
    return [(code, hidden) for code, hidden in pieces if code.strip()]


def _outcome(test: TestCell, namespace: dict, runner: Runner | None, seconds: float) -> tuple[str, str]:
    """Run one instructor test cell: (status, message for the student).  Its hidden-test regions run
    with ``runner.hidden`` set: what the learner's code says there is not shown (:meth:`Runner.call`)."""
    if runner is not None:
        runner.deadline = time.monotonic() + seconds
    printed = io.StringIO()
    events = len(runner.stopped_events) if runner is not None else 0
    try:
        with contextlib.redirect_stdout(printed):
            for code, hidden in hidden_segments(test.source):
                if runner is not None:
                    runner.hidden = hidden
                exec(compile(code, f"<test {test.grade_id}>", "exec"), namespace)
    except StudentTimeout as exc:
        return "timeout", f"{exc} ({seconds:g} s per test)"
    except StudentStopped as exc:
        return exc.status, str(exc)
    except StudentCodeError as exc:
        return "error", exc.feedback()
    except AssertionError as exc:
        outcome = "failed", str(exc) or "a check failed"
    except Exception as exc:                              # noqa: BLE001 - e.g. a wrong return type
        outcome = "error", f"{type(exc).__name__}: {exc}"
    else:
        outcome = "passed", printed.getvalue().strip()
    finally:
        if runner is not None:
            runner.hidden = False
    late = runner.stopped_events[events:] if runner is not None else []
    if late and outcome[0] != "passed":      # a check caught the timeout/crash itself: say what happened
        return late[-1].status, f"{late[-1]}" + (f" ({seconds:g} s per test)" if isinstance(late[-1], StudentTimeout) else "")
    return outcome


def run_test(test: TestCell, exercise_set: ExerciseSet, bindings: Bindings, seconds: float) -> QuestionResult:
    """Run one instructor test cell with the learner's names bound; hidden tests keep no message.
    Course infrastructure."""
    names = used_names(test.source) & exercise_set.solution_names
    namespace, problems, status = bindings.bind(names)
    if problems:
        outcome = status, "; ".join(problems)
    else:
        outcome = _outcome(test, namespace, bindings.runner, seconds)
    status, message = outcome
    if bindings.runner is not None:
        message = bindings.runner.redact(message)
    if test.hidden:
        message = ""          # instructor-only tests: pass/fail and points, nothing else
    points = test.points if status == "passed" else 0.0
    return QuestionResult(question_name(test), points, test.points, status, message[:MESSAGE_CHARS])


def grade_notebook(nb, exercise_set: ExerciseSet, limits: KernelLimits) -> tuple[list[QuestionResult], list[str]]:
    """Rows for every test of ``exercise_set`` (quiz rows excluded) and notes on the run.

    Args:
        nb: the submitted notebook (nbformat v4 node; executed in place, so pass a copy).
    Course infrastructure.
    """
    workdir = Path(tempfile.mkdtemp(prefix="convcourse-grade-"))
    runner = None
    try:
        cells = student_code_cells(nb, {t.grade_id for t in exercise_set.tests})
        # The runner reads every code cell, the learner's copies of test cells too: a definition a
        # learner typed (or pasted) there exists in the notebook; the check calls there are not run.
        code = parse_cells([(i + 1, cell_source(nb.cells[i])) for i in student_code_cells(nb, set())])
        notes = list(code.problems)
        needed = set().union(*(used_names(t.source) for t in exercise_set.all_tests())) & exercise_set.solution_names
        expected = needed & exercise_set.solution_functions       # the tests call these
        functions: set[str] = set()
        origins: dict = {}
        chosen = [code.statements[i] for i in code.needed(expected)] if expected & code.bound() else []
        review = reaching_statement(chosen)       # the runner's reports could not be trusted: not run
        if chosen and not review:
            labels = [f"{s.where()} (`{s.source.splitlines()[0][:60]}`)" for s in chosen]
            runner = Runner([s.source for s in chosen], str(workdir), limits.memory_bytes,
                            start_seconds=limits.cell_seconds, labels=labels)
            with contextlib.suppress(StudentStopped):
                runner.start()      # before the kernel: fork while this process has no threads
            functions = runner.callables(sorted(expected & code.bound()))
            origins = runner.origins(sorted(functions)) if functions else {}
            notes += [f"loading your code for the tests: {p}" for p in runner.load_problems]
        values = sorted(needed - expected)
        if values or limits.always_execute:
            report = run_notebook(nb, cells, values, workdir, limits)
        else:
            report = KernelReport()
            notes.append("notebook not executed: the tests only call your functions")
        notes += report.cell_errors + ([f"stopped: {report.stopped}"] if report.stopped else [])
        if report.output_truncated:
            notes.append(f"output was over {limits.max_output} bytes and was cut")
        bindings = Bindings(functions, runner, report, code, expected, origins, review)
        rows = [run_test(t, exercise_set, bindings, limits.cell_seconds) for t in exercise_set.all_tests()]
        return rows, notes
    finally:
        if runner is not None:
            runner.stop()
        shutil.rmtree(workdir, ignore_errors=True)

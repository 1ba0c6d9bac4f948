"""The course manifest: which chapters, exercise sets and quizzes there are, in which order.

One list that the rest of the repository reads or is checked against: the hygiene tests
(tests/test_notebook_hygiene.py: files, titles, navigation links, chapter <-> exercise links,
quizzes), the provenance test (tests/test_provenance.py), ``tools.execute_notebooks`` and
``tools.make_exercises`` (a notebook that is not listed here is refused), chapter 00's map and
the README's chapter table (checked row by row).  To add a chapter or an exercise set, follow
the checklist in tools/README.md; its first step is a line here.

Paths are relative to the repository root (``chapters/``, ``solutions/``, ``exercises/``,
``tools/quiz_sources/``); this module reads no file, so it works in an installed package too.
"""
from __future__ import annotations

from dataclasses import dataclass

MAP = "00_start_here.ipynb"
"""The course map every chapter links back to.  Course infrastructure."""


@dataclass(frozen=True)
class Chapter:
    """One chapter notebook ``chapters/{file}``.  Course infrastructure.

    Attributes:
        number: two digits, ``"00"`` .. ; the order of the course.
        file: the notebook's file name, ``f"{number}_{slug}.ipynb"``.
        title: as in the notebook's heading ``# {int(number)} · {title}``, the map and the README.
        minutes: the reading-and-running time shown in the map and the README.
        quizzes: the quiz ids the chapter shows (``show_quiz(id)``), in order.
        exercise_set: the id of the exercise set the chapter links to (``None`` for chapter 00).
    """
    number: str
    file: str
    title: str
    minutes: int
    quizzes: tuple[str, ...]
    exercise_set: str | None = None

    @property
    def path(self) -> str:
        return f"chapters/{self.file}"


@dataclass(frozen=True)
class ExerciseSet:
    """One exercise set: ``solutions/{file}`` (the instructor's) and ``exercises/{file}`` (generated).

    Course infrastructure.

    Attributes:
        id: ``"exNN"``, also the notebook's metadata ``convcourse.exercise_set``.
        file: ``f"{id}_{slug}.ipynb"``.
        chapter: the number of the chapter it practises (its heading links there).
        quizzes: the (graded) quiz ids it shows, in order.
    """
    id: str
    file: str
    chapter: str
    quizzes: tuple[str, ...]

    @property
    def solution_path(self) -> str:
        return f"solutions/{self.file}"

    @property
    def exercise_path(self) -> str:
        return f"exercises/{self.file}"


def _chapter(number: str, slug: str, title: str, minutes: int, exercise_set: str | None = None,
             extra_quizzes: tuple[str, ...] = ()) -> Chapter:
    return Chapter(number, f"{number}_{slug}.ipynb", title, minutes, (number, *extra_quizzes),
                   exercise_set)


CHAPTERS: tuple[Chapter, ...] = (
    _chapter("00", "start_here", "Start here", 10),
    _chapter("01", "images_and_local_patterns", "Images and local patterns", 30, "ex01"),
    _chapter("02", "convolution_from_scratch", "Convolution from scratch", 60, "ex02"),
    _chapter("03", "numpy_vs_pytorch", "NumPy vs PyTorch", 45, "ex03"),
    _chapter("04", "filters_and_feature_maps", "Filters and feature maps", 45, "ex04"),
    _chapter("05", "relu_and_nonlinearity", "ReLU and non-linearity", 40, "ex05"),
    _chapter("06", "pooling", "Pooling", 40, "ex06"),
    _chapter("07", "building_a_cnn", "Building a CNN", 45, "ex07"),
    _chapter("08", "transfer_learning", "Transfer learning", 45, "ex08"),
    _chapter("09", "efficiency_and_accuracy", "Efficiency and accuracy", 45, "ex09",
             extra_quizzes=("review",)),
    # The finale has no set of its own: its task is the last one of ex07.
    _chapter("10", "a_real_pretrained_network", "Inside a real pretrained network", 45, "ex07"),
)
"""Every chapter, in course order.  Course infrastructure."""

EXERCISE_SETS: tuple[ExerciseSet, ...] = (
    ExerciseSet("ex01", "ex01_images_and_local_patterns.ipynb", "01", ("ex01",)),
    ExerciseSet("ex02", "ex02_convolution_from_scratch.ipynb", "02", ("ex02",)),
    ExerciseSet("ex03", "ex03_numpy_vs_pytorch.ipynb", "03", ("ex03",)),
    ExerciseSet("ex04", "ex04_filters_and_feature_maps.ipynb", "04", ("ex04",)),
    ExerciseSet("ex05", "ex05_relu_and_nonlinearity.ipynb", "05", ("ex05",)),
    ExerciseSet("ex06", "ex06_pooling.ipynb", "06", ("ex06",)),
    ExerciseSet("ex07", "ex07_building_a_cnn.ipynb", "07", ("ex07",)),
    ExerciseSet("ex08", "ex08_transfer_learning.ipynb", "08", ("ex08",)),
    ExerciseSet("ex09", "ex09_efficiency_and_accuracy.ipynb", "09", ("ex09", "ex09review")),
)
"""Every exercise set, in course order.  Course infrastructure."""


def chapter(number: str | int) -> Chapter:
    """The chapter ``"07"`` (or ``7``); ``KeyError`` naming the known numbers otherwise.

    Course infrastructure.
    """
    key = f"{number:02d}" if isinstance(number, int) else str(number)
    for c in CHAPTERS:
        if c.number == key:
            return c
    raise KeyError(f"no chapter {number!r} in utils/course.py; chapters: {[c.number for c in CHAPTERS]}")


def exercise_set(set_id: str) -> ExerciseSet:
    """The exercise set ``"ex07"``; ``KeyError`` naming the known ids otherwise.  Course infrastructure."""
    for s in EXERCISE_SETS:
        if s.id == set_id:
            return s
    raise KeyError(f"no exercise set {set_id!r} in utils/course.py; sets: {[s.id for s in EXERCISE_SETS]}")


def quiz_ids() -> tuple[str, ...]:
    """Every quiz shown by a chapter or an exercise set (``tools/quiz_sources/{id}.json``), in course order.

    Course infrastructure.
    """
    return tuple(q for c in CHAPTERS for q in c.quizzes) + tuple(q for s in EXERCISE_SETS for q in s.quizzes)


def navigation(number: str | int) -> str:
    """The navigation line a chapter shows at its top and bottom, e.g. for chapter 01
    ``[← previous](00_start_here.ipynb) · [map](00_start_here.ipynb) · [next →](02_….ipynb)``
    (no previous for the first chapter, no next for the last).  Course infrastructure."""
    index = CHAPTERS.index(chapter(number))
    parts = [f"[map]({MAP})"]
    if index > 0:
        parts.insert(0, f"[← previous]({CHAPTERS[index - 1].file})")
    if index + 1 < len(CHAPTERS):
        parts.append(f"[next →]({CHAPTERS[index + 1].file})")
    return " · ".join(parts)


def exercise_links(set_id: str) -> tuple[str, str]:
    """The two link lines of an exercise set, under its title and at its end.  Course infrastructure.

    Returns:
        ``(top, bottom)``: ``**Read chapter N first:** [title](../chapters/F)`` and
        ``Back to the [chapter](../chapters/F) · [course map](../chapters/00_start_here.ipynb)``.
    """
    practised = chapter(exercise_set(set_id).chapter)
    top = f"**Read chapter {int(practised.number)} first:** [{practised.title}](../{practised.path})"
    bottom = f"Back to the [chapter](../{practised.path}) · [course map](../chapters/{MAP})"
    return top, bottom

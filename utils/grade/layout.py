"""Who handed a notebook in: one rule, shared by duplicate detection and the gradebook.

A learner is identified by, in this order:

1. nbgrader's layout ``.../submitted/<learner>/<assignment>/<notebook>.ipynb``: the folder after
   ``submitted`` (nbgrader's exchange put it there for the authenticated user, so the notebook's own
   metadata cannot move it to someone else);
2. the notebook's metadata ``convcourse.learner`` (a non-empty string; set by a hub or an LMS
   export, never by the course itself);
3. a folder per learner under a graded folder (``grade home/`` with ``home/<user>/exercises/x.ipynb``,
   ``grade class/`` with ``class/alice/ex01.ipynb``): the first folder below the graded folder;
4. otherwise the file itself (its path without ``.ipynb``): a flat folder of files cannot tell
   two hand-ins of one learner apart, so none is flagged.

The metadata is written by the learner's own file, so in a folder per learner (rule 3) a learner
could claim a classmate's name, and the classmate's gradebook cell would wait for the instructor to
choose between two copies.  So a name that is another learner's folder anywhere in the grading run
does not move a notebook out of its own learner's folder (rule 3 wins), and the grader notes every
notebook whose metadata names someone other than the learner it is graded as
(:func:`claim_note`).  nbgrader's exchange is not open to that at all.  A value that a
spreadsheet would read as a formula (``=``, ``+``, ``-``, ``@`` first) or that holds control
characters is ignored.
"""
from __future__ import annotations

from pathlib import PurePath

MAX_LEARNER_CHARS = 200
FORMULA_STARTS = "=+-@"


def learner_from_metadata(nb) -> str | None:
    """``convcourse.learner`` of a notebook node (or dict) when it is a non-empty string, else None.
    Course infrastructure."""
    try:
        value = nb.get("metadata", {}).get("convcourse", {}).get("learner")
    except AttributeError:            # metadata or convcourse of the wrong type: no learner from it
        return None
    if isinstance(value, str) and value.strip():
        value = value.strip()[:MAX_LEARNER_CHARS]
        # Written into grades.csv and the gradebook, which spreadsheets and LMSs open: a cell that starts
        # like a formula (=, +, -, @) would run as one there; control characters could fake rows.
        if value[0] in FORMULA_STARTS or any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 for c in value):
            return None
        return value
    return None


def learner_of(path: str, nb=None, root: str | None = None, folders: frozenset = frozenset()) -> str:
    """The learner who handed in ``path`` (see the module docstring for the rule).

    Args:
        path: the notebook's path as found by the grader.
        nb: the parsed notebook (or None when it could not be read).
        root: the folder given on the command line that ``path`` was found in (None for a
            file given directly).
        folders: the learners that folders name in this grading run (:func:`folder_learner` of
            every notebook): a notebook's metadata naming one of them does not take it out of
            its own learner's folder.
    Course infrastructure.
    """
    exchange = _exchange_learner(path)
    if exchange:                          # nbgrader's exchange knows who submitted: the file cannot say otherwise
        return exchange
    found = learner_from_metadata(nb) if nb is not None else None
    folder = _learner_folder(path, root)
    if found and not (folder and found != folder and found in folders):
        return found
    return folder or str(PurePath(path).with_suffix(""))


def folder_learner(path: str, root: str | None = None) -> str | None:
    """The learner the file's place names (rules 1 and 3), whatever its metadata says; else None.
    Course infrastructure."""
    return _exchange_learner(path) or _learner_folder(path, root)


def _exchange_learner(path: str) -> str | None:
    """Rule 1: the folder after the last ``submitted`` (nbgrader's layout)."""
    parts = PurePath(path).parts
    if "submitted" in parts[:-1]:
        index = len(parts) - 1 - parts[::-1].index("submitted")
        if index + 1 < len(parts) - 1:
            return parts[index + 1]
    return None


def _learner_folder(path: str, root: str | None) -> str | None:
    """Rule 3: the first folder below the graded folder ``root``, if the file is deeper than that."""
    if root is None:
        return None
    try:
        relative = PurePath(path).relative_to(PurePath(root)).parts
    except ValueError:
        return None
    return relative[0] if len(relative) >= 2 else None


def claim_note(nb, learner: str) -> str | None:
    """A note for the instructor when the notebook's metadata names a learner other than the one it
    is graded as (a copy of a classmate's notebook, or a claim to be them).  Course infrastructure."""
    claimed = learner_from_metadata(nb) if nb is not None else None
    if claimed is None or claimed == learner:
        return None
    return (f"the notebook's metadata names the learner {claimed!r}, but it was handed in as "
            f"{learner}'s (its folder): graded as {learner}'s; check whether it is a copy")

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
choose between two copies.  So a name that is (case aside) another learner that a folder names
anywhere in the grading run does not move a notebook out of its own learner's folder (rule 3 wins
then), and :func:`identity_notes` flags for review every notebook whose metadata names another
learner of the run, and every folder whose notebooks the metadata spreads over several learners
(made-up names would otherwise let one learner hand in K copies as K learners).  ``submitted``
counts only in the graded folder's own path or as its first folder, never below a learner's folder
(else ``home/bob/submitted/alice/...`` would be alice's).  A value that a
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
            every notebook): a notebook's metadata naming another of them does not take it out
            of its own learner's folder.
    Course infrastructure.
    """
    exchange = _exchange_learner(path, root)
    if exchange:                          # nbgrader's exchange knows who submitted: the file cannot say otherwise
        return exchange
    found = learner_from_metadata(nb) if nb is not None else None
    folder = _learner_folder(path, root)
    if found and not (folder and _same(found, folders) and not _same(found, {folder})):
        return found
    return folder or str(PurePath(path).with_suffix(""))


def folder_learner(path: str, root: str | None = None) -> str | None:
    """The learner the file's place names (rules 1 and 3), whatever its metadata says; else None.
    Course infrastructure."""
    return _exchange_learner(path, root) or _learner_folder(path, root)


def identity_notes(entries: list[tuple[str, str | None, object, str]]) -> dict[str, str]:
    """``{path: note}`` for the hand-ins whose metadata names another learner of the run (a copy of a
    classmate's notebook, or a claim to be them), or that share a learner folder with hand-ins
    graded as other learners (names made up to hand one set in several times).

    Args:
        entries: (path, root, parsed notebook or None, learner it is graded as) of each hand-in.
    Course infrastructure.
    """
    folders = {folder_learner(path, root) for path, root, _, _ in entries} - {None}
    spread: dict[str, set[str]] = {}
    for path, root, _, learner in entries:
        if _learner_folder(path, root) and not _exchange_learner(path, root):
            spread.setdefault(_learner_folder(path, root), set()).add(learner)
    notes = {}
    for path, root, nb, learner in entries:
        claimed = learner_from_metadata(nb) if nb is not None else None
        folder = _learner_folder(path, root) if not _exchange_learner(path, root) else None
        if claimed and _same(claimed, folders) and not _same(claimed, {learner}):
            notes[path] = (f"its metadata (convcourse.learner) names {claimed!r}, another learner of "
                           f"this class; it is graded as {learner}'s, and the instructor will look at it")
        elif folder and len(spread[folder]) > 1:
            names = ", ".join(sorted(spread[folder]))
            notes[path] = (f"the notebooks in the folder {folder!r} name {len(spread[folder])} different "
                           f"learners in their metadata ({names}); the instructor will look at them")
    return notes


def _same(name: str, names) -> bool:
    """``name`` is one of ``names``, case aside (a folder ``Alice`` and a claim ``alice`` are one)."""
    return name.casefold() in {other.casefold() for other in names}


def _exchange_learner(path: str, root: str | None = None) -> str | None:
    """Rule 1: the folder after ``submitted`` (nbgrader's layout), where ``submitted`` is the last one
    in the graded folder's own path or that folder's first folder; any, for a file given directly."""
    parts = PurePath(path).parts
    if root is None:
        places = [i for i, part in enumerate(parts[:-1]) if part == "submitted"]
    else:
        inside = len(PurePath(root).parts)
        if tuple(parts[:inside]) != PurePath(root).parts:
            return None
        places = [i for i in range(min(inside + 1, len(parts) - 1)) if parts[i] == "submitted"]
    if places and places[-1] + 1 < len(parts) - 1:
        return parts[places[-1] + 1]
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

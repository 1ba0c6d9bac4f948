"""Answer keys: canonical answers, salted hashes, the numeric grid, numbers as learners type them.

No widget and no file access here: the builder (``tools/build_quizzes.py``), the grading
(:mod:`utils.quiz.grading`) and the widget share these functions.
"""
from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import zlib
from typing import Any

KINDS = ("single", "multiple", "numeric", "free")
MODES = ("self-study", "graded")
HASH_ITERATIONS = 20_000   # slows down hashing every candidate answer; one check still takes ~10 ms
NUMERIC_GRID = 4           # grid cells per tolerance: accepted error is at most 1.25 x tolerance

Answer = Any  # int (single), list[int] (multiple), float (numeric), str (free)


def canonical_answer(kind: str, answer: Answer) -> str:
    """The string that is hashed for a normalised answer of a single/multiple/exact-numeric question.
    Course infrastructure."""
    if kind == "single":
        return str(int(answer))
    if kind == "multiple":
        return ",".join(str(i) for i in sorted(set(answer)))
    if kind == "numeric":
        # 12 significant digits: 30 and 30.0 agree, and so do 0.1 + 0.2 and 0.3.
        return format(float(answer) + 0.0, ".12g")
    raise ValueError(f"answers of kind {kind!r} have no canonical form")


def question_salt(quiz_id: str, question: dict) -> str:
    """The salt of one question, derived from its ids and prompt (deterministic builds). Course infrastructure."""
    text = f"convcourse/{quiz_id}/{question['id']}/{question['prompt']}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def answer_hash(salt: str, quiz_id: str, question_id: str, canonical: str) -> str:
    """Hex PBKDF2-SHA256 of ``quiz_id/question_id/canonical`` with the question's salt. Course infrastructure."""
    message = f"{quiz_id}/{question_id}/{canonical}".encode()
    return hashlib.pbkdf2_hmac("sha256", message, salt.encode(), HASH_ITERATIONS).hex()


def numeric_cell(value: float, step: float) -> int:
    """Index of the tolerance-grid cell ``[k * step, (k + 1) * step)`` holding ``value``. Course infrastructure."""
    return math.floor(value / step)


def answer_key(quiz_id: str, question_id: str, kind: str, answer: Answer, salt: str,
               tolerance: float = 0.0) -> dict:
    """The compiled key of one question: ``{"hash": ...}`` plus ``"step"`` for tolerant numerics.
    Course infrastructure."""
    if kind == "numeric" and tolerance > 0:
        step = tolerance / NUMERIC_GRID
        cell = str(numeric_cell(float(answer), step))
        return {"step": step, "hash": answer_hash(salt, quiz_id, question_id, cell)}
    return {"hash": answer_hash(salt, quiz_id, question_id, canonical_answer(kind, answer))}


def source_key(quiz_id: str, question: dict) -> dict:
    """``{"salt", "key"}`` of a source question (with its plain ``answer``), as the builder compiles it.
    Course infrastructure."""
    salt = question_salt(quiz_id, question)
    return {"salt": salt, "key": answer_key(quiz_id, question["id"], question["kind"], question["answer"], salt,
                                            float(question.get("tolerance", 0)))}


def encode_feedback(feedback: dict) -> str:
    """Explanations/model answers as base64(zlib(json)): unreadable at a glance, restored by
    :func:`decode_feedback` after an attempt. Course infrastructure."""
    return base64.b64encode(zlib.compress(json.dumps(feedback, sort_keys=True).encode())).decode()


def decode_feedback(blob: str) -> dict:
    """The inverse of :func:`encode_feedback`.  Course infrastructure."""
    return json.loads(zlib.decompress(base64.b64decode(blob)))


_SPACES = re.compile(r"[\s\u00a0\u2009\u202f']")
_THOUSANDS = re.compile(r"[+-]?\d{1,3}(,\d{3})+(\.\d*)?")


_MINUS_SIGNS = str.maketrans({"\u2212": "-", "\u2013": "-", "\u2012": "-"})


def parse_number(text: str) -> float:
    """A number as a learner types it: ``"16,781,312"``, ``"4 640"``, ``"0.42"``, ``"0,42"``, ``"1e6"``, ``"−1"``.

    Spaces (also thin and non-breaking ones) and apostrophes between digits are thousands separators;
    commas are thousands separators when they group digits by three (``"4,640"`` is 4640), else a
    decimal comma (``"0,42"``).  ValueError if it is not a number.
    Course infrastructure.
    """
    # a pasted minus sign (U+2212, as the course's own pages print it) or a dash means minus
    compact = _SPACES.sub("", text.strip()).translate(_MINUS_SIGNS)
    if _THOUSANDS.fullmatch(compact):
        compact = compact.replace(",", "")
    elif compact.count(",") == 1 and "." not in compact:
        compact = compact.replace(",", ".")
    if not compact or "_" in compact:
        raise ValueError(f"not a number: {text!r}")
    return float(compact)


def show_number(value: float) -> str:
    """A numeric answer for the record: exact integers with thousands separators (``16,781,312``),
    other values with up to 12 significant digits. Course infrastructure."""
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    return format(value, ".12g")

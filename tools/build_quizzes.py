"""Compile quiz sources into the hashed quizzes that ship with ``utils``.

    python -m tools.build_quizzes            # every tools/quiz_sources/*.json
    python -m tools.build_quizzes 02 review  # only these
    python -m tools.build_quizzes --check    # fail when a compiled quiz is missing or stale

A source ``tools/quiz_sources/<id>.json`` holds the plain answers (this docstring is the format's
documentation; :func:`validate_question` enforces it)::

    {"id": "<id, same as the file name>", "title": "...", "mode": "self-study" | "graded",
     "questions": [{"id": "q1", "kind": KIND, "prompt": "markdown", "points": 1, ...}, ...]}

``mode`` is optional (default ``"self-study"``), ``points`` too (default 1).  Per ``kind``:

* ``"single"``: ``"options"`` (at least 2 strings) and ``"answer"`` (the index of the right option);
* ``"multiple"``: ``"options"`` and ``"answer"`` (a non-empty list of distinct indices);
* ``"numeric"``: ``"answer"`` (a number) and an optional ``"tolerance"`` (>= 0, default 0);
* ``"free"``: ``"model_answer"`` (text) and ``"rubric"`` (a non-empty list of strings), graded by hand;

and any question may carry an ``"explanation"`` shown after a right answer (self-study only).
The compiled ``utils/quizzes/<id>.json`` keeps the prompts and options and

* self-study: a salted hash of each answer (see :mod:`utils.quiz`) and the explanations, model
  answers and rubrics in encoded form;
* graded: ``"mode": "graded"`` and nothing else: no hash, no salt, no explanation.  The grader
  computes the keys from the source itself (:func:`utils.quiz.instructor_quiz`).

Compiling is deterministic: the salt of a question is derived from its quiz id, question id and
prompt, so rebuilding an unchanged source changes nothing.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from utils.quiz.keys import KINDS, MODES, encode_feedback, question_salt, source_key

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ROOT / "tools" / "quiz_sources"
COMPILED = ROOT / "utils" / "quizzes"
REQUIRED = {"single": ("options", "answer"), "multiple": ("options", "answer"),
            "numeric": ("answer",), "free": ("model_answer", "rubric")}


def _fail(where: str, message: str):
    raise ValueError(f"{where}: {message}")


def validate_choice(where: str, question: dict) -> None:
    """Options are non-empty strings; single answer is one index, multiple a non-empty index list."""
    options, answer = question["options"], question["answer"]
    if not isinstance(options, list) or len(options) < 2 or not all(isinstance(o, str) and o for o in options):
        _fail(where, f"options must be a list of at least 2 non-empty strings, got {options!r}")
    indices = [answer] if question["kind"] == "single" else answer
    if not isinstance(indices, list) or not indices or len(set(map(str, indices))) != len(indices):
        _fail(where, f"a multiple-choice answer is a non-empty list of distinct indices, got {answer!r}")
    for i in indices:
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < len(options):
            _fail(where, f"answer index {i!r} is not in 0..{len(options) - 1} ({len(options)} options)")


def validate_question(quiz_id: str, question: dict) -> None:
    """ValueError naming the quiz, the question and the problem."""
    where = f"quiz {quiz_id} question {question.get('id')!r}"
    kind = question.get("kind")
    if kind not in KINDS:
        _fail(where, f"kind must be one of {KINDS}, got {kind!r}")
    for field in ("id", "prompt") + REQUIRED[kind]:
        if field not in question:
            _fail(where, f"a {kind} question needs the field {field!r}")
    if kind in ("single", "multiple"):
        validate_choice(where, question)
    if kind == "numeric":
        answer, tolerance = question["answer"], question.get("tolerance", 0)
        if isinstance(answer, bool) or not isinstance(answer, (int, float)):
            _fail(where, f"a numeric answer must be a number, got {answer!r}")
        if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or tolerance < 0:
            _fail(where, f"tolerance must be a number >= 0, got {tolerance!r}")
    if kind == "free" and (not isinstance(question["rubric"], list) or not question["rubric"]):
        _fail(where, f"rubric must be a non-empty list of strings, got {question['rubric']!r}")


__all__ = ["compile_question", "compile_quiz", "compiled_text", "main", "question_salt", "validate_question"]


def compile_question(quiz_id: str, question: dict, mode: str = "self-study") -> dict:
    """The shipped form of one validated source question (no plain answer; no key at all if graded)."""
    kind = question["kind"]
    compiled = {"id": question["id"], "kind": kind, "prompt": question["prompt"],
                "points": question.get("points", 1)}
    if kind in ("single", "multiple"):
        compiled["options"] = question["options"]
    if mode == "graded":
        return compiled
    feedback = {"explanation": question.get("explanation", "")}
    if kind == "free":
        feedback.update(model_answer=question["model_answer"], rubric=question["rubric"])
    else:
        compiled.update(source_key(quiz_id, question))
    compiled["feedback"] = encode_feedback(feedback)
    return compiled


def compile_quiz(source: dict, expected_id: str | None = None) -> dict:
    """A whole source quiz -> compiled quiz (ValueError on a malformed source)."""
    quiz_id = source.get("id")
    if expected_id is not None and quiz_id != expected_id:
        raise ValueError(f"quiz source {expected_id}.json declares id {quiz_id!r}; they must agree")
    questions = source.get("questions")
    if not isinstance(questions, list) or not questions or not source.get("title"):
        raise ValueError(f"quiz {quiz_id}: needs a title and a non-empty list of questions")
    ids = [q.get("id") for q in questions]
    if len(set(ids)) != len(ids):
        raise ValueError(f"quiz {quiz_id}: question ids must be unique, got {ids}")
    mode = source.get("mode", "self-study")
    if mode not in MODES:
        raise ValueError(f"quiz {quiz_id}: mode must be one of {MODES}, got {mode!r}")
    for q in questions:
        validate_question(quiz_id, q)
    compiled = {"id": quiz_id, "title": source["title"]}
    if mode == "graded":
        compiled["mode"] = "graded"
    return {**compiled, "questions": [compile_question(quiz_id, q, mode) for q in questions]}


def compiled_text(source_path: Path) -> str:
    source = json.loads(source_path.read_text(encoding="utf-8"))
    return json.dumps(compile_quiz(source, source_path.stem), indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ids", nargs="*", help="quiz ids (default: every source)")
    parser.add_argument("--check", action="store_true", help="only verify the compiled files are current")
    args = parser.parse_args(argv)
    paths = [SOURCES / f"{i}.json" for i in args.ids] or sorted(SOURCES.glob("*.json"))
    problems = 0
    for path in paths:
        target = COMPILED / path.name
        try:
            text = compiled_text(path)
        except (OSError, ValueError) as exc:
            problems += 1
            print(f"FAILED {path.name}: {exc}", file=sys.stderr)
            continue
        current = target.read_text(encoding="utf-8") if target.exists() else None
        if args.check:
            if current != text:
                problems += 1
                print(f"STALE {target.relative_to(ROOT)}: run python -m tools.build_quizzes {path.stem}",
                      file=sys.stderr)
            continue
        COMPILED.mkdir(parents=True, exist_ok=True)
        if current != text:
            target.write_text(text, encoding="utf-8")
        print(f"{'unchanged' if current == text else 'wrote'} {target.relative_to(ROOT)}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())

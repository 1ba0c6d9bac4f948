"""Data that crosses a process boundary between a student's code and the grader.

Only plain data travels: None, bool, int, float, str, tuples, lists, dicts and NumPy arrays
or scalars.  Arrays go through ``np.save``/``np.load`` with ``allow_pickle=False`` inside a
JSON document, so decoding a message can never run code (no pickle anywhere).
"""
from __future__ import annotations

import base64
import io
import json
from typing import Any

import numpy as np

MAX_MESSAGE_BYTES = 256 * 2**20   # larger messages are refused, not decoded


class NotSerializable(TypeError):
    """A value of a type that cannot be sent between processes."""


def _array_to_text(array: np.ndarray) -> str:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _array_from_text(text: str) -> np.ndarray:
    return np.load(io.BytesIO(base64.b64decode(text)), allow_pickle=False)


def encode(value: Any) -> Any:
    """A JSON-compatible form of ``value``; raises NotSerializable naming the unsupported type."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            raise NotSerializable("a NumPy array of dtype object cannot be graded; use a numeric dtype")
        return {"__ndarray__": _array_to_text(np.asarray(value))}
    if isinstance(value, np.generic):
        return {"__npscalar__": _array_to_text(np.asarray(value))}
    if isinstance(value, tuple):
        return {"__tuple__": [encode(item) for item in value]}
    if isinstance(value, list):
        return [encode(item) for item in value]
    if isinstance(value, dict):
        return {"__dict__": [[encode(k), encode(v)] for k, v in value.items()]}
    raise NotSerializable(f"a value of type {type(value).__module__}.{type(value).__qualname__} "
                          "cannot be graded; use NumPy arrays, numbers, strings, tuples, lists or dicts")


def _decode_object(obj: dict) -> Any:
    if "__ndarray__" in obj:
        return _array_from_text(obj["__ndarray__"])
    if "__npscalar__" in obj:
        return _array_from_text(obj["__npscalar__"])[()]
    if "__tuple__" in obj:
        return tuple(obj["__tuple__"])
    if "__dict__" in obj:
        return {_hashable(k): v for k, v in obj["__dict__"]}
    return obj


def _hashable(key: Any) -> Any:
    if isinstance(key, (list, dict, np.ndarray)):
        raise ValueError(f"unhashable dict key of type {type(key).__name__}")
    return key


def dumps(value: Any) -> bytes:
    """``value`` encoded as UTF-8 JSON bytes."""
    return json.dumps(encode(value)).encode("utf-8")


def loads(data: bytes) -> Any:
    """The value ``dumps`` encoded; refuses messages over MAX_MESSAGE_BYTES (ValueError)."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise ValueError(f"message of {len(data)} bytes is over the {MAX_MESSAGE_BYTES}-byte limit")
    return json.loads(data.decode("utf-8"), object_hook=_decode_object)


def dump_names(namespace: dict, names: list[str], path: str) -> None:
    """Write ``{name: value}`` of ``names`` in ``namespace`` to ``path`` (JSON).

    Missing names are stored as ``{"missing": true}``, unsupported ones as
    ``{"unsupported": "reason"}``, so that the grader can explain each.
    """
    entries = {}
    for name in names:
        if name not in namespace:
            entries[name] = {"missing": True}
            continue
        if callable(namespace[name]):
            entries[name] = {"unsupported": f"{name} must be defined by a top-level def statement "
                                            "in your notebook (the grader tests it apart from your notebook)"}
            continue
        try:
            entries[name] = {"value": encode(namespace[name])}
        except NotSerializable as exc:
            entries[name] = {"unsupported": str(exc)}
    with open(path, "w", encoding="utf-8") as file:
        json.dump(entries, file)


def load_names(path: str) -> dict[str, dict]:
    """Read what ``dump_names`` wrote: ``{name: {"value": v} | {"missing": True} | {"unsupported": msg}}``."""
    with open(path, "rb") as file:
        data = file.read(MAX_MESSAGE_BYTES + 1)
    raw = loads(data)
    if not isinstance(raw, dict):
        raise ValueError("value dump is not a JSON object")
    return raw

"""Data that crosses a process boundary between a student's code and the grader.

Only plain data travels: None, bool, int, float, str, tuples, lists, dicts and NumPy arrays
or scalars.  Arrays go through ``np.save`` inside a JSON document and are decoded from their
header without ``np.load``: numeric or boolean dtypes only (no object arrays, no pickles), at
most MAX_ARRAY_BYTES each, the data exactly as long as the shape says.  A decoded message is at
most MAX_MESSAGE_BYTES long, MAX_DEPTH deep and MAX_ITEMS items large (ValueError otherwise,
never a RecursionError), and a file is read only when it is a regular file (no FIFO, no
symlink followed) within a deadline (:func:`read_regular_file`).
"""
from __future__ import annotations

import base64
import io
import json
import os
import select
import stat
import time
from typing import Any

import numpy as np

MAX_MESSAGE_BYTES = 256 * 2**20   # larger messages are refused, not decoded
MAX_ARRAY_BYTES = 64 * 2**20      # one array's data
MAX_DEPTH = 32                    # nesting of lists, tuples and dicts
MAX_ITEMS = 2**20                 # containers' items in one message, all together
ARRAY_KINDS = "biufc"             # bool, ints, unsigned, floats, complex


class NotSerializable(TypeError):
    """A value of a type that cannot be sent between processes. Course infrastructure."""


def _array_to_text(array: np.ndarray) -> str:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _array_from_text(text: str) -> np.ndarray:
    """The array ``_array_from_text`` encoded, checked from its header before any allocation."""
    if not isinstance(text, str) or len(text) > 4 * MAX_ARRAY_BYTES // 3 + 4096:
        raise ValueError("array too large or not text")
    buffer = io.BytesIO(base64.b64decode(text, validate=True))
    try:
        version = np.lib.format.read_magic(buffer)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(buffer)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(buffer)
        else:
            raise ValueError(f"unknown array format {version}")
    except (ValueError, SyntaxError, TypeError) as exc:
        raise ValueError(f"not an array: {exc}") from None
    if dtype.hasobject or dtype.kind not in ARRAY_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise ValueError(f"arrays of dtype {dtype} are not accepted (pickle or object arrays are refused)")
    if len(shape) > MAX_DEPTH or any(not isinstance(n, int) or n < 0 for n in shape):
        raise ValueError(f"array shape {shape} refused")
    count = 1
    for n in shape:
        count *= n
    nbytes = count * dtype.itemsize
    if nbytes > MAX_ARRAY_BYTES:
        raise ValueError(f"array of shape {shape} is over the {MAX_ARRAY_BYTES}-byte limit")
    data = buffer.read()
    if len(data) != nbytes:
        raise ValueError(f"array data of {len(data)} bytes does not match shape {shape}")
    array = np.frombuffer(data, dtype=dtype, count=count).reshape(shape, order="F" if fortran else "C")
    return array.copy()


def encode(value: Any) -> Any:
    """A JSON-compatible form of ``value``; raises NotSerializable naming the unsupported type.
    Course infrastructure."""
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
    """``value`` encoded as UTF-8 JSON bytes. Course infrastructure."""
    return json.dumps(encode(value)).encode("utf-8")


def _check_shape(value: Any) -> None:
    """ValueError when ``value`` (decoded JSON) nests deeper than MAX_DEPTH or has too many items."""
    items, level = 0, [value]
    for _ in range(MAX_DEPTH + 1):
        children = []
        for item in level:
            if isinstance(item, dict):
                children += list(item.values())
                children += list(item.keys()) if any(isinstance(k, tuple) for k in item) else []
            elif isinstance(item, (list, tuple)):
                children += list(item)
        items += len(children)
        if items > MAX_ITEMS:
            raise ValueError(f"message has more than {MAX_ITEMS} items")
        if not children:
            return
        level = children
    raise ValueError(f"message nests deeper than {MAX_DEPTH} levels")


def loads(data: bytes) -> Any:
    """The value ``dumps`` encoded; ValueError for a message over MAX_MESSAGE_BYTES, nested deeper
    than MAX_DEPTH, with more than MAX_ITEMS items, or holding anything but plain data. Course infrastructure."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise ValueError(f"message of {len(data)} bytes is over the {MAX_MESSAGE_BYTES}-byte limit")
    # Before parsing: a message of millions of tiny items costs the reader ~7 bytes of memory per byte
    # sent.  Items are separated by commas (and dict entries by colons); arrays travel as base64 text, with neither.
    if data.count(b",") + data.count(b":") > 2 * MAX_ITEMS:
        raise ValueError(f"message has more than {MAX_ITEMS} items")
    try:
        value = json.loads(data.decode("utf-8"), object_hook=_decode_object)
    except RecursionError:
        raise ValueError("message nests too deeply") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"message is not UTF-8 ({exc.reason})") from None
    _check_shape(value)
    return value


def dump_names(namespace: dict, names: list[str], path: str) -> None:
    """Write ``{name: value}`` of ``names`` in ``namespace`` to ``path`` (JSON).

    Missing names are stored as ``{"missing": true}``, unsupported ones as
    ``{"unsupported": "reason"}``, so that the grader can explain each.
    Course infrastructure.
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


def read_regular_file(path: str, max_bytes: int = MAX_MESSAGE_BYTES, seconds: float = 30.0) -> bytes:
    """The bytes of ``path`` if it is a regular file (not a symlink, FIFO or device) of at most
    ``max_bytes``, read within ``seconds``; ValueError otherwise (OSError when it is missing).
    Course infrastructure."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{os.path.basename(path)} is not a regular file")
        if info.st_size > max_bytes:
            raise ValueError(f"{os.path.basename(path)} is larger than {max_bytes} bytes")
        chunks, total, deadline = [], 0, time.monotonic() + seconds
        while True:
            if time.monotonic() > deadline:
                raise ValueError(f"reading {os.path.basename(path)} took longer than {seconds:g} s")
            select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(fd, min(2**20, max_bytes + 1 - total))
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
            total += len(chunk)
            if total > max_bytes:
                raise ValueError(f"{os.path.basename(path)} is larger than {max_bytes} bytes")
    finally:
        os.close(fd)


def load_names(path: str) -> dict[str, dict]:
    """Read what ``dump_names`` wrote: ``{name: {"value": v} | {"missing": True} | {"unsupported": msg}}``.
    Course infrastructure."""
    raw = loads(read_regular_file(path))
    if not isinstance(raw, dict):
        raise ValueError("value dump is not a JSON object")
    return raw

"""Models as plain data for the model checks (exercise sets 07 and 08)."""
from __future__ import annotations

from typing import Any, Sequence


from .engine import CheckFailed



def describe_model(model, input_shape: Sequence[int] = (2, 1, 16, 16)) -> dict:
    """What the model checks look at, as plain data (so it can cross a process boundary).

    Args:
        model: a ``torch.nn.Module``.
        input_shape: the batch shape pushed through the model once (zeros).

    Returns:
        ``{"layers": [class names of the leaf modules in order],
        "parameters": {name: NumPy array of values}, "trainable": [names with requires_grad],
        "output_shape": tuple, or None if the forward pass failed, "forward_error": str or None}``
    Course infrastructure.
    """
    import torch
    if not isinstance(model, torch.nn.Module):
        raise CheckFailed(f"✗ your function returned {type(model).__name__}, not a torch.nn.Module"
                          + (": did you forget `return model`?" if model is None else "."))
    try:
        with torch.no_grad():
            output_shape, error = tuple(model(torch.zeros(*input_shape)).shape), None
    except Exception as exc:  # the check reports it; describing must not crash
        output_shape, error = None, f"{type(exc).__name__}: {exc}"
    return {"layers": [type(m).__name__ for m in model.modules() if not list(m.children())],
            "parameters": {n: p.detach().numpy().copy() for n, p in model.named_parameters()},
            "trainable": [n for n, p in model.named_parameters() if p.requires_grad],
            "output_shape": output_shape, "forward_error": error}


#: The keys of :func:`describe_model`'s dict (the grader's runner refuses a learner's dict with them).
DESCRIPTION_KEYS = frozenset({"layers", "parameters", "trainable", "output_shape"})


def _from_grader(fn: Any) -> bool:
    """Whether ``fn`` is the grader's proxy of a learner function (:class:`utils.grade.runner.StudentFunction`),
    whose returned model arrives described by the runner's trusted copy of :func:`describe_model`."""
    import sys
    runner = sys.modules.get("utils.grade.runner")
    proxy = getattr(runner, "StudentFunction", None)
    return isinstance(proxy, type) and isinstance(fn, proxy)


def _description_of(value: Any, name: str, fn: Any = None) -> dict:
    """The learner's returned model (in this process) or, when ``fn`` is a grader proxy, its
    :func:`describe_model` dict made by the runner.  A dict returned by the learner's own function is
    refused with the grader's words: only instructor code may describe a model."""
    if isinstance(value, dict) and DESCRIPTION_KEYS <= value.keys():
        if _from_grader(fn):
            return value
        raise CheckFailed(f"✗ {name} returned a dict shaped like the grader's description of a model, "
                          f"not a torch.nn.Module: return the model you built")
    try:
        from torch import nn
    except ImportError:  # pragma: no cover - torch is a course dependency
        nn = None
    if nn is not None and isinstance(value, nn.Module):
        return describe_model(value)
    raise CheckFailed(f"✗ {name} returned a {type(value).__name__}; return the torch.nn.Module you built.")

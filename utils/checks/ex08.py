"""Exercise set 08 (transfer learning): new head, frozen features, partial fine-tuning, extract_features."""
from __future__ import annotations

from typing import Callable

import numpy as np

from .engine import Case, CheckFailed, Suspect, _as_array, _call, _rng, passed, verify
from .models import _description_of



def _pretrained():
    from utils.models import load_pretrained
    return load_pretrained()


def _model_from(fn: Callable, name: str, num_classes: int) -> dict:
    value = _call(fn, Case(f"num_classes={num_classes}", (num_classes,)), name, ("num_classes",))
    return _description_of(value, name)


def _same_features(model: dict, pretrained, name: str) -> None:
    mine = {n[len("features."):]: v for n, v in model["parameters"].items() if n.startswith("features.")}
    ref = {n: t.numpy() for n, t in pretrained.features.state_dict().items()}
    if mine.keys() != ref.keys() or any(not np.array_equal(mine[k], ref[k]) for k in ref):
        raise CheckFailed(f"✗ {name}: the convolutional layers do not hold the pretrained weights; start from "
                          f"`load_pretrained()` and keep its `.features` (do not build or re-initialise them).")


def _check_new_head(model: dict, num_classes: int, name: str, old_classes: int) -> None:
    if model["output_shape"] != (2, num_classes):
        problem = model["forward_error"] or f"it gives shape {model['output_shape']}"
        flatten = ("" if "Flatten" in model["layers"] else " The head also needs `nn.Flatten()` before the "
                   "Linear layer: the features are (N, 64, 2, 2), a Linear layer takes (N, 256).")
        raise CheckFailed(f"✗ {name}: on a (2, 1, 16, 16) batch {problem}; the new head must output "
                          f"(2, {num_classes}): replace the last Linear layer (26 letters) by one with "
                          f"num_classes outputs.{flatten}")
    old = [n for n, v in model["parameters"].items()
           if n.startswith("head.") and v.shape[0] == old_classes != num_classes]
    if old:
        raise CheckFailed(f"✗ {name}: the old {old_classes}-letter classifier is still in the head ({old[0]}); replace it "
                          f"by the new Linear layer instead of stacking a layer on top of it (its letter "
                          f"scores would be all the new layer could see).")


def _transfer_models(fn: Callable, name: str, hidden: bool):
    """Yield the learner's models (for 10, and if hidden also 4 classes) after the checks all tasks share:
    pretrained features kept, a new head of the right size."""
    pretrained = _pretrained()
    for num_classes in ((10, 4) if hidden else (10,)):
        model = _model_from(fn, name, num_classes)
        _same_features(model, pretrained, name)
        _check_new_head(model, num_classes, name, pretrained.head[-1].out_features)
        yield model


def check_new_head(fn: Callable, hidden: bool = False) -> None:
    """Check ``fn(num_classes)``: the pretrained SmallCNN with a new head of ``num_classes`` outputs."""
    for _ in _transfer_models(fn, "new_head_model", hidden):
        pass
    passed("new_head_model keeps the pretrained convolutional layers and has a new head")


def check_frozen_features(fn: Callable, hidden: bool = False) -> None:
    """Check ``fn(num_classes)``: pretrained features frozen (requires_grad False), new head trainable."""
    for model in _transfer_models(fn, "feature_extractor_model", hidden):
        trainable = model["trainable"]
        still = [n for n in trainable if n.startswith("features.")]
        if still:
            raise CheckFailed(f"✗ feature_extractor_model: {len(still)} parameters of the convolutional layers "
                              f"are still trainable (e.g. {still[0]}); set `requires_grad = False` on every "
                              f"parameter of model.features (`model.eval()`, `torch.no_grad()` or an attribute "
                              f"set on a layer do not freeze its parameters).")
        if not any(n.startswith("head.") for n in trainable):
            raise CheckFailed("✗ feature_extractor_model: the head is frozen too, so nothing would learn; freeze "
                              "only model.features (or freeze before replacing the head).")
    passed("feature_extractor_model: pretrained features frozen, only the new head is trainable")


def check_partial_fine_tune(fn: Callable, hidden: bool = False) -> None:
    """Check ``fn(num_classes)``: only the last conv layer of features and the new head are trainable."""
    for model in _transfer_models(fn, "partial_fine_tune_model", hidden):
        conv_weights = [n for n, v in model["parameters"].items() if n.startswith("features.") and v.ndim == 4]
        last_conv = conv_weights[-1].rsplit(".", 1)[0]             # e.g. "features.6"
        want = sorted([f"{last_conv}.weight", f"{last_conv}.bias"]
                      + [n for n in model["parameters"] if n.startswith("head.")])
        got = sorted(model["trainable"])
        if got != want:
            extra, missing = sorted(set(got) - set(want)), sorted(set(want) - set(got))
            raise CheckFailed(f"✗ partial_fine_tune_model: trainable parameters should be the last conv layer "
                              f"({last_conv}) and the head. Trainable but should be frozen: "
                              f"{extra or 'none'}; frozen but should train: {missing or 'none'}.")
    passed("partial_fine_tune_model: early conv layers frozen, last conv layer and head trainable")


def check_extract_features(fn: Callable, hidden: bool = False) -> None:
    """Check ``fn(images) -> (N, D)`` NumPy features of the pretrained conv layers, flattened per image."""
    import torch
    pretrained = _pretrained()
    rng = _rng(14)
    cases = [Case("two images", (rng.random((2, 1, 16, 16)).astype(np.float32),)),
             Case("five images", (rng.random((5, 1, 16, 16)).astype(np.float32),))]

    def reference(images):
        with torch.no_grad():
            return pretrained.features(torch.from_numpy(images)).flatten(1).numpy()

    def head_scores(images):
        with torch.no_grad():
            return pretrained(torch.from_numpy(images)).numpy()
    def channels_last(images):
        with torch.no_grad():
            return pretrained.features(torch.from_numpy(images)).permute(0, 2, 3, 1).flatten(1).numpy()

    def needs_tensor(exc, case, arg_names):
        if "numpy.ndarray" in str(exc):
            return "PyTorch layers take tensors: convert the batch with `torch.from_numpy(images)` first."
        return None
    suspects = [Suspect("these are class scores from the head: extract the output of `model.features` "
                        "(flattened), before any Linear layer.", head_scores),
                Suspect("not flattened: return one row of features per image, shape (N, C * H * W).",
                        lambda im: (im.shape[0], 64, 2, 2)),
                Suspect("flattened in NHWC order: flatten the (N, C, H, W) output as it is (`.flatten(1)`), "
                        "the order the head's Linear layer sees.", channels_last)]
    verify(fn, "extract_features", ("images",), cases, reference, suspects, rtol=1e-4, atol=1e-5,
           crash_hints=[needs_tensor],
           check_dtype=False, output=lambda v: _as_array(v.detach().numpy() if hasattr(v, "detach") else v,
                                                         "extract_features"))
    passed(f"extract_features returns the pretrained conv features on {len(cases)} batches")

"""Exercise set 08 (transfer learning with EfficientNet-Lite0): new head, frozen set-up, features, a photo.

The learner's functions build torch objects, which cannot cross to the grader's process.  The
describers here (:func:`describe_transfer_model`, :func:`describe_training_setup`) are instructor
code: the checks call them through ``fn.__call_described__`` when ``fn`` is a grader proxy (the
trusted copy runs where the learner's object lives) and directly otherwise, so a learner cannot
edit what is inspected.
"""
from __future__ import annotations

import copy
from functools import lru_cache
from typing import Callable

import numpy as np

from .models import _from_grader
from .rules import require_own_code
from .engine import (HIDDEN_NOT_SHOWN, Case, CheckFailed, Suspect, _as_array, _call, _exceeds, _rng, learner_check,
                     passed, verify)

INPUT = (2, 3, 64, 64)      # the small batch every description pushes through a model


@lru_cache(maxsize=1)
def _pretrained():
    from utils.efficientnet import efficientnet_lite0
    return efficientnet_lite0(pretrained=True)


def _sums(model) -> dict:
    return {n: float(p.detach().double().sum()) for n, p in model.named_parameters() if not n.startswith("_fc.")}


def describe_transfer_model(model) -> dict:
    """A learner's model as plain data: its Linear layers, per-parameter sums of the backbone (to
    compare with the pretrained weights), trainable names, modes, and the output shape on INPUT.
    Used first in exercise set ex08."""
    import torch
    from torch import nn
    if not isinstance(model, nn.Module):
        return {"type": type(model).__name__}
    probe = copy.deepcopy(model).eval()
    try:
        with torch.no_grad():
            output = probe(torch.zeros(INPUT))
        shape, finite, error = tuple(output.shape), bool(torch.isfinite(output).all()), None
    except Exception as exc:     # reported by the check
        shape, finite, error = None, None, f"{type(exc).__name__}: {exc}"
    return {"type": "module",
            "linears": [(n, m.in_features, m.out_features) for n, m in model.named_modules() if isinstance(m, nn.Linear)],
            "backbone_sums": _sums(model),
            "trainable": [n for n, p in model.named_parameters() if p.requires_grad],
            "training": bool(model.training),
            "bn_training": [n for n, m in model.named_modules()
                            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training],
            "output_shape": shape, "output_finite": finite, "forward_error": error}


def describe_training_setup(setup) -> dict:
    """``(model, optimizer)`` as plain data: the model's description, which parameters the
    optimizer holds, and what one training step on a random batch changed (on copies).
    Used first in exercise set ex08."""
    import torch
    from torch import nn
    if not (isinstance(setup, tuple) and len(setup) == 2 and isinstance(setup[0], nn.Module)
            and isinstance(setup[1], torch.optim.Optimizer)):
        return {"type": type(setup).__name__, "setup": False}
    out = describe_transfer_model(setup[0])
    model, optimizer = copy.deepcopy(setup)          # one memo: the copies still share parameters
    names = {id(p): n for n, p in model.named_parameters()}
    out["optimizer_params"] = [names.get(id(p), "?") for g in optimizer.param_groups for p in g["params"]]
    buffers = {n: b.clone() for n, b in model.named_buffers()}
    params = {n: p.detach().clone() for n, p in model.named_parameters()}
    try:
        generator = torch.Generator().manual_seed(0)
        x = torch.randn(INPUT, generator=generator)
        logits = model(x)
        loss = nn.functional.cross_entropy(logits, torch.arange(INPUT[0]) % logits.shape[1])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        out["step_error"] = None
    except Exception as exc:
        out["step_error"] = f"{type(exc).__name__}: {exc}"
    out["changed_params"] = [n for n, p in model.named_parameters() if not torch.equal(p.detach(), params[n])]
    out["changed_buffers"] = [n for n, b in model.named_buffers() if not torch.equal(b, buffers[n])]
    out["setup"] = True
    return out


def _described(fn: Callable, describe: Callable, name: str, num_classes: int) -> dict:
    case = Case(f"num_classes={num_classes}", (num_classes,))
    if _from_grader(fn):             # a grader proxy: describe where the model lives (not a look-alike)
        try:
            return fn.__call_described__(describe, num_classes)
        except NotImplementedError:
            raise CheckFailed(f"✗ {name} is not written yet: replace `raise NotImplementedError()` with your code.") from None
    return describe(_call(fn, case, name, ("num_classes",)))


def _check_model(model: dict, num_classes: int, name: str) -> None:
    if model.get("type") != "module":
        raise CheckFailed(f"✗ {name} returned a {model.get('type')}, not a torch.nn.Module"
                          + (": did you forget `return`?" if model.get("type") == "NoneType" else "."))
    pretrained = _sums(_pretrained())
    mine = model["backbone_sums"]
    if mine.keys() != pretrained.keys() or any(_exceeds(abs(mine[k] - v), 1e-6 * max(1.0, abs(v))) for k, v in pretrained.items()):
        raise CheckFailed(f"✗ {name}: the layers below the classifier do not hold the ImageNet weights; start "
                          f"from `efficientnet_lite0(pretrained=True)` and change only `model._fc` "
                          f"(pretrained=False would be the random-weight control of chapter 8).")
    heads = [(n, i, o) for n, i, o in model["linears"]]
    if model["output_shape"] != (INPUT[0], num_classes):
        stacked = any(i == 1000 for _, i, _ in heads)
        problem = model["forward_error"] or f"it outputs shape {model['output_shape']}"
        hint = (" The old 1000-class classifier is still there with a layer stacked on it: its ImageNet scores "
                "would be all the new layer sees; replace `model._fc` itself." if stacked else
                " The head is still sized for ImageNet's 1000 classes: replace `model._fc` by "
                "`nn.Linear(1280, num_classes)`." if model["output_shape"] == (INPUT[0], 1000) else "")
        raise CheckFailed(f"✗ {name}: on a {INPUT} batch {problem}; it must output ({INPUT[0]}, {num_classes}).{hint}")
    if model.get("output_finite") is False:
        raise CheckFailed(f"✗ {name}: the model outputs NaN or inf on a batch of zeros: the new head's weights "
                          f"must be real numbers (a fresh `nn.Linear` is initialised for you).")
    if any(i == 1000 or o == 1000 for _, i, o in heads):
        raise CheckFailed(f"✗ {name}: the old 1000-class classifier is still in the model; replace `model._fc` "
                          f"instead of stacking a layer on top of it.")


@learner_check
def check_new_head(fn: Callable, hidden: bool = False) -> None:
    """Check ``fn(num_classes)``: EfficientNet-Lite0 with ImageNet weights and a new ``num_classes`` head.
    Used first in exercise set ex08."""
    require_own_code(fn, "new_head_model")
    for n in ((8, 3, 5) if hidden else (8, 3)):   # a hard-coded class count fails visibly
        _check_model(_described(fn, describe_transfer_model, "new_head_model", n), n, "new_head_model")
    passed("new_head_model keeps the ImageNet weights and has a new head")


@learner_check
def check_frozen_setup(fn: Callable, hidden: bool = False) -> None:
    """Check ``fn(num_classes) -> (model, optimizer)``: backbone frozen (weights *and* BatchNorm
    statistics), the model in train mode, an optimizer holding the head only; one step moves the head only.
    Used first in exercise set ex08."""
    require_own_code(fn, "frozen_setup")
    name = "frozen_setup"
    for n in ((8, 3, 5) if hidden else (8, 3)):   # a hard-coded class count fails visibly
        d = _described(fn, describe_training_setup, name, n)
        if not d.get("setup"):
            raise CheckFailed(f"✗ {name} returned a {d.get('type')}; return a tuple `(model, optimizer)`.")
        _check_model(d, n, name)
        backbone = [p for p in d["trainable"] if not p.startswith("_fc.")]
        if backbone:
            raise CheckFailed(f"✗ {name}: {len(backbone)} parameters below the head are still trainable (e.g. "
                              f"{backbone[0]}); set `requires_grad = False` on every parameter except `model._fc`'s "
                              f"(`model.eval()` or `torch.no_grad()` do not freeze parameters).")
        if not any(p.startswith("_fc.") for p in d["trainable"]):
            raise CheckFailed(f"✗ {name}: the new head is frozen too, so nothing would learn; freeze the backbone "
                              f"only (or freeze before replacing the head).")
        frozen_in_optimizer = [p for p in d["optimizer_params"] if not p.startswith("_fc.")]
        if frozen_in_optimizer:
            raise CheckFailed(f"✗ {name}: the optimizer still holds {len(frozen_in_optimizer)} frozen parameters "
                              f"(e.g. {frozen_in_optimizer[0]}). `requires_grad=False` alone is not the whole job: "
                              f"pass only the head's parameters (`model._fc.parameters()`), or weight decay and a "
                              f"later unfreeze would move them.")
        if not any(p.startswith("_fc.") for p in d["optimizer_params"]):
            raise CheckFailed(f"✗ {name}: the optimizer does not hold the new head's parameters, so a step changes "
                              f"nothing; build it after replacing the head, from `model._fc.parameters()`.")
        if not d["training"]:
            raise CheckFailed(f"✗ {name}: the model is in eval mode. A training loop calls `model.train()`, which "
                              f"switches BatchNorm back to train mode: call `model.train()` yourself, then put the "
                              f"BatchNorm layers (only them) in eval mode.")
        if d["bn_training"]:
            raise CheckFailed(f"✗ {name}: {len(d['bn_training'])} BatchNorm layers are in train mode (e.g. "
                              f"{d['bn_training'][0]}): their running statistics would be overwritten by every "
                              f"batch even with `requires_grad=False`. After `model.train()`, call `.eval()` on "
                              f"every `nn.BatchNorm2d`.")
        if d["step_error"]:
            raise CheckFailed(f"✗ {name}: one training step on a {INPUT} batch raised {d['step_error']}")
        moved = [p for p in d["changed_params"] if not p.startswith("_fc.")]
        if moved or d["changed_buffers"] or not d["changed_params"]:
            raise CheckFailed(f"✗ {name}: after one training step the backbone changed ({(moved + d['changed_buffers'])[:2]}) "
                              f"or the head did not; only `model._fc` should move.")
    passed(f"{name}: backbone frozen (weights and BatchNorm statistics), only the new head trains")


def _pooled_reference(images, depth):
    import torch
    with torch.no_grad():
        return _pretrained().features(torch.from_numpy(images), upto=depth).numpy()


@learner_check
def check_extract_features(fn: Callable, hidden: bool = False) -> None:
    """Check ``fn(images, depth) -> (N, C)``: pooled features of the pretrained network at ``depth``.
    Used first in exercise set ex08."""
    require_own_code(fn, "extract_features")
    import torch
    rng = _rng(8)
    cases = [Case("two images, depth 'head'", (rng.normal(0, 0.5, (2, 3, 64, 64)).astype(np.float32), "head")),
             Case("three images, depth 'block7'", (rng.normal(0, 0.5, (3, 3, 64, 64)).astype(np.float32), "block7"))]
    if hidden:
        cases.append(Case("four 96x96 images, depth 'block10'",
                          (rng.normal(0, 0.5, (4, 3, 96, 96)).astype(np.float32), "block10")))

    def with_model(run):
        def wrong(images, depth):
            model = copy.deepcopy(_pretrained())
            with torch.no_grad():
                return run(model, torch.from_numpy(images), depth).numpy()
        return wrong

    def maps(model, x, depth):
        return model.block_outputs(x)[depth]

    suspects = [
        Suspect("these are class scores: features come from *before* the classifier (`model.features(x, upto=depth)`), "
                "not from `model(x)`.", with_model(lambda m, x, d: m(x))),
        Suspect("not pooled: average each feature map over its height and width, one vector per image.",
                with_model(maps)),
        Suspect("the model ran in train mode: BatchNorm then normalises with this batch's statistics (and "
                "overwrites its running ones); extract features in eval mode.",
                with_model(lambda m, x, d: m.train().features(x, upto=d))),
        Suspect("max-pooled: the probe of chapter 8 reads the *average* over positions.",
                with_model(lambda m, x, d: maps(m, x, d).amax(dim=(2, 3)))),
    ]
    verify(fn, "extract_features", ("images", "depth"), cases, _pooled_reference, suspects, rtol=1e-4, atol=1e-5,
           check_dtype=False, output=lambda v: _as_array(v.detach().numpy() if hasattr(v, "detach") else v,
                                                         "extract_features"))
    passed(f"extract_features gives the pooled pretrained features on {len(cases)} batches")


@learner_check
def check_predict_photo(fn: Callable, hidden: bool = False) -> None:
    """Check ``fn(image) -> str``: the top-1 ImageNet class name of an (H, W, 3) photo in [0, 1].
    Used first in exercise set ex08."""
    require_own_code(fn, "predict_photo")
    import torch
    from utils.data import load_image
    from utils.efficientnet import classify, imagenet_categories, imagenet_transform
    names = ("chelsea", "coffee", "grace_hopper") if hidden else ("chelsea", "coffee")
    model, categories = _pretrained(), imagenet_categories()
    for photo in names:
        image = load_image(photo)
        case = Case(f"the bundled photo {photo!r}", (image,))
        got = _call(fn, case, "predict_photo", ("image",))
        want = classify(model, image, top=1)[0][0]
        if got == want:
            continue
        if not isinstance(got, str):
            raise CheckFailed(f"✗ predict_photo returned a {type(got).__name__}; return the class *name*, a str "
                              f"(`imagenet_categories()[index]`).")
        with torch.no_grad():
            logits = model(imagenet_transform(image)[None])[0]
            import skimage.transform
            raw = torch.from_numpy(skimage.transform.resize(image, (224, 224, 3)).transpose(2, 0, 1).copy()).float()
            unnormalised = categories[int(model(raw[None])[0].argmax())]
        index = int(logits.argmax())
        hints = {categories[(index + 1) % 1000]: "the index is one off: `imagenet_categories()[i]` is class i.",
                 categories[(index - 1) % 1000]: "the index is one off: `imagenet_categories()[i]` is class i.",
                 categories[int(logits.argmin())]: "this is the *least* likely class: take `argmax`.",
                 unnormalised: "the photo went in without `imagenet_transform` (values must be normalised to "
                               "[-1, 1] as in training)."}
        hint = hints.get(got)
        gives = f"a class name {HIDDEN_NOT_SHOWN}" if hidden else repr(got)   # learner's output on a hidden case
        raise CheckFailed(f"✗ predict_photo gives {gives} for the photo {photo!r}, which the network does not rank "
                          f"first." + (f"\n  Likely misconception: {hint}" if hint else
                                       " Use `imagenet_transform`, the model in eval mode and the argmax of its logits."))
    passed(f"predict_photo names the network's top class for {len(names)} photos")

"""utils.checks.ex08: exercise set 08 on EfficientNet-Lite0 - each misconception gets its own message,
and the models are described by instructor code (also through a grader proxy)."""
import pytest
import torch
from torch import nn

import utils.checks as C
from utils.efficiency import count_parameters  # noqa: F401  (keeps the import order of test_checks)
from utils.efficientnet import efficientnet_lite0


def head(n, pretrained=True):
    model = efficientnet_lite0(pretrained=pretrained)
    model._fc = nn.Linear(1280, n)
    return model


def setup(n, *, freeze=True, optimizer_all=False, bn_eval=True, train=True, head_in_optimizer=True):
    model = head(n)
    if freeze:
        for name, p in model.named_parameters():
            p.requires_grad_(name.startswith("_fc."))
    if train:
        model.train()
    else:
        model.eval()
    if bn_eval:
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
    params = model.parameters() if optimizer_all else (model._fc.parameters() if head_in_optimizer else
                                                       model._blocks[0].parameters())
    return model, torch.optim.Adam(params, lr=1e-3)


def stacked(n):
    model = efficientnet_lite0()
    model._fc = nn.Sequential(model._fc, nn.Linear(1000, n))
    return model


@pytest.mark.parametrize("check, wrong, words", [
    (C.check_new_head, lambda n: efficientnet_lite0(), "sized for ImageNet's 1000 classes"),
    (C.check_new_head, stacked, "instead of stacking"),
    (C.check_new_head, lambda n: head(n, pretrained=False), "do not hold the ImageNet weights"),
    (C.check_new_head, lambda n: None, "forget `return`"),
    (C.check_new_head, lambda n: head(8), ""),          # a hard-coded class count fails visibly
    (C.check_frozen_setup, lambda n: setup(n, freeze=False), "still trainable"),
    (C.check_frozen_setup, lambda n: setup(n, optimizer_all=True), "optimizer still holds"),
    (C.check_frozen_setup, lambda n: setup(n, head_in_optimizer=False), "optimizer still holds"),
    (C.check_frozen_setup, lambda n: setup(n, bn_eval=False), "BatchNorm layers are in train mode"),
    (C.check_frozen_setup, lambda n: setup(n, train=False, bn_eval=False), "eval mode"),
    (C.check_frozen_setup, lambda n: head(n), "return a tuple"),
    (C.check_extract_features, lambda im, d: efficientnet_lite0()(torch.from_numpy(im)).detach().numpy(),
     "class scores"),
    (C.check_extract_features, lambda im, d: efficientnet_lite0().block_outputs(im)[d].detach().numpy(), "not pooled"),
    (C.check_extract_features, lambda im, d: efficientnet_lite0().train().features(im, upto=d).detach().numpy(),
     "train mode"),
    (C.check_predict_photo, lambda image: 3, "return the class *name*"),
])
def test_each_misconception_is_named(check, wrong, words):
    with pytest.raises(C.CheckFailed) as failure:
        check(wrong)
    assert words in str(failure.value), str(failure.value)


def test_predict_photo_names_an_off_by_one_index():
    from utils.efficientnet import imagenet_categories, imagenet_transform
    names = imagenet_categories()

    def off_by_one(image):
        with torch.no_grad():
            return names[int(efficientnet_lite0()(imagenet_transform(image)[None]).argmax()) + 1]
    with pytest.raises(C.CheckFailed, match="one off"):
        C.check_predict_photo(off_by_one)


from utils.grade.runner import StudentFunction  # noqa: E402


class Proxy(StudentFunction):
    """What a grader proxy does: the learner's object never leaves; the trusted describer's data does."""

    def __init__(self, fn):
        self.fn = fn

    def __call_described__(self, describe, *args):
        assert describe.__module__.startswith("utils.checks")
        return describe(self.fn(*args))


def test_checks_use_the_instructor_describers_through_a_proxy(capsys):
    C.check_new_head(Proxy(head), hidden=True)
    C.check_frozen_setup(Proxy(setup), hidden=True)
    assert capsys.readouterr().out.count("✓") == 2
    with pytest.raises(C.CheckFailed, match="optimizer still holds"):
        C.check_frozen_setup(Proxy(lambda n: setup(n, optimizer_all=True)))


def test_describe_training_setup_sees_running_statistics_move():
    model, optimizer = setup(3, bn_eval=False)
    described = C.describe_training_setup((model, optimizer))
    assert described["changed_buffers"] and all(b.endswith(("running_mean", "running_var", "num_batches_tracked"))
                                                for b in described["changed_buffers"])
    assert all(p.startswith("_fc.") for p in described["changed_params"])
    good = C.describe_training_setup(setup(3))
    assert good["changed_buffers"] == [] and good["changed_params"] == ["_fc.weight", "_fc.bias"]


def test_nan_weights_in_the_backbone_are_not_the_imagenet_weights():
    """Red team: ``abs(mine - v) > tol`` is False for NaN, so a backbone of NaN weights passed."""
    def poisoned(n):
        model = head(n)
        with torch.no_grad():
            next(p for name, p in model.named_parameters() if not name.startswith("_fc."))[0] = float("nan")
        return model
    with pytest.raises(C.CheckFailed, match="do not hold the ImageNet weights"):
        C.check_new_head(poisoned)


def test_a_nan_head_fails_although_its_output_shape_is_right():
    """A new head's weights are random, so no value can be compared; but NaN weights make every score NaN."""
    def nan_head(n):
        model = head(n)
        with torch.no_grad():
            model._fc.weight.fill_(float("nan"))
        return model
    with pytest.raises(C.CheckFailed, match="NaN or inf"):
        C.check_new_head(nan_head)


def test_a_hidden_photo_failure_does_not_show_the_learners_answer():
    from utils.efficientnet import classify
    model = efficientnet_lite0(pretrained=True)
    right_on_visible = lambda image: classify(model, image, top=1)[0][0] if image.shape[0] < 500 else "pelican xyz"
    from utils.data import load_image
    assert load_image("grace_hopper").shape[0] >= 500 > max(load_image(p).shape[0] for p in ("chelsea", "coffee"))
    with pytest.raises(C.CheckFailed) as failure:
        C.check_predict_photo(right_on_visible, hidden=True)
    assert "grace_hopper" in str(failure.value) and "xyz" not in str(failure.value)
    with pytest.raises(C.CheckFailed, match="xyz"):                  # a visible failure quotes it
        C.check_predict_photo(lambda image: "pelican xyz")


def test_a_learners_own_call_described_is_not_the_graders_proxy():
    """A function carrying its own ``__call_described__`` (a forged description) is called as a function:
    only the grader's proxy class describes through the runner."""
    def forged(n):
        return head(n)
    forged.__call_described__ = lambda describe, n: {"type": "module", "backbone_sums": {}, "linears": [],
                                                     "output_shape": (2, n), "forward_error": None}
    C.check_new_head(forged)                          # the real model it returns is checked, and is right
    forged_wrong = lambda n: None
    forged_wrong.__call_described__ = forged.__call_described__
    with pytest.raises(C.CheckFailed, match="forget `return`"):
        C.check_new_head(forged_wrong)

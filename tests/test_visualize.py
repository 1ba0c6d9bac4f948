"""utils.visualize: unit windows and border masks against the gradient, top units, patches,
the selectivity measures, the class activation map identity and gradient ascent."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from torch import nn

from utils.models import ReceptiveField, SmallCNN, empirical_receptive_field, input_gradient, receptive_field
from utils.visualize import (Unit, border_share, border_units, class_activation_map, cut_patch,
                             label_purity, maximise_channel, sparseness, top_units, unit_windows)


@settings(max_examples=25, deadline=None)
@given(kernel=st.sampled_from([1, 3, 5]), pool=st.booleans(), row=st.integers(0, 20), col=st.integers(0, 20))
def test_unit_window_is_where_the_input_gradient_is_nonzero(kernel, pool, row, col):
    layers = [nn.Conv2d(1, 1, kernel, padding=kernel // 2), nn.ReLU()]
    layers += [nn.AvgPool2d(2)] if pool else []
    layers += [nn.Conv2d(1, 1, 3, padding=1)]
    net = nn.Sequential(*layers)
    for m in net:
        if isinstance(m, nn.Conv2d):
            nn.init.ones_(m.weight), nn.init.zeros_(m.bias)
    image = 24
    out_side = image // 2 if pool else image
    row, col = row % out_side, col % out_side
    rf = receptive_field(net)[-1]
    gradient = input_gradient(net, torch.ones(1, 1, image, image), position=(row, col))
    (lo_r, hi_r), (lo_c, hi_c) = ((unit_windows(rf, out_side)[0][i], unit_windows(rf, out_side)[1][i])
                                  for i in (row, col))
    expected = np.zeros((image, image), bool)
    expected[max(lo_r, 0):hi_r, max(lo_c, 0):hi_c] = True
    assert ((gradient > 0) == expected).all()
    touches = border_units(rf, (out_side, out_side), (image, image))[row, col]
    assert touches == (lo_r < 0 or lo_c < 0 or hi_r > image or hi_c > image)


def test_border_units_of_the_digits_cnn():
    rf = receptive_field(SmallCNN())
    block1 = border_units(rf[1], (16, 16), (16, 16))
    assert block1.sum() == 16 * 16 - 14 * 14 and not block1[1:-1, 1:-1].any()
    assert border_units(rf[7], (4, 4), (16, 16)).all()      # 18x18 windows on a 16x16 image
    # the formula and the measurement agree on the size the masks rely on
    assert empirical_receptive_field(SmallCNN().features[:5], input_size=48).rows == rf[4].size


def test_top_units_order_exclusion_and_distinct_images():
    acts = np.zeros((3, 2, 4, 4))
    acts[0, 1, 0, 0], acts[0, 1, 2, 2], acts[1, 1, 1, 1], acts[2, 1, 3, 3] = 9, 8, 7, 6
    assert top_units(acts, 1, n=2) == [Unit(0, 0, 0, 9.0), Unit(1, 1, 1, 7.0)]
    assert [u.value for u in top_units(acts, 1, n=3, distinct_images=False)] == [9, 8, 7]
    border = border_units(ReceptiveField("c", 3, 1, 0.0), (4, 4), (4, 4))
    assert [u.value for u in top_units(acts, 1, n=3, exclude=border)] == [8, 7]
    with pytest.raises(ValueError, match="does not match"):
        top_units(acts, 1, exclude=np.zeros((3, 3), bool))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        top_units(acts[0], 1)


def test_cut_patch_marks_padding_as_nan_and_copies_the_inside():
    images = np.arange(2 * 5 * 5, dtype=float).reshape(2, 1, 5, 5)
    rf = ReceptiveField("c", 3, 1, 0.0)
    corner = cut_patch(images, Unit(1, 0, 0, 1.0), rf)
    assert np.isnan(corner[0]).all() and np.isnan(corner[:, 0]).all()
    assert (corner[1:, 1:] == images[1, 0, :2, :2]).all()
    assert (cut_patch(images, Unit(0, 2, 2, 1.0), rf) == images[0, 0, 1:4, 1:4]).all()
    rgb = cut_patch(np.ones((1, 3, 5, 5)), Unit(0, 4, 4, 1.0), rf)
    assert rgb.shape == (3, 3, 3) and np.isnan(rgb[2]).all()


def test_border_share_and_purity_and_sparseness():
    rf = ReceptiveField("c", 3, 1, 0.0)
    acts = np.zeros((4, 2, 4, 4))
    acts[:, 0, 0, 0] = [1, 2, 3, 4]            # channel 0: always at the corner (border)
    acts[:, 1, 1, 2] = [1, 2, 3, 4]            # channel 1: inside
    assert border_share(acts, rf, (4, 4), n=4) == 0.5
    labels = np.array([0, 1, 1, 1])
    assert np.allclose(label_purity(acts, labels, n=3), [1.0, 1.0])
    assert np.allclose(label_purity(acts, labels, n=4), [0.75, 0.75])
    assert np.allclose(sparseness(acts), [15 / 16, 15 / 16])
    acts[:, 1] = 0                             # a dead channel is left out of every measure
    assert border_share(acts, rf, (4, 4), n=4) == 1.0 and len(label_purity(acts, labels)) == 1
    with pytest.raises(ValueError, match="labels"):
        label_purity(acts, labels[:2])


def test_class_activation_map_averages_to_the_logit_minus_bias():
    rng = np.random.default_rng(0)
    features, fc = rng.random((8, 5, 5)), nn.Linear(8, 4)
    logits = fc(torch.tensor(features.mean(axis=(1, 2)), dtype=torch.float32)).detach().numpy()
    weights, bias = fc.weight.detach().numpy(), fc.bias.detach().numpy()
    for k in range(4):
        cam = class_activation_map(features, weights, k)
        assert cam.shape == (5, 5)
        assert np.isclose(cam.mean() + bias[k], logits[k], atol=1e-5)
    with pytest.raises(ValueError, match="same C"):
        class_activation_map(features, weights[:, :3], 0)
    with pytest.raises(ValueError, match="out of range"):
        class_activation_map(features, weights, 4)


def test_maximise_channel_raises_the_activation_and_is_seeded():
    torch.manual_seed(0)
    layers = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    gray = torch.full((1, 3, 16, 16), 0.5)
    start = layers(gray)[0, 2].mean().item()
    image = maximise_channel(layers, 2, size=16, steps=20, seed=1)
    assert image.shape == (16, 16, 3) and image.min() >= 0 and image.max() <= 1
    end = layers(torch.from_numpy(image).permute(2, 0, 1)[None])[0, 2].mean().item()
    assert end > start
    assert np.array_equal(image, maximise_channel(layers, 2, size=16, steps=20, seed=1))


def test_maximise_channel_batches_several_channels_one_image_each():
    layers = nn.Sequential(nn.Conv2d(3, 2, 1, bias=False), nn.ReLU())
    with torch.no_grad():                     # channel 0: red - green, channel 1: green - red
        layers[0].weight.copy_(torch.tensor([[1.0, -1, 0], [-1, 1, 0]]).view(2, 3, 1, 1))
    red, green = maximise_channel(layers, [0, 1], size=12, steps=20)
    assert red[..., 0].mean() > red[..., 1].mean() + 0.3
    assert green[..., 1].mean() > green[..., 0].mean() + 0.3
    assert maximise_channel(layers, 1, size=12, steps=20).shape == (12, 12, 3)


@pytest.mark.parametrize("name", ["stem", "block0", "block2", "block4"])
def test_efficientnet_receptive_fields_match_the_input_gradient(name):
    from utils.efficientnet import efficientnet_lite0
    from utils.visualize import efficientnet_receptive_fields
    rf = efficientnet_receptive_fields(64)[name]
    net = efficientnet_lite0(pretrained=False, seed=0)
    x = (0.1 * torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))).requires_grad_(True)
    fmap = net.block_outputs(x)[name]
    side = fmap.shape[2]
    lo, hi = unit_windows(rf, side)
    for i in (0, side // 2, side - 1):
        x.grad = None
        fmap[0, :, i, i].sum().backward(retain_graph=True)
        seen = (x.grad[0].abs().sum(0) > 0).numpy()
        rows, cols = np.flatnonzero(seen.any(1)), np.flatnonzero(seen.any(0))
        assert (rows[0], rows[-1] + 1) == (max(lo[i], 0), min(hi[i], 64))    # SAME padding: start moves
        assert (cols[0], cols[-1] + 1) == (max(lo[i], 0), min(hi[i], 64))


def test_efficientnet_receptive_fields_table():
    from utils.visualize import efficientnet_receptive_fields
    rfs = efficientnet_receptive_fields(224)
    assert [rfs[n].size for n in ("stem", "block2", "block4", "block7", "block15")] == [3, 19, 67, 147, 851]
    assert rfs["head"].jump == 32 and rfs["stem"].start == 1.0   # no padding row on top of the stem


def test_maximise_checks_the_objective_shape():
    from utils.visualize import maximise
    with pytest.raises(ValueError, match="one score per image"):
        maximise(lambda x: x.mean(), 2, size=8, steps=1)

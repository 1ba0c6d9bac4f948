"""Bundled images load offline in the documented layout; figures follow the plotting conventions."""
import socket

import matplotlib.pyplot as plt
import numpy as np
import pytest

from utils.data import (IMAGE_NAMES, TEXTURE_NAMES, from_nchw, load_image, load_texture, to_gray,
                        to_nchw)
from utils.plotting import DIVERGING, POSITIVE, colour_limit, show_feature_maps, show_images, show_kernel, show_kernels

COLOUR = {"astronaut", "coffee", "chelsea", "grace_hopper"}


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test: the course must work offline."""
    def refuse(*args, **kwargs):
        raise AssertionError("tried to use the network")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.parametrize("name", IMAGE_NAMES + TEXTURE_NAMES)
def test_every_bundled_image_loads_offline_as_unit_float32(name, no_network):
    image = load_image(name)
    assert image.dtype == np.float32 and 0.0 <= image.min() and image.max() <= 1.0
    assert image.ndim == (3 if name in COLOUR else 2)
    if image.ndim == 3:
        assert image.shape[-1] == 3      # channels last, as image files store them


def test_resize_gray_and_texture_loader():
    assert load_image("astronaut", size=32, gray=True).shape == (32, 32)
    assert load_image("coins", size=(20, 30)).shape == (20, 30)
    assert load_texture("brick", size=16).shape == (16, 16)
    with pytest.raises(ValueError, match="unknown texture 'camera'"):
        load_texture("camera")
    with pytest.raises(ValueError, match="unknown image 'lena'"):
        load_image("lena")


def test_nchw_round_trip_and_gray_weights():
    rgb = np.random.default_rng(0).random((5, 7, 3), dtype=np.float32)
    batch = to_nchw(rgb)
    assert batch.shape == (1, 3, 5, 7) and np.array_equal(batch[0, 1], rgb[..., 1])
    assert np.array_equal(from_nchw(batch), rgb)
    assert to_nchw(rgb[..., 0]).shape == (1, 1, 5, 7)
    assert np.allclose(to_gray(np.ones((2, 2, 3), np.float32)), 1.0)   # the weights sum to 1
    with pytest.raises(ValueError, match=r"\(H, W\) or \(H, W, C\)"):
        to_nchw(np.zeros((1, 2, 3, 4)))


def test_feature_maps_follow_the_explorers_colour_rule_zero_white_on_both_kinds():
    signed = np.array([[-1.0, 0.5], [2.0, 0.0]])
    fig = show_feature_maps([signed, np.abs(signed)], titles=["signed", "positive"], label="response")
    ax_signed, ax_positive = fig.axes[:2]                 # the colour bars' axes come after the panels
    low, high = ax_signed.images[0].get_clim()
    assert ax_signed.images[0].get_cmap().name == DIVERGING and low == -high == -colour_limit(signed)
    assert 1.9 < high < 2.0                              # the 99.5th percentile: the 2.0 saturates a little
    assert ax_positive.images[0].get_cmap().name == POSITIVE.name
    assert ax_positive.images[0].get_clim() == (0.0, colour_limit(np.abs(signed)))
    for ax in (ax_signed, ax_positive):                  # zero is white on both maps
        image = ax.images[0]
        np.testing.assert_allclose(image.get_cmap()(image.norm(0.0))[:3], [0.97, 0.97, 0.97], atol=0.03)
    assert [a.get_ylabel() for a in fig.axes[2:]] == ["response", "response"]
    plt.close(fig)


def test_feature_maps_accept_a_batch_of_one_and_refuse_other_shapes():
    fig = show_feature_maps(np.zeros((1, 3, 4, 4)))
    assert len(fig.axes) == 6
    plt.close(fig)
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        show_feature_maps(np.zeros((2, 3, 4, 4)))


def test_kernel_values_are_written_in_their_cells():
    kernel = np.array([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]])
    fig = show_kernel(kernel, title="Sobel x")
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["1", "0", "-1", "2", "0", "-2", "1", "0", "-1"]
    plt.close(fig)
    with pytest.raises(ValueError, match="2D"):
        show_kernel(np.zeros((1, 3, 3)))
    fig = show_kernels([kernel, -kernel], titles=["a", "b"])
    assert [ax.get_title() for ax in fig.axes] == ["a", "b"]
    plt.close(fig)


def test_image_grid_titles_and_empty_panels_hidden():
    fig = show_images([np.zeros((4, 4)), np.ones((4, 4, 3))] * 3, titles=list("abcdef"), ncols=4)
    assert len(fig.axes) == 8 and [ax.get_title() for ax in fig.axes[:6]] == list("abcdef")
    assert not fig.axes[7].axison
    plt.close(fig)

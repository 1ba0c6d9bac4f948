"""utils.efficiency: the formulas agree with real torch layers, and the hooks agree with the formulas."""
import pytest
import torch
import torch.nn as nn
from hypothesis import given, settings
from hypothesis import strategies as st

from utils.efficiency import (conv2d_cost, cost_table, count_parameters, dense_equivalent,
                              linear_cost, profile_model, total)

conv_specs = st.fixed_dictionaries({
    "in_channels": st.sampled_from([2, 4]), "out_channels": st.sampled_from([2, 4, 6]),
    "kernel_size": st.tuples(st.integers(1, 4), st.integers(1, 4)),
    "stride": st.integers(1, 3), "padding": st.integers(0, 2), "dilation": st.integers(1, 2),
    "groups": st.sampled_from([1, 2]), "bias": st.booleans(),
})


@settings(max_examples=40, deadline=None)
@given(spec=conv_specs, size=st.tuples(st.integers(9, 16), st.integers(9, 16)))
def test_conv2d_cost_matches_a_real_conv_layer(spec, size):
    layer = nn.Conv2d(**spec)
    out = layer(torch.zeros(1, spec["in_channels"], *size))
    cost = conv2d_cost(input_size=size, **spec)
    assert cost.params == sum(p.numel() for p in layer.parameters())
    assert cost.output_shape == tuple(out.shape[1:])
    # Independent MAC count: unfold lists, per output position, the inputs one output channel reads.
    patches = nn.functional.unfold(torch.zeros(1, spec["in_channels"], *size), spec["kernel_size"],
                                   dilation=spec["dilation"], padding=spec["padding"], stride=spec["stride"])
    assert cost.macs == spec["out_channels"] * patches.shape[1] // spec["groups"] * patches.shape[2]


def small_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 16, 3, stride=2), nn.ReLU(), nn.Flatten(), nn.Linear(16 * 3 * 3, 10))


def test_hook_counts_equal_formula_counts():
    costs = profile_model(small_model(), (1, 16, 16))
    convs = [c for c in costs if c.kind == "conv2d"]
    assert [c.kind for c in costs] == ["conv2d", "ReLU", "MaxPool2d", "conv2d", "ReLU", "Flatten", "linear"]
    first, second = conv2d_cost(1, 8, 3, 16, padding=1), conv2d_cost(8, 16, 3, 8, stride=2)
    assert (convs[0].macs, convs[0].params, convs[0].output_shape) == (first.macs, first.params, (8, 16, 16))
    assert (convs[1].macs, convs[1].params, convs[1].output_shape) == (second.macs, second.params, (16, 3, 3))
    assert costs[-1].macs == linear_cost(144, 10).macs == 1440


def test_profiled_params_sum_to_the_models_parameter_count():
    model = small_model()
    assert sum(c.params for c in profile_model(model, (1, 16, 16))) == count_parameters(model) == \
        sum(p.numel() for p in model.parameters())


def test_a_layer_called_twice_counts_its_params_once_and_its_macs_twice():
    layer = nn.Linear(5, 5)
    costs = profile_model(nn.Sequential(layer, nn.ReLU(), layer), (1, 1, 5))
    assert sum(c.params for c in costs) == 30
    assert sum(c.macs for c in costs) == 50


def test_profile_leaves_training_mode_and_hooks_as_they_were():
    model = small_model().train()
    profile_model(model, (1, 16, 16))
    assert model.training
    assert all(not m._forward_hooks for m in model.modules())


def test_count_parameters_trainable_only():
    model = small_model()
    for p in model[0].parameters():
        p.requires_grad_(False)
    assert count_parameters(model) - count_parameters(model, trainable_only=True) == 8 * 9 + 8


def test_dense_equivalent_of_a_conv_layer():
    conv = conv2d_cost(3, 16, 3, 32, padding=1)
    dense = dense_equivalent(conv, (3, 32, 32))
    assert dense.output_shape == conv.output_shape == (16, 32, 32)
    assert dense.params == 3 * 32 * 32 * 16 * 32 * 32 + 16 * 32 * 32
    assert conv.params == 16 * 27 + 16
    # weight sharing: each conv weight is used once per output position
    assert conv.uses_per_weight > 900 and dense.uses_per_weight < 1


def test_activation_bytes_and_total():
    conv = conv2d_cost(1, 4, 3, 10)
    assert conv.activations == 4 * 8 * 8 and conv.activation_bytes == 4 * conv.activations
    both = total([conv, linear_cost(256, 10)])
    assert (both.params, both.macs, both.activations) == (40 + 2570, 4 * 64 * 9 + 2560, 256 + 10)


def test_cost_table_has_one_row_per_layer():
    table = cost_table(profile_model(small_model(), (1, 16, 16)))
    assert len(table.splitlines()) == 2 + 7
    assert "1,440" in table.splitlines()[-1]


@pytest.mark.parametrize("call, words", [
    (lambda: conv2d_cost(3, 4, 3, 8, groups=2), ["in_channels=3", "groups=2"]),
    (lambda: conv2d_cost(1, 4, (3, 3, 3), 8), ["kernel_size", "(3, 3, 3)"]),
    (lambda: linear_cost(0, 4), ["in_features=0"]),
    (lambda: profile_model(nn.Linear(2, 2), (1, 2)), ["(C, H, W)", "(1, 2)"]),
])
def test_bad_input_is_a_clear_value_error(call, words):
    with pytest.raises(ValueError) as info:
        call()
    assert all(w in str(info.value) for w in words)

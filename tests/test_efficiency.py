"""utils.efficiency: the formulas agree with real torch layers, and the hooks agree with the formulas."""
import numpy as np
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


# --- input shapes and dense equivalents of profiled layers -------------------------------------

def test_profile_records_each_layers_input_shape_and_dense_equivalent_uses_it():
    costs = profile_model(small_model(), (1, 16, 16))
    assert [c.input_shape for c in costs] == [(1, 16, 16), (8, 16, 16), (8, 16, 16), (8, 8, 8),
                                              (16, 3, 3), (16, 3, 3), (144,)]
    assert conv2d_cost(8, 16, 3, 8, stride=2).input_shape == costs[3].input_shape
    assert dense_equivalent(costs[3]) == dense_equivalent(costs[3], (8, 8, 8))
    assert dense_equivalent(costs[3]).params == 8 * 8 * 8 * 16 * 3 * 3 + 16 * 3 * 3


def test_dense_equivalent_without_any_input_shape_is_a_clear_error():
    from utils.efficiency import LayerCost
    with pytest.raises(ValueError, match="input_shape"):
        dense_equivalent(LayerCost("x", "conv2d", 1, 1, (1, 2, 2)))


# --- time_inference and time_layers: behaviour only, never a timing threshold ------------------

class Recorder(nn.Module):
    """Records, at every call, its label, whether autograd was on and whether it was training."""

    def __init__(self, label, log):
        super().__init__()
        self.label, self.log = label, log
        self.linear = nn.Linear(3, 2)

    def forward(self, x):
        self.log.append((self.label, torch.is_grad_enabled(), self.training))
        return self.linear(x)


def test_time_inference_warms_up_then_interleaves_repeats_without_grad_in_eval_mode():
    from utils.efficiency import time_inference
    log = []
    a, b = Recorder("a", log), Recorder("b", log).eval()
    timings = time_inference({"a": a, "b": b}, torch.zeros(5, 3), repeats=4, warmup=2)
    assert list(timings) == ["a", "b"]
    assert [label for label, *_ in log] == ["a", "a", "b", "b"] + ["a", "b"] * 4
    assert all(not grad and not training for _, grad, training in log)
    assert a.training and not b.training                     # modes restored
    for label, timing in timings.items():
        assert timing.name == label and timing.batch_size == 5 and len(timing.seconds) == 4
        assert all(s > 0 for s in timing.seconds)
        assert timing.median == pytest.approx(float(np.median(timing.seconds)))
        assert timing.per_image == pytest.approx(timing.median / 5)


def test_time_inference_of_a_single_module_and_bad_arguments():
    from utils.efficiency import time_inference
    timing = time_inference(nn.Linear(3, 2), torch.zeros(1, 3), repeats=1, warmup=0)
    assert list(timing) == ["model"] and len(timing["model"].seconds) == 1
    for kwargs, words in (({"repeats": 0}, "repeats"), ({"warmup": -1}, "warmup")):
        with pytest.raises(ValueError, match=words):
            time_inference(nn.Linear(3, 2), torch.zeros(1, 3), **kwargs)
    with pytest.raises(TypeError, match="torch.Tensor"):
        time_inference(nn.Linear(3, 2), np.zeros((1, 3), np.float32))
    with pytest.raises(ValueError, match="no models"):
        time_inference({}, torch.zeros(1, 3))


def test_time_layers_gives_one_entry_per_leaf_call_in_profile_order_and_cleans_up():
    from utils.efficiency import time_layers
    model = small_model().train()
    times = time_layers(model, torch.zeros(4, 1, 16, 16), repeats=3, warmup=1)
    costs = profile_model(model, (1, 16, 16))
    assert [(t.name, t.kind) for t in times] == [(c.name, c.kind) for c in costs]
    assert all(t.seconds > 0 for t in times)
    assert model.training and all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    layer = nn.Linear(5, 5)                                   # a layer called twice: two entries
    assert [t.name for t in time_layers(nn.Sequential(layer, nn.ReLU(), layer), torch.zeros(1, 5),
                                        repeats=2)] == ["0", "1", "0"]

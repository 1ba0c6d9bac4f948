"""How long one control change takes in each explorer, drawing included (goal: < 100 ms at 256x256).

    .venv/bin/python benchmarks/widget_update.py [--repeats 15]

Each case changes one control of an explorer built on the 256x256 camera image, which runs the
whole update path (compute, colour, PNG-encode, set the widget values), and prints the median
and the slowest time in milliseconds.  Widget messages to a browser are not included: there is no
front end here, and sending a ~100 kB PNG over a local websocket adds only a few milliseconds.
"""
from __future__ import annotations

import argparse
import statistics
import time

from utils.widgets import conv_explorer, conv_step_through, pool_explorer, relu_explorer

BUDGET_MS = 100.0


def time_changes(control, values, repeats: int) -> list[float]:
    """Milliseconds of each assignment ``control.value = v``, cycling through ``values``."""
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        control.value = values[i % len(values)]
        times.append(1000 * (time.perf_counter() - start))
    return times


def cases():
    conv = conv_explorer("camera")
    step = conv_step_through()
    pool = pool_explorer("camera")
    relu = relu_explorer("camera")
    return [
        ("conv_explorer: stride", conv.stride, [2, 1]),
        ("conv_explorer: padding", conv.padding, [1, 2, 3, 0]),
        ("conv_explorer: dilation", conv.dilation, [2, 3, 1]),
        ("conv_explorer: window row", conv.out_row, [10, 100, 200]),
        ("conv_explorer: preset 5x5", conv.kernel_size, [5, 3]),
        ("conv_explorer: one kernel value", conv.kernel_boxes[1][1], [0.5, -0.5]),
        ("conv_step_through: step", step.step, list(range(10))),
        ("pool_explorer: kernel", pool.kernel_size, [3, 2, 4]),
        ("pool_explorer: mode", pool.mode, ["avg", "max"]),
        ("relu_explorer: activation", relu.activation, ["leaky_relu", "relu"]),
        ("relu_explorer: filter", relu.preset, ["Laplacian", "Sobel y", "Sobel x"]),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args(argv)
    worst_median = 0.0
    print(f"{'control change (256x256 image)':36s} {'median ms':>10s} {'max ms':>8s}")
    for name, control, values in cases():
        times = time_changes(control, values, args.repeats)
        median = statistics.median(times)
        worst_median = max(worst_median, median)
        print(f"{name:36s} {median:10.1f} {max(times):8.1f}")
    verdict = "within" if worst_median < BUDGET_MS else "OVER"
    print(f"slowest median {worst_median:.1f} ms: {verdict} the {BUDGET_MS:.0f} ms budget")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

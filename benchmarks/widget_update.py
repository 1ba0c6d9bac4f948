"""How long one control change takes in every explorer, drawing included (goal: < 100 ms at 256x256).

    .venv/bin/python benchmarks/widget_update.py [--repeats 5] [--explorer ConvExplorer]

Generic: it builds every explorer of ``utils.widgets.EXPLORERS`` with its defaults (the bundled
256x256 images), walks the widget tree a learner sees and times every *value control* in it —
sliders, Play, dropdowns, toggle buttons, check boxes and number boxes — so an explorer added to
``EXPLORERS`` is covered without touching this file.  Each control is set to a few values across its
range (cycling ``--repeats`` times), then back to where it was, so the next control starts from the
defaults.  A change runs the explorer's whole update path (compute, colour, PNG-encode, set the
widget values); widget messages to a browser are not included (there is no front end here, and
sending a ~100 kB PNG over a local websocket adds a few milliseconds).  Free-text boxes (``Text``,
``Textarea``) are not timed: there is no value to try that means the same in every explorer.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import ipywidgets as widgets
import numpy as np

from utils.widgets import EXPLORERS

BUDGET_MS = 100.0
TIMED = (widgets.widget_int._Int, widgets.widget_float._Float, widgets.widget_selection._Selection,
         widgets.widget_bool._Bool)


def controls(root: widgets.Widget):
    """Every value control in the widget tree under ``root`` (depth first, each once), with a name."""
    names = {}
    for attr, value in vars(root).items():      # explorer attributes name their controls
        for path, widget in _flatten(attr, value):
            names.setdefault(id(widget), path)
    seen, stack, found = set(), [root], []
    while stack:
        widget = stack.pop(0)
        if id(widget) in seen:
            continue
        seen.add(id(widget))
        if widget is not root and isinstance(widget, TIMED) and not getattr(widget, "disabled", False):
            label = getattr(widget, "description", "") or ""
            found.append((names.get(id(widget), label or type(widget).__name__), widget))
        stack[:0] = list(getattr(widget, "children", ()))
    return found


def _flatten(path, value):
    if isinstance(value, widgets.Widget):
        yield path, value
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _flatten(f"{path}[{i}]", item)


def trial_values(control) -> list:
    """A few values across the control's range, different from its current one."""
    current = control.value
    if isinstance(control, widgets.widget_selection._Selection):
        values = [v for v in control._options_values if v != current]
        return values[:4] or [current]
    if isinstance(control, widgets.widget_bool._Bool):
        return [not current]
    low, high = getattr(control, "min", None), getattr(control, "max", None)
    if low is None or high is None:                    # unbounded number boxes
        step = 1 if isinstance(control, widgets.widget_int._Int) else 0.5
        return [current + step, current - step]
    points = np.linspace(low, high, 4)
    if isinstance(control, widgets.widget_int._Int):
        points = np.unique(np.rint(points).astype(int))
    values = [type(current)(p) for p in points if p != current]
    return values or [current]


def time_control(control, repeats: int) -> tuple[list[float], list[float]]:
    """(wall, CPU) milliseconds of each assignment ``control.value = v``, cycling through the trial
    values and the original one (so every assignment is a change), ending where it started."""
    original = control.value
    values = trial_values(control) + [original]
    wall, cpu = [], []
    for i in range(max(repeats, len(values))):
        start, start_cpu = time.perf_counter(), time.process_time()
        control.value = values[i % len(values)]
        wall.append(1000 * (time.perf_counter() - start))
        cpu.append(1000 * (time.process_time() - start_cpu))
    control.value = original
    return wall, cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="changes timed per control (default 5)")
    parser.add_argument("--explorer", action="append", help="only these EXPLORERS names (repeatable)")
    args = parser.parse_args(argv)
    worst = (0.0, "")
    print(f"{'explorer':18s} {'control':24s} {'median ms':>10s} {'max ms':>8s} {'CPU median ms':>14s}")
    for name, factory in EXPLORERS.items():
        if args.explorer and name not in args.explorer:
            continue
        explorer = factory()
        for label, control in controls(explorer):
            try:
                wall, cpu = time_control(control, args.repeats)
            except Exception as exc:  # noqa: BLE001 - report and go on with the other controls
                print(f"{name:18s} {label:24s} {'error':>10s} {type(exc).__name__}: {exc}")
                continue
            median = statistics.median(wall)
            worst = max(worst, (median, f"{name} {label}"))
            print(f"{name:18s} {label:24s} {median:10.1f} {max(wall):8.1f} {statistics.median(cpu):14.1f}")
        explorer.close()
    verdict = "within" if worst[0] < BUDGET_MS else "OVER"
    print(f"slowest median {worst[0]:.1f} ms ({worst[1]}): {verdict} the {BUDGET_MS:.0f} ms budget")
    print(f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores while measuring)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""pytest plugin: compare trained numbers strictly only on the machine kind that stored them.

    pytest -p tools.nbval_platform --nbval chapters      # as `make test` runs it

nbval compares every stored output strictly.  A cell tagged ``platform-dependent-output`` prints
numbers that come out of a training run (accuracies, chosen learning rates, optimised images):
they are bit-identical on a machine with the same floating-point results as the one that stored
them, and differ in their last digits on another CPU (``tools/numeric_platform.py`` says why).

* Same fingerprint as the notebook's stored ``metadata.convcourse.numeric_platform``: every cell
  is compared strictly, tagged or not.
* Another fingerprint: the tagged cells still run, and every ``assert`` in them (each tagged cell
  has one, on the claim its prose makes) must still hold, but their printed numbers are not
  compared; the run's summary says how many cells were compared this way.  Untagged cells stay
  strict everywhere.
Course infrastructure.
"""
from __future__ import annotations

TAG = "platform-dependent-output"


def stored_fingerprint(nb) -> str | None:
    from tools.numeric_platform import METADATA_KEY
    return nb.metadata.get("convcourse", {}).get(METADATA_KEY)


def compare_strictly(cell, stored: str | None, current: str) -> bool:
    """Whether ``cell``'s stored outputs must match exactly on a machine whose fingerprint is ``current``."""
    return TAG not in cell.metadata.get("tags", []) or stored == current


def pytest_collection_modifyitems(session, config, items):
    for item in items:
        cell, notebook = getattr(item, "cell", None), getattr(item.parent, "nb", None)
        if cell is None or notebook is None or TAG not in cell.metadata.get("tags", []):
            continue
        from tools.numeric_platform import fingerprint   # only when a tagged cell was collected
        if not compare_strictly(cell, stored_fingerprint(notebook), fingerprint()):
            item.options["check"] = False
            # user_properties travel with the test reports, also from pytest-xdist's workers.
            item.user_properties.append((TAG, "not compared"))


def pytest_runtest_logreport(report):
    if (TAG, "not compared") in report.user_properties:
        _relaxed.add(report.nodeid)


_relaxed: set[str] = set()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if _relaxed:
        from tools.numeric_platform import fingerprint
        terminalreporter.write_line(
            f"nbval: {len(_relaxed)} cells tagged {TAG} ran with their asserts, but their numbers were not "
            f"compared: this machine's floating-point fingerprint ({fingerprint()}) is not the one that stored "
            f"them (python -m tools.numeric_platform; tools/nbval_platform.py says why)")

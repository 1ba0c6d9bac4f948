"""utils/__init__.py: ``__all__`` names every public submodule, and only modules."""
import importlib
import types
from pathlib import Path

import utils

UTILS = Path(utils.__file__).parent


def test_all_lists_every_public_module_file_and_package():
    on_disk = {p.stem for p in UTILS.glob("*.py") if not p.name.startswith("_")}
    on_disk |= {p.parent.name for p in UTILS.glob("*/__init__.py") if not p.parent.name.startswith("_")}
    assert set(utils.__all__) == on_disk
    assert {"assets", "quizzes"}.isdisjoint(utils.__all__)      # data folders are not modules


def test_every_name_in_all_is_an_importable_module():
    for name in utils.__all__:
        assert isinstance(importlib.import_module(f"utils.{name}"), types.ModuleType), name

"""Shared helpers of the convolutional-layers course.

Notebooks import from here; nothing here imports a notebook.  Submodules are imported
explicitly (``from utils.functional import conv2d``) so that importing ``utils`` stays cheap.
``__all__`` lists every public submodule (read from this folder, so that a new module is listed
without anyone remembering to add it); the module map is in ``tools/README.md``.
"""
import pkgutil as _pkgutil

__all__ = sorted(module.name for module in _pkgutil.iter_modules(__path__) if not module.name.startswith("_"))

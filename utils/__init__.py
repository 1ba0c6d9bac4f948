"""Shared helpers of the convolutional-layers course.

Notebooks import from here; nothing here imports a notebook.  Submodules are imported
explicitly (``from utils.functional import conv2d``) so that importing ``utils`` stays cheap.
"""
__all__ = ["functional", "data", "plotting", "widgets", "models", "checks", "quiz", "grade"]

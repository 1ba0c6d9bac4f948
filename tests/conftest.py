"""Shared pytest configuration."""
import os

import matplotlib

# Tests draw figures without a screen.
matplotlib.use("Agg")
os.environ.setdefault("MPLBACKEND", "Agg")

# Fixture notebooks are inputs to grader/generator tests, not lessons: nbval must not collect them.
collect_ignore_glob = ["fixtures/*", "fixtures/**/*"]

"""Shared pytest configuration."""
import matplotlib

# Tests draw figures without a screen.  (Only this process: an MPLBACKEND variable would be
# inherited by nbval's kernels, where plt.show() would then store no figure.)
matplotlib.use("Agg")

# Fixture notebooks are inputs to grader/generator tests, not lessons: nbval must not collect them.
collect_ignore_glob = ["fixtures/*", "fixtures/**/*"]

"""Shared pytest configuration."""
import matplotlib

# Tests draw figures without a screen.  (Only this process: an MPLBACKEND variable would be
# inherited by nbval's kernels, where plt.show() would then store no figure.)
matplotlib.use("Agg")

# Fixture notebooks are inputs to grader/generator tests, not lessons: nbval must not collect them.
collect_ignore_glob = ["fixtures/*", "fixtures/**/*"]

# pytest runs two workers on two cores (-n 2): one torch thread each avoids oversubscription,
# which made the training tests several times slower.  Results do not depend on it.
try:
    import torch
    torch.set_num_threads(1)
except ImportError:  # pragma: no cover - torch is a pinned dependency
    pass

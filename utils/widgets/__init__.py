"""Interactive explorers (ipywidgets 8): convolution, its step-through, ReLU, pooling, a layer
pipeline, and a small CNN training live.

Each explorer is an ``ipywidgets.VBox`` subclass (:class:`~utils.widgets.base.Explorer`): its controls
are attributes (``explorer.stride``, ``explorer.kernel_boxes``, ...), and every change of a control
calls ``update()``, which

1. calls a *pure* function (``conv_view``, ``step_view``, ``relu_view``, ``pool_view``,
   ``pipeline_view``; the live training's ``Trainer``) from the
   control values to a small result object holding arrays and the texts to show, then
2. draws that result with :mod:`utils.widgets.render` (PNG pictures, HTML tables, colour scales).

Keeping step 1 free of widgets lets the tests check the numbers and the displayed formula without a
browser.  One module per explorer: ``step`` (chapter 02), ``conv`` (chapter 04; its pure part
``conv_view``), ``relu`` (chapter 05),
``pool`` and ``pipeline`` (chapter 06), ``training`` (chapter 07); ``base``, ``kernels`` and ``render``
are shared (``render``'s docstring has the colour rule every map follows).  :data:`EXPLORERS` maps each
explorer class name to the function that builds it (the web edition draws them from it).
"""
from __future__ import annotations

from utils.widgets.base import (EXPLORER_IMAGE_SIZE, ConvFn, Explorer, explorer_image,  # noqa: F401
                                output_size_formula)
from utils.widgets.conv import ConvExplorer, ConvView, conv_explorer, conv_view  # noqa: F401
from utils.widgets.kernels import PRESETS, preset_kernel  # noqa: F401
from utils.widgets.pipeline import PipelineExplorer, PipelineView, pipeline_explorer, pipeline_view  # noqa: F401
from utils.widgets.pool import PoolExplorer, PoolView, pool_explorer, pool_view  # noqa: F401
from utils.widgets.relu import ReluExplorer, ReluView, feature_map, relu_explorer, relu_view  # noqa: F401
from utils.widgets.render import colour_limit, png_bytes, to_indices  # noqa: F401
from utils.widgets.step import (DEFAULT_STEP_INPUT, DEFAULT_STEP_KERNEL, ConvStepThrough,  # noqa: F401
                                StepView, conv_step_through, step_view)
from utils.widgets.training import LiveTraining, Trainer, TrainerState, live_training  # noqa: F401

# class name -> the function a notebook calls to build it (book/course_pages.py draws each one)
EXPLORERS = {
    "ConvExplorer": conv_explorer,
    "ConvStepThrough": conv_step_through,
    "PipelineExplorer": pipeline_explorer,
    "PoolExplorer": pool_explorer,
    "ReluExplorer": relu_explorer,
    "LiveTraining": live_training,
}

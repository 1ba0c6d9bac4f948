"""Configure the Jupyter Server that ``make lab`` starts: idle kernels shut down, the course's custom CSS.

    python -m tools.lab_config .venv        # the install step of `make lab` / `make test` runs this

Writes ``<venv>/etc/jupyter/jupyter_server_config.json`` (the ``.d`` folder beside it holds only which
server extensions are enabled: Jupyter Server reads no other settings from there).  That folder is in the
config path of the venv's own Jupyter only (``sys.prefix/etc/jupyter``), so the settings apply to
``make lab`` (and to the test suite's servers, which run from the venv), never to another Jupyter
of the learner's, and ``make clean-venv`` removes them.

* **Idle kernels are shut down** after :data:`CULL_IDLE_TIMEOUT_S` without activity, checked every
  :data:`CULL_INTERVAL_S`.  ``cull_connected`` is on: a learner goes through the course in open tabs,
  and a tab left open but idle must not keep its ~0.4-0.7 GB kernel alive (issue 11 counted 10 kernels,
  4.1 GB, after one pass).  ``cull_busy`` stays off, so a training cell that runs long is never cut.
  A culled kernel loses its variables, never the saved notebook: the learner re-runs the cells.
* **The course's CSS** (``tools/lab/custom.css``, JupyterLab's ``LabApp.custom_css``): nbgrader's
  *Validate* button only where there are tests (the exercise sets), the quiz record's table left-aligned
  without wrapping, and a plain-language message where a widget's kernel is gone.  JupyterLab looks for
  ``custom/custom.css`` in the user's own config folder; ``static_custom_path`` (a tornado setting)
  points it at the course's folder instead, so nothing is written outside the venv.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

CULL_IDLE_TIMEOUT_S = 1200      # 20 minutes without activity
CULL_INTERVAL_S = 60
CSS_DIR = Path(__file__).resolve().parent / "lab"     # holds custom.css only: JupyterLab serves the folder
CONFIG_NAME = "jupyter_server_config.json"


def server_config(css_dir: Path = CSS_DIR, idle_timeout_s: int = CULL_IDLE_TIMEOUT_S,
                  interval_s: int = CULL_INTERVAL_S) -> dict:
    """The Jupyter Server config (as JSON-ready dict) for the course.  Course infrastructure."""
    return {
        "MappingKernelManager": {"cull_idle_timeout": idle_timeout_s, "cull_interval": interval_s,
                                 "cull_connected": True, "cull_busy": False},
        "LabApp": {"custom_css": True},
        "ServerApp": {"tornado_settings": {"static_custom_path": [str(Path(css_dir).resolve())]}},
    }


def write_config(folder: Path, **kwargs) -> Path:
    """Write :func:`server_config` as ``folder/jupyter_server_config.json`` (``folder`` is a Jupyter
    config folder, e.g. ``.venv/etc/jupyter``); returns the file.  Course infrastructure."""
    path = Path(folder) / CONFIG_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(server_config(**kwargs), indent=2) + "\n")
    return path


def main(argv: list[str] | None = None) -> None:
    """``python -m tools.lab_config VENV``: write the config into ``VENV/etc/jupyter``.  Course infrastructure."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("venv", type=Path, help="the virtual environment (.venv)")
    args = parser.parse_args(argv)
    print(f"wrote {write_config(args.venv / 'etc' / 'jupyter')}")


if __name__ == "__main__":
    main()

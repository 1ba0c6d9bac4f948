"""Sphinx configuration of the web edition (``make book``; see book/build.py and README "Web edition").

Sphinx + myst-nb + sphinx-book-theme: pure Python, builds offline from the stored, executed
notebooks (``nb_execution_mode = "off"``: nothing is re-executed).  The source folder is assembled
by book/build.py (links to chapters/, exercises/, README.md and book/index.md), so nothing of
Sphinx's lives at the repository root.
"""
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

project = "Convolutional layers, from scratch to transfer learning"
author = "the course's authors"
copyright = "MIT licence"
root_doc = "index"

extensions = ["myst_nb", "course_pages"]
exclude_patterns = ["README.md", "**/.ipynb_checkpoints"]

# The notebooks are stored executed (nbval checks them): render the stored outputs as they are.
nb_execution_mode = "off"
nb_ipywidgets_js = {}                 # explorers and quizzes get a static view (course_pages.py)
nb_output_stderr = "show"
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3
suppress_warnings = ["myst.header", "mystnb.unknown_mime_type"]

# MathJax 3 from the sphinx-mathjax-offline package, copied into _static/mathjax by course_pages.py
# (not loaded as an extension: it does not declare itself safe for parallel reading): maths
# renders without a network connection.
mathjax_path = "mathjax/tex-chtml.js"
html_favicon = "_static/favicon.svg"

html_theme = "sphinx_book_theme"
html_title = "Convolutional layers"
html_theme_options = {
    "home_page_in_toc": True,
    "show_navbar_depth": 1,
    "use_download_button": True,
    "use_fullscreen_button": False,
    "use_repository_button": False,
    "navigation_with_keys": False,
}
# Where learners can open a page live; set both to get Binder buttons on each chapter
# (e.g. BOOK_REPOSITORY_URL=https://github.com/ORG/REPO BOOK_BINDER_URL=https://mybinder.org).
if os.environ.get("BOOK_REPOSITORY_URL"):
    html_theme_options |= {"repository_url": os.environ["BOOK_REPOSITORY_URL"], "path_to_docs": "",
                           "repository_branch": os.environ.get("BOOK_REPOSITORY_BRANCH", "main")}
    if os.environ.get("BOOK_BINDER_URL"):
        html_theme_options["launch_buttons"] = {"binderhub_url": os.environ["BOOK_BINDER_URL"],
                                                "notebook_interface": "jupyterlab"}
html_context = {"default_mode": "light"}   # pydata-sphinx-theme: no console error about an empty mode
html_last_updated_fmt = None
html_copy_source = True
html_sourcelink_suffix = ""          # _sources/chapters/NN_x.ipynb: the download button gives the notebook

"""The Sphinx hook that turns a stored course notebook into a static web page (book/conf.py).

On ``source-read`` of every ``.ipynb`` page (the notebooks on disk are never written):

* a quiz cell (``show_quiz("NN")``) gets, instead of its widget and answer record, the questions
  and options as text plus how to answer them live.  Only ``id``, ``title``, ``prompt`` and
  ``options`` of ``utils/quizzes/NN.json`` are used: the salted answer keys and the encoded
  explanations never reach the page source;
* an explorer's widget output (``<ConvExplorer: interactive, ...>``) becomes a box saying what
  the explorer does and how to make it live; any other widget output (tqdm's progress bars) is
  dropped, and so is stored widget state (``metadata.widgets``);
* a note after the title links to the notebook's download and says how to run it live.

After the build, MathJax is copied into ``_static/mathjax`` (book/conf.py's ``mathjax_path``).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
QUIZ_CALL = re.compile(r"""show_quiz\(\s*["'](\w+)["']\s*\)""")
EXPLORER_REPR = re.compile(r"<(\w+): interactive, run the cell to use it>")

RUN_LIVE = ("clone the course and type `make lab` on your machine (the README's quick start; "
            "`make test` checks the installation), open it on Binder (which builds the course's "
            "`environment.yml`), or open it on your instructor's JupyterHub from the link they give you.")


def markdown_output(text: str) -> dict:
    return {"output_type": "display_data", "metadata": {}, "data": {"text/markdown": text}}


def quiz_markdown(quiz_id: str) -> str:
    """The public part of a compiled quiz: title, prompts, options (never keys or explanations)."""
    from utils.quiz import load_quiz
    quiz = load_quiz(quiz_id)
    lines = [f"**Quiz {quiz['id']}: {quiz['title']}** (static view: a web page cannot check answers. "
             f"To answer and get feedback, run the notebook live: {RUN_LIVE} Then run this cell.)", ""]
    for number, question in enumerate(quiz["questions"], 1):
        lines.append(f"{number}. {question['prompt']}")
        for option in question.get("options", []):
            lines.append(f"   - {option}")
        if question["kind"] == "numeric":
            lines.append("   - *(answer: a number)*")
        elif question["kind"] == "free":
            lines.append("   - *(answer: a few sentences, graded by your instructor)*")
        elif question["kind"] == "multiple":
            lines.append("   - *(choose every option that applies)*")
    return "\n".join(lines)


def explorer_markdown(name: str) -> str:
    import utils.widgets
    factory = utils.widgets.EXPLORERS.get(name)
    cls = getattr(utils.widgets, name, None) if factory else None
    what = (cls.__doc__ or "").strip().splitlines()[0] if cls is not None and cls.__doc__ else ""
    return (f"**Interactive explorer `{name}`** (below: a static picture of it as it starts, with its default inputs): {what} "
            f"It needs a running Python kernel, which a web page does not have. To make it live, run "
            f"the notebook: {RUN_LIVE} Then run this cell and move its controls.")


def widget_html(widget) -> str:
    """A static HTML picture of an ipywidgets tree: images inline, HTML as is, controls as text."""
    import base64
    import html

    import ipywidgets as w
    if isinstance(widget, w.Box):
        direction = "row" if isinstance(widget, w.HBox) else "column"
        inner = "".join(widget_html(child) for child in widget.children)
        return f"<div style='display:flex;flex-direction:{direction};flex-wrap:wrap;gap:0.4em 1em'>{inner}</div>"
    if isinstance(widget, w.Image):
        data = base64.b64encode(bytes(widget.value)).decode()
        return f"<img alt='explorer view' src='data:image/{widget.format};base64,{data}'>" if data else ""
    if isinstance(widget, (w.HTML, w.HTMLMath)):
        return f"<div>{widget.value}</div>"
    if isinstance(widget, (w.Button, w.ToggleButton, w.Play)):   # actions, not state: nothing to show
        return ""
    if hasattr(widget, "value") and getattr(widget, "description", None) is not None:
        label = html.escape(str(widget.description or ""))
        value = html.escape(str(widget.value))
        return f"<div><span style='color:#555'>{label}</span> <code>{value}</code></div>" if label else ""
    return ""


def explorer_picture(name: str) -> str | None:
    """The explorer ``name`` in its default state, as static HTML (None when it cannot be built)."""
    import utils.widgets
    factory = utils.widgets.EXPLORERS.get(name)
    if factory is None:
        return None
    explorer = factory()
    try:
        return ("<div class='convcourse-explorer-static' style='border:1px solid #ccc;padding:0.6em;"
                "pointer-events:none;opacity:0.95'>" + widget_html(explorer) + "</div>")
    finally:
        explorer.close()


def static_outputs(cell: dict) -> list[dict]:
    """The outputs of one code cell as the web page shows them."""
    quiz = QUIZ_CALL.search("".join(cell.get("source", "")))
    if quiz:
        return [markdown_output(quiz_markdown(quiz.group(1)))]
    outputs = []
    for output in cell.get("outputs", []):
        data = output.get("data", {})
        if WIDGET_MIME not in data:
            outputs.append(output)
            continue
        explorer = EXPLORER_REPR.fullmatch("".join(data.get("text/plain", "")).strip())
        if explorer:
            outputs.append(markdown_output(explorer_markdown(explorer.group(1))))
            picture = explorer_picture(explorer.group(1))
            if picture:
                outputs.append({"output_type": "display_data", "metadata": {}, "data": {"text/html": picture}})
    return outputs


def run_live_note(notebook_name: str) -> dict:
    text = ("```{note}\n"
            f"This page is a static copy of the notebook with its stored outputs; the explorers and "
            f"the quiz need a running kernel. To run it live, {{download}}`download the notebook "
            f"<{notebook_name}>` into your copy of the course, or {RUN_LIVE}\n"
            "```")
    return {"cell_type": "markdown", "id": "convcourse-run-live", "metadata": {}, "source": text}


def static_notebook(text: str, notebook_name: str) -> str:
    nb = json.loads(text)
    nb.get("metadata", {}).pop("widgets", None)
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"] = static_outputs(cell)
    nb["cells"].insert(1 if nb["cells"] else 0, run_live_note(notebook_name))
    return json.dumps(nb)


def on_source_read(app, docname: str, source: list[str]) -> None:
    path = Path(app.env.doc2path(docname))
    if path.suffix == ".ipynb":
        source[0] = static_notebook(source[0], path.name)


def copy_mathjax(app, exception) -> None:
    """MathJax 3 (the sphinx-mathjax-offline package's copy) into ``_static/mathjax``."""
    if exception is None and app.builder.format == "html":
        from importlib.util import find_spec
        from sphinx.util.fileutil import copy_asset
        package = Path(find_spec("sphinx-mathjax-offline").origin).parent
        copy_asset(str(package / "static" / "mathjax"), str(Path(app.outdir) / "_static" / "mathjax"))


def setup(app):
    app.connect("source-read", on_source_read)
    app.connect("build-finished", copy_mathjax)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

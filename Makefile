# The two commands of the README's quick start.  Each creates .venv when it is missing
# and installs the course into it (again only when pyproject.toml changed).
#   make lab    open the course in JupyterLab at chapter 00
#   make test   run the whole test suite (what .ci/run runs)
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: lab test book hub-test exercises notebooks benchmarks clean-venv

# OpenMP threads that spin while waiting make torch several times slower when the cores are
# shared (two notebooks run in parallel under pytest -n 2); passive waiting changes no result.
export OMP_WAIT_POLICY ?= PASSIVE

$(STAMP): pyproject.toml tools/lab_config.py
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required (found %s); set PYTHON=/path/to/python3.11" % sys.version.split()[0])'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[test]'
	@# nbgrader (for the instructor's workflow) adds authoring panels to JupyterLab; learners do not
	@# need them. Instructors re-enable them in Settings > Plugin Manager. "Validate" stays.
	$(VENV)/bin/jupyter labextension disable --level=sys_prefix @jupyter/nbgrader:create-assignment \
		@jupyter/nbgrader:formgrader @jupyter/nbgrader:course-list @jupyter/nbgrader:assignment-list \
		@jupyter/nbgrader:menu >/dev/null 2>&1 || true
	@# The course is offline: JupyterLab should not offer to fetch news or check for updates.
	@mkdir -p $(VENV)/share/jupyter/lab/settings
	@echo '{"@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": false}}' \
		> $(VENV)/share/jupyter/lab/settings/overrides.json
	@# Jupyter Server of the venv only (tools/lab_config.py says why): idle kernels shut down after
	@# 20 minutes, nbgrader's Validate only on exercise sets, the course's CSS (tools/lab/custom.css).
	$(PY) -m tools.lab_config $(VENV)
	@touch $(STAMP)

# Extras installed on first use (again only when pyproject.toml changed): the web edition's
# Sphinx + myst-nb (book) and JupyterHub + nbgitpuller (hub, docs/teaching.md).
$(VENV)/.installed-%: pyproject.toml $(STAMP)
	$(PY) -m pip install --quiet -e '.[$*]'
	@touch $@

# Serves the repository root (chapters/ and exercises/ side by side, so every link between notebooks
# works) and opens chapter 00. Extra options: make lab LAB_ARGS="--no-browser --ServerApp.port=8899"
lab: $(STAMP)
	$(VENV)/bin/jupyter lab --ServerApp.root_dir=$(CURDIR) \
		--LabApp.default_url=/lab/tree/chapters/00_start_here.ipynb \
		$(if $(filter 0,$(shell id -u)),--allow-root,) $(LAB_ARGS)

test: $(STAMP) $(VENV)/.installed-book
	bash tools/ensure_chromium.sh
	bash tools/ensure_bwrap.sh
	$(PY) -m pytest -n 2 --dist loadfile tests --nbval chapters solutions --nbval-sanitize-with tools/nbval_sanitize.cfg

# The web edition: a static site of every chapter and exercise set in _build/html (README "Web edition").
book: $(VENV)/.installed-book
	$(PY) book/build.py _build/html
	@echo "Open _build/html/index.html (or: $(PY) -m http.server -d _build/html -b 127.0.0.1 8000)"

# Opt-in: a real JupyterHub on 127.0.0.1, three learners, their notebooks graded (docs/teaching.md).
CHP := $(VENV)/node/node_modules/.bin/configurable-http-proxy
$(CHP):
	npm install --prefix $(VENV)/node --no-audit --no-fund --loglevel=error configurable-http-proxy@5.3.0

hub-test: $(STAMP) $(VENV)/.installed-hub $(CHP)
	CONVCOURSE_HUB_TEST=1 $(PY) -m pytest -q tests/test_hub.py

# Maintainer commands (see tools/README.md)
exercises: $(STAMP)
	$(PY) -m tools.make_exercises

notebooks: $(STAMP)
	$(PY) -m tools.execute_notebooks chapters solutions

benchmarks: $(STAMP)
	$(PY) benchmarks/conv2d_vs_torch.py

clean-venv:
	rm -rf $(VENV)

# The two commands of the README's quick start.  Each creates .venv when it is missing
# and installs the course into it (again only when pyproject.toml changed).
#   make lab    open the course in JupyterLab at chapter 00
#   make test   run the whole test suite (what .ci/run runs)
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: lab test exercises notebooks benchmarks clean-venv

# OpenMP threads that spin while waiting make torch several times slower when the cores are
# shared (two notebooks run in parallel under pytest -n 2); passive waiting changes no result.
export OMP_WAIT_POLICY ?= PASSIVE

$(STAMP): pyproject.toml
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
	@touch $(STAMP)

lab: $(STAMP)
	$(VENV)/bin/jupyter lab chapters/00_start_here.ipynb $(if $(filter 0,$(shell id -u)),--allow-root,)

test: $(STAMP)
	bash tools/ensure_chromium.sh
	$(PY) -m pytest -n 2 --dist loadfile tests --nbval chapters solutions --nbval-sanitize-with tools/nbval_sanitize.cfg

# Maintainer commands (see tools/README.md)
exercises: $(STAMP)
	$(PY) -m tools.make_exercises

notebooks: $(STAMP)
	$(PY) -m tools.execute_notebooks chapters solutions

benchmarks: $(STAMP)
	$(PY) benchmarks/conv2d_vs_torch.py

clean-venv:
	rm -rf $(VENV)

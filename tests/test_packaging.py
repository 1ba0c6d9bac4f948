"""The pip pins (pyproject.toml) and the conda/Binder pins (environment.yml) name the same versions."""
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# conda-forge spells some packages differently from PyPI.
CONDA_TO_PIP = {"pytorch": "torch"}


def pip_pins() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = project["dependencies"] + [s for group in project["optional-dependencies"].values() for s in group]
    pins = {}
    for spec in specs:
        name, sep, version = spec.partition("==")
        assert sep, f"pyproject.toml dependency {spec!r} is not pinned with =="
        pins[name.strip().lower()] = version.strip()
    return pins


def conda_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "environment.yml").read_text().splitlines():
        line = line.split("#")[0].strip()
        m = re.fullmatch(r"-\s*([A-Za-z0-9_.\-]+)\s*(==|=)\s*([0-9][^=\s]*)(=\S+)?", line)
        if m and m.group(1) != "python":
            name = m.group(1).lower()
            pins[CONDA_TO_PIP.get(name, name)] = m.group(3)
    return pins


def test_every_pip_pin_is_in_environment_yml_with_the_same_version():
    pip, conda = pip_pins(), conda_pins()
    assert {k: v for k, v in pip.items() if conda.get(k) != v} == {}


def test_environment_yml_names_nothing_pyproject_does_not():
    assert set(conda_pins()) - set(pip_pins()) == set()


def test_torch_is_pinned_to_the_cpu_build_on_disk():
    # Any other version pulls a multi-GB CUDA build on the course's machines.
    assert pip_pins()["torch"] == "2.13.0"


def test_python_version_is_3_11_everywhere():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.11,<3.12"
    assert "- python=3.11" in (ROOT / "environment.yml").read_text()

"""Packaging: environment.yml and pyproject.toml describe the same environment, and the wheel
works outside the checkout."""

import os
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import yaml

import fusionlab
from conftest import fresh_environment

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_environment_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = list(project["dependencies"])
    for extra in ("book", "test"):
        wanted += project["optional-dependencies"][extra]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = [r for r in pip if not r.startswith("-e")]
    assert sorted(listed) == sorted(wanted)
    assert "-e .[book,test]" in pip
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    minimum = project["requires-python"].removeprefix(">=")
    assert tuple(map(int, python.split("=")[1].split("."))) >= tuple(map(int, minimum.split(".")))


def test_the_version_is_written_once():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert fusionlab.__version__ == project["version"]


def test_the_wheel_carries_the_reference_results_outside_the_checkout(tmp_path, built_wheel):
    """Install the wheel alone into a fresh virtual environment (its dependencies borrowed
    from this one, the checkout's fusionlab not), and from a folder outside the checkout read a
    chapter's stored results as its results cell does."""
    with zipfile.ZipFile(built_wheel) as z:
        shipped = {Path(n).name for n in z.namelist() if n.startswith("fusionlab/results/")}
    assert shipped == {p.name for p in (ROOT / "fusionlab" / "results").glob("*.json")}
    python, site = fresh_environment(tmp_path / "fresh")
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(site), str(built_wheel)], check=True)
    cell = (
        "import fusionlab\n"
        "from fusionlab.experiments import EXPERIMENTS, load_results, results_table\n"
        "assert fusionlab.__file__.startswith(%r), fusionlab.__file__\n"
        "reference = load_results('fusion-levels', 'cpu')\n"
        "table = results_table(reference, variants=list(EXPERIMENTS['fusion-levels'].variants))\n"
        "print(table.splitlines()[2])\n" % str(site))
    env = {k: v for k, v in os.environ.items() if k not in ("FUSIONLAB_RESULTS", "PYTHONPATH")}
    out = subprocess.run([python, "-c", cell], cwd=tmp_path, env=env, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("| c5 | 3 | ")

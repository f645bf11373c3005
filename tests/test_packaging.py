"""Packaging: environment.yml and pyproject.toml describe the same environment, and the wheel
works outside the checkout."""

import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

try:  # Python 3.11 and later
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, as a package
    import tomli as tomllib

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


def test_metadata_licence_and_addresses(built_wheel):
    with zipfile.ZipFile(built_wheel) as z:
        name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = z.read(name).decode()
        licences = [n for n in z.namelist() if "/licenses/" in n]
    assert "License-Expression: MIT" in metadata
    assert [Path(n).name for n in licences] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    url = yaml.safe_load((ROOT / "book" / "_config.yml").read_text())["repository"]["url"]
    assert f"Project-URL: Source, {url}" in metadata
    assert "Requires-Dist: torch>=2.3" in metadata


def test_the_sdist_ships_no_tests_it_cannot_run(tmp_path):
    source = tmp_path / "source"
    for folder in ("fusionlab", "tests"):
        shutil.copytree(ROOT / folder, source / folder,
                        ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE", "MANIFEST.in"):
        shutil.copy(ROOT / name, source / name)
    subprocess.run([sys.executable, "-c", "from setuptools import build_meta; "
                    f"build_meta.build_sdist({str(tmp_path / 'dist')!r})"],
                   cwd=source, check=True, capture_output=True)
    with tarfile.open(next((tmp_path / "dist").glob("*.tar.gz"))) as tar:
        names = tar.getnames()
    assert not [n for n in names if "/tests/" in n]
    assert any(n.endswith("/fusionlab/results/fusion-levels-cpu.json") for n in names)
    assert any(n.endswith("/LICENSE") for n in names)

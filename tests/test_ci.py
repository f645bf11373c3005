"""The repository's CI workflow: valid for its host, running the same checks as .ci/run, and
installing the same PyTorch as the Makefile."""

import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "book.yml"
LINT = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows"]


def test_the_workflow_is_valid_and_a_broken_one_is_not(tmp_path):
    ok = subprocess.run([*LINT, str(WORKFLOW)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    broken = yaml.safe_load(WORKFLOW.read_text())
    del broken["jobs"]["test"]["runs-on"]
    (tmp_path / "broken.yml").write_text(yaml.safe_dump(broken))
    assert subprocess.run([*LINT, str(tmp_path / "broken.yml")],
                          capture_output=True).returncode != 0


def test_the_workflow_runs_the_ci_entry_and_publishes_the_book():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    jobs = workflow["jobs"]
    assert [s.get("run") for s in jobs["test"]["steps"] if "run" in s] == [".ci/run"]
    assert any(s.get("run") == "make book" for s in jobs["book"]["steps"])
    upload = next(s for s in jobs["book"]["steps"]
                  if s.get("uses", "").startswith("actions/upload-pages-artifact"))
    assert upload["with"]["path"] == "book/_build/html"
    assert jobs["deploy"]["permissions"] == {"pages": "write", "id-token": "write"}
    makefile = (ROOT / "Makefile").read_text()
    pinned = re.search(r"TORCH_SPEC \?= torch==([\d.]+)", makefile).group(1)
    assert workflow["env"]["TORCH_SPEC"] == f"torch=={pinned}+cpu"

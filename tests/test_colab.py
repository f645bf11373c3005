"""A chapter as Colab runs it: torch and the notebook stack installed system-wide, no
fusionlab, the chapter's install cell, then its first cells."""

import json
import os
import subprocess
from pathlib import Path

from conftest import fresh_environment

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = ROOT / "book" / "chapters" / "01-fusion-basics.ipynb"


def _code_cells(path: Path) -> list[str]:
    cells = json.loads(path.read_text())["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]


def test_a_chapter_installs_the_library_and_runs_its_first_cells(tmp_path, built_wheel):
    # Colab has IPython, matplotlib and ipywidgets, not the book's build toolchain
    python, site = fresh_environment(tmp_path / "colab", with_pip=True,
                                     without=("myst", "sphinx", "jupyter_book", "nbval"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FUSIONLAB", "PYTHONPATH"))}
    env.update(FUSIONLAB_INSTALL_SOURCE=built_wheel.as_uri(), PIP_NO_INDEX="1",
               FUSIONLAB_PROFILE="smoke", FUSIONLAB_DATA=str(tmp_path / "no-data"),
               FUSIONLAB_DOWNLOAD="0", MPLBACKEND="Agg", TQDM_DISABLE="1")
    torch_before = subprocess.run([python, "-c", "import torch; print(torch.__file__)"],
                                  env=env, capture_output=True, text=True, check=True).stdout
    install, setup = _code_cells(CHAPTER)[:2]
    check = ("import fusionlab, importlib.metadata, torch\n"
             f"assert fusionlab.__file__.startswith({str(site)!r}), fusionlab.__file__\n"
             "print(torch.__file__)\n"
             "print(sorted(importlib.metadata.distribution('fusionlab-book').metadata"
             ".get_all('Provides-Extra')))\n")
    out = subprocess.run([python, "-c", install + "\n" + setup + "\n" + check], cwd=tmp_path,
                         env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "SyntheticScenes" in out.stdout  # the data fallback, announced
    assert "profile smoke" in out.stdout
    lines = out.stdout.strip().splitlines()
    assert lines[-2] == torch_before.strip()  # the runtime's torch, not another one
    assert "colab" in lines[-1]

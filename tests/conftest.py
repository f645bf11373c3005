import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest
import torch

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test writes its CamVid cache into a fresh folder, never the user's."""
    monkeypatch.setenv("FUSIONLAB_CACHE", str(tmp_path_factory.mktemp("cache")))


def real_camvid() -> Path | None:
    root = os.environ.get("FUSIONLAB_DATA")
    if root and (Path(root) / "camvid" / "train.txt").is_file():
        return Path(root) / "camvid"
    return None


def real_weights() -> Path | None:
    """The folder of torchvision's ImageNet MobileNetV2 file when ``FUSIONLAB_WEIGHTS`` holds
    it (CI points it at the shared copy), else ``None``."""
    folder = os.environ.get("FUSIONLAB_WEIGHTS")
    if folder and (Path(folder) / "mobilenet_v2-b0353104.pth").is_file():
        return Path(folder)
    return None


@pytest.fixture(scope="session")
def built_wheel(tmp_path_factory) -> Path:
    """A wheel of this checkout, built from a copy of its package files (so that no stale
    build folder of the checkout counts)."""
    root = Path(__file__).resolve().parents[1]
    work = tmp_path_factory.mktemp("wheel")
    shutil.copytree(root / "fusionlab", work / "source" / "fusionlab",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE", "MANIFEST.in"):
        shutil.copy(root / name, work / "source" / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(work / "source"), "--no-deps",
                    "--no-build-isolation", "-q", "-w", str(work / "dist")], check=True)
    return next((work / "dist").glob("fusionlab_book-*.whl"))


def fresh_environment(folder: Path, with_pip: bool = False, without=()) -> tuple[Path, Path]:
    """A new virtual environment that borrows this one's installed packages, except fusionlab
    (its files, its metadata and its editable-install hook) and those whose names start with
    one of ``without``: torch, numpy and the rest are there as if installed system-wide, as on
    Colab, and fusionlab is not.

    Returns:
        (its python, its site-packages folder).
    """
    venv.create(folder, with_pip=with_pip)
    python = folder / "bin" / "python"
    if with_pip:  # ensurepip's setuptools would shadow the newer one torch asks for
        subprocess.run([python, "-m", "pip", "uninstall", "-q", "-y", "setuptools"], check=True)
    site = Path(subprocess.run([python, "-c", "import sysconfig; "
                                "print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    borrowed = folder / "borrowed"
    borrowed.mkdir()
    for path in sys.path:
        if path.endswith("site-packages") and Path(path).is_dir():
            for entry in Path(path).iterdir():
                name = entry.name.lower()
                if not (name.startswith(("fusionlab", "__editable__", *without))
                        or name.endswith(".pth")
                        or (borrowed / entry.name).exists()):
                    (borrowed / entry.name).symlink_to(entry)
    (site / "borrowed.pth").write_text(f"{borrowed}\n")  # a path, processed as no site dir
    return python, site

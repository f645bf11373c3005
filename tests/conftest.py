import os
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

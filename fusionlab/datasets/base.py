"""A dataset held as uint8 arrays in memory, the common ground of CamVid and SyntheticScenes."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from fusionlab.datasets.transforms import random_scale_crop_flip

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
_NORMALISED = np.ascontiguousarray(  # (3, 256): channel c of uint8 value v, normalised
    ((np.arange(256, dtype=np.float32)[:, None] / 255.0 - IMAGENET_MEAN) / IMAGENET_STD).T)


def normalise(image: np.ndarray) -> torch.Tensor:
    """uint8 RGB (H, W, 3) -> float32 (3, H, W), scaled to [0, 1] and standardised with the
    ImageNet mean and std (the statistics pretrained encoders expect).

    Each value is read from ``_NORMALISED``, the 256 possible results per channel computed once
    with the same float32 arithmetic, ``(v / 255 - mean) / std``: bit for bit the same values,
    2.5 times faster than computing them per pixel.

    Raises:
        TypeError: an image that is not a uint8 numpy array (names the dtype received).
        ValueError: an image that is not (H, W, 3)."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise TypeError(f"normalise takes a uint8 (H, W, 3) image, got "
                        f"{getattr(image, 'dtype', type(image).__name__)}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"normalise takes a uint8 (H, W, 3) image, got shape {image.shape}")
    out = np.empty((3, *image.shape[:2]), np.float32)  # (3, H, W)
    for c in range(3):
        np.take(_NORMALISED[c], image[..., c], out=out[c])  # (H, W)
    return torch.from_numpy(out)


def denormalise(image: torch.Tensor) -> np.ndarray:
    """Inverse of ``normalise``: float (3, H, W) -> uint8 RGB (H, W, 3) for display."""
    x = image.detach().cpu().numpy().transpose(1, 2, 0) * IMAGENET_STD + IMAGENET_MEAN
    return (np.clip(x, 0, 1) * 255).round().astype(np.uint8)  # (H, W, 3)


def spread_samples(dataset, n: int) -> tuple[list[int], torch.Tensor, torch.Tensor]:
    """``n`` samples spread evenly over ``dataset``, its first and last included, so that the
    samples of a split cut from videos come from different sequences (all of them when it
    holds fewer).

    Returns:
        the indices, the images (n, 3, H, W) and the masks (n, H, W) stacked.

    Raises:
        ValueError: ``n`` below 1 or an empty dataset.
    """
    if n < 1 or len(dataset) == 0:
        raise ValueError(f"n >= 1 samples of a non-empty dataset expected, got n = {n} of "
                         f"{len(dataset)}")
    indices = np.linspace(0, len(dataset) - 1, min(n, len(dataset))).round().astype(int).tolist()
    samples = [dataset[i] for i in indices]
    return (indices, torch.stack([s["image"] for s in samples]),  # (n, 3, H, W)
            torch.stack([s["mask"] for s in samples]))  # (n, H, W)


def class_widths(masks: np.ndarray | torch.Tensor, class_index: int) -> np.ndarray:
    """The widths of class ``class_index`` in label maps: the length in pixels of each
    horizontal run of it (consecutive pixels of the class along a row of a mask), e.g. how
    thin a pole is drawn at the size the masks have.

    Args:
        masks: integer labels (N, H, W), a numpy array or a tensor.

    Returns:
        (R,) int, one entry per run, in row-major order; empty when the class is absent.

    Raises:
        ValueError: masks that are not (N, H, W), or a negative class index.
    """
    masks = np.asarray(masks)
    if masks.ndim != 3 or class_index < 0:
        raise ValueError(f"expected masks (N, H, W) and a class index >= 0, got shape "
                         f"{masks.shape} and {class_index}")
    inside = np.pad(masks == class_index, ((0, 0), (0, 0), (1, 1)))   # (N, H, W + 2)
    steps = np.diff(inside.astype(np.int8), axis=2)                   # (N, H, W + 1)
    # the padding closes every run in its own row: the k-th start pairs with the k-th end
    return np.flatnonzero(steps == -1) - np.flatnonzero(steps == 1)  # (R,)


class ArraySegmentation(Dataset):
    """Images and label maps held as arrays; returns normalised samples, optionally augmented.

    Every image is uint8, so a sample's image is always finite (no NaN or inf can reach the
    network from here).

    **Evaluation masks.** A dataset whose labels were resized (CamVid with ``size``) can also
    hold the labels at the copy's stored resolution, ``eval_masks``. Then each sample carries
    ``"eval_mask"``, the labels to score against after upsampling the logits to
    ``eval_size``, so that evaluation does not score labels that were themselves downsampled.
    Augmented samples never carry it (the augmentation moves the pixels).

    Args:
        images: uint8 (N, H, W, 3) RGB, N >= 1.
        masks: uint8 (N, H, W) labels, ``IGNORE_INDEX`` (255) for ignored pixels.
        augment: apply ``random_scale_crop_flip`` (seeded from torch's random state, so
            ``torch.manual_seed`` and DataLoader worker seeding make it repeatable).
        eval_masks: uint8 (N, H0, W0) labels at the stored resolution, or ``None``.

    Shape:
        ``ds[i]`` -> ``{"image": float32 (3, H, W), "mask": int64 (H, W), "index": int}``, plus
        ``"eval_mask": int64 (H0, W0)`` when ``eval_masks`` is given and ``augment`` is off.

    Raises:
        TypeError: images, masks or eval masks that are not numpy arrays of dtype uint8 (names
            the dtype received).
        ValueError: no images, or shapes other than the above (names the shapes), or
            ``eval_masks`` together with ``augment``.
    """

    CLASSES: tuple[str, ...] = ()
    PALETTE: np.ndarray = np.zeros((0, 3), np.uint8)

    def __init__(self, images: np.ndarray, masks: np.ndarray, augment: bool = False,
                 eval_masks: np.ndarray | None = None):
        _check_uint8("images", images, "(N, H, W, 3)", 4)
        _check_uint8("masks", masks, "(N, H, W)", 3)
        if images.shape[3] != 3 or len(images) == 0 or images.shape[:3] != masks.shape:
            raise ValueError(f"expected N >= 1 images (N, H, W, 3) and masks (N, H, W) of the "
                             f"same N, H, W; got {images.shape} and {masks.shape}")
        if eval_masks is not None:
            _check_uint8("eval_masks", eval_masks, "(N, H0, W0)", 3)
            if len(eval_masks) != len(masks):
                raise ValueError(f"expected one eval mask per image ({len(masks)}), got "
                                 f"{len(eval_masks)}")
            if augment:
                raise ValueError("eval_masks are for unaugmented evaluation; the augmentation "
                                 "would move the pixels of the image but not of its eval mask")
        self.images, self.masks, self.augment = images, masks, augment
        self.eval_masks = eval_masks

    @property
    def num_classes(self) -> int:
        return len(self.CLASSES)

    @property
    def eval_size(self) -> tuple[int, int]:
        """(H0, W0) in pixels: the size samples are scored at, that of ``"eval_mask"`` when the
        samples carry one, else that of ``"mask"``."""
        h, w = (self.masks if self.eval_masks is None else self.eval_masks).shape[1:]
        return int(h), int(w)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        image, mask = self.images[index], self.masks[index]
        if self.augment:
            rng = np.random.default_rng(int(torch.randint(2**62, ()).item()))
            image, mask = random_scale_crop_flip(image, mask, rng)
        sample = {"image": normalise(image),
                  "mask": torch.from_numpy(mask.astype(np.int64)),
                  "index": index}
        if self.eval_masks is not None and not self.augment:
            sample["eval_mask"] = torch.from_numpy(self.eval_masks[index].astype(np.int64))
        return sample

    def class_frequencies(self) -> np.ndarray:
        """Share of labelled pixels per class, (K,) summing to 1 (ignored pixels excluded)."""
        counts = np.bincount(self.masks.ravel(), minlength=256)[: self.num_classes]
        return counts / max(counts.sum(), 1)


def _check_uint8(name: str, array, shape: str, ndim: int) -> None:
    """Raise unless ``array`` is a uint8 numpy array with ``ndim`` dimensions."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{name} must be a numpy array {shape} of dtype uint8, got "
                        f"{type(array).__name__}")
    if array.dtype != np.uint8:
        raise TypeError(f"{name} must have dtype uint8, got {array.dtype}")
    if array.ndim != ndim:
        raise ValueError(f"{name} must have shape {shape}, got {array.shape}")

"""Image/label transforms with OpenCV: resizing and the papers' training augmentation."""

from __future__ import annotations

import cv2
import numpy as np

from fusionlab import IGNORE_INDEX


def resize_pair(image: np.ndarray, mask: np.ndarray, size: tuple[int, int]
                ) -> tuple[np.ndarray, np.ndarray]:
    """Resize an image (area when shrinking, bilinear when enlarging) and its labels (nearest).

    Args:
        image: uint8 (H, W, 3).
        mask: uint8 (H, W) labels.
        size: target (H', W') in pixels.

    Shape:
        (H, W, 3), (H, W) -> (H', W', 3), (H', W'). Inputs are returned unchanged when the size
        already matches.
    """
    h, w = size
    if image.shape[:2] == (h, w):
        return image, mask
    shrink = h * w < image.shape[0] * image.shape[1]
    image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST)
    return image, mask


def random_scale_crop_flip(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator,
                           scale: tuple[float, float] = (0.5, 2.0),
                           ignore_index: int = IGNORE_INDEX) -> tuple[np.ndarray, np.ndarray]:
    """The augmentation of the four papers: random scale, random crop back to the input size,
    random horizontal flip (e.g. DFN Sec. 4.1: scales 0.5 to 2.0, flip).

    The image is scaled by a factor drawn uniformly from ``scale``; where the scaled image is
    smaller than the crop it is padded (image with 0, labels with ``ignore_index``, so padding
    never counts in the loss).

    Args:
        image: uint8 (H, W, 3).
        mask: uint8 (H, W).
        rng: the random generator (the caller seeds it).
        scale: (low, high) scale factors.
        ignore_index: label written into padded pixels.

    Shape:
        (H, W, 3), (H, W) -> (H, W, 3), (H, W): the output size equals the input size.
    """
    h, w = mask.shape
    s = rng.uniform(*scale)
    sh, sw = max(1, round(h * s)), max(1, round(w * s))
    image, mask = resize_pair(image, mask, (sh, sw))  # (sh, sw, 3), (sh, sw)
    ph, pw = max(h - sh, 0), max(w - sw, 0)
    if ph or pw:
        image = cv2.copyMakeBorder(image, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=0)
        mask = cv2.copyMakeBorder(mask, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=ignore_index)
    top = rng.integers(0, mask.shape[0] - h + 1)
    left = rng.integers(0, mask.shape[1] - w + 1)
    image = image[top:top + h, left:left + w]  # (H, W, 3)
    mask = mask[top:top + h, left:left + w]  # (H, W)
    if rng.random() < 0.5:
        image, mask = image[:, ::-1], mask[:, ::-1]
    return np.ascontiguousarray(image), np.ascontiguousarray(mask)

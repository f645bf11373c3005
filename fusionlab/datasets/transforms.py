"""Image/label transforms with OpenCV: resizing and the papers' training augmentation."""

from __future__ import annotations

import cv2
import numpy as np

from fusionlab import IGNORE_INDEX


def resize_labels(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Centre-aligned nearest-neighbour resize of a label map.

    Output pixel x takes the label of the input pixel that contains its centre:
    ``floor((x + 1/2) * W_in / W_out)`` (the same along rows), computed in exact integer
    arithmetic; a centre exactly on the line between two input pixels takes the later one.
    ``cv2.INTER_NEAREST`` instead picks ``floor(x * W_in / W_out)``, the input pixel under the
    output pixel's top-left corner: with s = W_in / W_out its labels sit on average
    (s - 1) / (2s) output pixels up and left of the image (resized with area or bilinear
    interpolation, both centre-aligned), 1/6 of a pixel at s = 1.5, 1/3 at s = 3. On CamVid's
    val split at 180 x 240 -> 120 x 160 the two differ on 2.7% of the pixels.

    Args:
        mask: (H, W) label map of any dtype (labels are copied, never mixed).
        size: target (H', W') in pixels, each >= 1.

    Shape:
        (H, W) -> (H', W').

    Raises:
        ValueError: ``mask`` is not 2-D or empty, or ``size`` is not two integers >= 1.
    """
    if mask.ndim != 2 or 0 in mask.shape:
        raise ValueError(f"expected a non-empty (H, W) label map, got shape {mask.shape}")
    if (len(tuple(size)) != 2
            or any(not isinstance(s, (int, np.integer)) or s < 1 for s in size)):
        raise ValueError(f"size must be (H, W) with integers >= 1, got {size!r}")
    (h_in, w_in), (h, w) = mask.shape, size
    rows = (2 * np.arange(h) + 1) * h_in // (2 * h)  # (H',) source row of each output row
    cols = (2 * np.arange(w) + 1) * w_in // (2 * w)  # (W',)
    return mask[rows][:, cols]  # (H', W')


def resize_pair(image: np.ndarray, mask: np.ndarray, size: tuple[int, int]
                ) -> tuple[np.ndarray, np.ndarray]:
    """Resize an image (area when shrinking, bilinear when enlarging) and its labels
    (centre-aligned nearest neighbour, ``resize_labels``), so both stay registered.

    Args:
        image: uint8 (H, W, 3).
        mask: uint8 (H, W) labels.
        size: target (H', W') in pixels.

    Shape:
        (H, W, 3), (H, W) -> (H', W', 3), (H', W'). Inputs are returned unchanged when the size
        already matches.

    Raises:
        ValueError: image and labels of different sizes, or a bad ``size`` (see
            ``resize_labels``).
    """
    if image.shape[:2] != mask.shape:
        raise ValueError(f"image {image.shape[:2]} and labels {mask.shape} differ in size")
    h, w = size
    if image.shape[:2] == (h, w):
        return image, mask
    mask = resize_labels(mask, size)  # (H', W')
    shrink = h * w < image.shape[0] * image.shape[1]
    image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return image, mask


def random_scale_crop_flip(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator,
                           scale: tuple[float, float] = (0.5, 2.0),
                           ignore_index: int = IGNORE_INDEX) -> tuple[np.ndarray, np.ndarray]:
    """The augmentation of the four papers: random scale, random crop back to the input size,
    random horizontal flip (e.g. DFN Sec. 4.1: one of the scales {0.5, 0.75, 1, 1.5, 1.75}, and
    a flip).

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

    Differences from the paper:
        The factor is drawn uniformly from a range (0.5 to 2 by default), not from DFN's five
        scales.
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

"""Semantic boundaries from label maps: the pixels of the boundary F-score and the border target
of DFN's Border Network.

This module is the ground floor shared by ``fusionlab.metrics``, ``fusionlab.losses`` and the
datasets: it depends only on torch, numpy and OpenCV, never on a dataset reader.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch

from fusionlab import IGNORE_INDEX

__all__ = ["label_boundaries", "disk", "dilate", "border_dilation", "border_target"]


def _check_label_maps(labels: torch.Tensor | np.ndarray) -> None:
    if isinstance(labels, torch.Tensor):
        dtype, integer = labels.dtype, not (labels.is_floating_point() or labels.is_complex()
                                            or labels.dtype == torch.bool)
    elif isinstance(labels, np.ndarray):
        dtype, integer = labels.dtype, labels.dtype.kind in "iu"
    else:
        raise TypeError(f"expected labels as a torch.Tensor or numpy array, got "
                        f"{type(labels).__name__}")
    if labels.ndim != 3:
        raise ValueError(f"expected labels of shape (N, H, W), got {tuple(labels.shape)}")
    if not integer:
        raise TypeError(f"expected integer labels, got dtype {dtype}")


def label_boundaries(labels: torch.Tensor | np.ndarray, ignore_index: int = IGNORE_INDEX
                     ) -> torch.Tensor | np.ndarray:
    """Mark the pixels that touch a pixel of another class (4-neighbourhood).

    A boundary between classes a and b marks the pixels on both sides. Pairs involving an
    ignored pixel do not count (the border of the void region is not a semantic boundary), and
    the image frame is no boundary. The boundary of class c alone (as in the per-class boundary
    F-score) is ``label_boundaries(labels) & (labels == c)``: the pixels of c that touch another
    labelled class.

    Args:
        labels: int (N, H, W) label maps, a torch tensor (any device) or a numpy array; the
            result is of the same kind.
        ignore_index: label that never forms a boundary.

    Shape:
        int (N, H, W) -> bool (N, H, W).

    Raises:
        ValueError: if ``labels`` is not 3-D.
        TypeError: if ``labels`` is not an integer tensor or array.
    """
    _check_label_maps(labels)
    valid = labels != ignore_index
    edge = np.zeros_like(valid) if isinstance(valid, np.ndarray) else torch.zeros_like(valid)
    # horizontal neighbours (x, x+1) and vertical neighbours (y, y+1)
    dx = (labels[:, :, 1:] != labels[:, :, :-1]) & valid[:, :, 1:] & valid[:, :, :-1]
    dy = (labels[:, 1:, :] != labels[:, :-1, :]) & valid[:, 1:, :] & valid[:, :-1, :]
    edge[:, :, 1:] |= dx
    edge[:, :, :-1] |= dx
    edge[:, 1:, :] |= dy
    edge[:, :-1, :] |= dy
    return edge


def disk(radius: float) -> np.ndarray:
    """The Euclidean disk of ``radius`` pixels as a structuring element: the offsets (dy, dx)
    with dy^2 + dx^2 <= radius^2.

    Shape:
        radius in pixels -> uint8 (2R + 1, 2R + 1) with R = floor(radius), 1 inside the disk.

    Raises:
        ValueError: a negative radius.
    """
    if not radius >= 0:
        raise ValueError(f"radius must be >= 0 pixels, got {radius!r}")
    r = int(np.floor(radius))
    dy, dx = np.mgrid[-r:r + 1, -r:r + 1]  # (2R + 1, 2R + 1) each
    # squared offsets are integers: compare with floor(radius^2) so that rounding in radius^2
    # never drops an offset lying exactly on the circle
    return (dy**2 + dx**2 <= np.floor(radius**2 + 1e-9)).astype(np.uint8)


def dilate(mask: torch.Tensor | np.ndarray, radius: float) -> torch.Tensor | np.ndarray:
    """Grow a boolean mask to every pixel within Euclidean distance ``radius`` of a marked
    pixel (a morphological dilation by ``disk(radius)``; pixels outside the image never count).

    ``mask & dilate(other, r)`` selects the pixels of ``mask`` whose distance to ``other`` is at
    most r: the matching step of the boundary F-score, exact for any r (no chessboard or
    rounded-up approximation).

    Args:
        mask: bool (N, H, W), a torch tensor (any device) or a numpy array; the result is of
            the same kind.
        radius: in pixels, >= 0.

    Shape:
        bool (N, H, W) -> bool (N, H, W).

    Raises:
        ValueError: ``mask`` is not 3-D or ``radius`` is negative.
        TypeError: ``mask`` is not a bool tensor or array.
    """
    if not ((isinstance(mask, torch.Tensor) and mask.dtype == torch.bool)
            or (isinstance(mask, np.ndarray) and mask.dtype == np.bool_)):
        raise TypeError(f"expected a bool mask (torch.Tensor or numpy array), got "
                        f"{getattr(mask, 'dtype', type(mask).__name__)}")
    if mask.ndim != 3:
        raise ValueError(f"expected a mask of shape (N, H, W), got {tuple(mask.shape)}")
    kernel = disk(radius)  # (2R + 1, 2R + 1)
    if kernel.shape == (1, 1) or math.prod(mask.shape) == 0:
        return mask
    maps = (mask if isinstance(mask, np.ndarray) else mask.detach().cpu().numpy()).astype(np.uint8)
    grown = np.stack([cv2.dilate(m, kernel) if m.any() else m for m in maps]) > 0  # (N, H, W)
    return grown if isinstance(mask, np.ndarray) else torch.from_numpy(grown).to(mask.device)


def border_dilation(height: int, width: int) -> int:
    """Side in pixels of the square dilation of DFN's border target at an (H, W) label map.

    The official code dilates with a 7 x 7 square at its 512 x 512 training crops. The radius
    is scaled with the map's linear size: ``r = floor(3 * sqrt(H * W) / 512 + 1/2)``, side
    ``2r + 1``. This gives 7 at 512 x 512, 5 at 360 x 480, 3 at 180 x 240 and at 120 x 160, and
    1 (no dilation) below about 85 x 85.

    Shape:
        (H, W) in pixels -> side in pixels (an odd int >= 1).

    Raises:
        ValueError: a non-positive height or width.
    """
    if height < 1 or width < 1:
        raise ValueError(f"expected a positive height and width, got {height} x {width}")
    radius = int(np.floor(3 * np.sqrt(height * width) / 512 + 0.5))
    return 2 * radius + 1


def border_target(labels: torch.Tensor, ignore_index: int = IGNORE_INDEX,
                  dilation: int | None = None) -> torch.Tensor:
    """The border map that supervises DFN's Border Network: Canny on the label map, dilated.

    Yu et al., "Learning a Discriminative Feature Network for Semantic Segmentation" (DFN),
    CVPR 2018, Sec. 3.2; the recipe is the authors' TorchSeg code:
    ``cv2.Canny(label, 5, 5, apertureSize=7)`` marks the class changes (any change of label
    value exceeds the thresholds), and the edges are dilated with a square
    (``cv2.MORPH_RECT``) of side ``dilation``. Ignored pixels are handled as below, and are
    never marked.

    Ignored pixels: before Canny, each ignored pixel takes the class of its nearest labelled
    pixel (Euclidean distance, OpenCV's 5 x 5 approximation). So the edge between void and a
    class is never a border, whatever the class's label index and on whichever side the void
    lies, like the semantic boundaries of ``label_boundaries`` and the boundary F-score; the
    frame of the padding added by a crop is no border either; and two classes separated by a
    thin void line (as CamVid's annotators often draw them) keep their border: its line falls
    in the void and the dilation reaches the labelled pixels within ``dilation // 2`` of it.

    Properties worth knowing (inherited from the official recipe): Canny marks one pixel line
    per class change, on the side of the smaller column/row index whatever the two labels
    are, so a band of side d covers d // 2 + 1 pixels on that side and d // 2 on the other;
    two class changes closer than about three pixels merge into one line (Canny's 7 x 7
    aperture).

    Args:
        labels: int (N, H, W) label maps with values 0..255 (``ignore_index`` included).
        ignore_index: label of ignored pixels.
        dilation: side in pixels of the square dilation (odd, >= 1; 1 keeps Canny's one-pixel
            lines). ``None``: ``border_dilation(H, W)``, i.e. 7 at 512 x 512 (the
            official value) and 3 at 120 x 160.

    Shape:
        int (N, H, W) -> bool (N, H, W), on the device of ``labels``.

    Raises:
        TypeError: ``labels`` is not an integer tensor.
        ValueError: ``labels`` is not 3-D, has a label other than ``ignore_index`` outside
            0..255 (OpenCV's Canny needs 8-bit maps; names the value), or ``dilation`` is not
            an odd integer >= 1.

    Differences from the paper:
        The paper says only that the border is obtained from the ground truth with a
        traditional method such as Canny. Scaling the dilation with the resolution is ours: the
        code's 7 x 7 square at 120 x 160 would mark, relative to the image, a band as wide as
        a 22-pixel band at 512 x 512. The official code sets ignored pixels to class 0 instead
        of the nearest class, so its void edges are borders next to every class but class 0,
        on the void's side or the class's depending on where the void lies (it computes the
        target before the random crop, so that the padding makes no border).
    """
    _check_label_maps(labels)
    n, h, w = labels.shape
    if dilation is None:
        dilation = border_dilation(h, w)
    if not isinstance(dilation, (int, np.integer)) or dilation < 1 or dilation % 2 == 0:
        raise ValueError(f"dilation must be an odd integer >= 1 (pixels), got {dilation!r}")
    maps = labels.detach().cpu().numpy()  # (N, H, W)
    ignored = maps == ignore_index  # (N, H, W)
    known = maps[~ignored]  # (P,) the labelled pixels
    if known.size and (known.min() < 0 or known.max() > 255):
        bad = known.min() if known.min() < 0 else known.max()
        raise ValueError(f"border_target needs labels in 0..255 (8-bit), got {bad}")
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (int(dilation), int(dilation)))
    borders = np.zeros((n, h, w), dtype=bool)
    for i, label in enumerate(maps):
        if ignored[i].all():
            continue
        filled = _fill_from_nearest(label, ignored[i]).astype(np.uint8)  # (H, W)
        edges = cv2.Canny(filled, 5, 5, apertureSize=7)  # (H, W) uint8, 255 on edges
        borders[i] = (cv2.dilate(edges, kernel) > 0) & ~ignored[i]  # (H, W)
    return torch.from_numpy(borders).to(labels.device)


def _fill_from_nearest(label: np.ndarray, ignored: np.ndarray) -> np.ndarray:
    """``label`` (H, W) with every ``ignored`` pixel set to the label of its nearest labelled
    pixel (at least one pixel is labelled)."""
    if not ignored.any():
        return label
    # each labelled pixel (a zero of the source) gets its own index; every ignored pixel gets
    # the index of its nearest labelled pixel
    _, nearest = cv2.distanceTransformWithLabels(ignored.astype(np.uint8), cv2.DIST_L2, 5,
                                                 labelType=cv2.DIST_LABEL_PIXEL)  # (H, W)
    value_of = np.zeros(nearest.max() + 1, dtype=label.dtype)  # index -> its pixel's label
    value_of[nearest[~ignored]] = label[~ignored]
    return value_of[nearest]  # (H, W)

"""Semantic boundaries from label maps: the targets of border supervision and of the
boundary F-score."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fusionlab import IGNORE_INDEX


def label_boundaries(labels: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Mark the pixels that touch a pixel of another class (4-neighbourhood).

    A boundary between classes a and b marks the pixels on both sides. Pairs involving an
    ignored pixel do not count (the border of the void region is not a semantic boundary).

    Args:
        labels: int (N, H, W) label maps.
        ignore_index: label that never forms a boundary.

    Shape:
        (N, H, W) -> bool (N, H, W).

    Raises:
        ValueError: if ``labels`` is not 3-D.
    """
    if labels.dim() != 3:
        raise ValueError(f"expected labels of shape (N, H, W), got {tuple(labels.shape)}")
    valid = labels != ignore_index
    edge = torch.zeros_like(valid)
    # horizontal neighbours (x, x+1) and vertical neighbours (y, y+1)
    dx = (labels[:, :, 1:] != labels[:, :, :-1]) & valid[:, :, 1:] & valid[:, :, :-1]
    dy = (labels[:, 1:, :] != labels[:, :-1, :]) & valid[:, 1:, :] & valid[:, :-1, :]
    edge[:, :, 1:] |= dx
    edge[:, :, :-1] |= dx
    edge[:, 1:, :] |= dy
    edge[:, :-1, :] |= dy
    return edge


def dilate(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Grow a boolean mask by ``radius`` pixels in the chessboard metric (a (2r+1)^2 square).

    Shape:
        bool (N, H, W) -> bool (N, H, W).
    """
    if radius <= 0:
        return mask
    x = mask[:, None].float()  # (N, 1, H, W)
    x = F.max_pool2d(x, 2 * radius + 1, stride=1, padding=radius)  # (N, 1, H, W)
    return x[:, 0] > 0

"""The contract every segmentation model in fusionlab follows.

An encoder gives stage features c2..c5, a decoder fuses some of them, a head predicts class
scores; the model returns a ``SegOutput`` whose logits (and auxiliary predictions) are at the
input size, so losses and metrics never have to know the model's output stride.
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import nn

from fusionlab.encoders import LEVELS, ResNetEncoder
from fusionlab.layers import upsample_like
from fusionlab.outputs import SegOutput


HeadFactory = Callable[[int, int], nn.Module]
"""Builds a prediction head from (in_channels, num_classes); the head maps decoder features
(N, C, h, w) to class scores (N, K, h', w') at any resolution (``forward`` resizes them)."""


def conv1x1_head(in_channels: int, num_classes: int) -> nn.Module:
    """The default prediction head: a 1x1 convolution C -> K (a per-pixel linear classifier).

    Shape:
        (N, C, h, w) -> (N, K, h, w).
    """
    return nn.Conv2d(in_channels, num_classes, 1)


def identity_head(in_channels: int, num_classes: int) -> nn.Module:
    """A head that passes class scores through: for decoders whose last map already has one
    channel per class (GCN's s_2, the papers' own prediction).

    Shape:
        (N, K, h, w) -> (N, K, h, w).

    Raises:
        ValueError: ``in_channels`` other than ``num_classes``.
    """
    if in_channels != num_classes:
        raise ValueError(f"the identity head needs one input channel per class: got "
                         f"{in_channels} channels for {num_classes} classes")
    return nn.Identity()


def check_levels(levels: Iterable[str]) -> tuple[str, ...]:
    """Validate and sort a subset of the encoder levels, lowest first.

    Raises:
        ValueError: an empty subset, a repeated level, or a name outside c2..c5.
    """
    levels = tuple(levels)
    unknown = [lv for lv in levels if lv not in LEVELS]
    if not levels or unknown or len(set(levels)) != len(levels):
        raise ValueError(f"levels must be a non-empty subset of {LEVELS} without repeats, "
                         f"got {levels}")
    return tuple(lv for lv in LEVELS if lv in levels)


class SegmentationModel(nn.Module):
    """Base class: runs the encoder, calls ``decode`` and resizes all outputs to the input.

    Subclasses implement ``decode(features) -> (logits, aux)`` at any resolution.

    Args:
        num_classes: number of classes K (at least 2).
        encoder: a ``ResNetEncoder`` (or any module with the same ``out_channels``/``strides``
            attributes returning a dict c2..c5).

    Shape:
        images (N, 3, H, W) -> ``SegOutput`` with logits (N, K, H, W).

    Raises:
        ValueError: ``num_classes < 2``; images that are not a float (N, C_in, H, W) tensor.
    """

    def __init__(self, num_classes: int, encoder: ResNetEncoder):
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        self.num_classes = num_classes
        self.encoder = encoder

    def decode(self, features: dict[str, torch.Tensor]
               ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Encoder features ``{"c2": (N, C2, H/4, W/4), ...}`` -> (logits (N, K, h, w), aux
        dict of (N, K_aux, h', w')) at any resolution; ``forward`` resizes them."""
        raise NotImplementedError

    def features(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """The encoder's stages of float images.

        Shape:
            images (N, 3, H, W) -> ``{"c2": (N, C2, H/4, W/4), ..., "c5": (N, C5, H/32, W/32)}``
            (c5 at the encoder's output stride).

        Raises:
            ValueError: images that are not float.
        """
        if not torch.is_floating_point(images):
            raise ValueError(f"expected float images, got dtype {images.dtype}")
        return self.encoder(images)  # {"c2": (N, C2, H/4, W/4), ...}

    def forward(self, images: torch.Tensor) -> SegOutput:
        logits, aux = self.decode(self.features(images))
        return SegOutput(self.resize_logits(logits, images),  # (N, K, H, W)
                         {name: upsample_like(a, images) for name, a in aux.items()})

    def resize_logits(self, logits: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        """The logits at the images' size: logits that cover the images (a DUpsampling head's,
        on the input's pixel grid, padded at the bottom and right) are cropped, smaller ones
        upsampled bilinearly (a bilinear resize of the larger would stretch the patch grid).

        Shape:
            logits (N, K, h, w), images (N, 3, H, W) -> (N, K, H, W).
        """
        (h, w), (hs, ws) = images.shape[-2:], logits.shape[-2:]
        if hs >= h and ws >= w:
            return logits[..., :h, :w]  # (N, K, H, W)
        return upsample_like(logits, images)  # (N, K, H, W)

"""The three baselines every chapter compares against: FCN, UNet and FPN.

- FCN (Long, Shelhamer, Darrell, CVPR 2015): no fusion, predict from the top stage and upsample
  (our FCN is the "FCN-32s" end of their family).
- UNet (Ronneberger, Fischer, Brox, MICCAI 2015): top-down decoder, each lower level joins by
  concatenation followed by two 3x3 convolutions.
- FPN (Lin et al., CVPR 2017, Sec. 3): top-down decoder, each lower level joins by addition
  after a 1x1 lateral convolution, then a 3x3 convolution.

UNet and FPN share one ``TopDownDecoder`` and differ only in the fusion block they pass to it,
which is also how later chapters plug in their own fusion (gates, attention, ...).

In the book: chapter 1, "Encoders, decoders and the semantic gap" (``book/chapters/01-fusion-
basics.ipynb``); what it trains and the paper's own numbers: experiment ``fusion-levels`` in
``fusionlab/experiments/ablations/exfuse.py``.
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import nn

from fusionlab.encoders import ResNetEncoder
from fusionlab.layers import ConvBNReLU, upsample_like
from fusionlab.models.base import HeadFactory, SegmentationModel, check_levels, conv1x1_head


class AddFusion(nn.Module):
    """FPN's merge: a 1x1 lateral projection of the low level plus the upsampled high level,
    smoothed by a 3x3 convolution (Lin et al., CVPR 2017, Sec. 3, Fig. 3).

    Args:
        low_channels: channels of the encoder feature C_low.
        channels: decoder channels C.

    Shape:
        low (N, C_low, H, W), high (N, C, h, w) -> (N, C, H, W).

    Differences from the paper:
        FPN keeps the 3x3 smoothing per output level; we apply it after each merge because we
        predict only from the finest merged level.
    """

    def __init__(self, low_channels: int, channels: int):
        super().__init__()
        self.lateral = nn.Conv2d(low_channels, channels, 1)
        self.smooth = ConvBNReLU(channels, channels, 3)

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        return self.smooth(self.lateral(low) + upsample_like(high, low))  # (N, C, H, W)


class ConcatFusion(nn.Module):
    """UNet's merge: concatenate the low level and the upsampled high level, then two 3x3
    convolutions (Ronneberger et al., MICCAI 2015, Fig. 1).

    Shape:
        low (N, C_low, H, W), high (N, C, h, w) -> (N, C, H, W).

    Differences from the paper:
        Bilinear upsampling instead of a 2x2 up-convolution, padded convolutions (no cropping),
        and batch normalisation.
    """

    def __init__(self, low_channels: int, channels: int):
        super().__init__()
        self.fuse = nn.Sequential(ConvBNReLU(low_channels + channels, channels, 3),
                                  ConvBNReLU(channels, channels, 3))

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        x = torch.cat([low, upsample_like(high, low)], dim=1)  # (N, C_low + C, H, W)
        return self.fuse(x)  # (N, C, H, W)


FusionFactory = Callable[[int, int], nn.Module]
"""Builds a fusion block from (low_channels, channels); the block maps (low, high) -> fused."""


class TopDownDecoder(nn.Module):
    """Top-down decoder over a chosen subset of levels, with a pluggable fusion block.

    The highest chosen level is projected to ``channels`` by a 3x3 convolution; then, from high
    to low, each lower chosen level is merged in: ``p_l = fuse_l(c_l, p_{l+1})``.

    Args:
        in_channels: encoder channels per level (``ResNetEncoder.out_channels``).
        levels: the levels to fuse, a subset of c2..c5 (order does not matter).
        channels: decoder channels C.
        fusion: a factory ``(low_channels, channels) -> nn.Module`` such as ``AddFusion``.

    Shape:
        dict of features -> (N, C, H_low, W_low), at the lowest chosen level's resolution.

    Raises:
        ValueError: bad ``levels`` (see ``check_levels``).
    """

    def __init__(self, in_channels: dict[str, int], levels: Iterable[str], channels: int,
                 fusion: FusionFactory):
        super().__init__()
        self.levels = check_levels(levels)
        top = self.levels[-1]
        self.top = ConvBNReLU(in_channels[top], channels, 3)
        self.fusions = nn.ModuleDict({lv: fusion(in_channels[lv], channels)
                                      for lv in self.levels[:-1]})

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        x = self.top(features[self.levels[-1]])  # (N, C, H_top, W_top)
        for level in reversed(self.levels[:-1]):
            x = self.fusions[level](features[level], x)  # (N, C, H_l, W_l)
        return x


class _TopDownModel(SegmentationModel):
    fusion: FusionFactory

    def __init__(self, num_classes: int, encoder: ResNetEncoder,
                 levels: Iterable[str] = ("c2", "c3", "c4", "c5"), channels: int = 128,
                 head: HeadFactory = conv1x1_head):
        super().__init__(num_classes, encoder)
        self.decoder = TopDownDecoder(encoder.out_channels, levels, channels, type(self).fusion)
        self.head = head(channels, num_classes)

    @property
    def levels(self) -> tuple[str, ...]:
        return self.decoder.levels

    def decode(self, features):
        return self.head(self.decoder(features)), {}  # (N, K, H_low, W_low)


class FPN(_TopDownModel):
    """Feature Pyramid Network decoder for segmentation: fusion by addition.

    Lin et al., "Feature Pyramid Networks for Object Detection", CVPR 2017, Sec. 3. With
    ``levels`` one reproduces ExFuse's Table 1 (Sec. 3): fuse {c5}, {c4, c5}, ..., {c2..c5}.

    Args:
        num_classes: K.
        encoder: a ``ResNetEncoder``.
        levels: the levels fused (default all four).
        channels: decoder channels (FPN: 256; 128 by default here for CPU budgets).
        head: builds the prediction head from (channels, K); default a 1x1 convolution.
            Another head (e.g. DUpsampling's) is a swap, not a subclass.

    Shape:
        images (N, 3, H, W) -> ``SegOutput`` logits (N, K, H, W), no auxiliary outputs.

    Raises:
        ValueError: bad ``levels`` or images (see ``SegmentationModel``).

    Differences from the paper:
        One prediction from the finest fused level instead of one per pyramid level.
    """

    fusion = AddFusion


class UNet(_TopDownModel):
    """UNet-style decoder on a ResNet encoder: fusion by concatenation.

    Ronneberger et al., "U-Net", MICCAI 2015, Sec. 2 (the expansive path).

    Args, Shape, Raises: as ``FPN``.

    Differences from the paper:
        A ResNet encoder, bilinear upsampling, padded convolutions and batch normalisation; the
        decoder stops at the lowest chosen level (stride 4 at most) and the logits are
        upsampled bilinearly to the input.
    """

    fusion = ConcatFusion


class FCN(SegmentationModel):
    """Fully convolutional network without fusion: classify the top stage, upsample.

    Long, Shelhamer, Darrell, "Fully Convolutional Networks for Semantic Segmentation",
    CVPR 2015, Sec. 4.1 (FCN-32s).

    Args:
        num_classes: K.
        encoder: a ``ResNetEncoder``.
        channels: channels of the 3x3 convolution before the classifier.
        head: builds the prediction head from (channels, K); default a 1x1 convolution.

    Shape:
        images (N, 3, H, W) -> ``SegOutput`` logits (N, K, H, W).

    Differences from the paper:
        A ResNet encoder and a 3x3 Conv-BN-ReLU before the 1x1 classifier; bilinear instead of
        learned upsampling.
    """

    def __init__(self, num_classes: int, encoder: ResNetEncoder, channels: int = 128,
                 head: HeadFactory = conv1x1_head):
        super().__init__(num_classes, encoder)
        self.neck = ConvBNReLU(encoder.out_channels["c5"], channels, 3)
        self.head = head(channels, num_classes)

    def decode(self, features):
        return self.head(self.neck(features["c5"])), {}  # (N, K, H/32, W/32)

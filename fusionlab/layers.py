"""Small building blocks shared by several papers' modules."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ConvBNReLU(nn.Sequential):
    """Convolution, batch normalisation and ReLU: the basic unit of every decoder here.

    Padding keeps the spatial size for stride 1 (``padding = dilation * (kernel_size - 1) // 2``).

    Args:
        in_channels: input channels C_in.
        out_channels: output channels C_out.
        kernel_size: square kernel size k (odd).
        stride: convolution stride.
        dilation: convolution dilation.
        relu: append the ReLU (``False`` gives Conv-BN only).

    Shape:
        input (N, C_in, H, W) -> output (N, C_out, ceil(H / stride), ceil(W / stride)).

    Raises:
        ValueError: if ``kernel_size`` is even (the padding could not keep the size).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3,
                 stride: int = 1, dilation: int = 1, relu: bool = True):
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        padding = dilation * (kernel_size - 1) // 2
        layers = [
            nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                      dilation=dilation, bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        if relu:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


def upsample_like(x: torch.Tensor, reference: torch.Tensor | tuple[int, int]) -> torch.Tensor:
    """Bilinearly resize ``x`` to the spatial size of ``reference`` (the papers' Up(.)).

    Args:
        x: features (N, C, h, w).
        reference: a tensor (..., H, W) or a size (H, W).

    Shape:
        (N, C, h, w) -> (N, C, H, W). Returns ``x`` itself when the size already matches.
    """
    size = tuple(reference.shape[-2:]) if isinstance(reference, torch.Tensor) else tuple(reference)
    if tuple(x.shape[-2:]) == size:
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)

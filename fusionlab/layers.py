"""Small building blocks shared by several papers' modules."""

from __future__ import annotations

import functools

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


@functools.lru_cache(maxsize=64)
def _interpolation_matrix(n_in: int, n_out: int, dtype: torch.dtype,
                          device: torch.device) -> torch.Tensor:
    """The (n_out, n_in) matrix of 1-D linear interpolation with ``align_corners=False``:
    output sample o reads the input at (o + 0.5) * n_in / n_out - 0.5, clamped to the first
    and last samples, exactly as ``F.interpolate(mode="bilinear")`` along one axis."""
    src = (torch.arange(n_out, dtype=torch.float64) + 0.5) * (n_in / n_out) - 0.5
    src = src.clamp(min=0)
    lower = src.floor().long().clamp(max=n_in - 1)  # (n_out,)
    upper = (lower + 1).clamp(max=n_in - 1)  # (n_out,)
    frac = src - lower
    rows = torch.arange(n_out)
    matrix = torch.zeros(n_out, n_in, dtype=torch.float64)
    matrix.index_put_((rows, lower), 1 - frac, accumulate=True)
    matrix.index_put_((rows, upper), frac, accumulate=True)
    return matrix.to(dtype=dtype, device=device)


def upsample_like(x: torch.Tensor, reference: torch.Tensor | tuple[int, int]) -> torch.Tensor:
    """Bilinearly resize ``x`` to the spatial size of ``reference`` (the papers' Up(.)).

    The same function as ``F.interpolate(x, size, mode="bilinear", align_corners=False)``
    (equal to float rounding, tested), computed for enlargements as two matrix products,
    A_H @ x @ A_W^T with the 1-D interpolation matrices: on a CPU its backward pass is several
    times faster than ``upsample_bilinear2d``'s, and decoders resize many maps per step.
    Reductions use ``F.interpolate``.

    Args:
        x: features (N, C, h, w), floating point.
        reference: a tensor (..., H, W) or a size (H, W).

    Shape:
        (N, C, h, w) -> (N, C, H, W). Returns ``x`` itself when the size already matches.
    """
    size = tuple(reference.shape[-2:]) if isinstance(reference, torch.Tensor) else tuple(reference)
    h, w = x.shape[-2:]
    if (h, w) == size:
        return x
    if size[0] < h or size[1] < w:
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    rows = _interpolation_matrix(h, size[0], x.dtype, x.device)  # (H, h)
    cols = _interpolation_matrix(w, size[1], x.dtype, x.device)  # (W, w)
    return rows @ (x @ cols.T)  # (N, C, h, W), then (N, C, H, W)

"""ResNet encoder that returns the four stage features c2..c5 the fusion papers work with.

Stage ``c_l`` has stride 2^l (4, 8, 16, 32) unless the output stride is capped by dilation
(DeepLab, "Rethinking Atrous Convolution", Sec. 3.1). The parameter names follow torchvision's
ResNet (``conv1``, ``bn1``, ``layer1`` .. ``layer4``), so its public ImageNet weights load
unchanged.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

LEVELS = ("c2", "c3", "c4", "c5")
"""Names of the encoder stages, lowest (stride 4) to highest (stride 32)."""

PRETRAINED_URLS = {
    "resnet18": "https://download.pytorch.org/models/resnet18-f37072fd.pth",
    "resnet34": "https://download.pytorch.org/models/resnet34-b627a593.pth",
    "resnet50": "https://download.pytorch.org/models/resnet50-0676ba61.pth",
}
"""torchvision's ImageNet-1k (V1) weights, loadable into the matching ``ResNetEncoder``."""

PRETRAINED_LAYOUTS = {
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
}


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convolutions and an identity (or projected) shortcut.

    He et al., "Deep Residual Learning for Image Recognition", CVPR 2016, Fig. 2.

    Shape:
        (N, C_in, H, W) -> (N, width, H / stride, W / stride).
    """

    expansion = 1

    def __init__(self, in_channels: int, width: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        out = width * self.expansion
        self.conv1 = nn.Conv2d(in_channels, width, 3, stride, dilation, dilation, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, out, 3, 1, dilation, dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(in_channels, out, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))  # (N, width, H / stride, W / stride)
        y = self.bn2(self.conv2(y))
        return self.relu(y + identity)


class Bottleneck(nn.Module):
    """ResNet bottleneck block (1x1, 3x3, 1x1; stride on the 3x3 as in torchvision's v1.5).

    He et al., CVPR 2016, Fig. 5 (right).

    Shape:
        (N, C_in, H, W) -> (N, 4 * width, H / stride, W / stride).
    """

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        out = width * self.expansion
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, dilation, dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(in_channels, out, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))  # (N, width, H / stride, W / stride)
        y = self.bn3(self.conv3(y))  # (N, 4 * width, H / stride, W / stride)
        return self.relu(y + identity)


def _shortcut(in_channels: int, out_channels: int, stride: int) -> nn.Module | None:
    if stride == 1 and in_channels == out_channels:
        return None
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                         nn.BatchNorm2d(out_channels))


class ResNetEncoder(nn.Module):
    """A ResNet backbone that returns its four stage outputs c2..c5.

    He et al., "Deep Residual Learning for Image Recognition", CVPR 2016, Table 1. The number of
    blocks per stage is free, so ExFuse's layer rearrangement (Sec. 3.1: move blocks from late
    to early stages) is a change of ``blocks``.

    Args:
        blocks: residual blocks in stages c2, c3, c4, c5 (ResNet-18: (2, 2, 2, 2)).
        widths: block widths of the four stages (ResNet: (64, 128, 256, 512)); a bottleneck
            stage outputs 4x its width.
        output_stride: 32, 16 or 8. Below 32 the last stages keep their resolution and dilate
            their convolutions instead (c5 at stride 16, or c4 and c5 at stride 8).
        in_channels: input image channels.
        block: ``"basic"`` (ResNet-18/34) or ``"bottleneck"`` (ResNet-50 and deeper).
        stem_channels: channels of the 7x7 stem convolution; defaults to ``widths[0]``, or 64
            for bottleneck blocks (torchvision's layout).

    Attributes:
        out_channels: dict level -> channels, e.g. ``{"c2": 64, ..., "c5": 512}``.
        strides: dict level -> output stride in pixels, e.g. ``{"c2": 4, ..., "c5": 32}``.

    Shape:
        input (N, in_channels, H, W) -> dict ``{"c2": (N, C2, ceil(H/4), ceil(W/4)), ...,
        "c5": (N, C5, ceil(H/s5), ceil(W/s5))}``, s5 = output_stride.

    Raises:
        ValueError: bad ``blocks``, ``widths``, ``output_stride`` or ``block``; an input that is
            not (N, in_channels, H, W).

    Differences from the paper:
        With dilation every block of a dilated stage uses the stage's dilation (torchvision uses
        the previous dilation in the first block of the stage).
    """

    def __init__(self, blocks: Sequence[int] = (2, 2, 2, 2),
                 widths: Sequence[int] = (64, 128, 256, 512), output_stride: int = 32,
                 in_channels: int = 3, block: str = "basic", stem_channels: int | None = None):
        super().__init__()
        blocks, widths = tuple(blocks), tuple(widths)
        if len(blocks) != 4 or any(int(b) < 1 for b in blocks):
            raise ValueError(f"blocks must be 4 positive counts (c2..c5), got {blocks}")
        if len(widths) != 4 or any(int(w) < 1 for w in widths):
            raise ValueError(f"widths must be 4 positive channel counts (c2..c5), got {widths}")
        if output_stride not in (8, 16, 32):
            raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride}")
        if block not in ("basic", "bottleneck"):
            raise ValueError(f"block must be 'basic' or 'bottleneck', got {block!r}")
        unit = BasicBlock if block == "basic" else Bottleneck
        if stem_channels is None:
            stem_channels = 64 if block == "bottleneck" else widths[0]
        self.in_channels = in_channels
        self.blocks, self.widths, self.block = blocks, widths, block

        self.conv1 = nn.Conv2d(in_channels, stem_channels, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_channels)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)

        self.out_channels: dict[str, int] = {}
        self.strides: dict[str, int] = {}
        channels, stride_so_far, dilation = stem_channels, 4, 1
        for i, (level, n, width) in enumerate(zip(LEVELS, blocks, widths)):
            stride = 1 if i == 0 else 2
            if stride == 2 and stride_so_far * 2 > output_stride:
                stride, dilation = 1, dilation * 2
            stride_so_far *= stride
            layers = []
            for j in range(n):
                layers.append(unit(channels, width, stride if j == 0 else 1, dilation))
                channels = width * unit.expansion
            self.add_module(f"layer{i + 1}", nn.Sequential(*layers))
            self.out_channels[level] = channels
            self.strides[level] = stride_so_far

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    @classmethod
    def pretrained(cls, name: str = "resnet18", output_stride: int = 32,
                   progress: bool = True) -> "ResNetEncoder":
        """Build torchvision's ResNet-18/34/50 layout and load its ImageNet weights.

        Needs internet on first use (the file is cached by ``torch.hub``); the file is loaded
        with ``weights_only=True``. The classifier (``fc``) weights are dropped.

        Raises:
            ValueError: unknown ``name``.
            RuntimeError: the weights could not be downloaded (names the URL).
        """
        if name not in PRETRAINED_URLS:
            raise ValueError(f"name must be one of {sorted(PRETRAINED_URLS)}, got {name!r}")
        block, blocks = PRETRAINED_LAYOUTS[name]
        encoder = cls(blocks=blocks, widths=(64, 128, 256, 512), output_stride=output_stride,
                      block=block, stem_channels=64)
        url = PRETRAINED_URLS[name]
        try:
            state = torch.hub.load_state_dict_from_url(url, progress=progress, map_location="cpu",
                                                       weights_only=True)
        except Exception as err:  # network errors come in many types
            raise RuntimeError(
                f"could not download the {name} ImageNet weights from {url} ({err}). Without "
                "internet, build ResNetEncoder(...) and train from scratch.") from err
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        encoder.load_state_dict(state, strict=True)
        return encoder

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected images of shape (N, {self.in_channels}, H, W), "
                             f"got {tuple(x.shape)}")
        x = self.relu(self.bn1(self.conv1(x)))  # (N, stem, H/2, W/2)
        x = self.maxpool(x)  # (N, stem, H/4, W/4)
        features = {}
        for i, level in enumerate(LEVELS):
            x = getattr(self, f"layer{i + 1}")(x)  # (N, C_l, H/s_l, W/s_l)
            features[level] = x
        return features

"""Encoders that return the four stage features c2..c5 the fusion papers work with.

Stage ``c_l`` has stride 2^l (4, 8, 16, 32) unless the output stride is capped by dilation
(DeepLab, "Rethinking Atrous Convolution", Sec. 3.1). Two families, both with torchvision's
parameter names so that its public ImageNet weights load unchanged (``fusionlab.weights``
finds them): ``ResNetEncoder`` (free layout, the book's from-scratch encoder) and
``MobileNetV2Encoder`` (the book's ImageNet encoder, small enough to fine-tune on a CPU).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from fusionlab.weights import load_weights

LEVELS = ("c2", "c3", "c4", "c5")
"""Names of the encoder stages, lowest (stride 4) to highest (stride 32)."""

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
                   path: str | None = None, download: bool | None = None) -> "ResNetEncoder":
        """Build torchvision's ResNet-18/34/50 layout and load its ImageNet weights.

        The file is found by ``fusionlab.weights.find_weights`` (an explicit ``path``,
        ``$FUSIONLAB_WEIGHTS``, torch.hub's cache, then a hash-checked download) and loaded
        with ``weights_only=True``; the classifier (``fc``) weights are dropped.

        Raises:
            ValueError: unknown ``name``.
            WeightsNotFoundError: the file cannot be found or downloaded (names the places
                tried and the URL), or its hash differs.
        """
        if name not in PRETRAINED_LAYOUTS:
            raise ValueError(f"name must be one of {sorted(PRETRAINED_LAYOUTS)}, got {name!r}")
        block, blocks = PRETRAINED_LAYOUTS[name]
        encoder = cls(blocks=blocks, widths=(64, 128, 256, 512), output_stride=output_stride,
                      block=block, stem_channels=64)
        state = load_weights(name, path, download)
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


MOBILENET_V2_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                         (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
"""MobileNetV2's inverted-residual stages: (expansion t, channels c, blocks n, stride s),
Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018, Table 2."""

MOBILENET_V2_LEVELS = {"c2": 3, "c3": 6, "c4": 13, "c5": 18}
"""Index in ``features`` of the last layer of each stage: c2 (24 channels, stride 4), c3 (32,
stride 8), c4 (96, stride 16) and c5 (the 1x1 convolution to 1280 channels, stride 32)."""


class ConvBNReLU6(nn.Sequential):
    """Convolution, batch norm and ReLU6 (torchvision's ``Conv2dNormActivation``: keys ``0``
    and ``1``); padding keeps the size at stride 1 for any dilation.

    Shape:
        (N, C_in, H, W) -> (N, C_out, ceil(H / stride), ceil(W / stride)).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3,
                 stride: int = 1, groups: int = 1, dilation: int = 1):
        padding = (kernel_size - 1) // 2 * dilation
        super().__init__(nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding,
                                   dilation, groups, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    """MobileNetV2's block: 1x1 expansion (ReLU6), 3x3 depthwise convolution (ReLU6), linear
    1x1 projection, and an identity shortcut when the input and output shapes agree.

    Sandler et al., CVPR 2018, Table 1 and Fig. 3 (b). Parameter names follow torchvision's
    ``InvertedResidual`` (``conv.0`` .. ``conv.3``; ``conv.0`` .. ``conv.2`` without expansion).

    Shape:
        (N, C_in, H, W) -> (N, C_out, ceil(H / stride), ceil(W / stride)).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, expansion: int,
                 dilation: int = 1):
        super().__init__()
        hidden = in_channels * expansion
        layers: list[nn.Module] = []
        if expansion != 1:
            layers.append(ConvBNReLU6(in_channels, hidden, 1))  # (N, t * C_in, H, W)
        layers += [ConvBNReLU6(hidden, hidden, 3, stride, hidden, dilation),  # (N, tC, H/s, W/s)
                   nn.Conv2d(hidden, out_channels, 1, bias=False),  # (N, C_out, H/s, W/s)
                   nn.BatchNorm2d(out_channels)]
        self.conv = nn.Sequential(*layers)
        self.use_res_connect = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)  # (N, C_out, H / stride, W / stride)
        return x + y if self.use_res_connect else y


def mobilenet_v2_features(output_stride: int = 32) -> tuple[nn.Sequential, dict[str, int]]:
    """MobileNetV2's 19 feature layers in torchvision's order, and the stride of each level.

    Below output stride 32 the stride-2 layers past it keep the resolution and every later
    depthwise convolution is dilated by the stride given up (2 at output stride 16; 2 then 4
    at 8), as DeepLabV3 (Chen et al. 2017, Sec. 3.1) does for ResNet.

    Raises:
        ValueError: an ``output_stride`` other than 8, 16 or 32.
    """
    if output_stride not in (8, 16, 32):
        raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride}")
    layers: list[nn.Module] = [ConvBNReLU6(3, 32, 3, stride=2)]  # (N, 32, H/2, W/2)
    channels, stride_so_far, dilation = 32, 2, 1
    strides = [stride_so_far]
    for expansion, out_channels, blocks, stage_stride in MOBILENET_V2_SETTINGS:
        for j in range(blocks):
            stride = stage_stride if j == 0 else 1
            if stride == 2 and stride_so_far * 2 > output_stride:
                stride, dilation = 1, dilation * 2
            stride_so_far *= stride
            layers.append(InvertedResidual(channels, out_channels, stride, expansion, dilation))
            channels = out_channels
            strides.append(stride_so_far)
    layers.append(ConvBNReLU6(channels, 1280, 1))  # (N, 1280, H/32, W/32)
    strides.append(stride_so_far)
    return nn.Sequential(*layers), {lv: strides[i] for lv, i in MOBILENET_V2_LEVELS.items()}


def _out_channels(layer: nn.Module) -> int:
    """Channels a feature layer outputs (its last batch norm's)."""
    return [m for m in layer.modules() if isinstance(m, nn.BatchNorm2d)][-1].num_features


def _init_mobilenet_v2(module: nn.Module) -> None:
    """torchvision's initialisation of MobileNetV2 (used when no weights are loaded)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)


class MobileNetV2Encoder(nn.Module):
    """MobileNetV2 as an encoder: the stage outputs c2..c5 of its 19 feature layers.

    Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018,
    Table 2 (width multiplier 1, 3.4 M parameters in ``features``). The layers are
    torchvision's ``mobilenet_v2().features`` with the same parameter names, so torchvision's
    ImageNet file loads with ``strict=True`` (``pretrained``).

    Args:
        output_stride: 32, 16 or 8 (see ``mobilenet_v2_features``).
        frozen_bn: keep every batch norm in inference mode (the running statistics of
            pretraining) with its scale and shift fixed, whatever ``train()`` says; used when
            the batch per device is too small to estimate the statistics.

    Attributes:
        out_channels: ``{"c2": 24, "c3": 32, "c4": 96, "c5": 1280}``.
        strides: level -> stride in pixels, ``{"c2": 4, "c3": 8, "c4": 16, "c5": 32}`` at
            output stride 32.
        in_channels: 3 (RGB, normalised with the ImageNet mean and std).

    Shape:
        input (N, 3, H, W) -> dict ``{"c2": (N, 24, ceil(H/4), ceil(W/4)), ...,
        "c5": (N, 1280, ceil(H/s5), ceil(W/s5))}``, s5 = output_stride.

    Raises:
        ValueError: a bad ``output_stride``; an input that is not (N, 3, H, W).

    Differences from the paper:
        c5 is the last 1x1 convolution (1280 channels), so that every ImageNet-trained
        parameter of ``features`` is used. Dilation (for output stride 16 or 8) is not in the
        paper's Table 2; its Sec. 6.3 (DeepLabV3 heads) uses it the same way.
    """

    in_channels = 3

    def __init__(self, output_stride: int = 32, frozen_bn: bool = False):
        super().__init__()
        self.features, self.strides = mobilenet_v2_features(output_stride)
        self.out_channels = {lv: _out_channels(self.features[i])
                             for lv, i in MOBILENET_V2_LEVELS.items()}
        self.frozen_bn = frozen_bn
        _init_mobilenet_v2(self)
        if frozen_bn:
            for m in self.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.requires_grad_(False)

    @classmethod
    def pretrained(cls, output_stride: int = 32, frozen_bn: bool = False,
                   path: str | None = None, download: bool | None = None
                   ) -> "MobileNetV2Encoder":
        """The encoder with torchvision's ImageNet-1k weights (top-1 71.9%).

        The file is found by ``fusionlab.weights.find_weights`` (an explicit ``path``,
        ``$FUSIONLAB_WEIGHTS``, torch.hub's cache, then a hash-checked download) and loaded
        with ``weights_only=True`` and ``strict=True``; the classifier is dropped.

        Raises:
            WeightsNotFoundError: the file cannot be found or downloaded, or its hash differs.
        """
        encoder = cls(output_stride, frozen_bn)
        state = load_weights("mobilenet_v2", path, download)
        features = {k: v for k, v in state.items() if not k.startswith("classifier.")}
        encoder.load_state_dict(features, strict=True)
        return encoder

    def train(self, mode: bool = True) -> "MobileNetV2Encoder":
        super().train(mode)
        if self.frozen_bn:
            for m in self.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.eval()
        return self

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected images of shape (N, 3, H, W), got {tuple(x.shape)}")
        features, take = {}, {i: lv for lv, i in MOBILENET_V2_LEVELS.items()}
        for i, layer in enumerate(self.features):
            x = layer(x)  # (N, C_i, H/s_i, W/s_i)
            if i in take:
                features[take[i]] = x
        return features


class MobileNetV2(nn.Module):
    """The whole ImageNet classifier: MobileNetV2's features, global average pooling, dropout
    and a linear layer to the 1000 classes, in torchvision's layout (every key of its file).

    Used to show (and test) that the weights sit where they belong: it must classify a photo
    as the ImageNet classes in it. Sandler et al., CVPR 2018, Table 2.

    Shape:
        (N, 3, H, W) -> logits (N, 1000).
    """

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self.features, _ = mobilenet_v2_features(32)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, num_classes))
        _init_mobilenet_v2(self)

    @classmethod
    def pretrained(cls, path: str | None = None, download: bool | None = None) -> "MobileNetV2":
        """The classifier with torchvision's ImageNet weights, loaded with ``strict=True``.

        Raises:
            WeightsNotFoundError: see ``MobileNetV2Encoder.pretrained``.
        """
        model = cls()
        model.load_state_dict(load_weights("mobilenet_v2", path, download), strict=True)
        return model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)  # (N, 1280, H/32, W/32)
        x = x.mean((2, 3))  # (N, 1280)
        return self.classifier(x)  # (N, 1000)

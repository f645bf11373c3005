"""Gated Fully Fusion: every level receives from every other level, through learned gates.

Li, Zhao, Han, Tong, Tan, Yang, "Gated Fully Fusion for Semantic Segmentation", AAAI 2020
(arXiv:1904.01803); the paper's sections are unnumbered and cited by title. On a PSPNet
(dilated ResNet + pyramid pooling module, "Network Architecture", Fig. 3):

- every encoder level is reduced to one width by a 1x1 convolution;
- Gated Fully Fusion (GFF, section "Gated Fully Fusion", Fig. 2): a gate map per level says,
  per pixel, how useful that level's feature is; each level keeps its own feature where its
  gate is open and receives the gated features of all other levels where it is closed;
- two 3x3 convolutions per level, then the Dense Feature Pyramid (DFP, section "Dense Feature
  Pyramid"): dense top-down connections starting from the pyramid pooling context;
- all levels at stride 4, concatenated, classified; an auxiliary head on c4 (weight 0.4).

The paper's Table 1 compares GFF at equal width with the simpler fusions of its section
"Multi-level Feature Fusion": ``sum_fusion``, ``concat_fusion`` and ``fpn_fusion``. ``GFFNet``
switches between all of them, so the chapter's ablation is one loop over options.

In the book: chapter 3, "Gating: Gated Fully Fusion" (``book/chapters/03-gff.ipynb``); what it
trains and the paper's own numbers: experiment ``gff`` in
``fusionlab/experiments/ablations/gff.py``.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from fusionlab.encoders import LEVELS, ResNetEncoder
from fusionlab.layers import ConvBNReLU, upsample_like
from fusionlab.losses import AuxLoss
from fusionlab.models.base import HeadFactory, SegmentationModel, conv1x1_head


def _check_pyramid(levels: Sequence[torch.Tensor], num_levels: int | None = None,
                   channels: int | None = None, what: str = "levels") -> list[torch.Tensor]:
    """The levels as a list, after checking their number, dimensions, batch and channels.

    Raises:
        ValueError: a wrong number of levels, a level that is not (N, C, H, W), batch sizes
            that differ, or a channel count other than ``channels`` (names the level).
    """
    levels = list(levels)
    if not levels or (num_levels is not None and len(levels) != num_levels):
        expected = num_levels if num_levels is not None else "at least 1"
        raise ValueError(f"expected {expected} {what}, got {len(levels)}")
    for i, x in enumerate(levels):
        if x.dim() != 4:
            raise ValueError(f"{what}[{i}] must be (N, C, H, W), got shape {tuple(x.shape)}")
        if x.shape[0] != levels[0].shape[0]:
            raise ValueError(f"{what} must share the batch size, got {levels[0].shape[0]} and "
                             f"{x.shape[0]} ({what}[{i}])")
        if channels is not None and x.shape[1] != channels:
            raise ValueError(f"{what}[{i}] must have {channels} channels, got shape "
                             f"{tuple(x.shape)}")
    return levels


def _concat_at(maps: Sequence[torch.Tensor], reference: torch.Tensor) -> torch.Tensor:
    """Resize every map bilinearly to ``reference``'s size and concatenate the channels.

    Shape:
        maps [(N, C_i, h_i, w_i), ...], reference (..., H, W) -> (N, SUM C_i, H, W).
    """
    return torch.cat([upsample_like(m, reference) for m in maps], dim=1)  # (N, SUM C_i, H, W)


# -- the paper's Table 1: basic fusions --------------------------------------------------------
def sum_fusion(levels: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Addition: X~ = SUM_i Up(X_i), one map at the lowest level's resolution.

    GFF, section "Multi-level Feature Fusion", "Addition"; the "Sum" row of Table 1 (every
    level reduced to one width first, two 3x3 convolutions after, in ``GFFNet``).

    Shape:
        [(N, C, H_1, W_1), ..., (N, C, H_L, W_L)], lowest level first ->
        [(N, C, H_1, W_1)].

    Raises:
        ValueError: no level, or levels of other channel counts or batch sizes.
    """
    levels = _check_pyramid(levels, channels=levels[0].shape[1] if levels else None)
    return [sum(upsample_like(x, levels[0]) for x in levels)]  # [(N, C, H_1, W_1)]


def concat_fusion(levels: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Concatenation: X~ = concat(Up(X_1), ..., Up(X_L)), at the lowest level's resolution.

    GFF, section "Multi-level Feature Fusion", "Concat"; the "Concat" row of Table 1.

    Shape:
        [(N, C, H_1, W_1), ..., (N, C, H_L, W_L)], lowest level first ->
        [(N, L*C, H_1, W_1)].

    Raises:
        ValueError: no level, or levels of other batch sizes.
    """
    levels = _check_pyramid(levels)
    return [_concat_at(levels, levels[0])]  # [(N, L*C, H_1, W_1)]


def fpn_fusion(levels: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """FPN's top-down pathway: X~_L = X_L, X~_l = X_l + Up(X~_{l+1}); every level is kept.

    GFF, section "Multi-level Feature Fusion", "FPN" (Lin et al., CVPR 2017); the "FPN" row of
    Table 1, where all the FPN levels are then concatenated to predict.

    Shape:
        [(N, C, H_l, W_l) for l = 1..L], lowest level first -> the same shapes.

    Raises:
        ValueError: no level, or levels of other channel counts or batch sizes.

    Differences from the paper:
        The levels are already reduced to one width by ``GFFNet`` (no lateral convolution here)
        and smoothed by its two 3x3 convolutions per level after the pathway (FPN smooths each
        merged level with one 3x3 convolution).
    """
    levels = _check_pyramid(levels, channels=levels[0].shape[1] if levels else None)
    fused = [levels[-1]]
    for x in reversed(levels[:-1]):
        fused.insert(0, x + upsample_like(fused[0], x))  # (N, C, H_l, W_l)
    return fused


BASIC_FUSIONS: dict[str, Callable[[Sequence[torch.Tensor]], list[torch.Tensor]]] = {
    "sum": sum_fusion, "concat": concat_fusion, "fpn": fpn_fusion}
"""The paper's Table 1 comparisons without parameters of their own: name -> fusion."""

ORDERS = ("parallel", "sequential")
"""How ``GatedFullyFusion`` updates the levels: the paper's formula, or the released code's
in-place order."""


# -- Gated Fully Fusion ------------------------------------------------------------------------
class GatedFullyFusion(nn.Module):
    """Gated Fully Fusion of L levels of one width, each at its own resolution.

    GFF, section "Gated Fully Fusion" and Fig. 2. One gate map per level,
    G_l = sigmoid(Conv1x1(X_l)), then, for every level l, from the UN-fused inputs:

        X~_l = (1 + G_l) * X_l + (1 - G_l) * SUM_{i != l} Up(G_i * X_i),

    where Up resizes the gated sender G_i * X_i bilinearly to level l's resolution. Where
    level l's gate is open (G_l = 1) it keeps (twice) its own feature and receives nothing;
    where it is closed (G_l = 0) it receives what the other levels let out through their own
    gates. All gates 0 gives X~_l = X_l, all gates 1 gives X~_l = 2 X_l.

    ``order="sequential"`` is the authors' released order (lxtGH/DecoupleSegNets,
    ``network/gffnets.py``; BebDong/MXNetSeg copies it), kept for the chapter's trap ablation:
    the gates are computed once from the inputs, then the levels are updated in place from the
    lowest up, so level l's update reads the already FUSED levels below it (and the un-fused
    ones above it). It is not the paper's formula.

    Args:
        channels: C, the channels of every level.
        num_levels: L >= 2.
        gate_channels: 1 (one gate map per level, the paper's Fig. 2) or C (one gate per
            channel, as nhatuan84's copy; the authors' code has 128-channel gates computed on
            the raw backbone features).
        order: ``"parallel"`` (the paper) or ``"sequential"`` (the released code).

    Shape:
        [(N, C, H_l, W_l) for l = 1..L] -> the same shapes. Any resolutions are accepted.

    Raises:
        ValueError: ``num_levels`` < 2, ``gate_channels`` other than 1 or C, an unknown
            ``order``; at the call, a wrong number of levels, a level that is not
            (N, C, H, W) with this C, or batch sizes that differ.

    Differences from the paper:
        - The gates read the reduced levels (the formula's X_l, as nhatuan84's copy); the
          authors' code and MXNetSeg compute them on the raw backbone features before the 1x1
          reduction.
        - Bilinear resizing with ``align_corners=False`` (the released code uses ``True``).
    """

    def __init__(self, channels: int, num_levels: int, gate_channels: int = 1,
                 order: str = "parallel"):
        super().__init__()
        if num_levels < 2:
            raise ValueError(f"GFF fuses at least 2 levels, got num_levels={num_levels}")
        if gate_channels not in (1, channels):
            raise ValueError(f"gate_channels must be 1 or channels ({channels}), got "
                             f"{gate_channels}")
        if order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
        self.channels, self.num_levels = channels, num_levels
        self.gate_channels, self.order = gate_channels, order
        self.gate_convs = nn.ModuleList(nn.Conv2d(channels, gate_channels, 1)
                                        for _ in range(num_levels))

    def gates(self, levels: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """The gate maps G_l = sigmoid(Conv1x1(X_l)) of the un-fused levels, in (0, 1).

        Shape:
            [(N, C, H_l, W_l), ...] -> [(N, gate_channels, H_l, W_l), ...].

        Raises:
            ValueError: see the class.
        """
        levels = _check_pyramid(levels, self.num_levels, self.channels)
        return [torch.sigmoid(conv(x))  # (N, gate_channels, H_l, W_l)
                for conv, x in zip(self.gate_convs, levels)]

    def terms(self, levels: Sequence[torch.Tensor]) -> list[list[torch.Tensor | None]]:
        """The fusion split into its terms, to see what each level receives from which:
        for receiver l, ``[(1 + G_l) * X_l]`` (its own term) followed by
        ``(1 - G_l) * Up(G_i * X_i)`` for each level i (``None`` at i = l). The terms of
        receiver l sum to ``forward(levels)[l]`` up to rounding.

        Shape:
            [(N, C, H_l, W_l) for l = 1..L] -> L lists of 1 + L entries, each (N, C, H_l, W_l)
            or ``None``.

        Raises:
            ValueError: see the class; also for ``order="sequential"``, whose senders are
                already fused and have no such split.
        """
        if self.order != "parallel":
            raise ValueError(f"the terms of the fusion are defined for the paper's parallel "
                             f"order only, not order={self.order!r}")
        levels = list(levels)
        gates = self.gates(levels)
        return [[(1 + g) * x] + [None if i == l else  # (N, C, H_l, W_l) each
                                 (1 - g) * upsample_like(gates[i] * levels[i], x)
                                 for i in range(self.num_levels)]
                for l, (x, g) in enumerate(zip(levels, gates))]

    def forward(self, levels: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        levels = list(levels)
        gates = self.gates(levels)
        fused = list(levels)
        senders = fused if self.order == "sequential" else levels  # in place: reads fused ones
        for l, (x, g) in enumerate(zip(levels, gates)):
            received = sum(upsample_like(gates[i] * senders[i], x)  # (N, C, H_l, W_l)
                           for i in range(self.num_levels) if i != l)
            fused[l] = (1 + g) * x + (1 - g) * received  # (N, C, H_l, W_l)
        return fused


# -- PSPNet's context and the Dense Feature Pyramid --------------------------------------------
class PyramidPooling(nn.Module):
    """PSPNet's pyramid pooling module (PPM): context pooled at several grid sizes.

    Zhao, Shi, Qi, Wang, Jia, "Pyramid Scene Parsing Network", CVPR 2017, Sec. 3.2 and Fig. 3;
    GFF (section "Network Architecture") puts it on top of the backbone. For every bin size b,
    average pooling to a b x b grid, a 1x1 convolution to C_in / len(bins) channels and
    bilinear upsampling back; the input and all pooled maps are concatenated and a 3x3
    Conv-BN-ReLU makes C_out channels.

    Args:
        in_channels: C_in.
        out_channels: C_out.
        bins: the grid sizes (PSPNet: 1, 2, 3, 6).

    Shape:
        (N, C_in, H, W) -> (N, C_out, H, W).

    Raises:
        ValueError: empty or non-positive ``bins``, or ``in_channels < len(bins)`` (the pooled
            branches would have no channel); at the call, an input that is not
            (N, C_in, H, W).

    Differences from the paper:
        The pooled branches are a 1x1 convolution with bias and ReLU, without batch
        normalisation: a 1 x 1 bin holds one value per channel and image, so its batch
        statistics are undefined for a batch of one and very noisy for our small batches.
        No dropout before the classifier.
    """

    def __init__(self, in_channels: int, out_channels: int, bins: Sequence[int] = (1, 2, 3, 6)):
        super().__init__()
        bins = tuple(bins)
        if not bins or any(not isinstance(b, int) or b < 1 for b in bins):
            raise ValueError(f"bins must be positive ints, got {bins}")
        if in_channels < len(bins):
            raise ValueError(f"in_channels ({in_channels}) must be at least the number of bins "
                             f"({len(bins)})")
        self.in_channels, self.bins = in_channels, bins
        branch = in_channels // len(bins)
        self.branches = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(b), nn.Conv2d(in_channels, branch, 1),
                          nn.ReLU(inplace=True)) for b in bins)
        self.bottleneck = ConvBNReLU(in_channels + branch * len(bins), out_channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected (N, {self.in_channels}, H, W), got {tuple(x.shape)}")
        pooled = [branch(x) for branch in self.branches]  # (N, C_in / len(bins), b, b) each
        return self.bottleneck(_concat_at([x, *pooled], x))  # (N, C_out, H, W)


class DenseFeaturePyramid(nn.Module):
    """Dense Feature Pyramid: dense top-down connections starting from the PPM context.

    GFF, section "Dense Feature Pyramid" and Fig. 3. From the highest level down, level l
    receives the concatenation of its own feature, every higher level's DFP output and the
    pyramid pooling context (all resized bilinearly to level l), and a 3x3 Conv-BN-ReLU makes
    its output:

        D_l = Conv3x3(concat(X_l, Up(D_{l+1}), ..., Up(D_L), Up(context))).

    The output concatenates every D_l and the context at the lowest level's resolution
    (stride 4 in ``GFFNet``) for the prediction.

    Args:
        channels: C of every level and of every D_l.
        num_levels: L >= 1.
        context_channels: C_ctx of the context (the PPM output).

    Attributes:
        in_channels: the input channels of each level's convolution, lowest level first:
            C + (L - l) * C + C_ctx for level l = 1..L.
        out_channels: L * C + C_ctx.

    Shape:
        levels [(N, C, H_l, W_l) for l = 1..L], lowest first, context (N, C_ctx, h, w) ->
        (N, L*C + C_ctx, H_1, W_1).

    Raises:
        ValueError: ``num_levels`` < 1; at the call, a wrong number of levels or channels.

    Differences from the paper:
        The paper gives no kernel sizes or widths for the DFP; one 3x3 Conv-BN-ReLU of width C
        per level follows MXNetSeg's reimplementation, which runs every level at stride 4;
        ours runs each level at its own resolution (cheaper when c3..c5 share stride 8) and
        resizes only for the final concatenation.
    """

    def __init__(self, channels: int, num_levels: int, context_channels: int):
        super().__init__()
        if num_levels < 1:
            raise ValueError(f"the DFP needs at least 1 level, got num_levels={num_levels}")
        self.channels, self.num_levels, self.context_channels = (channels, num_levels,
                                                                 context_channels)
        self.in_channels = [channels * (num_levels - l) + context_channels
                            for l in range(num_levels)]
        self.out_channels = channels * num_levels + context_channels
        self.blocks = nn.ModuleList(ConvBNReLU(c, channels, 3) for c in self.in_channels)

    def pyramid(self, levels: Sequence[torch.Tensor], context: torch.Tensor
                ) -> list[torch.Tensor]:
        """The DFP outputs D_l, each at its own level's resolution, lowest level first.

        Shape:
            levels [(N, C, H_l, W_l), ...], context (N, C_ctx, h, w) -> [(N, C, H_l, W_l), ...].

        Raises:
            ValueError: see the class.
        """
        levels = _check_pyramid(levels, self.num_levels, self.channels)
        _check_pyramid([context], 1, self.context_channels, what="context")
        outputs: list[torch.Tensor] = []  # D_{l+1}, ..., D_L: nearest higher level first
        for block, x in zip(reversed(self.blocks), reversed(levels)):
            inputs = _concat_at([x, *outputs, context], x)  # (N, C + (L - l)*C + C_ctx, H_l, W_l)
            outputs.insert(0, block(inputs))  # (N, C, H_l, W_l)
        return outputs

    def forward(self, levels: Sequence[torch.Tensor], context: torch.Tensor) -> torch.Tensor:
        outputs = self.pyramid(levels, context)
        return _concat_at([*outputs, context], outputs[0])  # (N, L*C + C_ctx, H_1, W_1)


# -- the network -------------------------------------------------------------------------------
FUSIONS = ("gff", *BASIC_FUSIONS)
"""``GFFNet``'s fusion options besides ``None`` (the PSPNet baseline)."""


class GFFNet(SegmentationModel):
    """PSPNet with Gated Fully Fusion and the Dense Feature Pyramid, each switchable.

    GFF, AAAI 2020, section "Network Architecture" and Fig. 3. The pyramid pooling module
    (``PyramidPooling``) reads c5 and gives the context. With a fusion, each of c2..c5 is
    reduced to ``channels`` by a 1x1 Conv-BN-ReLU, fused, and smoothed by two 3x3 Conv-BN-ReLU
    per fused level; then either the ``DenseFeaturePyramid`` (``dfp=True``) or the plain
    concatenation of the fused levels and the context at the lowest level's resolution; the
    head classifies that concatenation.

    - ``fusion=None, dfp=False``: the PSPNet baseline, the head on the context (stride of c5).
    - ``fusion="sum"`` / ``"concat"``: one fused map at stride 4 (``sum_fusion``,
      ``concat_fusion``); ``"fpn"``: the four levels of ``fpn_fusion``; ``"gff"``: the four
      levels of ``GatedFullyFusion``. These are Table 1's comparisons at equal width.

    An auxiliary head on c4 (a 3x3 Conv-BN-ReLU to ``channels``, then a 1x1 classifier) gives
    ``aux["c4"]``, weighted 0.4 (``aux_losses``), as PSPNet and the paper.

    Args:
        num_classes: K.
        encoder: a ``ResNetEncoder``; the paper dilates the last two stages (output stride 8:
            c2..c5 at strides 4, 8, 8, 8). Any output stride works.
        fusion: ``"gff"``, ``"sum"``, ``"concat"``, ``"fpn"`` or ``None``.
        dfp: the Dense Feature Pyramid instead of the plain concatenation (needs a fusion).
        gate_channels: channels of each gate map, 1 or ``channels`` (``fusion="gff"`` only).
        order: ``"parallel"`` or ``"sequential"`` (``fusion="gff"`` only), see
            ``GatedFullyFusion``.
        channels: the one width C of the reduced levels, the context, the fused levels and the
            DFP (256 in the paper; 128 by default here for CPU budgets).
        head: builds the prediction head from (input channels, K); default a 1x1 convolution.

    Attributes:
        fusion, dfp_on: the switches as given.
        gff: the ``GatedFullyFusion`` module (``None`` unless ``fusion="gff"``).
        dfp: the ``DenseFeaturePyramid`` (``None`` when off).

    Shape:
        images (N, 3, H, W) -> ``SegOutput``: logits (N, K, H, W), aux ``{"c4": (N, K, H, W)}``.
        Before resizing, the logits are at stride 4 with a fusion (the stride of c5 without).

    Raises:
        ValueError: an unknown ``fusion`` or ``order``; ``dfp`` without a fusion; a
            ``gate_channels`` or ``order`` other than the defaults without GFF;
            ``gate_channels`` other than 1 or ``channels``; ``channels`` < 1; bad images (see
            ``SegmentationModel``).
        TypeError: ``dfp`` that is not a bool.

    Differences from the paper:
        - A small ResNet trained from scratch instead of an ImageNet-pretrained ResNet-50/101;
          the cpu profile's builder uses output stride 16 (only c5 dilated), see
          ``fusionlab.experiments.ablations.gff.OUTPUT_STRIDES``.
        - ``channels`` (C = 256 in the paper) follows the profile.
        - The paper does not say how the concatenation is classified; we apply the head to it
          directly (MXNetSeg adds a 3x3 convolution first). No dropout.
        - The Table 1 variants are described in the paper only by their formulas; we follow the
          first author's description of an equal-width comparison (lxtGH/GALD-DGCNet, issue
          #4): reduce to C, fuse, two 3x3 convolutions, concatenate with the context, classify.
        - See ``GatedFullyFusion``, ``PyramidPooling`` and ``DenseFeaturePyramid``.
    """

    def __init__(self, num_classes: int, encoder: ResNetEncoder, fusion: str | None = "gff",
                 dfp: bool = True, gate_channels: int = 1, order: str = "parallel",
                 channels: int = 128, head: HeadFactory = conv1x1_head):
        super().__init__(num_classes, encoder)
        if fusion is not None and fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS} or None, got {fusion!r}")
        if not isinstance(dfp, bool):
            raise TypeError(f"dfp must be a bool, got {type(dfp).__name__}")
        if dfp and fusion is None:
            raise ValueError("dfp=True needs a fusion: fusion=None is the PSPNet baseline, "
                             "which has no levels for the DFP; pass dfp=False with it")
        if fusion != "gff" and (gate_channels != 1 or order != "parallel"):
            raise ValueError(f"gate_channels and order apply to fusion='gff' only, got "
                             f"fusion={fusion!r}, gate_channels={gate_channels}, "
                             f"order={order!r}")
        if channels < 1:
            raise ValueError(f"channels must be >= 1, got {channels}")
        chans = encoder.out_channels
        self.fusion, self.dfp_on, self.channels = fusion, dfp, channels
        self.ppm = PyramidPooling(chans["c5"], channels)
        self.aux_head = nn.Sequential(ConvBNReLU(chans["c4"], channels, 3),
                                      nn.Conv2d(channels, num_classes, 1))
        self.reduce = self.gff = self.smooth = self.dfp = None
        head_channels = channels  # the context alone
        if fusion is not None:
            self.reduce = nn.ModuleDict({lv: ConvBNReLU(chans[lv], channels, 1) for lv in LEVELS})
            if fusion == "gff":
                self.gff = GatedFullyFusion(channels, len(LEVELS), gate_channels, order)
            fused_levels = 1 if fusion in ("sum", "concat") else len(LEVELS)
            first = channels * len(LEVELS) if fusion == "concat" else channels
            self.smooth = nn.ModuleList(
                nn.Sequential(ConvBNReLU(first, channels, 3), ConvBNReLU(channels, channels, 3))
                for _ in range(fused_levels))
            if dfp:
                self.dfp = DenseFeaturePyramid(channels, fused_levels, channels)
            head_channels = channels * (fused_levels + 1)  # the fused levels and the context
        self.head = head(head_channels, num_classes)

    def aux_losses(self) -> dict[str, AuxLoss]:
        """Cross-entropy on ``aux["c4"]`` with weight 0.4 (PSPNet's deep supervision;
        GFF, "Network Architecture")."""
        return {"c4": AuxLoss(0.4)}

    def reduce_levels(self, features: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        """The levels X_l the fusion reads: c2..c5, each reduced to C by its 1x1 Conv-BN-ReLU
        (``model.gff.gates(model.reduce_levels(features))`` gives the gate maps).

        Shape:
            ``{"c2": (N, C2, H/4, W/4), ...}`` -> [(N, C, H/4, W/4), ..., (N, C, H/s5, W/s5)].

        Raises:
            ValueError: the model has no fusion (the PSPNet baseline).
        """
        if self.reduce is None:
            raise ValueError("the PSPNet baseline (fusion=None) has no fused levels")
        return [self.reduce[lv](features[lv]) for lv in LEVELS]  # (N, C, H_l, W_l) each

    def decode(self, features):
        context = self.ppm(features["c5"])  # (N, C, H/s5, W/s5)
        aux = {"c4": self.aux_head(features["c4"])}  # (N, K, H/s4, W/s4)
        if self.fusion is None:
            return self.head(context), aux  # (N, K, H/s5, W/s5)
        levels = self.reduce_levels(features)
        fused = self.gff(levels) if self.gff is not None else BASIC_FUSIONS[self.fusion](levels)
        fused = [smooth(x) for smooth, x in zip(self.smooth, fused)]  # (N, C, H_l, W_l) each
        if self.dfp is not None:
            x = self.dfp(fused, context)  # (N, (L' + 1) * C, H/4, W/4)
        else:
            x = _concat_at([*fused, context], fused[0])  # (N, (L' + 1) * C, H/4, W/4)
        return self.head(x), aux  # (N, K, H/4, W/4)


__all__ = ["sum_fusion", "concat_fusion", "fpn_fusion", "BASIC_FUSIONS", "ORDERS",
           "GatedFullyFusion", "PyramidPooling", "DenseFeaturePyramid", "FUSIONS", "GFFNet"]

"""DFN: a Smooth Network for intra-class consistency, a Border Network for inter-class
distinction.

Yu, Wang, Peng, Gao, Yu, Sang, "Learning a Discriminative Feature Network for Semantic
Segmentation", CVPR 2018 (arXiv:1804.09337). Two problems, two sub-networks on one encoder:

- intra-class inconsistency (one object, several labels): the Smooth Network (Sec. 3.1) runs
  top-down from a global average pooling of c5; at every stage a refinement residual block
  (RRB, Fig. 2b) unifies and refines the features, a channel attention block (CAB, Fig. 2c)
  lets the higher stage select the lower stage's channels, and a second RRB refines the
  result; every stage is supervised (deep supervision);
- inter-class indistinction (two neighbours, one label): the Border Network (Sec. 3.2) runs
  bottom-up and learns the semantic borders made from the labels, with a focal loss.

``DFN`` switches each module on or off, so the paper's Table 2 is one loop over flags; with
RRB, GP and CAB off the decoder is the FCN-4-style baseline (a 1x1 lateral convolution per
stage, fusion by addition). The border target and its loss (``BorderLoss``) live here too.

In the book: chapter 4, "Channel attention and border supervision: DFN"
(``book/chapters/04-dfn.ipynb``); what it trains and the paper's own numbers: experiment ``dfn``
in ``fusionlab/experiments/ablations/dfn.py``.
"""

from __future__ import annotations

import math
from typing import Mapping

import torch
from torch import nn

from fusionlab import IGNORE_INDEX
from fusionlab import losses
from fusionlab.boundaries import border_target
from fusionlab.encoders import LEVELS, ResNetEncoder
from fusionlab.layers import ConvBNReLU, upsample_like
from fusionlab.models.base import HeadFactory, SegmentationModel, conv1x1_head

__all__ = ["RefinementResidualBlock", "ChannelAttentionBlock", "GlobalContext", "SmoothNetwork",
           "BorderNetwork", "BorderLoss", "FOCAL_LOSSES", "border_loss_terms", "DFN"]


class RefinementResidualBlock(nn.Module):
    """RRB: out = ReLU(x' + Conv3x3(ReLU(BN(Conv3x3(x'))))), with x' = Conv1x1(x).

    DFN, Sec. 3.1 and Fig. 2b: the 1x1 convolution unifies the channels of a stage (to 512 in
    the paper) and combines the information of all channels; the residual unit then refines
    the features. As in the official code, the convolutions have no bias and the 1x1
    convolution has no batch normalisation.

    Args:
        in_channels: C_in.
        out_channels: C_out (the unified width).

    Shape:
        (N, C_in, H, W) -> (N, C_out, H, W).
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.unify = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.residual = nn.Sequential(ConvBNReLU(out_channels, out_channels, 3),
                                      nn.Conv2d(out_channels, out_channels, 3, padding=1,
                                                bias=False))
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.unify(x)  # (N, C_out, H, W)
        return self.relu(x + self.residual(x))


class ChannelAttentionBlock(nn.Module):
    """CAB: out = low * w + Up(high), w = sigmoid(1x1(ReLU(1x1(GAP(concat(low, Up(high))))))).

    DFN, Sec. 3.1, Fig. 2c and Eq. 3: the higher stage, semantically more consistent, chooses
    the lower stage's discriminative channels; w is one weight per channel and image, the same
    at every position. No batch normalisation inside (as the paper and the official code).

    Args:
        channels: C of both inputs (the smooth network's unified width).

    Shape:
        low (N, C, H, W), high (N, C, h, w) -> (N, C, H, W); ``attention``: -> w (N, C).

    Raises:
        ValueError: inputs that are not (N, C, ., .) with the block's C and the same N.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        self.reduce = nn.Conv2d(2 * channels, channels, 1)
        self.relu = nn.ReLU()
        self.expand = nn.Conv2d(channels, channels, 1)

    def _check(self, low: torch.Tensor, high: torch.Tensor) -> None:
        c = self.channels
        if low.dim() != 4 or high.dim() != 4 or low.shape[:2] != (low.shape[0], c) \
                or high.shape[:2] != (low.shape[0], c):
            raise ValueError(f"CAB expects low (N, {c}, H, W) and high (N, {c}, h, w), got "
                             f"{tuple(low.shape)} and {tuple(high.shape)}")

    def attention(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        """The channel attention vector w in (0, 1), one per channel and image.

        Shape:
            low (N, C, H, W), high (N, C, h, w) -> (N, C).
        """
        self._check(low, high)
        x = torch.cat([low, upsample_like(high, low)], dim=1)  # (N, 2C, H, W)
        x = x.mean(dim=(2, 3), keepdim=True)  # (N, 2C, 1, 1): global average pooling
        w = torch.sigmoid(self.expand(self.relu(self.reduce(x))))  # (N, C, 1, 1)
        return w.flatten(1)  # (N, C)

    @staticmethod
    def select(low: torch.Tensor, high: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """low * w + Up(high), with w (N, C) broadcast over every position.

        Shape:
            low (N, C, H, W), high (N, C, h, w), w (N, C) -> (N, C, H, W).
        """
        return low * w[:, :, None, None] + upsample_like(high, low)  # (N, C, H, W)

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        return self.select(low, high, self.attention(low, high))  # (N, C, H, W)


class GlobalContext(nn.Module):
    """The global average pooling branch on c5: the Smooth Network's first "higher" feature.

    DFN, Sec. 3.1 ("we embed a global average pooling layer to extend the U-shape architecture
    to a V-shape architecture"): pool c5 to one vector per image, then a 1x1 convolution and
    ReLU to the smooth network's width; the CAB (or the addition) of stage c5 broadcasts it
    over the c5 map.

    Args:
        in_channels: C5.
        channels: C, the smooth network's width.

    Shape:
        (N, C5, h, w) -> (N, C, 1, 1).

    Differences from the paper:
        The official code uses Conv-BN-ReLU; we use a convolution with bias and ReLU, because
        batch normalisation over a 1 x 1 map has one value per channel and image, and fails in
        training for a batch of one.
    """

    def __init__(self, in_channels: int, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, channels, 1)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.mean(dim=(2, 3), keepdim=True)  # (N, C5, 1, 1)
        return self.relu(self.conv(x))  # (N, C, 1, 1)


class SmoothNetwork(nn.Module):
    """The Smooth Network's decoder: top-down from the global context, RRB -> CAB -> RRB per
    stage.

    DFN, Sec. 3.1 and Fig. 2a. The first higher feature is ``GlobalContext(c5)``; then for
    l = 5, 4, 3, 2: ``s_l = RRB2_l(CAB_l(RRB1_l(c_l), h_l))`` with h_5 the global context and
    h_l = s_{l+1} below: the feature passed up (down the resolution ladder) is the second
    RRB's output, not a head's. ``DFN`` puts a prediction head on every s_l (deep
    supervision).

    Switches (for the paper's Table 2):
        rrb: off -> RRB1 is its 1x1 channel-unifying convolution alone and RRB2 is dropped;
        gp: off -> no global context, stage c5 has no higher feature (s_5 = RRB2(RRB1(c5)));
        cab: off -> the higher feature is added: RRB1(c_l) + Up(h_l).
        All three off: 1x1 lateral convolutions and fusion by addition, the FCN-4-style base.

    Args:
        in_channels: encoder channels per level (``ResNetEncoder.out_channels``).
        channels: C, the unified width (512 in the paper).
        rrb, gp, cab: the switches above.

    Attributes:
        flags: ``{"rrb": ..., "gp": ..., "cab": ...}``.

    Shape:
        ``{"c2": (N, C2, H/4, W/4), ..., "c5": ...}`` -> ``{"c2": (N, C, H/4, W/4), ...,
        "c5": (N, C, H/32, W/32)}`` (each at its stage's resolution); ``attentions``: ->
        ``{level: (N, C)}`` for the levels that have a CAB.

    Raises:
        TypeError: a switch that is not a bool.
        ValueError: ``in_channels`` without c2..c5, or ``channels`` < 1.
    """

    def __init__(self, in_channels: Mapping[str, int], channels: int, rrb: bool = True,
                 gp: bool = True, cab: bool = True):
        super().__init__()
        _check_flags(rrb=rrb, gp=gp, cab=cab)
        _check_in_channels(in_channels, channels)
        self.flags = {"rrb": rrb, "gp": gp, "cab": cab}
        self.channels = channels
        self.global_context = GlobalContext(in_channels["c5"], channels) if gp else None
        self.pre = nn.ModuleDict({
            lv: RefinementResidualBlock(in_channels[lv], channels) if rrb
            else nn.Conv2d(in_channels[lv], channels, 1, bias=False) for lv in LEVELS})
        self.post = nn.ModuleDict({
            lv: RefinementResidualBlock(channels, channels) if rrb else nn.Identity()
            for lv in LEVELS})
        fused = LEVELS if gp else LEVELS[:-1]  # the stages that have a higher feature
        self.cabs = nn.ModuleDict({lv: ChannelAttentionBlock(channels) for lv in fused}) \
            if cab else None

    def run(self, features: Mapping[str, torch.Tensor]
            ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """The stage outputs s_l and the CAB attention vectors w_l (empty without CAB).

        Shape:
            as the class: ``({level: (N, C, H_l, W_l)}, {level: (N, C)})``.
        """
        outputs, attentions = {}, {}
        high = self.global_context(features["c5"]) if self.global_context is not None \
            else None  # (N, C, 1, 1)
        for level in reversed(LEVELS):
            x = self.pre[level](features[level])  # (N, C, H_l, W_l)
            if high is not None and self.cabs is not None:
                attentions[level] = self.cabs[level].attention(x, high)  # (N, C)
                x = ChannelAttentionBlock.select(x, high, attentions[level])  # (N, C, H_l, W_l)
            elif high is not None:
                x = x + upsample_like(high, x)  # (N, C, H_l, W_l)
            outputs[level] = high = self.post[level](x)  # (N, C, H_l, W_l)
        return outputs, attentions

    def attentions(self, features: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The CAB attention vector of every stage that has one, ``{level: (N, C)}``."""
        return self.run(features)[1]

    def forward(self, features: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.run(features)[0]


class BorderNetwork(nn.Module):
    """The Border Network: bottom-up, cumulative, a border head on every cumulative output.

    DFN, Sec. 3.2 and Fig. 2a, wired as the official code: an RRB on each stage, b_2 =
    RRB(c2); for l = 3, 4, 5: b_l = RRB'_l(b_{l-1} + Up(RRB_l(c_l))), all at the c2
    resolution; a 1-channel head on every b_l predicts the semantic border. Deeper stages add
    semantics to the low stages' detailed but semantics-free edges.

    Args:
        in_channels: encoder channels per level.
        channels: C_b, the border network's width (21 in the official code, the number of
            VOC classes, hard-coded).

    Shape:
        ``{"c2": (N, C2, H/4, W/4), ...}`` -> ``{"c2": (N, 1, H/4, W/4), ..., "c5": (N, 1,
        H/4, W/4)}``: border logits, ``"c5"`` from the sum over all four stages.

    Raises:
        ValueError: ``in_channels`` without c2..c5, or ``channels`` < 1.

    Differences from the paper:
        Each border head is a 1x1 convolution; the official head is an RRB to 9 channels then
        a 1x1 convolution. The official code also builds an RRB after the first stage that it
        never uses; we do not build it.
    """

    def __init__(self, in_channels: Mapping[str, int], channels: int = 32):
        super().__init__()
        _check_in_channels(in_channels, channels)
        self.pre = nn.ModuleDict({lv: RefinementResidualBlock(in_channels[lv], channels)
                                  for lv in LEVELS})
        self.post = nn.ModuleDict({lv: RefinementResidualBlock(channels, channels)
                                   for lv in LEVELS[1:]})
        self.heads = nn.ModuleDict({lv: nn.Conv2d(channels, 1, 1) for lv in LEVELS})

    def forward(self, features: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        low = LEVELS[0]
        b = self.pre[low](features[low])  # (N, C_b, H/4, W/4)
        borders = {low: self.heads[low](b)}  # (N, 1, H/4, W/4)
        for level in LEVELS[1:]:
            deeper = upsample_like(self.pre[level](features[level]), b)  # (N, C_b, H/4, W/4)
            b = self.post[level](b + deeper)  # (N, C_b, H/4, W/4)
            borders[level] = self.heads[level](b)  # (N, 1, H/4, W/4)
        return borders


FOCAL_LOSSES = {"correct": "focal_loss", "official": "official_focal_loss"}
"""Border loss name -> function of ``fusionlab.losses``: ``"correct"`` is the focal loss the
paper describes (``focal_loss``), ``"official"`` the official code's buggy transcription
(``official_focal_loss``), for the comparison."""


class BorderLoss:
    """The Border Network's loss term: a focal loss against the border target made on the fly
    from the class labels.

    An ``AuxLoss`` function receives the (N, H, W) class labels; this one builds DFN's border
    target from them (``fusionlab.boundaries.border_target``: Canny on the label map, a
    dilation scaled to the resolution, never on ignored pixels), marks the ignored pixels
    ``ignore_index`` so that the focal loss leaves them out, and returns
    ``focal(logits, target)`` with alpha 0.25 and gamma 2 (the official values).

    Args:
        focal: ``"correct"`` or ``"official"`` (see ``FOCAL_LOSSES``).
        ignore_index: label of ignored pixels, in the class labels and in the border target.
        dilation: side in pixels of the target's dilation (``None``: scaled to the labels'
            size, see ``fusionlab.boundaries.border_dilation``).

    Shape:
        logits (N, 1, H, W), labels (N, H, W) -> scalar; ``target``: labels (N, H, W) ->
        int64 (N, H, W) with 0, 1 and ``ignore_index``.

    Raises:
        ValueError: an unknown ``focal``; at the call, see ``border_target`` and the focal
            loss (labels and logits of different sizes).
        TypeError: at the call, labels that are not integers.
    """

    def __init__(self, focal: str = "correct", ignore_index: int = IGNORE_INDEX,
                 dilation: int | None = None):
        if focal not in FOCAL_LOSSES:
            raise ValueError(f"focal must be one of {tuple(FOCAL_LOSSES)}, got {focal!r}")
        self.focal = focal
        self.ignore_index = ignore_index
        self.dilation = dilation

    def target(self, labels: torch.Tensor) -> torch.Tensor:
        """The border target: 1 on borders, 0 elsewhere, ``ignore_index`` where the label is."""
        border = border_target(labels, self.ignore_index, self.dilation).long()  # (N, H, W)
        return border.masked_fill(labels == self.ignore_index, self.ignore_index)  # (N, H, W)

    def __call__(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        fn = getattr(losses, FOCAL_LOSSES[self.focal])
        return fn(logits, self.target(labels), ignore_index=self.ignore_index)

    def __repr__(self) -> str:
        return f"BorderLoss(focal={self.focal!r}, dilation={self.dilation})"


class DFN(SegmentationModel):
    """Discriminative Feature Network: Smooth Network + Border Network, each module
    switchable.

    DFN, CVPR 2018, Fig. 2 and Tables 2-3. The logits are the c2 stage head's prediction
    (the test-time output); the other stage heads and the border heads are auxiliary outputs.

    Args:
        num_classes: K.
        encoder: a ``ResNetEncoder`` (any output stride).
        rrb: refinement residual blocks in the Smooth Network (off: 1x1 lateral convolutions).
        gp: the global average pooling branch on c5.
        cab: channel attention blocks (off: fusion by addition).
        deep_supervision: prediction heads on c3, c4 and c5 too, outputs ``aux["stage_c3"]``
            .. ``aux["stage_c5"]``, cross-entropy of weight 1 each.
        border: the Border Network, outputs ``aux["border_c2"]`` .. ``aux["border_c5"]``
            (``border_cl`` is the head on the cumulative sum of stages c2..cl).
        border_weight: lambda, the weight of each border head's focal loss (0.1 in the paper).
        focal: the border loss, ``"correct"`` (the focal loss) or ``"official"`` (the official
            code's transcription, ``fusionlab.losses.official_focal_loss``).
        channels: C, the Smooth Network's width (512 in the paper).
        border_channels: C_b, the Border Network's width (21 in the official code).
        head: builds each stage's prediction head from (C, K); default a 1x1 convolution.

    Attributes:
        flags: ``{"rrb", "gp", "cab", "deep_supervision", "border"}`` -> bool.
        smooth: the ``SmoothNetwork``; border: the ``BorderNetwork`` or ``None``.
        heads: the stage heads, ``{level: module}``.

    Shape:
        images (N, 3, H, W) -> ``SegOutput``: logits (N, K, H, W); aux ``stage_c3`` ..
        ``stage_c5`` (N, K, H, W) with deep supervision, ``border_c2`` .. ``border_c5``
        (N, 1, H, W) with the Border Network.

    Raises:
        TypeError: a switch that is not a bool, a ``border_weight`` that is not a number.
        ValueError: a negative or non-finite ``border_weight``; an unknown ``focal``;
            ``border_weight`` or ``focal`` changed while ``border`` is off (they would be
            silently unused); ``channels`` or ``border_channels`` < 1; see
            ``SegmentationModel``.

    Differences from the paper:
        - The paper's Table 2 baseline (72.86) is ResNet-101 upsampled directly; its "+RRB"
          row already has the FCN-4 structure. Our all-off model is that FCN-4 structure
          without RRBs (1x1 lateral convolutions, addition), so our "+RRB" measures the RRB
          alone.
        - Every stage head is a 1x1 convolution (swappable by ``head``); the official head is
          an RRB to 9K channels, then a 1x1 convolution.
        - A small encoder trained from scratch, widths of 64-128 instead of 512, and our
          border target's dilation scaled to the resolution (see ``fusionlab.boundaries``).
        - See ``GlobalContext`` and ``BorderNetwork`` for their own differences.
    """

    def __init__(self, num_classes: int, encoder: ResNetEncoder, rrb: bool = True,
                 gp: bool = True, cab: bool = True, deep_supervision: bool = True,
                 border: bool = True, border_weight: float = 0.1, focal: str = "correct",
                 channels: int = 128, border_channels: int = 32,
                 head: HeadFactory = conv1x1_head):
        _check_flags(deep_supervision=deep_supervision, border=border)
        _check_border_loss(border_weight, focal)
        if not border and (border_weight != 0.1 or focal != "correct"):
            raise ValueError(f"border_weight and focal apply to the Border Network, which is "
                             f"off (border=False); got border_weight={border_weight}, "
                             f"focal={focal!r}")
        super().__init__(num_classes, encoder)
        self.smooth = SmoothNetwork(encoder.out_channels, channels, rrb, gp, cab)
        self.flags = {**self.smooth.flags, "deep_supervision": deep_supervision,
                      "border": border}
        self.border_weight = float(border_weight)
        self.focal = focal
        supervised = LEVELS if deep_supervision else LEVELS[:1]
        self.heads = nn.ModuleDict({lv: head(channels, num_classes) for lv in supervised})
        self.border = BorderNetwork(encoder.out_channels, border_channels) if border else None

    def decode(self, features):
        smoothed = self.smooth(features)  # {level: (N, C, H_l, W_l)}
        aux = {f"stage_{lv}": self.heads[lv](smoothed[lv])  # (N, K, H_l, W_l)
               for lv in LEVELS[1:] if lv in self.heads}
        if self.border is not None:
            aux.update({f"border_{lv}": b  # (N, 1, H/4, W/4)
                        for lv, b in self.border(features).items()})
        return self.heads[LEVELS[0]](smoothed[LEVELS[0]]), aux  # (N, K, H/4, W/4)

    def aux_losses(self) -> dict[str, losses.AuxLoss]:
        """The paper's loss terms besides the c2 head's cross-entropy (Sec. 3.3): weight-1
        cross-entropy on every other stage head, ``border_weight`` x the focal loss on every
        border head (target made from the labels by ``BorderLoss``)."""
        terms = {f"stage_{lv}": losses.AuxLoss(1.0)
                 for lv in LEVELS[1:] if lv in self.heads}
        if self.border is not None:
            terms.update(border_loss_terms(self.border_weight, self.focal))
        return terms


def border_loss_terms(weight: float = 0.1, focal: str = "correct") -> dict[str, losses.AuxLoss]:
    """The Border Network's loss terms: ``weight`` x ``BorderLoss(focal)`` on each border head,
    ``border_c2`` .. ``border_c5`` (DFN, Sec. 3.3: lambda = 0.1).

    Raises:
        TypeError: a ``weight`` that is not a number.
        ValueError: a negative or non-finite ``weight``; an unknown ``focal``.
    """
    _check_border_loss(weight, focal)
    border_loss = BorderLoss(focal)
    return {f"border_{lv}": losses.AuxLoss(float(weight), border_loss) for lv in LEVELS}


def _check_border_loss(weight, focal: str) -> None:
    if isinstance(weight, bool) or not isinstance(weight, (int, float)):
        raise TypeError(f"border_weight must be a number, got {weight!r}")
    if not math.isfinite(weight) or weight < 0:
        raise ValueError(f"border_weight must be a finite number >= 0, got {weight}")
    if focal not in FOCAL_LOSSES:
        raise ValueError(f"focal must be one of {tuple(FOCAL_LOSSES)}, got {focal!r}")


def _check_flags(**flags) -> None:
    wrong = {name: value for name, value in flags.items() if not isinstance(value, bool)}
    if wrong:
        raise TypeError(f"switches must be bools, got {wrong}")


def _check_in_channels(in_channels: Mapping[str, int], channels: int) -> None:
    missing = [lv for lv in LEVELS if lv not in in_channels]
    if missing:
        raise ValueError(f"in_channels must give the channels of {LEVELS}, missing {missing}")
    if not isinstance(channels, int) or channels < 1:
        raise ValueError(f"channels must be a positive int, got {channels!r}")

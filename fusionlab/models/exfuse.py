"""ExFuse: close the semantic gap between low- and high-level features before fusing them.

Zhang, Zhang, Peng, Xue, Sun, "ExFuse: Enhancing Feature Fusion for Semantic Segmentation",
ECCV 2018. Built on the GCN decoder (``fusionlab.models.gcn``). Two directions:

- more semantics in low-level features: layer rearrangement (LR, Sec. 3.1), semantic
  supervision (SS, Sec. 3.1), semantic embedding branch (SEB, Sec. 3.1, Fig. 4);
- more resolution in high-level features: explicit channel resolution embedding (ECRE,
  Sec. 3.2, Fig. 5) and densely adjacent prediction (DAP, Sec. 3.2, Fig. 6).

``ExFuse`` switches each module on or off, so the paper's cumulative ablation (Table 3) is one
loop over flags.

In the book: chapter 2, "The semantic gap: ExFuse" (``book/chapters/02-exfuse.ipynb``); what it
trains and the paper's own numbers: experiment ``exfuse`` in
``fusionlab/experiments/ablations/exfuse.py``.
"""

from __future__ import annotations

import itertools
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fusionlab.encoders import LEVELS, ResNetEncoder
from fusionlab.layers import ConvBNReLU, upsample_like
from fusionlab.models.base import HeadFactory, identity_head
from fusionlab.models.gcn import GCN, Deconv2x, GlobalConvBlock, crop_to


# -- layer rearrangement ----------------------------------------------------------------------
def rearranged_blocks(blocks: Sequence[int], moves: int | None = None) -> tuple[int, ...]:
    """Layer rearrangement's rule: move blocks, one at a time, from the fullest stage to the
    emptiest, until the stages are balanced (most and fewest blocks differ by at most 1).

    ExFuse, Sec. 3.1: ResNeXt-101's {3, 4, 23, 3} blocks become {8, 8, 9, 8}, which balances
    the stages (res-2, res-3 and res-5 gain blocks, res-4 gives 14); this rule reproduces it
    exactly. Ties: the donor is the highest of the fullest stages, the receiver the lowest of
    the emptiest, so a leftover block stays early. A balanced layout such as (2, 2, 2, 2) is
    returned unchanged.

    Args:
        blocks: residual blocks per stage, lowest stage first.
        moves: ``None`` to move until balanced; else exactly this many moves (at most as many
            as balancing takes), for a partial rearrangement.

    Returns:
        The rearranged blocks per stage (same total).

    Raises:
        TypeError: a block count or ``moves`` that is not an int.
        ValueError: fewer than two stages, a stage with fewer than one block, ``moves`` < 0,
            or more ``moves`` than balancing takes (names that number).
        RuntimeError: no balance within the bound on the moves (cannot happen with this rule).
    """
    counts = list(blocks)
    if any(not isinstance(b, int) or isinstance(b, bool) for b in counts):
        raise TypeError(f"blocks must be ints, got {tuple(blocks)}")
    if len(counts) < 2 or min(counts) < 1:
        raise ValueError(f"blocks must hold at least two stages of at least one block each, "
                         f"got {tuple(blocks)}")
    if moves is not None and (not isinstance(moves, int) or isinstance(moves, bool)):
        raise TypeError(f"moves must be an int or None, got {type(moves).__name__}")
    if moves is not None and moves < 0:
        raise ValueError(f"moves must be >= 0, got {moves}")
    # each move from a stage with a blocks to one with b <= a - 2 lowers the sum of squared
    # counts by 2 (a - b) - 2 >= 2, so balancing takes at most half that sum: a rule that
    # stopped lowering it would raise here instead of looping forever
    limit, done = sum(c * c for c in counts) // 2, 0
    while max(counts) - min(counts) > 1 and (moves is None or done < moves):
        if done == limit:
            raise RuntimeError(f"layer rearrangement of {tuple(blocks)} did not balance within "
                               f"{limit} moves")
        donor = max(range(len(counts)), key=lambda i: (counts[i], i))
        receiver = min(range(len(counts)), key=lambda i: (counts[i], i))
        counts[donor] -= 1
        counts[receiver] += 1
        done += 1
    if moves is not None and done < moves:
        raise ValueError(f"{tuple(blocks)} is balanced after {done} moves; cannot make {moves}")
    return tuple(counts)


def layer_rearrangement(encoder: ResNetEncoder, moves: int | None = None) -> ResNetEncoder:
    """A freshly initialised encoder with the blocks of ``encoder`` rearranged.

    ExFuse, Sec. 3.1 ("Layer Rearrangement"): the blocks per stage follow
    ``rearranged_blocks(encoder.blocks, moves)``; widths, block type, stem and output stride
    are the given encoder's. With basic or bottleneck blocks whose width doubles as the
    resolution halves, every block costs about the same FLOPs, so the compute stays about the
    same (the tests check the paper's layout and the one the ablation uses with
    ``fusionlab.bench.count_flops``); the parameter count does not, since late blocks hold far
    more weights than early ones.

    Args:
        encoder: the layout to start from (its weights are not used).
        moves: see ``rearranged_blocks`` (``None``: until balanced).

    Returns:
        The rearranged ``ResNetEncoder`` (random weights).

    Raises:
        TypeError, ValueError: see ``rearranged_blocks``.

    Differences from the paper:
        - The paper pretrains the rearranged ResNeXt on ImageNet; ours is trained from scratch
          on the segmentation data, like the layout it replaces.
        - The paper adjusts channel numbers to keep the complexity; we keep the widths, which
          keeps the FLOPs within a few percent but changes the parameter count.
    """
    return ResNetEncoder(blocks=rearranged_blocks(encoder.blocks, moves), widths=encoder.widths,
                         output_stride=encoder.strides["c5"], in_channels=encoder.in_channels,
                         block=encoder.block, stem_channels=encoder.conv1.out_channels)


# -- semantic supervision ---------------------------------------------------------------------
class SemanticSupervisionHead(nn.Module):
    """An auxiliary segmentation head on one encoder stage (semantic supervision).

    ExFuse, Sec. 3.1 and Fig. 3: an auxiliary branch on the tail of each stage, supervised, so
    that low-level features must carry semantics. Two 3x3 convolutions, then a 1x1 classifier;
    the head returns its class scores and the second convolution's features, which the paper
    feeds to the decoder during fine-tuning (Table 3: +1.5 against +1.1 with the heads removed).

    Args:
        in_channels: C_l of the stage.
        num_classes: K.
        channels: width C_ss of both 3x3 convolutions.

    Attributes:
        channels: C_ss, the channels of the features the head returns.

    Shape:
        (N, C_l, H, W) -> scores (N, K, H, W) and features (N, C_ss, H, W).

    Differences from the paper:
        The paper attaches classification branches (global pooling, fully connected layer)
        while pretraining the encoder on ImageNet, then either removes them or reads their
        second convolution's features while fine-tuning. We have no ImageNet pretraining, so
        the heads predict segmentation maps and are trained with the segmentation
        (deep-supervision loss); they stay in the model, which lets us look at each stage's
        own prediction. The paper gives no widths; 64 keeps the branch light next to the
        stages (32 to 256 channels in the cpu profile): at the stage's own width the four
        branches would hold more weights than the whole GCN model at that profile.
    """

    def __init__(self, in_channels: int, num_classes: int, channels: int = 64):
        super().__init__()
        self.channels = channels
        self.convs = nn.Sequential(ConvBNReLU(in_channels, channels, 3),
                                   ConvBNReLU(channels, channels, 3))
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.convs(x)  # (N, C_ss, H, W)
        return self.classifier(features), features  # (N, K, H, W), (N, C_ss, H, W)


# -- semantic embedding branch ----------------------------------------------------------------
class SemanticEmbeddingBranch(nn.Module):
    """SEB: x~_l = x_l * PROD over every higher level s of Up(Conv3x3(x_s)).

    ExFuse, Sec. 3.1, Eq. (2) and Fig. 4: each higher-level feature map is projected to the
    low level's channels by a 3x3 convolution, upsampled bilinearly and multiplied into the low
    level; with several higher levels, the product of all of them.

    Args:
        low_channels: C_l of the level being embedded into.
        high_channels: channels of every higher level, lowest first (e.g. (C3, C4, C5) for c2).

    Shape:
        low (N, C_l, H, W), highs [(N, C_s, h_s, w_s), ...] -> (N, C_l, H, W).

    Raises:
        ValueError: a different number of higher levels than ``high_channels``.
    """

    def __init__(self, low_channels: int, high_channels: Sequence[int]):
        super().__init__()
        if not high_channels:
            raise ValueError("SEB needs at least one higher level")
        self.convs = nn.ModuleList(nn.Conv2d(c, low_channels, 3, padding=1)
                                   for c in high_channels)

    def masks(self, low: torch.Tensor, highs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """The multiplicative masks Up(Conv3x3(x_s)), one (N, C_l, H, W) map per higher level."""
        if len(highs) != len(self.convs):
            raise ValueError(f"expected {len(self.convs)} higher levels, got {len(highs)}")
        return [upsample_like(conv(h), low) for conv, h in zip(self.convs, highs)]  # (N, C_l, H, W)

    def forward(self, low: torch.Tensor, highs: Sequence[torch.Tensor]) -> torch.Tensor:
        out = low
        for mask in self.masks(low, highs):
            out = out * mask  # (N, C_l, H, W)
        return out


# -- explicit channel resolution embedding ----------------------------------------------------
def bilinear_subpixel_taps(scale: int) -> torch.Tensor:
    """1-D bilinear weights of the three input pixels (offsets -1, 0, +1) for each of the
    ``scale`` sub-pixels of an output pixel, with half-pixel centres (``align_corners=False``).

    Sub-pixel a sits at input coordinate ``p + u`` with ``u = (a + 0.5) / r - 0.5`` in
    (-0.5, 0.5), so it interpolates pixel p with its upper or lower neighbour. For r = 2:
    ((0.25, 0.75, 0), (0, 0.75, 0.25)), the taps of the 4 x 4 stride-2 bilinear deconvolution.

    Shape:
        -> (r, 3).

    Raises:
        ValueError: ``scale`` < 1.
    """
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    taps = torch.zeros(scale, 3)
    for a in range(scale):
        u = (a + 0.5) / scale - 0.5
        taps[a, 1] = 1 - abs(u)
        taps[a, 0 if u < 0 else 2] += abs(u)
    return taps


class SubPixelUpsample(nn.Module):
    """Sub-pixel upsampling: a 3x3 convolution to C * r^2 channels, then pixel shuffle by r.

    Shi et al., "Real-Time Single Image and Video Super-Resolution Using an Efficient
    Sub-Pixel Convolutional Neural Network" (ESPCN), CVPR 2016, Sec. 2.2; used by ExFuse's
    ECRE (Sec. 3.2, Fig. 5). Channel ``c * r^2 + i * r + j`` becomes the sub-pixel (i, j) of
    channel c (PyTorch's ``pixel_shuffle`` order).

    A 3x3 sub-pixel convolution strictly contains the 4 x 4 stride-2 deconvolution: every
    output pixel of that deconvolution reads a 2 x 2 neighbourhood inside the 3 x 3 one. With
    ``init="bilinear"`` each sub-pixel starts as per-channel bilinear interpolation (weights
    from ``bilinear_subpixel_taps``, zero bias); for r = 2 this reproduces ``Deconv2x`` at
    initialisation exactly, borders included (both read zeros outside the map).

    Args:
        channels: C (in and out).
        scale: r.
        init: ``"bilinear"`` or ``"default"`` (PyTorch's random initialisation, as ESPCN).

    Shape:
        (N, C, h, w), reference (..., H, W) with H <= r*h <= H + 1 -> (N, C, H, W)
        (r*h, r*w before the crop).

    Raises:
        ValueError: an unknown ``init``, ``scale`` < 1; a reference the map cannot be cropped to
            (see ``crop_to``).
    """

    def __init__(self, channels: int, scale: int = 2, init: str = "bilinear"):
        super().__init__()
        if init not in ("bilinear", "default"):
            raise ValueError(f"init must be 'bilinear' or 'default', got {init!r}")
        taps = bilinear_subpixel_taps(scale)  # (r, 3)
        self.scale = scale
        self.conv = nn.Conv2d(channels, channels * scale * scale, 3, padding=1)
        if init == "bilinear":
            with torch.no_grad():
                self.conv.weight.zero_()
                self.conv.bias.zero_()
                for c, i, j in itertools.product(range(channels), range(scale), range(scale)):
                    self.conv.weight[(c * scale + i) * scale + j, c] = taps[i, :, None] * taps[j]

    def forward(self, x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        y = F.pixel_shuffle(self.conv(x), self.scale)  # (N, C, r*h, r*w)
        return crop_to(y, reference)  # (N, C, H, W)


ECRE_VARIANTS = {
    "ecre": ("subpixel", True),
    "subpixel": ("subpixel", False),
    "deconv+supervision": ("deconv", True),
}
"""ExFuse's Table 4: variant -> (upsampling of the top score map, supervised?). The baseline
(deconvolution, no supervision) is the plain ``GCN`` decoder. Every design starts from the same
function: the deconvolution (``Deconv2x``) and the sub-pixel convolution
(``SubPixelUpsample(init="bilinear")``) both start as bilinear upsampling, so the designs differ
only in what they can learn (the sub-pixel 3x3 support contains the deconvolution's) and in the
supervision."""


class ECRE(nn.Module):
    """Explicit channel resolution embedding: upsample the top score map by sub-pixel
    convolution, and supervise the upsampled map with an auxiliary loss.

    ExFuse, Sec. 3.2, Fig. 5 and Table 4: the supervision forces the top features to store
    their sub-pixel detail in their channels. Table 4 separates the two halves; ``variant``
    picks one of ``ECRE_VARIANTS``: ``"ecre"`` (sub-pixel + supervision), ``"subpixel"``
    (sub-pixel only) or ``"deconv+supervision"``.

    Args:
        channels: C of the score map (K in the GCN decoder).
        variant: the design, a key of ``ECRE_VARIANTS``.

    Attributes:
        supervised: whether the model should put the output in ``SegOutput.aux["ecre"]``.

    Shape:
        x (N, C, h, w), reference (..., H, W) with H <= 2h <= H + 1 -> (N, C, H, W).

    Raises:
        ValueError: an unknown ``variant``.

    Differences from the paper:
        The paper does not say how its sub-pixel convolution is initialised; ours starts as
        bilinear upsampling, like the deconvolution it replaces, so that Table 4's designs are
        compared at equal initialisation.
    """

    def __init__(self, channels: int, variant: str = "ecre"):
        super().__init__()
        if variant not in ECRE_VARIANTS:
            raise ValueError(f"ECRE variant must be one of {tuple(ECRE_VARIANTS)}, "
                             f"got {variant!r}")
        upsample, self.supervised = ECRE_VARIANTS[variant]
        self.variant = variant
        self.upsample = (SubPixelUpsample(channels, 2, init="bilinear") if upsample == "subpixel"
                         else Deconv2x(channels))

    def forward(self, x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        return self.upsample(x, reference)  # (N, C, H, W)


# -- densely adjacent prediction --------------------------------------------------------------
class DenselyAdjacentPrediction(nn.Module):
    """DAP: every position also predicts its k x k neighbours; the votes are averaged.

    ExFuse, Sec. 3.2, Eq. (3) and Fig. 6. The input holds one group of C class scores per
    offset (l, m), 0 <= l, m < k, group-major: channel ``(l*k + m)*C + c`` is class c of group
    (l, m). The output is

        out_c(i, j) = 1/k^2 * SUM_{l, m} r_c^{(l*k+m)}(i + l - k//2, j + m - k//2),

    i.e. the group (l, m) is read at the neighbour offset by (l - k//2, m - k//2).

    Border: positions outside the map contribute zero (zero padding), and the sum is still
    divided by k^2, exactly as the formula. A border pixel therefore has fewer votes and
    smaller scores, but since every class is scaled alike, its argmax is the argmax of the
    mean over the votes that exist.

    Args:
        kernel_size: k (odd; 3 in the paper).

    Shape:
        (N, C*k*k, H, W) -> (N, C, H, W).

    Raises:
        ValueError: an even ``kernel_size``; an input that is not 4-D or whose channels are not
            a multiple of k*k.
    """

    def __init__(self, kernel_size: int = 3):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.kernel_size = kernel_size

    def _padded_groups(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kernel_size
        if x.dim() != 4 or x.shape[1] % (k * k):
            raise ValueError(f"expected (N, C*{k * k}, H, W) scores, got {tuple(x.shape)}")
        n, _, h, w = x.shape
        groups = x.view(n, k * k, -1, h, w)  # (N, k*k, C, H, W)
        return F.pad(groups, (k // 2,) * 4)  # (N, k*k, C, H + 2*(k//2), W + 2*(k//2))

    def votes(self, x: torch.Tensor, i: int, j: int) -> torch.Tensor:
        """The k*k votes for position (i, j): ``votes[:, l, m]`` is r^{(l*k+m)} read at
        (i + l - k//2, j + m - k//2), zero outside the map; their mean is ``forward``'s
        output at (i, j).

        Shape:
            (N, C*k*k, H, W) -> (N, k, k, C).

        Raises:
            ValueError: (i, j) outside the map, or bad ``x`` (see the class).
        """
        k = self.kernel_size
        if not (0 <= i < x.shape[-2] and 0 <= j < x.shape[-1]):
            raise ValueError(f"position {(i, j)} is outside the {tuple(x.shape[-2:])} map")
        padded = self._padded_groups(x)  # padded row i + l is row i + l - k//2 of x
        rows = [torch.stack([padded[:, l * k + m, :, i + l, j + m] for m in range(k)], dim=1)
                for l in range(k)]  # k tensors (N, k, C)
        return torch.stack(rows, dim=1)  # (N, k, k, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kernel_size
        padded = self._padded_groups(x)
        h, w = x.shape[-2:]
        out = sum(padded[:, l * k + m, :, l:l + h, m:m + w]  # (N, C, H, W)
                  for l in range(k) for m in range(k))
        return out / (k * k)


# -- the model --------------------------------------------------------------------------------
SS_MODES = ("heads", "features")
"""Semantic supervision at segmentation time: ``"heads"``, auxiliary segmentation heads on
c2..c5 only; ``"features"``, the heads' second-convolution features are also fed to the
decoder (the GCN block of stage l reads ``concat(x_l, f_l)``)."""

DAP_MODES = ("dap", "conv3x3")
"""The last step on the stride-4 score map: ``"dap"``, a 1x1 convolution widening K to K*9
channels then densely adjacent prediction with k = 3; ``"conv3x3"``, the control: a plain 3x3
convolution K -> K on the same map (the same function class, see ``ExFuse``)."""


def _mode(name: str, value, modes: tuple[str, ...], default: str) -> str | None:
    """A module switch as a mode name: ``False``/``None`` -> ``None``, ``True`` -> ``default``.

    Raises:
        TypeError: a value that is neither a bool, ``None`` nor a str.
        ValueError: a str outside ``modes``.
    """
    if value is None or value is False:
        return None
    if value is True:
        return default
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a bool, None or one of {modes}, "
                        f"got {type(value).__name__}")
    if value not in modes:
        raise ValueError(f"{name} must be a bool or one of {modes}, got {value!r}")
    return value


class ExFuse(GCN):
    """The ExFuse network: the GCN decoder with each ExFuse module switchable.

    ExFuse, ECCV 2018, Fig. 2 and Table 3. With every flag off this is ``GCN``. The decoder
    input of stage l is ``x_l`` (or its SEB embedding), concatenated with the SS features when
    ``ss="features"``; the SS heads and the SEB read the raw encoder stages; the logits are
    ``head(DAP(s_2))``, where s_2 is the top-down output.

    Args:
        num_classes: K.
        encoder: a ``ResNetEncoder`` at output stride 32.
        kernel_size: k of the GCN blocks.
        lr: layer rearrangement: replace the encoder by ``layer_rearrangement(encoder,
            lr_moves)`` (freshly initialised; unchanged layout if already balanced).
        ss: semantic supervision: ``"heads"`` (auxiliary heads on c2..c5, outputs
            ``aux["ss_c2"]`` .. ``aux["ss_c5"]``), ``"features"`` (the same heads, and the GCN
            block of stage l reads ``concat(x_l, f_l)`` with f_l the head's second-convolution
            features, the setting of the paper's Table 3); ``True`` means ``"heads"``.
        seb: semantic embedding branch on c2, c3 and c4 (each with every higher level).
        ecre: ``True`` or ``"ecre"`` for sub-pixel upsampling of the top score map with an
            auxiliary loss on it (``aux["ecre"]``); ``"subpixel"`` or ``"deconv+supervision"``
            for Table 4's other designs; ``False``/``None`` for the plain deconvolution. All
            start as bilinear upsampling (see ``ECRE_VARIANTS``).
        dap: ``True`` or ``"dap"``: a 1x1 convolution widens the final score map to K*k^2
            channels, then ``DenselyAdjacentPrediction(dap_kernel)``; ``"conv3x3"``: the
            control, a plain 3x3 convolution K -> K on the same map (needs ``dap_kernel`` 3);
            ``False``/``None``: neither.
        lr_moves: blocks moved by the layer rearrangement (``None``: until balanced).
        dap_kernel: k of DAP.
        head: builds the prediction head on the final score map (see ``GCN``).

    Attributes:
        flags: the normalised switches, e.g. ``{"lr": True, "ss": "heads", "seb": False,
            "ecre": "ecre", "dap": None}``.

    Shape:
        images (N, 3, H, W) -> ``SegOutput``: logits (N, K, H, W), aux (each (N, K, H, W))
        named ``ss_c2``..``ss_c5`` and ``ecre`` when those modules are on.

    Raises:
        ValueError: an unknown ``ss``, ``ecre`` or ``dap`` mode; ``dap="conv3x3"`` with a
            ``dap_kernel`` other than 3; see ``GCN``, ``rearranged_blocks``.
        TypeError: a switch of the wrong type; see ``GCN``.

    Differences from the paper:
        - Semantic supervision at segmentation time, not during ImageNet pretraining (see
          ``SemanticSupervisionHead``). ``"heads"`` stands for the paper's heads-removed
          setting (+1.1) and ``"features"`` for its features-fed setting (+1.5); the paper
          reads the features instead of the stage tail, we concatenate both, so the GCN block
          still sees the raw stage (or its SEB embedding).
        - Layer rearrangement on our small ResNet trained from scratch (the paper pretrains the
          rearranged ResNeXt on ImageNet), with our widths kept (the paper adjusts channels).
          The rule balances the stages, so a balanced encoder such as (2, 2, 2, 2) is left as
          it is; an ablation needs an unbalanced base layout, e.g. (1, 1, 5, 1) -> (2, 2, 2, 2).
        - The paper does not say which layer widens the final score map to K*k^2 channels for
          DAP; we add a 1x1 convolution after the last BR block. That 1x1 convolution followed
          by DAP is one linear k x k convolution K -> K (exactly, up to the bias at the
          border), hence the ``"conv3x3"`` control.
        - See ``GCN`` for the decoder's own differences (k, final resolution).
    """

    def __init__(self, num_classes: int, encoder: ResNetEncoder, kernel_size: int = 7,
                 lr: bool = False, ss: bool | str | None = False, seb: bool = False,
                 ecre: bool | str | None = False, dap: bool | str | None = False,
                 lr_moves: int | None = None, dap_kernel: int = 3,
                 head: HeadFactory = identity_head):
        for name, value in (("lr", lr), ("seb", seb)):
            if not isinstance(value, bool):
                raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
        ss = _mode("ss", ss, SS_MODES, "heads")
        ecre = _mode("ecre", ecre, tuple(ECRE_VARIANTS), "ecre")
        dap = _mode("dap", dap, DAP_MODES, "dap")
        if lr:
            encoder = layer_rearrangement(encoder, lr_moves)
        super().__init__(num_classes, encoder, kernel_size, head)
        self.flags = {"lr": lr, "ss": ss, "seb": seb, "ecre": ecre, "dap": dap}
        chans, k = encoder.out_channels, num_classes
        self.ss = nn.ModuleDict({lv: SemanticSupervisionHead(chans[lv], k)
                                 for lv in LEVELS}) if ss else None
        if ss == "features":  # the GCN block reads concat(x_l, f_l): (N, C_l + C_ss, H_l, W_l)
            self.gcn = nn.ModuleDict({
                lv: GlobalConvBlock(chans[lv] + self.ss[lv].channels, k, kernel_size)
                for lv in LEVELS})
        self.seb = nn.ModuleDict({
            lv: SemanticEmbeddingBranch(chans[lv], [chans[s] for s in LEVELS[i + 1:]])
            for i, lv in enumerate(LEVELS[:-1])}) if seb else None
        self.ecre_supervised = bool(ecre) and ECRE_VARIANTS[ecre][1]
        if ecre:
            self.up[LEVELS[-2]] = ECRE(k, ecre)
        self.dap = None
        if dap == "dap":
            self.dap = nn.Sequential(nn.Conv2d(k, k * dap_kernel ** 2, 1),
                                     DenselyAdjacentPrediction(dap_kernel))
        elif dap == "conv3x3":
            if dap_kernel != 3:
                raise ValueError(f"dap='conv3x3' is the control of DAP with k = 3, got "
                                 f"dap_kernel={dap_kernel}")
            self.dap = nn.Conv2d(k, k, 3, padding=1)

    def embed(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Apply the SEB to c2..c4, each reading the raw higher levels (a copy of the input
        when ``seb`` is off); same shapes as the input."""
        embedded = dict(features)
        if self.seb is not None:
            for i, lv in enumerate(LEVELS[:-1]):
                embedded[lv] = self.seb[lv](features[lv], [features[s] for s in LEVELS[i + 1:]])
        return embedded

    def decoder_inputs(self, features: dict[str, torch.Tensor]
                       ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """What the GCN blocks read, and the semantic-supervision predictions.

        Returns:
            the stages after SEB (``embed``), each concatenated with its SS head's features
            when ``ss="features"`` ((N, C_l + C_ss, H_l, W_l)), and ``{"ss_c2": (N, K, H/4,
            W/4), ...}`` (empty without SS).
        """
        aux, inputs = {}, self.embed(features)
        if self.ss is not None:
            for lv, head in self.ss.items():
                aux[f"ss_{lv}"], f = head(features[lv])  # (N, K, H_l, W_l), (N, C_ss, H_l, W_l)
                if self.flags["ss"] == "features":
                    inputs[lv] = torch.cat([inputs[lv], f], 1)  # (N, C_l + C_ss, H_l, W_l)
        return inputs, aux

    def decode(self, features):
        inputs, aux = self.decoder_inputs(features)
        s, upsampled = self.top_down(self.stage_scores(inputs))  # (N, K, H/4, W/4)
        if self.ecre_supervised:
            aux["ecre"] = upsampled[LEVELS[-2]]  # (N, K, H/16, W/16)
        if self.dap is not None:
            s = self.dap(s)  # (N, K, H/4, W/4)
        return self.predict(s), aux


__all__ = ["rearranged_blocks", "layer_rearrangement", "SemanticSupervisionHead",
           "SemanticEmbeddingBranch", "bilinear_subpixel_taps", "SubPixelUpsample",
           "ECRE_VARIANTS", "ECRE", "DenselyAdjacentPrediction", "SS_MODES", "DAP_MODES",
           "ExFuse"]
